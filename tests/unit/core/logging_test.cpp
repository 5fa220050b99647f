// The access log line (its exact text, text and JSON) and the per-thread batching of lines.
#include "core/logging.hpp"

#include <algorithm>
#include <ctime>
#include <limits>
#include <regex>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/chrono.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "core/coarse_clock.hpp"

namespace sluice::logging {
namespace {

config::log_config log_config(config::log_format format) {
    config::log_config c;
    c.level = "info";
    c.format = format;
    c.access_log = true;
    return c;
}

access_entry sample() {
    access_entry e;
    e.client = "127.0.0.1:5555";
    e.upstream = "bench";
    e.method = "GET";
    e.host = "bench.test";
    e.path = "/v1/items";
    e.status = 200;
    e.bytes_in = 3;
    e.bytes_out = 2;
    e.duration_seconds = 0.0015;
    e.attempts = 1;
    e.queue_wait_seconds = 0.25;
    e.breaker = "closed";
    return e;
}

// What the access log wrote: the lines (and the time just before and after, for the stamp).
struct captured {
    std::string text;
    std::string stamp_before, stamp_after;  // "{:%Y-%m-%dT%H:%M:%S}" in UTC
};

// From the clock the access line reads: coarse_clock::wall_now() (CLOCK_REALTIME_COARSE), which
// can still say the previous second a few milliseconds after system_clock has passed it.
std::string utc_stamp() {
    std::time_t t = std::chrono::system_clock::to_time_t(coarse_clock::wall_now());
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}", fmt::gmtime(t));
}

template <class F>
captured capture(F&& f) {
    captured c;
    c.stamp_before = utc_stamp();
    testing::internal::CaptureStderr();
    f();
    c.text = testing::internal::GetCapturedStderr();
    c.stamp_after = utc_stamp();
    return c;
}

// Logs two sample lines.
void two_lines() {
    access(sample());
    access(sample());
}

void expect_stamp(const captured& c, std::string_view stamp) {
    EXPECT_TRUE(stamp == c.stamp_before || stamp == c.stamp_after)
        << stamp << " vs " << c.stamp_before << ".." << c.stamp_after;
}

TEST(AccessLog, SecondsArePrintedAsPrintfWouldWithSixDecimals) {
    // The line prints seconds from whole microseconds; the text must be {:.6f}'s.
    configure(log_config(config::log_format::text));
    for (double s : {0.0, 0.0000004, 0.0000006, 0.000001, 0.0123456789, 1.9999996, 59.25,
                     3600.000001, 86400.5}) {
        access_entry e = sample();
        e.duration_seconds = s;
        e.queue_wait_seconds = s / 3;
        auto c = capture([&] { access(e); });
        EXPECT_NE(c.text.find(fmt::format(" duration_s={:.6f} ", s)), std::string::npos) << c.text;
        EXPECT_NE(c.text.find(fmt::format(" queue_wait_s={:.6f} ", s / 3)), std::string::npos)
            << c.text;
    }
}

TEST(AccessLog, TextLineCarriesEveryFieldInOrder) {
    configure(log_config(config::log_format::text));
    auto c = capture([] { access(sample()); });
    std::smatch m;
    ASSERT_TRUE(std::regex_match(
        c.text, m,
        std::regex(R"((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z access client=127\.0\.0\.1:5555 )"
                   R"(upstream=bench method=GET host=bench\.test path=/v1/items status=200 )"
                   R"(bytes_in=3 bytes_out=2 duration_s=0\.001500 attempts=1 )"
                   R"(queue_wait_s=0\.250000 breaker=closed\n)")))
        << c.text;
    expect_stamp(c, m[1].str());
}

// The stamp ends in 'Z': it must be UTC whatever the host's zone (it once was local time).
TEST(AccessLog, StampIsUtcInAnyTimeZone) {
    const char* old_tz = std::getenv("TZ");
    const std::string saved = old_tz ? old_tz : "";
    setenv("TZ", "IST-5:30", 1);  // POSIX form: no tzdata needed
    tzset();
    // The stamp is cached per second: start in a second no earlier line has formatted.
    const auto second = [] {
        return std::chrono::system_clock::to_time_t(coarse_clock::wall_now());
    };
    for (const auto start = second(); second() == start;)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    configure(log_config(config::log_format::text));
    auto c = capture([] { access(sample()); });
    if (old_tz)
        setenv("TZ", saved.c_str(), 1);
    else
        unsetenv("TZ");
    tzset();
    ASSERT_GE(c.text.size(), 20u);
    EXPECT_EQ(c.text[19], 'Z');
    expect_stamp(c, std::string_view(c.text).substr(0, 19));
}

TEST(AccessLog, TextLineNamesTheErrorAndAMissingBreaker) {
    configure(log_config(config::log_format::text));
    auto e = sample();
    e.upstream = "unrouted";
    e.breaker = "";
    e.error = "http_request_denied";
    e.status = 403;
    auto c = capture([&] { access(e); });
    EXPECT_NE(c.text.find(" status=403 "), std::string::npos) << c.text;
    EXPECT_TRUE(c.text.ends_with(" breaker=- error=http_request_denied\n")) << c.text;
}

TEST(AccessLog, JsonLineIsOneObject) {
    configure(log_config(config::log_format::json));
    auto c = capture([] { access(sample()); });
    ASSERT_TRUE(c.text.ends_with("}\n")) << c.text;
    auto v = boost::json::parse(c.text).as_object();
    std::string ts(v.at("ts").as_string());
    ASSERT_EQ(ts.size(), 20u) << ts;
    EXPECT_EQ(ts.back(), 'Z');
    expect_stamp(c, std::string_view(ts).substr(0, 19));
    EXPECT_EQ(v.at("path").as_string(), "/v1/items");
    EXPECT_EQ(v.at("duration_us").as_int64(), 1500);
    EXPECT_EQ(v.at("queue_wait_us").as_int64(), 250000);
    EXPECT_FALSE(v.contains("error"));
    EXPECT_EQ(c.text.find("\"ts\""), 1u);  // key order kept: ts first
}

TEST(AccessLog, FlushIntervalFollowsTheLastConfigure) {
    auto cfg = log_config(config::log_format::text);
    cfg.access_log_flush_interval = std::chrono::milliseconds{250};
    configure(cfg);
    EXPECT_EQ(access_flush_interval(), std::chrono::milliseconds{250});
    cfg.access_log_flush_interval = std::chrono::milliseconds{0};
    configure(cfg);  // a reload
    EXPECT_EQ(access_flush_interval(), std::chrono::milliseconds{0});
}

// A reload that shortens the interval must reach lines already waiting: the batch is
// scheduled again by the first line after configure(), not only by the first of the batch.
TEST(AccessLog, AReloadSchedulesAWaitingBatchAgain) {
    configure(log_config(config::log_format::text));
    int scheduled = 0;
    batch_access_on_this_thread([&] { ++scheduled; });
    auto queued = capture(two_lines);
    EXPECT_EQ(scheduled, 1);
    auto cfg = log_config(config::log_format::text);
    cfg.access_log_flush_interval = std::chrono::milliseconds{0};
    configure(cfg);
    auto after = capture(two_lines);
    EXPECT_EQ(scheduled, 2);  // once again after the reload, not per line
    reschedule_access();      // what a reload posts to every I/O thread
    EXPECT_EQ(scheduled, 2);  // already scheduled under this configuration
    configure(cfg);
    reschedule_access();  // a thread that logs nothing more after the reload
    EXPECT_EQ(scheduled, 3);
    auto rest = capture([] { batch_access_on_this_thread(nullptr); });
    EXPECT_EQ(queued.text + after.text, "");
    EXPECT_EQ(std::count(rest.text.begin(), rest.text.end(), '\n'), 4);
}

TEST(AccessLog, BatchedLinesWaitForTheFlushAndGoOutTogether) {
    configure(log_config(config::log_format::text));
    int scheduled = 0;
    batch_access_on_this_thread([&] { ++scheduled; });
    auto queued = capture(two_lines);
    EXPECT_EQ(queued.text, "");
    EXPECT_EQ(scheduled, 1);  // once per batch, not per line
    auto flushed = capture([] { flush_access(); });
    EXPECT_EQ(std::count(flushed.text.begin(), flushed.text.end(), '\n'), 2) << flushed.text;
    EXPECT_EQ(flushed.text.find(" access "), 20u);  // after "YYYY-MM-DDTHH:MM:SSZ"
    auto again = capture([] { flush_access(); });
    EXPECT_EQ(again.text, "");  // nothing twice

    access(sample());
    EXPECT_EQ(scheduled, 2);  // the next batch schedules its own flush
    // Stopping writes what was batched; then every line goes out at once.
    auto stopped = capture([] { batch_access_on_this_thread(nullptr); });
    EXPECT_EQ(std::count(stopped.text.begin(), stopped.text.end(), '\n'), 1);
    auto direct = capture([] { access(sample()); });
    EXPECT_EQ(std::count(direct.text.begin(), direct.text.end(), '\n'), 1);
}

// Every field at its longest (the line is written into room reserved for that): the text is
// whole, batched or not, and a batch that passes 64 KiB is written at once, lines intact.
TEST(AccessLog, LongestFieldsAndAFullBatchKeepEveryLineWhole) {
    configure(log_config(config::log_format::text));
    const std::string path = "/" + std::string(13000, 'p');
    const std::string host(255, 'h');
    auto e = sample();
    e.path = path;
    e.host = host;
    e.method = "PROPPATCH";
    e.status = 599;
    e.bytes_in = e.bytes_out = UINT64_MAX;
    e.attempts = UINT32_MAX;
    e.duration_seconds = 1e19;  // past any integer of microseconds: printed at the 1e13 s cap
    e.queue_wait_seconds = std::numeric_limits<double>::infinity();
    e.breaker = "half_open";
    e.error = "connection_read_timeout";
    const std::string tail = fmt::format(
        " method=PROPPATCH host={} path={} status=599 bytes_in={} bytes_out={} "
        "duration_s=10000000000000.000000 attempts={} "
        "queue_wait_s=10000000000000.000000 breaker=half_open "
        "error=connection_read_timeout\n",
        host, path, UINT64_MAX, UINT64_MAX, UINT32_MAX);
    auto direct = capture([&] { access(e); });
    EXPECT_TRUE(direct.text.ends_with(tail)) << direct.text.substr(direct.text.find(" status="));

    int scheduled = 0;
    batch_access_on_this_thread([&] { ++scheduled; });
    ASSERT_GT(5 * direct.text.size(), 64u * 1024);  // five lines pass 64 KiB, four do not
    ASSERT_LT(4 * direct.text.size(), 64u * 1024);
    auto full = capture([&] {
        for (int i = 0; i < 5; ++i)
            access(e);
    });
    auto sixth = capture([&] { access(e); });
    EXPECT_EQ(sixth.text, "");  // a new batch
    auto rest = capture([&] { batch_access_on_this_thread(nullptr); });
    EXPECT_EQ(scheduled, 2);
    std::size_t lines = 0;
    for (const std::string& text : {full.text, rest.text}) {
        for (std::size_t at = 0; at < text.size(); ++lines) {
            const auto end = text.find('\n', at);
            ASSERT_NE(end, std::string::npos);
            EXPECT_TRUE(std::string_view(text).substr(at, end + 1 - at).ends_with(tail));
            EXPECT_EQ(text.substr(at + 19, 9), "Z access ");
            at = end + 1;
        }
    }
    EXPECT_EQ(lines, 6u);
    EXPECT_EQ(std::count(full.text.begin(), full.text.end(), '\n'), 5);
}

// A batch larger than a pipe holds is written in pieces as the reader drains the pipe; the
// daemon's own lines, logged meanwhile from another thread, come before or after it, never
// inside it (journald and docker read stderr through a pipe).
TEST(AccessLog, BatchesOnAPipeAreNeverSplitByDaemonLines) {
    configure(log_config(config::log_format::text));
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ASSERT_GT(::fcntl(fds[1], F_SETPIPE_SZ, 4096), 0);
    const int saved = ::dup(STDERR_FILENO);
    ASSERT_EQ(::dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    ::close(fds[1]);

    std::string got;
    std::thread reader([&] {
        char buf[1024];
        for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
            got.append(buf, static_cast<std::size_t>(n));
    });
    std::thread daemon([] {
        for (int i = 0; i < 200; ++i)
            spdlog::warn("daemon line {}", i);
    });
    // About 50 KiB each: under the 64 KiB at which a batch is written by itself, so every
    // write(2) boundary is a flush_access() below.
    constexpr int batches = 20, per_batch = 250;
    int scheduled = 0;
    batch_access_on_this_thread([&] { ++scheduled; });
    for (int b = 0; b < batches; ++b) {
        for (int i = 0; i < per_batch; ++i)
            access(sample());
        flush_access();
    }
    batch_access_on_this_thread(nullptr);
    daemon.join();
    ::dup2(saved, STDERR_FILENO);  // the pipe's last writer goes: the reader sees its end
    ::close(saved);
    reader.join();
    ::close(fds[0]);

    std::size_t access_lines = 0, daemon_lines = 0, run = 0;
    for (std::size_t at = 0; at < got.size();) {
        const auto end = got.find('\n', at);
        ASSERT_NE(end, std::string::npos) << "unterminated line at " << at;
        const std::string_view line(got.data() + at, end - at);
        if (line.find(" access ") == 20 && line.ends_with("breaker=closed")) {
            ++access_lines;
            ++run;
        } else {
            ASSERT_NE(line.find("daemon line"), std::string_view::npos) << line;
            // A daemon line between two access lines is allowed only between batches.
            EXPECT_EQ(run % per_batch, 0u) << "a daemon line inside a batch, after " << run;
            ++daemon_lines;
        }
        at = end + 1;
    }
    EXPECT_EQ(access_lines, std::size_t{batches * per_batch});
    EXPECT_EQ(daemon_lines, 200u);
}

TEST(AccessLog, OffWritesNothing) {
    auto cfg = log_config(config::log_format::text);
    cfg.access_log = false;
    configure(cfg);
    auto c = capture([] { access(sample()); });
    EXPECT_EQ(c.text, "");
    EXPECT_FALSE(access_enabled());
}

}  // namespace
}  // namespace sluice::logging
