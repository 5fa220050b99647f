// Retries through the real server (DESIGN §3.5, issue 3): backoff spacing, which methods and
// outcomes are retried, bodies re-sent byte-identical (shared case 3), non-idempotent requests
// sent once (shared case 4), Retry-After in every form (shared case 6) and 429 + Retry-After.
// Every spacing is measured between the upstream's own arrival stamps.
#include <cctype>
#include <functional>
#include <mutex>
#include <optional>

#include "integration/policy_harness.hpp"

namespace sluice::test {
namespace {

using wall = std::chrono::system_clock;

/// Retries on, jitter 0, so that delays are exact: 100, 200, 400 ms ... capped at 5 s.
void fast_retries(config::policy& p, std::uint32_t max_retries = 3) {
    p.retry.enabled = true;
    p.retry.max_retries = max_retries;
    p.retry.initial_delay = 100ms;
    p.retry.exponential_base = 2.0;
    p.retry.max_delay = 5s;
    p.retry.jitter = 0;
}

/// Tolerance on a measured spacing: the delay itself, plus discarding the response, re-admission
/// and writing the request again on a loaded 2-core machine.
constexpr milliseconds slack = 100ms;

#define EXPECT_SPACING(gap, expected)                           \
    do {                                                        \
        EXPECT_GE((gap).count(), (expected).count());           \
        EXPECT_LT((gap).count(), ((expected) + slack).count()); \
    } while (0)

class Retry : public policy_test {};

// GET on 503 every time: max_retries (3) retries, 100, 200 and 400 ms apart; then the upstream's
// own 503 is relayed, saying it is a received status.
TEST_F(Retry, GetRetriedToMaxRetriesWithExponentialSpacing) {
    start([](const received_request&) { return respond(503, "busy"); },
          [](config::policy& p) { fast_retries(p); });
    auto r = fetch(get_path("/items"));
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "busy");
    EXPECT_EQ(r.header("Proxy-Status"), received_status(503));
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 4u);  // the first attempt and max_retries retries
    auto gaps = arrival_gaps(reqs);
    EXPECT_SPACING(gaps[0], 100ms);
    EXPECT_SPACING(gaps[1], 200ms);
    EXPECT_SPACING(gaps[2], 400ms);
    for (const auto& q : reqs) {
        EXPECT_EQ(q.method, "GET");
        EXPECT_EQ(q.target, "/items");
    }
    // The dropped 503s were small and whole: their connection went back to the pool.
    EXPECT_EQ(upstream->connections_accepted(), 1u);
}

// The cap: with max_delay 300 ms the third delay is 300 ms, not 400.
TEST_F(Retry, DelayIsCappedAtMaxDelay) {
    start([](const received_request&) { return respond(503); },
          [](config::policy& p) {
              fast_retries(p);
              p.retry.max_delay = 300ms;
          });
    EXPECT_EQ(fetch(get_path("/")).status, 503);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 4u);
    auto gaps = arrival_gaps(reqs);
    EXPECT_SPACING(gaps[0], 100ms);
    EXPECT_SPACING(gaps[1], 200ms);
    EXPECT_SPACING(gaps[2], 300ms);
}

// 4xx other than 429 is never retried, even when retry_on_status lists it; a 5xx that is not in
// retry_on_status is not retried either.
TEST_F(Retry, ClientErrorsAndUnlistedStatusesAreNeverRetried) {
    start(
        [](const received_request& r) {
            return respond(std::stoi(r.target.substr(1)), "status " + r.target.substr(1));
        },
        [](config::policy& p) {
            fast_retries(p);
            p.retry.retry_on_status.add_class(4);  // asks for it; DESIGN §3.5 forbids it
        });
    std::size_t sent = 0;
    for (int status : {400, 401, 403, 404, 409, 422, 500, 501}) {
        SCOPED_TRACE(status);
        auto r = fetch(get_path("/" + std::to_string(status)));
        ++sent;
        EXPECT_EQ(r.status, status);
        EXPECT_EQ(r.body, "status " + std::to_string(status));
        EXPECT_FALSE(r.has_header("Proxy-Status"));
        EXPECT_EQ(upstream->request_count(), sent);  // exactly one arrival per request
    }
}

// 429 with `Retry-After: 1` (jitter on, backoff ~100 ms): the retry waits about one second.
TEST_F(Retry, TooManyRequestsWithRetryAfterOneWaitsOneSecond) {
    start(in_turn({respond(429, "slow down", {{"Retry-After", "1"}}), respond(200, "ok")}),
          [](config::policy& p) {
              fast_retries(p);
              p.retry.jitter = 0.25;
          });
    auto r = fetch(get_path("/limited"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok");
    EXPECT_EQ(r.header("Proxy-Status"), received_status(200));
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    const auto gap = reqs[1].received_at - reqs[0].received_at;
    EXPECT_GE(ms(gap).count(), 950);
    EXPECT_LT(ms(gap).count(), 1600);
}

// ---- shared case 4: non-idempotent requests are sent once ---------------------------------

const std::string order_body = R"({"sku":"abc"})";

struct failure_case {
    const char* name;
    std::function<action()> fail;  // the upstream's answer to a failing attempt
    int client_status;             // what the client gets when it is not retried
    const char* error_type;        // Proxy-Status error of a synthetic response; "" = relayed
    const char* relayed_body;      // body of a relayed response
};

void PrintTo(const failure_case& c, std::ostream* os) {
    *os << c.name;
}

class RetryCase4 : public policy_test, public ::testing::WithParamInterface<failure_case> {
  protected:
    // Retries on (100 ms), attempts time out after 300 ms.
    void start_failing_first(bool every_attempt) {
        const auto& fc = GetParam();
        script s = every_attempt
                       ? script([fail = fc.fail](const received_request&) { return fail(); })
                       : in_turn({fc.fail(), respond(200, "ok")});
        start(std::move(s), [](config::policy& p) {
            fast_retries(p);
            p.timeouts.request = 300ms;
        });
    }
    static bool times_out() { return std::string_view(GetParam().name) == "AttemptTimeout"; }
    static milliseconds failure_time() { return times_out() ? 300ms : 0ms; }
    // The failure (a 300 ms timeout or none), then the 100 ms backoff. The attempt timer starts
    // once sluice has written the request, a little before the upstream stamps its arrival, so
    // a timed-out attempt may look up to a few ms shorter than 300 ms.
    static void expect_retry_spacing(milliseconds gap) {
        const milliseconds want = failure_time() + 100ms;
        EXPECT_GE(gap.count(), (want - (times_out() ? 20ms : 0ms)).count());
        EXPECT_LT(gap.count(), (want + slack).count());
    }
    void expect_client_status(const http_response& r) {
        const auto& fc = GetParam();
        EXPECT_EQ(r.status, fc.client_status) << r.raw;
        if (*fc.error_type) {
            EXPECT_EQ(proxy_error_type(r), fc.error_type) << r.raw;
        } else {
            EXPECT_EQ(r.body, fc.relayed_body) << r.raw;
        }
    }
};

// POST /orders: exactly one arrival; the client gets the 503 / 502 relayed, or 504 / 502 made by
// sluice for a timeout / reset. (The retry decision precedes the answer, so the count read after
// the answer is final.)
TEST_P(RetryCase4, PostIsSentExactlyOnce) {
    start_failing_first(true);
    const auto sent_at = steady::now();
    auto r = fetch(with_body("POST", "/orders", order_body));
    const auto took = steady::now() - sent_at;
    expect_client_status(r);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].body, order_body);
    // No backoff was waited either.
    EXPECT_LT(ms(took).count(), (failure_time() + 300ms).count());
}

// The same failure for GET: retried once after the 100 ms backoff, then 200 relayed with
// received-status.
TEST_P(RetryCase4, GetIsRetriedWithBackoff) {
    start_failing_first(false);
    auto r = fetch(get_path("/orders"));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "ok");
    EXPECT_EQ(r.header("Proxy-Status"), received_status(200));
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    expect_retry_spacing(arrival_gaps(reqs)[0]);
}

// POST with Idempotency-Key is retried like GET, body and key unchanged.
TEST_P(RetryCase4, PostWithIdempotencyKeyIsRetried) {
    start_failing_first(false);
    auto r = fetch(with_body("POST", "/orders", order_body, "Idempotency-Key: k-123\r\n"));
    EXPECT_EQ(r.status, 200) << r.raw;
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    for (const auto& q : reqs) {
        EXPECT_EQ(q.method, "POST");
        EXPECT_EQ(q.body, order_body);
        EXPECT_EQ(q.header("Idempotency-Key"), "k-123");
    }
    expect_retry_spacing(arrival_gaps(reqs)[0]);
}

// An Idempotency-Key the client names in Connection is hop-by-hop: the upstream never sees it,
// so the POST is not idempotent there and is sent once.
TEST_P(RetryCase4, PostWhoseIdempotencyKeyIsHopByHopIsSentOnce) {
    start_failing_first(true);
    auto r = fetch(with_body("POST", "/orders", order_body,
                             "Connection: Idempotency-Key\r\nIdempotency-Key: k-123\r\n"));
    expect_client_status(r);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_FALSE(reqs[0].has_header("Idempotency-Key"));
}

INSTANTIATE_TEST_SUITE_P(
    Retry, RetryCase4,
    ::testing::Values(failure_case{"Status503", [] { return respond(503, "unavailable"); }, 503, "",
                                   "unavailable"},
                      failure_case{"Status502", [] { return respond(502, "bad gateway"); }, 502, "",
                                   "bad gateway"},
                      failure_case{"AttemptTimeout", [] { return hang(); }, 504,
                                   "connection_read_timeout", ""},
                      failure_case{"ResetBeforeHead", [] { return reset_connection(); }, 502,
                                   "connection_terminated", ""}),
    [](const ::testing::TestParamInfo<failure_case>& info) { return info.param.name; });

class RetryTimeout : public policy_test {};

// A timed-out attempt's connection is closed, and the retry goes out on a fresh one.
TEST_F(RetryTimeout, TimedOutAttemptConnectionIsClosed) {
    start(in_turn({hang(), respond(200, "ok")}), [](config::policy& p) {
        fast_retries(p);
        p.timeouts.request = 300ms;
    });
    EXPECT_EQ(fetch(get_path("/slow")).status, 200);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_NE(reqs[0].connection_id, reqs[1].connection_id);
    ASSERT_TRUE(upstream->wait_for_closed_connections(1, 2s));
    auto conns = upstream->connections();
    EXPECT_EQ(conns[0].end, connection_end::peer_closed);
    ASSERT_TRUE(conns[0].ended_at.has_value());
    // Closed when the attempt timed out, before the retry arrived.
    EXPECT_LE(*conns[0].ended_at, reqs[1].received_at);
}

// retry_non_idempotent: true retries a plain POST too.
TEST_F(Retry, RetryNonIdempotentRetriesPost) {
    start(in_turn({respond(503), respond(201, "created")}), [](config::policy& p) {
        fast_retries(p);
        p.retry.retry_non_idempotent = true;
    });
    auto r = fetch(with_body("POST", "/orders", order_body));
    EXPECT_EQ(r.status, 201);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[1].body, order_body);
}

// ---- shared case 3: the body is re-sent byte-identical ------------------------------------

const std::string obj_body = "0123456789abcdef";

// Both arrivals carry the same 16 bytes with one, correct framing, and are byte-identical.
void expect_identical_attempts(const std::vector<received_request>& reqs, const std::string& body) {
    ASSERT_EQ(reqs.size(), 2u);
    for (const auto& q : reqs) {
        EXPECT_EQ(q.method, "PUT");
        EXPECT_EQ(q.target, "/obj/1");
        EXPECT_TRUE(q.body_complete);
        EXPECT_EQ(q.body, body);
        if (q.has_header("Content-Length")) {
            EXPECT_EQ(q.header_count("Content-Length"), 1u);
            EXPECT_EQ(q.header("Content-Length"), std::to_string(body.size()));
            EXPECT_FALSE(q.has_header("Transfer-Encoding"));
        } else {
            EXPECT_EQ(q.header("Transfer-Encoding"), "chunked");
        }
    }
    EXPECT_EQ(reqs[0].raw, reqs[1].raw);
}

TEST_F(Retry, Case3PutBodyIdenticalOnRetryContentLength) {
    start(in_turn({respond(503), respond(200, "stored")}),
          [](config::policy& p) { fast_retries(p); });
    auto r = fetch(with_body("PUT", "/obj/1", obj_body));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "stored");
    expect_identical_attempts(upstream->requests(), obj_body);
}

TEST_F(Retry, Case3PutBodyIdenticalOnRetryChunked) {
    start(in_turn({respond(503), respond(200, "stored")}),
          [](config::policy& p) { fast_retries(p); });
    auto r = fetch(with_chunked_body("PUT", "/obj/1", {"0123", "456789a", "bcdef"}));
    EXPECT_EQ(r.status, 200);
    expect_identical_attempts(upstream->requests(), obj_body);
}

// The boundary: a body of exactly buffer_limit bytes is buffered, hence retried.
TEST_F(Retry, Case3BodyOfExactlyBufferLimitIsRetried) {
    start(in_turn({respond(503), respond(200, "stored")}), [](config::policy& p) {
        fast_retries(p);
        p.retry.buffer_limit = 1024;
    });
    std::string body(1024, 'b');
    auto r = fetch(with_body("PUT", "/obj/1", body));
    EXPECT_EQ(r.status, 200);
    expect_identical_attempts(upstream->requests(), body);
}

struct oversize_case {
    const char* name;
    std::size_t size;
    bool chunked;
    std::size_t chunk_size = 1000;
};

void PrintTo(const oversize_case& c, std::ostream* os) {
    *os << c.name;
}

class RetryCase3Oversize : public policy_test,
                           public ::testing::WithParamInterface<oversize_case> {};

// A body larger than retry.buffer_limit (1 KiB) is streamed and never retried: one arrival with
// the whole body, and the upstream's 503 relayed.
TEST_P(RetryCase3Oversize, BodyOverBufferLimitIsNotRetried) {
    start([](const received_request&) { return respond(503, "busy"); },
          [](config::policy& p) {
              fast_retries(p);
              p.retry.buffer_limit = 1024;
          });
    std::string body(GetParam().size, 'x');
    for (std::size_t i = 0; i < body.size(); i += 100)
        body[i] = static_cast<char>('a' + (i / 100) % 26);
    std::string request;
    if (GetParam().chunked) {
        std::vector<std::string> chunks;
        const std::size_t n = GetParam().chunk_size;
        for (std::size_t at = 0; at < body.size(); at += n)
            chunks.push_back(body.substr(at, n));
        request = with_chunked_body("PUT", "/obj/1", chunks);
    } else {
        request = with_body("PUT", "/obj/1", body);
    }
    auto r = fetch(request, 10s);
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "busy");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].body, body);
}

INSTANTIATE_TEST_SUITE_P(Retry, RetryCase3Oversize,
                         ::testing::Values(oversize_case{"ContentLength1025", 1025, false},
                                           oversize_case{"ContentLength2KiB", 2048, false},
                                           oversize_case{"Chunked2KiB", 2048, true},
                                           oversize_case{"Chunked2KiBOneChunk", 2048, true, 2048},
                                           oversize_case{"ContentLength4KiB", 4096, false},
                                           oversize_case{"Chunked4KiB", 4096, true},
                                           oversize_case{"ContentLength256KiB", 256 * 1024, false},
                                           oversize_case{"Chunked256KiB", 256 * 1024, true}),
                         [](const ::testing::TestParamInfo<oversize_case>& info) {
                             return info.param.name;
                         });

// ---- shared case 6: Retry-After forms -----------------------------------------------------

enum class expect_delay {
    backoff,      // invalid or in the past: the plain 100 ms backoff
    retry_after,  // max(backoff, Retry-After): the value's own delay
    no_retry,     // over max_delay (5 s): the 503 is relayed with its Retry-After
};

struct retry_after_case {
    const char* name;
    std::function<std::string(wall::time_point)> value;  // given the wall time it is sent at
    expect_delay expect;
};

std::chrono::sys_seconds whole_seconds(wall::time_point t) {
    return std::chrono::floor<std::chrono::seconds>(t);
}

// Our own reading of the dates the cases send (only the forms made here), to know the delay.
std::optional<wall::time_point> policy_date(const std::string& v) {
    // Compare against every second of the next minute in each form we produce.
    const auto base = whole_seconds(wall::now()) - 5s;
    for (int s = 0; s < 70; ++s) {
        const auto t = base + std::chrono::seconds{s};
        if (v == imf_fixdate(t) || v == rfc850_date(t) || v == asctime_date(t))
            return wall::time_point(t);
    }
    return std::nullopt;
}

void PrintTo(const retry_after_case& c, std::ostream* os) {
    *os << c.name;
}

class RetryAfter : public policy_test, public ::testing::WithParamInterface<retry_after_case> {
  protected:
    // 503 with `Retry-After: <value>` (made when the request arrives), then 200.
    void start_case() {
        auto value = GetParam().value;
        start(
            [this, value, n = std::make_shared<std::atomic<int>>(0)](const received_request&) {
                if (n->fetch_add(1) > 0)
                    return respond(200, "ok");
                const auto now = wall::now();
                std::string v = value(now);
                {
                    std::lock_guard lock(sent_mutex);
                    sent_at = now;
                    sent_value = v;
                }
                return respond(503, "busy", {{"Retry-After", v}});
            },
            [](config::policy& p) { fast_retries(p, 1); });
    }
    std::mutex sent_mutex;  // the script runs on the upstream's thread
    wall::time_point sent_at;
    std::string sent_value;
};

TEST_P(RetryAfter, DelayIsMaxOfBackoffAndRetryAfter) {
    start_case();
    const auto begin = steady::now();
    auto r = fetch(get_path("/ra"), 8s);
    const auto took = steady::now() - begin;
    std::string value;
    wall::time_point sent;
    {
        std::lock_guard lock(sent_mutex);
        value = sent_value;
        sent = sent_at;
    }
    SCOPED_TRACE("Retry-After: " + value);
    auto reqs = upstream->requests();
    switch (GetParam().expect) {
        case expect_delay::backoff: {
            EXPECT_EQ(r.status, 200);
            ASSERT_EQ(reqs.size(), 2u);
            EXPECT_SPACING(arrival_gaps(reqs)[0], 100ms);
            break;
        }
        case expect_delay::retry_after: {
            EXPECT_EQ(r.status, 200);
            ASSERT_EQ(reqs.size(), 2u);
            // The value's delay as of when the upstream sent it; sluice read it a little later,
            // so it may wait up to that little less.
            milliseconds wanted;
            if (!value.empty() && std::isdigit(static_cast<unsigned char>(value[0]))) {
                wanted = std::chrono::seconds{std::stoll(value)};
            } else {
                auto date = policy_date(value);
                ASSERT_TRUE(date.has_value());
                wanted = std::chrono::ceil<milliseconds>(*date - sent);
            }
            ASSERT_GT(wanted, 500ms);  // clearly more than the backoff
            const auto gap = arrival_gaps(reqs)[0];
            EXPECT_GE(gap.count(), (wanted - 50ms).count());
            EXPECT_LT(gap.count(), (wanted + slack).count());
            break;
        }
        case expect_delay::no_retry: {
            EXPECT_EQ(r.status, 503);
            EXPECT_EQ(r.body, "busy");
            EXPECT_EQ(r.header("Retry-After"), value);
            EXPECT_EQ(reqs.size(), 1u);
            EXPECT_LT(ms(took).count(), 500);  // answered at once, no waiting
            break;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Retry, RetryAfter,
    ::testing::Values(
        retry_after_case{"DeltaSeconds1", [](wall::time_point) { return std::string("1"); },
                         expect_delay::retry_after},
        retry_after_case{"ImfFixdateInTwoSeconds",
                         [](wall::time_point now) { return imf_fixdate(whole_seconds(now) + 2s); },
                         expect_delay::retry_after},
        retry_after_case{"Rfc850InTwoSeconds",
                         [](wall::time_point now) { return rfc850_date(whole_seconds(now) + 2s); },
                         expect_delay::retry_after},
        retry_after_case{"AsctimeInTwoSeconds",
                         [](wall::time_point now) { return asctime_date(whole_seconds(now) + 2s); },
                         expect_delay::retry_after},
        retry_after_case{
            "ImfFixdateInThePast",
            [](wall::time_point) { return std::string("Sun, 06 Nov 1994 08:49:37 GMT"); },
            expect_delay::backoff},
        retry_after_case{
            "Rfc850InThePast",
            [](wall::time_point) { return std::string("Sunday, 06-Nov-94 08:49:37 GMT"); },
            expect_delay::backoff},
        retry_after_case{"AsctimeInThePast",
                         [](wall::time_point) { return std::string("Sun Nov  6 08:49:37 1994"); },
                         expect_delay::backoff},
        retry_after_case{
            "FarFuture2037",
            [](wall::time_point) { return std::string("Wed, 21 Oct 2037 07:28:00 GMT"); },
            expect_delay::no_retry},
        retry_after_case{"OverMaxDelay", [](wall::time_point) { return std::string("6"); },
                         expect_delay::no_retry},
        retry_after_case{"Huge", [](wall::time_point) { return std::string("99999999999"); },
                         expect_delay::no_retry},
        retry_after_case{"GoDuration", [](wall::time_point) { return std::string("1m0s"); },
                         expect_delay::backoff},
        retry_after_case{"Negative", [](wall::time_point) { return std::string("-5"); },
                         expect_delay::backoff},
        retry_after_case{"Fraction", [](wall::time_point) { return std::string("1.5"); },
                         expect_delay::backoff},
        retry_after_case{"Empty", [](wall::time_point) { return std::string(); },
                         expect_delay::backoff}),
    [](const ::testing::TestParamInfo<retry_after_case>& info) { return info.param.name; });

class RetryAfterDeadline : public policy_test {};

// Retry-After under max_delay but beyond what is left of timeouts.total: not retried, the 503
// relayed with its Retry-After at once.
TEST_F(RetryAfterDeadline, BeyondTotalDeadlineIsNotRetried) {
    start(
        [](const received_request&) {
            return respond(503, "busy", {{"Retry-After", "3"}});
        },
        [](config::policy& p) {
            fast_retries(p);
            p.timeouts.total = 2s;
        });
    const auto begin = steady::now();
    auto r = fetch(get_path("/ra"));
    const auto took = steady::now() - begin;
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "busy");
    EXPECT_EQ(r.header("Retry-After"), "3");
    EXPECT_EQ(upstream->request_count(), 1u);
    EXPECT_LT(ms(took).count(), 500);
}

}  // namespace
}  // namespace sluice::test
