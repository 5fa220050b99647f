// Exponential backoff with jitter between retries (DESIGN §3.5).
#pragma once

#include <chrono>

#include "config/config.hpp"
#include "core/clock.hpp"

namespace sluice::policy {

/// The capped, un-jittered delay before retry `n` (1-based; 0 is taken as 1), in ms:
/// `min(initial_delay * exponential_base^(n-1), max_delay)` (DESIGN §3.5). Compared in log space,
/// so it is finite and exact-where-representable for every n up to UINT_MAX; never negative.
std::chrono::milliseconds backoff_cap(const config::retry_policy& policy, unsigned n);

/// The delay before retry `n` (1-based): d = backoff_cap(policy, n), then
/// `d += d * jitter * U` with U = random.uniform() in [-1, 1] (clamped; NaN taken as 0), rounded
/// to the nearest ms and never negative. Jitter applies at the cap too, so retries that reach
/// max_delay stay spread (the result may then exceed max_delay by up to `jitter`). Calls
/// random.uniform() exactly once.
std::chrono::milliseconds backoff_delay(const config::retry_policy& policy, unsigned n,
                                        random_source& random);

}  // namespace sluice::policy
