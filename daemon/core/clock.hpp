// The time and randomness that policies are fed (DESIGN §7): interfaces, and the real ones the
// daemon binds. Tests bind tests/support/fake_clock.hpp instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sluice {

/// Source of time for the policies. `now()` is monotonic and drives every policy deadline
/// (token refill, breaker recovery, retry deadlines); `wall_now()` is calendar time, used only
/// to turn an HTTP-date (`Retry-After`) into a delay.
class clock {
  public:
    virtual ~clock() = default;
    /// Monotonic time; never goes backwards.
    virtual std::chrono::steady_clock::time_point now() const noexcept = 0;
    /// Calendar (UTC) time; may jump.
    virtual std::chrono::system_clock::time_point wall_now() const noexcept = 0;
};

/// The process clock: `std::chrono::steady_clock` and `std::chrono::system_clock`.
class real_clock_source final : public clock {
  public:
    std::chrono::steady_clock::time_point now() const noexcept override {
        return std::chrono::steady_clock::now();
    }
    std::chrono::system_clock::time_point wall_now() const noexcept override {
        return std::chrono::system_clock::now();
    }
};

/// The one real clock of the process; stateless, safe from any thread.
inline clock& real_clock() noexcept {
    static real_clock_source instance;
    return instance;
}

/// Source of the jitter of retry backoff (DESIGN §3.5).
class random_source {
  public:
    virtual ~random_source() = default;
    /// A value uniformly distributed in [-1, 1].
    virtual double uniform() noexcept = 0;
};

/// Random values from a `std::mt19937_64` per thread, seeded once per thread from
/// `std::random_device`, so threads never share (or lock) generator state.
class real_random_source final : public random_source {
  public:
    double uniform() noexcept override {
        thread_local std::mt19937_64 engine{seed()};
        // The top 53 bits make a double in [0, 1); mapped onto [-1, 1).
        const double unit = static_cast<double>(engine() >> 11) * 0x1.0p-53;
        return unit * 2.0 - 1.0;
    }

  private:
    static std::uint64_t seed() noexcept {
        try {
            std::random_device device;
            return (static_cast<std::uint64_t>(device()) << 32) ^ device();
        } catch (...) {
            // No entropy device: jitter only needs to differ between threads and runs.
            return static_cast<std::uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count());
        }
    }
};

/// The one real random source of the process; safe from any thread (per-thread engines).
inline random_source& real_random() noexcept {
    static real_random_source instance;
    return instance;
}

}  // namespace sluice
