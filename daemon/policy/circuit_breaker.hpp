// The three-state circuit breaker of one upstream (DESIGN §3.4), as a pure object fed by a
// clock: the driver asks before each attempt and reports each attempt's outcome.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "core/clock.hpp"

namespace sluice::policy {

/// Breaker states; the values are those of the `sluice_circuit_state` gauge (DESIGN §6).
enum class circuit_state : std::uint8_t { closed = 0, open = 1, half_open = 2 };

/// The `to` label value of `sluice_circuit_transitions_total`: "closed", "open", "half_open".
std::string_view to_string(circuit_state s) noexcept;

/// The answer of circuit_breaker::try_acquire() for one attempt. Hand it back to exactly one
/// record_success / record_failure / record_neutral call when the attempt is over.
struct circuit_permit {
    bool allowed = true;  ///< false: fail fast with 503 (DESIGN §5)
    bool probe = false;   ///< allowed as one of the half-open probes
    /// Refused only: the 503's `Retry-After`, the remaining open time in whole seconds rounded
    /// up, at least 1 (1 when half-open with every probe slot taken).
    std::chrono::seconds retry_after{0};
    /// Set when this call moved the circuit (open → half_open): count the transition.
    std::optional<circuit_state> transition;
    /// The state period the permit was granted in; outcomes from an earlier period are stale.
    std::uint64_t epoch = 0;
};

/// CLOSED → OPEN after `failure_threshold` consecutive failures; OPEN → HALF_OPEN once
/// `recovery_timeout` has passed (evaluated when asked, no timer); HALF_OPEN lets at most
/// `half_open_max_requests` probes run at once; a probe's success closes the circuit, its
/// failure re-opens it and restarts the timeout (DESIGN §3.4). `enabled: false` allows
/// everything and never changes state.
///
/// Outcomes count only for the state period their permit was granted in: a request allowed
/// while CLOSED that fails after the circuit opened neither restarts the timeout nor, once
/// half-open, decides the probe. A probe slot is held until its permit is reported, whatever
/// the period (it is still running against the upstream), so at most half_open_max_requests
/// probes are ever in flight.
///
/// Transitions are reported as the return value of the call that caused them (nullopt when
/// none), so the caller can count `sluice_circuit_transitions_total{to=...}`.
///
/// Not thread-safe: the driver guards it with the upstream's mutex, never held across I/O.
class circuit_breaker {
  public:
    /// Copies the policy; `clk` must outlive the object. Starts CLOSED.
    circuit_breaker(const config::circuit_breaker_policy& policy, const clock& clk);

    /// Asks to run one attempt now. Moves OPEN → HALF_OPEN when recovery_timeout has passed.
    circuit_permit try_acquire();

    /// The attempt succeeded (2xx/3xx or any status not in failure_status, outside 4xx).
    /// CLOSED: resets the consecutive failures; a current half-open probe closes the circuit.
    /// Returns the new state when it changed.
    std::optional<circuit_state> record_success(const circuit_permit& permit);

    /// The attempt failed (connect/TLS error, timeout, reset on a fresh connection, a status in
    /// failure_status). CLOSED: the failure_threshold-th consecutive one opens the circuit; a
    /// current half-open probe re-opens it, restarting recovery_timeout. Returns the new state
    /// when it changed.
    std::optional<circuit_state> record_failure(const circuit_permit& permit);

    /// The attempt ended with neither (a 4xx, a stale pooled connection replayed, the client
    /// went away): only releases a probe slot.
    void record_neutral(const circuit_permit& permit);

    /// The state now, with OPEN reported as HALF_OPEN once recovery_timeout has passed (the
    /// transition itself is applied and reported by the next try_acquire()).
    circuit_state current() const;

    /// Remaining OPEN time (rounded up to whole ms); zero unless OPEN.
    std::chrono::milliseconds open_remaining() const;

    /// Whether a response status counts as a breaker failure: in failure_status and not 4xx
    /// (DESIGN §3.4: 4xx, 429 included, never counts, even if listed).
    bool is_failure_status(unsigned status) const;

    /// Consecutive failures counted while CLOSED.
    std::uint32_t consecutive_failures() const { return failures_; }
    /// Probe permits handed out and not yet reported.
    std::uint32_t probes_in_flight() const { return probes_in_flight_; }
    /// The policy this breaker was built with (to compare on reload).
    const config::circuit_breaker_policy& policy() const { return policy_; }

  private:
    void enter(circuit_state s, std::chrono::steady_clock::time_point now);
    /// Whether `permit`'s outcome still decides anything; releases its probe slot either way.
    bool settle(const circuit_permit& permit);

    config::circuit_breaker_policy policy_;
    const clock& clock_;
    circuit_state state_ = circuit_state::closed;
    std::uint32_t failures_ = 0;
    std::uint32_t probes_in_flight_ = 0;
    std::uint64_t epoch_ = 0;
    std::chrono::steady_clock::time_point opened_at_{};
};

}  // namespace sluice::policy
