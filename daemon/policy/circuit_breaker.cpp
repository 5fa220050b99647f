// Three-state circuit breaker (DESIGN §3.4); see circuit_breaker.hpp.
#include "policy/circuit_breaker.hpp"

#include <algorithm>

namespace sluice::policy {
namespace {

/// Whole seconds, rounded up, at least 1: the 503's `Retry-After`.
std::chrono::seconds at_least_one_second(std::chrono::steady_clock::duration d) {
    return std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(d));
}

}  // namespace

std::string_view to_string(circuit_state s) noexcept {
    switch (s) {
        case circuit_state::closed:
            return "closed";
        case circuit_state::open:
            return "open";
        case circuit_state::half_open:
            return "half_open";
    }
    return "closed";
}

circuit_breaker::circuit_breaker(const config::circuit_breaker_policy& policy, const clock& clk)
    : policy_(policy), clock_(clk) {}

void circuit_breaker::enter(circuit_state s, std::chrono::steady_clock::time_point now) {
    state_ = s;
    ++epoch_;
    failures_ = 0;
    if (s == circuit_state::open)
        opened_at_ = now;
}

circuit_permit circuit_breaker::try_acquire() {
    circuit_permit permit;
    if (!policy_.enabled)
        return permit;
    permit.epoch = epoch_;
    if (state_ == circuit_state::closed)
        return permit;

    const auto now = clock_.now();
    if (state_ == circuit_state::open) {
        const auto reopen = opened_at_ + policy_.recovery_timeout;
        if (now < reopen) {
            permit.allowed = false;
            permit.retry_after = at_least_one_second(reopen - now);
            return permit;
        }
        enter(circuit_state::half_open, now);
        permit.transition = circuit_state::half_open;
        permit.epoch = epoch_;
    }
    if (probes_in_flight_ >= policy_.half_open_max_requests) {
        permit.allowed = false;
        permit.retry_after = std::chrono::seconds{1};
        return permit;
    }
    ++probes_in_flight_;
    permit.probe = true;
    return permit;
}

bool circuit_breaker::settle(const circuit_permit& permit) {
    if (!policy_.enabled || !permit.allowed)
        return false;
    if (permit.probe && probes_in_flight_ > 0)
        --probes_in_flight_;
    return permit.epoch == epoch_;
}

std::optional<circuit_state> circuit_breaker::record_success(const circuit_permit& permit) {
    if (!settle(permit))
        return std::nullopt;
    if (state_ == circuit_state::closed) {
        failures_ = 0;
        return std::nullopt;
    }
    if (state_ == circuit_state::half_open && permit.probe) {
        enter(circuit_state::closed, clock_.now());
        return circuit_state::closed;
    }
    return std::nullopt;
}

std::optional<circuit_state> circuit_breaker::record_failure(const circuit_permit& permit) {
    if (!settle(permit))
        return std::nullopt;
    if (state_ == circuit_state::closed) {
        if (++failures_ < policy_.failure_threshold)
            return std::nullopt;
        enter(circuit_state::open, clock_.now());
        return circuit_state::open;
    }
    if (state_ == circuit_state::half_open && permit.probe) {
        enter(circuit_state::open, clock_.now());
        return circuit_state::open;
    }
    return std::nullopt;
}

void circuit_breaker::record_neutral(const circuit_permit& permit) {
    settle(permit);
}

circuit_state circuit_breaker::current() const {
    if (!policy_.enabled)
        return circuit_state::closed;
    if (state_ == circuit_state::open && clock_.now() >= opened_at_ + policy_.recovery_timeout)
        return circuit_state::half_open;
    return state_;
}

std::chrono::milliseconds circuit_breaker::open_remaining() const {
    if (!policy_.enabled || state_ != circuit_state::open)
        return std::chrono::milliseconds{0};
    const auto left = opened_at_ + policy_.recovery_timeout - clock_.now();
    return std::max(std::chrono::milliseconds{0},
                    std::chrono::ceil<std::chrono::milliseconds>(left));
}

bool circuit_breaker::is_failure_status(unsigned status) const {
    if (status >= 400 && status < 500)
        return false;
    return policy_.failure_status.contains(status);
}

}  // namespace sluice::policy
