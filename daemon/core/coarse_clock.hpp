// Clock reads at the kernel tick's resolution, for timeouts, idle stamps and log timestamps:
// where a few milliseconds do not matter and the ~25 ns of a precise read do (a coarse read
// costs ~4; BENCHMARKS.md, "Clock reads").
#pragma once

#include <time.h>

#include <chrono>

namespace sluice::coarse_clock {

namespace detail {
inline std::chrono::nanoseconds read(clockid_t id) noexcept {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}
}  // namespace detail

/// The kernel tick: clock_getres(2) of CLOCK_MONOTONIC_COARSE (1–4 ms on Linux), read once per
/// process. A coarse reading is the time of the last timekeeping update, which lags the
/// precise time by about a tick, more on a tickless kernel whose CPUs have idled: on the
/// 2-core machine of BENCHMARKS.md, a 4 ms tick, 3 ms on average and up to 6.6 ms.
inline std::chrono::nanoseconds resolution() noexcept {
    static const std::chrono::nanoseconds tick = [] {
        timespec ts{};
        if (::clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0)
            return std::chrono::nanoseconds{std::chrono::milliseconds{10}};
        return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
    }();
    return tick;
}

/// steady_clock's time as of the last timekeeping update (CLOCK_MONOTONIC_COARSE: the same
/// clock as `std::chrono::steady_clock` on Linux, read from the vDSO without the TSC). Never
/// later than `steady_clock::now()`; earlier by the lag above. For stamps that may err early,
/// never late: when an idle connection is to be closed or trimmed.
inline std::chrono::steady_clock::time_point earliest_now() noexcept {
    return std::chrono::steady_clock::time_point{
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            detail::read(CLOCK_MONOTONIC_COARSE))};
}

/// A deadline `d` from now for a timeout. From a second up, earliest_now() + resolution() + d:
/// usually at least `d` away and less than a tick more, a few milliseconds either way at most
/// (under 1 %; the end of time for a `d` too large to add). A shorter `d` (a test's, or a
/// config's of a few milliseconds, which the lag could use up) is counted from
/// steady_clock::now().
inline std::chrono::steady_clock::time_point deadline_after(
    std::chrono::steady_clock::duration d) noexcept {
    if (d < std::chrono::seconds{1})
        return std::chrono::steady_clock::now() + d;
    const auto now = earliest_now() + resolution();
    if (d > std::chrono::steady_clock::time_point::max() - now)
        return std::chrono::steady_clock::time_point::max();
    return now + d;
}

/// Calendar time as of the last timekeeping update (CLOCK_REALTIME_COARSE), for timestamps
/// printed to the second.
inline std::chrono::system_clock::time_point wall_now() noexcept {
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            detail::read(CLOCK_REALTIME_COARSE))};
}

}  // namespace sluice::coarse_clock
