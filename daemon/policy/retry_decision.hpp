// The retry rules of one request (DESIGN §3.5), in the style of Envoy's retry state: told how
// each attempt ended, it answers "retry, after how long?" and the caller performs it.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "core/clock.hpp"

namespace sluice::policy {

/// How one attempt ended, as far as the retry rules care.
enum class attempt_outcome {
    response,               ///< a complete response head arrived (see attempt_report::status)
    connect_error,          ///< DNS, TCP connect, or connect timeout
    tls_certificate_error,  ///< the peer certificate did not verify: never retried
    tls_error,              ///< any other TLS handshake failure: treated as a connect error
    timeout,                ///< `timeouts.request` passed before the response head
    reset_before_head,      ///< reset or EOF before a complete response head
};

/// Why a retry happens: the `reason` label of `sluice_retries_total` (DESIGN §6).
enum class retry_reason { status, connect_error, timeout, reset };

/// The label value of `r`: "status", "connect_error", "timeout" or "reset".
std::string_view to_string(retry_reason r) noexcept;

/// Why an attempt is not retried (for logs and tests; not a metric label).
enum class no_retry_reason {
    none,                  ///< it is retried
    not_retryable,         ///< a final response: not in retry_on_status, or 4xx other than 429
    tls_certificate,       ///< a certificate failure will not heal
    disabled,              ///< `retry.enabled: false`
    response_started,      ///< a response byte already went to the client
    non_idempotent,        ///< method not idempotent, no Idempotency-Key, no retry_non_idempotent
    body_not_replayable,   ///< request body larger than `retry.buffer_limit`, streamed
    retries_exhausted,     ///< `max_retries` retries already made
    retry_after_too_long,  ///< the response's Retry-After exceeds `max_delay`
    deadline,              ///< the delay would use up what is left of `timeouts.total`
};

/// The label-free name of `r`, e.g. "retries_exhausted".
std::string_view to_string(no_retry_reason r) noexcept;

/// What the caller knows when one attempt is over.
struct attempt_report {
    attempt_outcome outcome = attempt_outcome::response;
    unsigned status = 0;  ///< response only: its status code
    /// Response only: its `Retry-After`, already parsed (parse_retry_after); nullopt when absent
    /// or invalid (then plain backoff applies).
    std::optional<std::chrono::milliseconds> retry_after;
    bool response_started = false;  ///< any byte of a response already went to the client
    /// Time left until the request's `timeouts.total` deadline, at the end of this attempt.
    std::chrono::steady_clock::duration time_left = std::chrono::steady_clock::duration::max();
};

/// The answer for one attempt.
struct retry_verdict {
    bool retry = false;
    std::chrono::milliseconds delay{0};  ///< retry only: wait this long, then re-admit
    /// The kind of failure (meaningful when the outcome was a retryable kind, retried or not).
    retry_reason reason = retry_reason::status;
    no_retry_reason why_not = no_retry_reason::none;
};

/// Whether `method` is idempotent per RFC 9110 §9.2.2 as DESIGN §3.5 lists them: GET, HEAD,
/// OPTIONS, PUT, DELETE, TRACE. Method names are case-sensitive (RFC 9110 §9.1).
bool is_idempotent(std::string_view method) noexcept;

/// The retry state of one request (DESIGN §3.5). Rules, checked in this order:
/// 1. the outcome must be retryable: connect error (TLS errors other than certificate ones
///    included), reset/EOF before a complete head, per-attempt timeout, or a status in
///    retry_on_status — never a 4xx other than 429, never a certificate error;
/// 2. `retry.enabled`; 3. no response byte went to the client; 4. the method is idempotent, or
///    the request carries an Idempotency-Key, or retry_non_idempotent; 5. the body can be
///    re-sent (buffered); 6. fewer than max_retries retries so far;
/// 7. delay = backoff_delay(n); with a Retry-After, max(delay, retry_after) — but a Retry-After
///    above max_delay means no retry (the response is returned). Only the server's value is
///    compared with max_delay: the jittered backoff itself may exceed it by up to `jitter`;
/// 8. the delay must be shorter than the time left (a retry starting at the deadline could not
///    run).
/// The stale keep-alive replay (DESIGN §3.5) is not a retry and not decided here.
class retry_decision {
  public:
    /// `policy` and `random` must outlive the object (the request holds its config snapshot).
    retry_decision(const config::retry_policy& policy, random_source& random,
                   std::string_view method, bool has_idempotency_key, bool body_replayable);

    /// Decides about the attempt just ended; a `retry` verdict counts as retry n = retries().
    retry_verdict decide(const attempt_report& attempt);

    /// Retries granted so far.
    unsigned retries() const { return retries_; }

  private:
    const config::retry_policy& policy_;
    random_source& random_;
    bool may_repeat_;  ///< idempotent, Idempotency-Key, or retry_non_idempotent
    bool body_replayable_;
    unsigned retries_ = 0;
};

}  // namespace sluice::policy
