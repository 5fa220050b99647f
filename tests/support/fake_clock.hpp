// A clock moved by hand and a pinned random source, for policy tests with exact numbers.
#pragma once

#include <algorithm>
#include <chrono>

#include "core/clock.hpp"

namespace sluice::test {

/// A clock that only moves when told to. Monotonic time starts at the steady epoch (time 0);
/// wall time starts at `wall_epoch` (default 2025-01-01T00:00:00Z) and moves with it.
class fake_clock final : public clock {
  public:
    using steady_time = std::chrono::steady_clock::time_point;
    using wall_time = std::chrono::system_clock::time_point;

    /// 2025-01-01T00:00:00Z, the default wall time at monotonic time 0.
    static constexpr wall_time default_wall_epoch{std::chrono::seconds{1735689600}};

    explicit fake_clock(wall_time wall_epoch = default_wall_epoch) : wall_epoch_(wall_epoch) {}

    steady_time now() const noexcept override { return now_; }
    wall_time wall_now() const noexcept override {
        return wall_epoch_ +
               std::chrono::duration_cast<wall_time::duration>(now_.time_since_epoch());
    }

    /// Moves both clocks forward by `d` (any std::chrono duration, >= 0).
    template <class Rep, class Period>
    void advance(std::chrono::duration<Rep, Period> d) {
        now_ += std::chrono::duration_cast<steady_time::duration>(d);
    }
    /// Sets monotonic time to `t` (wall time follows: wall_epoch + t).
    void set(steady_time t) { now_ = t; }
    /// Sets monotonic time to `since_start` after time 0.
    template <class Rep, class Period>
    void set(std::chrono::duration<Rep, Period> since_start) {
        now_ = steady_time{std::chrono::duration_cast<steady_time::duration>(since_start)};
    }
    /// Sets the wall time that corresponds to monotonic time 0.
    void set_wall_epoch(wall_time epoch) { wall_epoch_ = epoch; }

  private:
    steady_time now_{};
    wall_time wall_epoch_;
};

/// A random source that always returns the pinned value (clamped into [-1, 1]).
class fixed_random final : public random_source {
  public:
    explicit fixed_random(double value = 0.0) { set(value); }
    double uniform() noexcept override { return value_; }
    /// Pins the value returned from now on.
    void set(double value) { value_ = std::clamp(value, -1.0, 1.0); }

  private:
    double value_ = 0.0;
};

}  // namespace sluice::test
