// The per-request retry rules (DESIGN §3.5); see retry_decision.hpp.
#include "policy/retry_decision.hpp"

#include <algorithm>

#include "policy/backoff.hpp"

namespace sluice::policy {

std::string_view to_string(retry_reason r) noexcept {
    switch (r) {
        case retry_reason::status:
            return "status";
        case retry_reason::connect_error:
            return "connect_error";
        case retry_reason::timeout:
            return "timeout";
        case retry_reason::reset:
            return "reset";
    }
    return "status";
}

std::string_view to_string(no_retry_reason r) noexcept {
    switch (r) {
        case no_retry_reason::none:
            return "none";
        case no_retry_reason::not_retryable:
            return "not_retryable";
        case no_retry_reason::tls_certificate:
            return "tls_certificate";
        case no_retry_reason::disabled:
            return "disabled";
        case no_retry_reason::response_started:
            return "response_started";
        case no_retry_reason::non_idempotent:
            return "non_idempotent";
        case no_retry_reason::body_not_replayable:
            return "body_not_replayable";
        case no_retry_reason::retries_exhausted:
            return "retries_exhausted";
        case no_retry_reason::retry_after_too_long:
            return "retry_after_too_long";
        case no_retry_reason::deadline:
            return "deadline";
    }
    return "none";
}

bool is_idempotent(std::string_view method) noexcept {
    return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
           method == "DELETE" || method == "TRACE";
}

retry_decision::retry_decision(const config::retry_policy& policy, random_source& random,
                               std::string_view method, bool has_idempotency_key,
                               bool body_replayable)
    : policy_(policy),
      random_(random),
      may_repeat_(is_idempotent(method) || has_idempotency_key || policy.retry_non_idempotent),
      body_replayable_(body_replayable) {}

retry_verdict retry_decision::decide(const attempt_report& attempt) {
    retry_verdict v;
    const auto refuse = [&v](no_retry_reason why) {
        v.why_not = why;
        return v;
    };

    switch (attempt.outcome) {
        case attempt_outcome::response: {
            v.reason = retry_reason::status;
            const bool client_error = attempt.status >= 400 && attempt.status < 500;
            if ((client_error && attempt.status != 429) ||
                !policy_.retry_on_status.contains(attempt.status))
                return refuse(no_retry_reason::not_retryable);
            break;
        }
        case attempt_outcome::connect_error:
        case attempt_outcome::tls_error:
            v.reason = retry_reason::connect_error;
            break;
        case attempt_outcome::tls_certificate_error:
            v.reason = retry_reason::connect_error;
            return refuse(no_retry_reason::tls_certificate);
        case attempt_outcome::timeout:
            v.reason = retry_reason::timeout;
            break;
        case attempt_outcome::reset_before_head:
            v.reason = retry_reason::reset;
            break;
    }

    if (!policy_.enabled)
        return refuse(no_retry_reason::disabled);
    if (attempt.response_started)
        return refuse(no_retry_reason::response_started);
    if (!may_repeat_)
        return refuse(no_retry_reason::non_idempotent);
    if (!body_replayable_)
        return refuse(no_retry_reason::body_not_replayable);
    if (retries_ >= policy_.max_retries)
        return refuse(no_retry_reason::retries_exhausted);

    const bool has_retry_after =
        attempt.outcome == attempt_outcome::response && attempt.retry_after.has_value();
    if (has_retry_after && *attempt.retry_after > policy_.max_delay)
        return refuse(no_retry_reason::retry_after_too_long);

    std::chrono::milliseconds delay = backoff_delay(policy_, retries_ + 1, random_);
    if (has_retry_after)
        delay = std::max(delay, *attempt.retry_after);
    // In whole ms, rounded up: exact for an integral delay, and no overflow for time_left max.
    if (delay >= std::chrono::ceil<std::chrono::milliseconds>(attempt.time_left))
        return refuse(no_retry_reason::deadline);

    ++retries_;
    v.retry = true;
    v.delay = delay;
    return v;
}

}  // namespace sluice::policy
