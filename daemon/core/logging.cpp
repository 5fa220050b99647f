// spdlog setup and access-log formatting.
#include "core/logging.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <iterator>
#include <utility>

#include <sys/uio.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/details/console_globals.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "core/coarse_clock.hpp"

namespace sluice::logging {

namespace {

std::atomic<bool> access_on{true};
std::atomic<config::log_format> access_format{config::log_format::text};
std::atomic<std::int64_t> access_flush_ms{1000};  // log.access_log_flush_interval
std::atomic<std::uint64_t> configuration{0};      // bumped by every configure()
// Set by configure(): before it, access lines go nowhere.
std::atomic<bool> access_configured{false};

std::shared_ptr<spdlog::logger> make_logger(const char* name, const char* pattern) {
    auto logger = spdlog::get(name);
    if (!logger) {
        logger = spdlog::stderr_logger_mt(name);
    }
    logger->set_pattern(pattern);
    return logger;
}

// Access lines written at once: up to this many bytes per write (Envoy's file access log
// buffers 64 KiB too).
constexpr std::size_t batch_limit = 64 * 1024;

// The longest text access line, less its string fields: the key names and separators (127
// bytes), a timestamp (at most 31), four integers of at most 20 digits and two durations of at
// most 27 characters (whole_microseconds() bounds them to 14 digits and 7).
constexpr std::size_t text_fixed_bound = 127 + 31 + 4 * 20 + 2 * 27;

// The access lines of one thread waiting for flush_access(), without the last newline
// (write_lines() adds it), and what makes the flush happen.
struct access_batch {
    std::string lines;
    std::function<void()> schedule;     // empty: this thread writes every line at once
    std::uint64_t scheduled_under = 0;  // the configuration its flush was scheduled under
};
thread_local access_batch batch;

// `seconds` rounded to whole microseconds, within [0, 1e13 s] (about 317 000 years): a double
// out of an integer's range converts with undefined behaviour, and a NaN counts as 0.
std::uint64_t whole_microseconds(double seconds) {
    constexpr double max_seconds = 1e13;
    if (!(seconds > 0))
        return 0;
    return static_cast<std::uint64_t>(std::min(seconds, max_seconds) * 1e6 + 0.5);
}

// "YYYY-MM-DDTHH:MM:SS" of the current second in UTC (the lines end it with 'Z'); formatted
// once per second per thread.
std::string_view timestamp(std::chrono::system_clock::time_point now) {
    thread_local std::time_t cached_second = -1;
    thread_local char text[32];
    thread_local std::size_t length = 0;
    const std::time_t second = std::chrono::system_clock::to_time_t(now);
    if (second != cached_second) {
        std::tm tm{};
        gmtime_r(&second, &tm);
        length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_second = second;
    }
    return {text, length};
}

// Writes `lines` and a newline to stderr with as few write(2) calls as the kernel allows (one,
// short of a signal or a full pipe), under the mutex of spdlog's stderr sinks: the daemon's own
// lines never land inside a batch, even on a pipe, where writes over PIPE_BUF are not atomic.
// The batch goes out as it is, without a copy through spdlog's formatter (which grew a buffer
// to the batch's size and freed it again on every flush). A failed write drops the rest, as
// spdlog does.
void write_lines(std::string_view lines) {
    if (!access_configured.load(std::memory_order_acquire))
        return;
    static const char newline = '\n';
    iovec parts[2] = {{const_cast<char*>(lines.data()), lines.size()},
                      {const_cast<char*>(&newline), 1}};
    iovec* next = parts;
    int left = 2;
    std::lock_guard lock(spdlog::details::console_mutex::mutex());
    while (left > 0) {
        const ssize_t n = ::writev(STDERR_FILENO, next, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        auto written = static_cast<std::size_t>(n);
        while (left > 0 && written >= next->iov_len) {
            written -= next->iov_len;
            ++next;
            --left;
        }
        if (left > 0) {
            next->iov_base = static_cast<char*>(next->iov_base) + written;
            next->iov_len -= written;
        }
    }
}

// Schedules the batch's flush when it is new (`was_empty`) or was scheduled before the last
// configure(), so that a shorter interval also applies to the lines already waiting.
void schedule_batch(bool was_empty) {
    const auto now_under = configuration.load(std::memory_order_acquire);
    if (was_empty || batch.scheduled_under != now_under) {
        batch.scheduled_under = now_under;
        batch.schedule();
    }
}

// After a line was added to this thread's batch (which was empty before when `was_empty`):
// writes a full batch at once, or schedules its flush.
void line_batched(bool was_empty) {
    if (batch.lines.size() >= batch_limit)
        flush_access();
    else
        schedule_batch(was_empty);
}

// Queues one line (no newline) on this thread's batch, or writes it when the thread does not
// batch.
void emit(std::string_view line) {
    if (!batch.schedule) {
        write_lines(line);
        return;
    }
    const bool was_empty = batch.lines.empty();
    if (!was_empty)
        batch.lines += '\n';
    batch.lines += line;
    line_batched(was_empty);
}

}  // namespace

void configure(const config::log_config& cfg) {
    auto main = make_logger("sluice", "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    auto level = spdlog::level::from_str(cfg.level);
    if (level == spdlog::level::off && cfg.level != "off")
        level = spdlog::level::info;
    main->set_level(level);
    main->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(main);

    // The access log is one line per request, with no level prefix, so JSON lines stay JSON;
    // write_lines() puts its batches on stderr.
    access_configured.store(true, std::memory_order_release);
    access_on.store(cfg.access_log, std::memory_order_relaxed);
    access_format.store(cfg.format, std::memory_order_relaxed);
    access_flush_ms.store(cfg.access_log_flush_interval.count(), std::memory_order_relaxed);
    configuration.fetch_add(1, std::memory_order_release);
}

std::chrono::milliseconds access_flush_interval() noexcept {
    return std::chrono::milliseconds{access_flush_ms.load(std::memory_order_relaxed)};
}

bool access_enabled() noexcept {
    return access_on.load(std::memory_order_relaxed);
}

std::string_view strip_query(std::string_view path) noexcept {
    return path.substr(0, path.find('?'));
}

void batch_access_on_this_thread(std::function<void()> schedule) {
    flush_access();
    batch.schedule = std::move(schedule);
}

void reschedule_access() {
    if (batch.schedule && !batch.lines.empty())
        schedule_batch(false);
}

void flush_access() {
    if (batch.lines.empty())
        return;
    write_lines(batch.lines);
    batch.lines.clear();
}

void access(const access_entry& e) {
    if (!access_enabled())
        return;
    const auto now = coarse_clock::wall_now();  // printed to the second
    if (access_format.load(std::memory_order_relaxed) == config::log_format::json) {
        boost::json::object o;
        o["ts"] = boost::json::string_view{};  // replaced below: keep key order stable
        o["client"] = e.client;
        o["upstream"] = e.upstream;
        o["method"] = e.method;
        o["host"] = e.host;
        o["path"] = e.path;
        o["status"] = e.status;
        o["bytes_in"] = e.bytes_in;
        o["bytes_out"] = e.bytes_out;
        // Whole microseconds: Boost.JSON would print small doubles in exponent form.
        o["duration_us"] = static_cast<std::int64_t>(whole_microseconds(e.duration_seconds));
        o["attempts"] = e.attempts;
        o["queue_wait_us"] = static_cast<std::int64_t>(whole_microseconds(e.queue_wait_seconds));
        o["breaker"] = e.breaker;
        if (!e.error.empty())
            o["error"] = e.error;
        std::string ts(timestamp(now));
        ts += 'Z';
        o["ts"] = ts;
        emit(boost::json::serialize(o));
        return;
    }
    // The line is written straight into the thread's batch (or a reused buffer) through a
    // pointer, into room reserved for its longest form: the same text as one fmt::format_to
    // of the whole line, at a fraction of its cost (DESIGN §9 measures with the access log on).
    const std::string_view breaker = e.breaker.empty() ? std::string_view("-") : e.breaker;
    const std::size_t bound = text_fixed_bound + e.client.size() + e.upstream.size() +
                              e.method.size() + e.host.size() + e.path.size() + breaker.size() +
                              e.error.size();
    thread_local std::string unbatched;
    std::string& out = batch.schedule ? batch.lines : unbatched;
    if (!batch.schedule)
        out.clear();
    const bool was_empty = out.empty();
    const std::size_t start = out.size();
    out.resize(start + (was_empty ? 0 : 1) + bound);
    char* const first = out.data() + start;
    char* p = first;
    if (!was_empty)
        *p++ = '\n';
    const auto put = [&p](std::string_view text) {
        // Never from a null view: memcpy(…, nullptr, 0) is undefined behaviour.
        if (!text.empty()) {
            std::memcpy(p, text.data(), text.size());
            p += text.size();
        }
    };
    const auto put_number = [&](std::uint64_t n) {
        const fmt::format_int digits(n);
        put(std::string_view(digits.data(), digits.size()));
    };
    // Seconds with six decimals, printed from whole microseconds (as "{}.{:06}" would).
    const auto put_seconds = [&](double seconds) {
        const auto us = whole_microseconds(seconds);
        put_number(us / 1000000);
        *p = '.';
        auto rest = us % 1000000;
        for (int i = 6; i >= 1; --i, rest /= 10)
            p[i] = static_cast<char>('0' + rest % 10);
        p += 7;
    };
    put(timestamp(now));
    put("Z access client=");
    put(e.client);
    put(" upstream=");
    put(e.upstream);
    put(" method=");
    put(e.method);
    put(" host=");
    put(e.host);
    put(" path=");
    put(e.path);
    put(" status=");
    put_number(e.status);
    put(" bytes_in=");
    put_number(e.bytes_in);
    put(" bytes_out=");
    put_number(e.bytes_out);
    put(" duration_s=");
    put_seconds(e.duration_seconds);
    put(" attempts=");
    put_number(e.attempts);
    put(" queue_wait_s=");
    put_seconds(e.queue_wait_seconds);
    put(" breaker=");
    put(breaker);
    if (!e.error.empty()) {
        put(" error=");
        put(e.error);
    }
    assert(static_cast<std::size_t>(p - first) <= bound + 1);
    out.resize(static_cast<std::size_t>(p - out.data()));
    if (!batch.schedule) {
        write_lines(out);
        return;
    }
    line_batched(was_empty);
}

}  // namespace sluice::logging
