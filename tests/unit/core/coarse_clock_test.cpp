// coarse_clock: the tick-resolution reads behind timeouts, idle stamps and log stamps, against
// steady_clock read around them.
#include "core/coarse_clock.hpp"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace sluice {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// The coarse reading lags most after the CPU idled (a tickless kernel updates it lazily): each
// round sleeps a little first, so that some rounds see the lag at its largest.
template <class F>
void after_idle_moments(F&& check) {
    for (int round = 0; round < 30; ++round) {
        std::this_thread::sleep_for(1ms + round % 4 * 1ms);
        check();
    }
}

TEST(CoarseClock, EarliestNowIsNeverLaterThanSteadyClock) {
    after_idle_moments([] {
        const auto coarse = coarse_clock::earliest_now();
        EXPECT_LE(coarse, steady::now());
    });
}

// A timeout under a second is counted from steady_clock exactly: the coarse lag (up to several
// milliseconds) could use up a short one.
TEST(CoarseClock, ShortTimeoutsAreCountedFromThePreciseClock) {
    after_idle_moments([] {
        for (const auto d :
             {steady::duration{1ms}, steady::duration{20ms}, steady::duration{999ms}}) {
            const auto before = steady::now();
            const auto deadline = coarse_clock::deadline_after(d);
            const auto after = steady::now();
            EXPECT_GE(deadline, before + d);
            EXPECT_LE(deadline, after + d);
        }
    });
}

// From a second up, a deadline is within a few milliseconds of now + d: never more than a tick
// late, and early at most by the coarse clock's lag beyond a tick (6.6 ms measured in all, on a
// 4 ms tick).
TEST(CoarseClock, LongTimeoutsAreWithinAFewMilliseconds) {
    after_idle_moments([] {
        for (const auto d : {steady::duration{1s}, steady::duration{30s}, steady::duration{1h}}) {
            const auto before = steady::now();
            const auto deadline = coarse_clock::deadline_after(d);
            const auto after = steady::now();
            EXPECT_GE(deadline, before + d - 20ms);
            EXPECT_LE(deadline, after + d + coarse_clock::resolution());
        }
    });
}

TEST(CoarseClock, ATimeoutTooLargeToAddIsTheEndOfTime) {
    EXPECT_EQ(coarse_clock::deadline_after(steady::duration::max()), steady::time_point::max());
    EXPECT_EQ(coarse_clock::deadline_after(steady::duration::max() - 1h),
              steady::time_point::max());
}

TEST(CoarseClock, WallTimeIsTheSystemClocksToTheTick) {
    const auto before = std::chrono::system_clock::now();
    const auto coarse = coarse_clock::wall_now();
    const auto after = std::chrono::system_clock::now();
    EXPECT_LE(coarse, after);
    EXPECT_GE(coarse, before - 20ms);
}

}  // namespace
}  // namespace sluice
