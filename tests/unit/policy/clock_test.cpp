// The inputs every policy is fed (daemon/core/clock.hpp): the fakes of tests/support behave as
// the policy tests assume, and the real random source stays in [-1, 1].
#include "core/clock.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "support/fake_clock.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;

TEST(FakeClock, MovesOnlyWhenTold) {
    test::fake_clock clk;
    EXPECT_EQ(clk.now().time_since_epoch(), 0ns);
    EXPECT_EQ(clk.wall_now(), test::fake_clock::default_wall_epoch);
    clk.advance(1500ms);
    EXPECT_EQ(clk.now().time_since_epoch(), 1500ms);
    EXPECT_EQ(clk.wall_now() - test::fake_clock::default_wall_epoch, 1500ms);
    clk.set(10s);
    EXPECT_EQ(clk.now().time_since_epoch(), 10s);
    clk.set_wall_epoch(std::chrono::system_clock::time_point{std::chrono::seconds{784111777}});
    EXPECT_EQ(clk.wall_now().time_since_epoch(), std::chrono::seconds{784111787});
}

TEST(FixedRandom, ReturnsThePinnedValueClamped) {
    test::fixed_random r{0.25};
    EXPECT_EQ(r.uniform(), 0.25);
    r.set(-3.0);
    EXPECT_EQ(r.uniform(), -1.0);
    r.set(2.0);
    EXPECT_EQ(r.uniform(), 1.0);
}

TEST(RealRandom, UniformInMinusOneToOne) {
    random_source& r = real_random();
    double lo = std::numeric_limits<double>::max();
    double hi = std::numeric_limits<double>::lowest();
    for (int i = 0; i < 100'000; ++i) {
        const double u = r.uniform();
        ASSERT_GE(u, -1.0);
        ASSERT_LE(u, 1.0);
        lo = std::min(lo, u);
        hi = std::max(hi, u);
    }
    EXPECT_LT(lo, -0.99);
    EXPECT_GT(hi, 0.99);
}

TEST(RealClock, IsMonotonic) {
    const clock& c = real_clock();
    const auto a = c.now();
    const auto b = c.now();
    EXPECT_LE(a, b);
    EXPECT_GT(c.wall_now().time_since_epoch(), std::chrono::seconds{1735689600});
}

}  // namespace
}  // namespace sluice
