// The retry rules of one request (DESIGN §3.5, shared cases 3, 4 and 6), one rule at a time,
// with the random source pinned so delays are exact.
#include "policy/retry_decision.hpp"

#include <gtest/gtest.h>

#include "support/fake_clock.hpp"

namespace sluice::policy {
namespace {

using namespace std::chrono_literals;
using test::fixed_random;

attempt_report status(unsigned code, std::optional<std::chrono::milliseconds> retry_after = {}) {
    attempt_report a;
    a.outcome = attempt_outcome::response;
    a.status = code;
    a.retry_after = retry_after;
    return a;
}

attempt_report failed(attempt_outcome o) {
    attempt_report a;
    a.outcome = o;
    return a;
}

struct fixture : ::testing::Test {
    config::retry_policy policy;  // defaults: 3 retries, 1 s * 2^(n-1) up to 30 s, +/- 25 %
    fixed_random random{0.0};

    retry_decision request(std::string_view method = "GET", bool idempotency_key = false,
                           bool replayable = true) {
        return retry_decision{policy, random, method, idempotency_key, replayable};
    }
};

using RetryDecision = fixture;

TEST(RetryDecisionNames, LabelValues) {
    EXPECT_EQ(to_string(retry_reason::status), "status");
    EXPECT_EQ(to_string(retry_reason::connect_error), "connect_error");
    EXPECT_EQ(to_string(retry_reason::timeout), "timeout");
    EXPECT_EQ(to_string(retry_reason::reset), "reset");
    EXPECT_EQ(to_string(no_retry_reason::retries_exhausted), "retries_exhausted");
}

TEST(RetryDecisionNames, IdempotentMethods) {
    for (auto m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
        EXPECT_TRUE(is_idempotent(m)) << m;
    for (auto m : {"POST", "PATCH", "CONNECT", "get", "Put", "", "GETX"})
        EXPECT_FALSE(is_idempotent(m)) << m;
}

// GET on 503: retried max_retries times at 1, 2, 4 s, then the response is returned.
TEST_F(RetryDecision, GetRetriedToMaxRetriesWithBackoff) {
    auto r = request();
    for (auto want : {1000ms, 2000ms, 4000ms}) {
        const auto v = r.decide(status(503));
        ASSERT_TRUE(v.retry);
        EXPECT_EQ(v.delay, want);
        EXPECT_EQ(v.reason, retry_reason::status);
        EXPECT_EQ(v.why_not, no_retry_reason::none);
    }
    EXPECT_EQ(r.retries(), 3u);
    const auto last = r.decide(status(503));
    EXPECT_FALSE(last.retry);
    EXPECT_EQ(last.why_not, no_retry_reason::retries_exhausted);

    random.set(1.0);
    auto s = request();
    EXPECT_EQ(s.decide(status(502)).delay, 1250ms);
    random.set(-1.0);
    EXPECT_EQ(s.decide(status(504)).delay, 1500ms);

    policy.max_retries = 0;
    EXPECT_EQ(request().decide(status(503)).why_not, no_retry_reason::retries_exhausted);
}

TEST_F(RetryDecision, WhichStatusesAreRetried) {
    for (unsigned code : {429u, 502u, 503u, 504u})
        EXPECT_TRUE(request().decide(status(code)).retry) << code;
    for (unsigned code : {200u, 201u, 304u, 400u, 401u, 404u, 409u, 500u, 501u, 505u}) {
        const auto v = request().decide(status(code));
        EXPECT_FALSE(v.retry) << code;
        EXPECT_EQ(v.why_not, no_retry_reason::not_retryable) << code;
    }
    // retry_on_status: [5xx] retries every 5xx; a listed 4xx other than 429 still never is.
    policy.retry_on_status = {};
    policy.retry_on_status.add_class(5);
    policy.retry_on_status.add_class(4);
    EXPECT_TRUE(request().decide(status(500)).retry);
    EXPECT_TRUE(request().decide(status(501)).retry);
    EXPECT_TRUE(request().decide(status(429)).retry);
    EXPECT_FALSE(request().decide(status(404)).retry);
    EXPECT_FALSE(request().decide(status(408)).retry);
    // 429 only when listed.
    policy.retry_on_status = {};
    policy.retry_on_status.codes.set(503);
    EXPECT_FALSE(request().decide(status(429)).retry);
}

TEST_F(RetryDecision, TransportFailures) {
    const struct {
        attempt_outcome outcome;
        retry_reason reason;
    } retried[] = {
        {attempt_outcome::connect_error, retry_reason::connect_error},
        {attempt_outcome::tls_error, retry_reason::connect_error},
        {attempt_outcome::timeout, retry_reason::timeout},
        {attempt_outcome::reset_before_head, retry_reason::reset},
    };
    for (const auto& c : retried) {
        const auto v = request().decide(failed(c.outcome));
        EXPECT_TRUE(v.retry);
        EXPECT_EQ(v.reason, c.reason);
        EXPECT_EQ(v.delay, 1000ms);
    }
    // A certificate that did not verify will not verify on the next attempt.
    const auto cert = request().decide(failed(attempt_outcome::tls_certificate_error));
    EXPECT_FALSE(cert.retry);
    EXPECT_EQ(cert.why_not, no_retry_reason::tls_certificate);
}

// Shared case 4: POST sent once on 503, 502 and timeout; with Idempotency-Key or
// retry_non_idempotent it is retried like a GET.
TEST_F(RetryDecision, NonIdempotentMethods) {
    for (auto a : {status(503), status(502), failed(attempt_outcome::timeout),
                   failed(attempt_outcome::connect_error)}) {
        const auto v = request("POST").decide(a);
        EXPECT_FALSE(v.retry);
        EXPECT_EQ(v.why_not, no_retry_reason::non_idempotent);
        EXPECT_FALSE(request("PATCH").decide(a).retry);
        EXPECT_TRUE(request("POST", true).decide(a).retry);
        EXPECT_TRUE(request("PUT").decide(a).retry);
        EXPECT_TRUE(request("DELETE").decide(a).retry);
    }
    policy.retry_non_idempotent = true;
    EXPECT_TRUE(request("POST").decide(status(503)).retry);
    EXPECT_TRUE(request("PATCH").decide(failed(attempt_outcome::timeout)).retry);
}

// Shared case 3: a body larger than buffer_limit was streamed and cannot be re-sent.
TEST_F(RetryDecision, StreamedBodyIsNotRetried) {
    const auto v = request("PUT", false, false).decide(status(503));
    EXPECT_FALSE(v.retry);
    EXPECT_EQ(v.why_not, no_retry_reason::body_not_replayable);
}

TEST_F(RetryDecision, NeverAfterAResponseByteReachedTheClient) {
    auto a = failed(attempt_outcome::reset_before_head);
    a.response_started = true;
    const auto v = request().decide(a);
    EXPECT_FALSE(v.retry);
    EXPECT_EQ(v.why_not, no_retry_reason::response_started);
}

TEST_F(RetryDecision, DisabledNeverRetries) {
    policy.enabled = false;
    for (auto a : {status(503), failed(attempt_outcome::connect_error)}) {
        const auto v = request().decide(a);
        EXPECT_FALSE(v.retry);
        EXPECT_EQ(v.why_not, no_retry_reason::disabled);
    }
}

// Shared case 6: the delay is max(backoff, Retry-After); above max_delay, no retry.
TEST_F(RetryDecision, RetryAfterTakesTheLongerDelay) {
    EXPECT_EQ(request().decide(status(503, 3000ms)).delay, 3000ms);  // Retry-After: 3
    EXPECT_EQ(request().decide(status(429, 500ms)).delay, 1000ms);   // backoff is longer
    // A date in the past parses to 0: plain backoff, never a zero-delay loop.
    auto r = request();
    for (auto want : {1000ms, 2000ms, 4000ms})
        EXPECT_EQ(r.decide(status(503, 0ms)).delay, want);
    // Invalid Retry-After (nullopt): plain jittered backoff.
    random.set(1.0);
    EXPECT_EQ(request().decide(status(503, std::nullopt)).delay, 1250ms);
    random.set(0.0);
    // Exactly max_delay is allowed; above it the 503 is returned.
    EXPECT_EQ(request().decide(status(503, 30000ms)).delay, 30000ms);
    const auto v = request().decide(status(503, 30001ms));
    EXPECT_FALSE(v.retry);
    EXPECT_EQ(v.why_not, no_retry_reason::retry_after_too_long);
    // 99999999999 saturated by the parser: far above max_delay.
    EXPECT_EQ(request().decide(status(503, std::chrono::milliseconds{2147483648000})).why_not,
              no_retry_reason::retry_after_too_long);
    // A too-long Retry-After does not use up a retry.
    auto s = request();
    EXPECT_FALSE(s.decide(status(503, 60s)).retry);
    EXPECT_EQ(s.retries(), 0u);
    // Only responses carry Retry-After.
    auto c = failed(attempt_outcome::connect_error);
    c.retry_after = 60s;
    EXPECT_EQ(request().decide(c).delay, 1000ms);
}

// The delay must leave time before timeouts.total.
TEST_F(RetryDecision, RemainingDeadline) {
    auto a = status(503);
    a.time_left = 1000ms;
    auto v = request().decide(a);
    EXPECT_FALSE(v.retry);
    EXPECT_EQ(v.why_not, no_retry_reason::deadline);
    a.time_left = 1000ms + 1ns;
    EXPECT_TRUE(request().decide(a).retry);
    // With Retry-After the longer delay is compared.
    a = status(503, 5000ms);
    a.time_left = 4s;
    EXPECT_EQ(request().decide(a).why_not, no_retry_reason::deadline);
    a.time_left = 6s;
    EXPECT_EQ(request().decide(a).delay, 5000ms);
    // Negative time left (already past the deadline).
    a.time_left = -1s;
    EXPECT_FALSE(request().decide(a).retry);
}

}  // namespace
}  // namespace sluice::policy
