// Exponential backoff with jitter (DESIGN §3.5); see backoff.hpp.
#include "policy/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::policy {
namespace {

/// backoff_cap in ms, as a double in [0, max(initial_delay, max_delay)].
double capped_ms(const config::retry_policy& policy, unsigned n) {
    const double initial = std::max(0.0, static_cast<double>(policy.initial_delay.count()));
    const double cap = std::max(0.0, static_cast<double>(policy.max_delay.count()));
    if (initial >= cap)
        return cap;  // also covers initial == 0 when cap == 0
    const double base = policy.exponential_base;
    const unsigned exponent = n > 1 ? n - 1 : 0;
    if (initial == 0.0 || exponent == 0 || !(base > 1.0))
        return initial;  // a NaN or < 1 base is taken as 1: no growth
    // initial * base^e >= cap  <=>  e * ln(base) >= ln(cap / initial): never computes a base^e
    // that would overflow to infinity.
    if (static_cast<double>(exponent) * std::log(base) >= std::log(cap / initial))
        return cap;
    return std::min(initial * std::pow(base, static_cast<double>(exponent)), cap);
}

}  // namespace

std::chrono::milliseconds backoff_cap(const config::retry_policy& policy, unsigned n) {
    return std::chrono::milliseconds{std::llround(capped_ms(policy, n))};
}

std::chrono::milliseconds backoff_delay(const config::retry_policy& policy, unsigned n,
                                        random_source& random) {
    const double d = capped_ms(policy, n);
    const double jitter = std::isnan(policy.jitter) ? 0.0 : std::clamp(policy.jitter, 0.0, 1.0);
    const double u = random.uniform();
    const double spread = std::isnan(u) ? 0.0 : std::clamp(u, -1.0, 1.0);
    // Bounded so that absurd max_delay values still convert to an int64 count.
    const double jittered = std::clamp(d + d * jitter * spread, 0.0, 0x1.0p62);
    return std::chrono::milliseconds{std::llround(jittered)};
}

}  // namespace sluice::policy
