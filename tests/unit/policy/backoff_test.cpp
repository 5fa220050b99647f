// Backoff delays (DESIGN §3.5) with the random source pinned: exact ms at U = -1, 0, +1, the cap,
// and no overflow for any retry number.
#include "policy/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <set>
#include <vector>

#include "support/fake_clock.hpp"

namespace sluice::policy {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using test::fixed_random;

config::retry_policy retry(config::duration initial = 1s, double base = 2.0,
                           config::duration cap = 30s, double jitter = 0.25) {
    config::retry_policy p;
    p.initial_delay = initial;
    p.exponential_base = base;
    p.max_delay = cap;
    p.jitter = jitter;
    return p;
}

std::vector<long long> delays(const config::retry_policy& p, double u, unsigned upto) {
    fixed_random r{u};
    std::vector<long long> out;
    for (unsigned n = 1; n <= upto; ++n)
        out.push_back(backoff_delay(p, n, r).count());
    return out;
}

// Defaults: 1 s * 2^(n-1), capped at 30 s, +/- 25 %.
TEST(Backoff, DefaultPolicyWithRandomPinned) {
    const auto p = retry();
    EXPECT_EQ(delays(p, 0.0, 7),
              (std::vector<long long>{1000, 2000, 4000, 8000, 16000, 30000, 30000}));
    EXPECT_EQ(delays(p, -1.0, 7),
              (std::vector<long long>{750, 1500, 3000, 6000, 12000, 22500, 22500}));
    EXPECT_EQ(delays(p, 1.0, 7),
              (std::vector<long long>{1250, 2500, 5000, 10000, 20000, 37500, 37500}));
    EXPECT_EQ(delays(p, 0.5, 3), (std::vector<long long>{1125, 2250, 4500}));
    for (unsigned n = 1; n <= 7; ++n)
        EXPECT_EQ(backoff_cap(p, n), ms(delays(p, 0.0, 7)[n - 1]));
}

TEST(Backoff, HugeRetryNumbersStayAtTheCapWithoutOverflow) {
    const auto p = retry();
    for (unsigned n : {64u, 1024u, 1025u, 2000u, UINT_MAX - 1, UINT_MAX}) {
        fixed_random lo{-1.0}, mid{0.0}, hi{1.0};
        EXPECT_EQ(backoff_delay(p, n, lo), 22500ms) << n;
        EXPECT_EQ(backoff_delay(p, n, mid), 30000ms) << n;
        EXPECT_EQ(backoff_delay(p, n, hi), 37500ms) << n;
    }
    // Every n up to 2000 is finite, non-negative and non-decreasing, for steep bases too.
    for (double base : {1.0, 1.5, 2.0, 10.0, 1e300}) {
        const auto q = retry(1ms, base, std::chrono::hours{24 * 365});
        fixed_random mid{0.0};
        ms previous{0};
        for (unsigned n = 1; n <= 2000; ++n) {
            const ms d = backoff_delay(q, n, mid);
            ASSERT_GE(d, previous) << base << " " << n;
            ASSERT_LE(d, q.max_delay) << base << " " << n;
            previous = d;
        }
        EXPECT_EQ(backoff_delay(q, UINT_MAX, mid), base == 1.0 ? 1ms : q.max_delay);
    }
}

TEST(Backoff, OtherBasesAndEdges) {
    // 100 ms * 1.5^(n-1): 100, 150, 225, 337.5 -> 338 (nearest ms), 506.25 -> 506.
    EXPECT_EQ(delays(retry(100ms, 1.5, 10s, 0.0), 1.0, 5),
              (std::vector<long long>{100, 150, 225, 338, 506}));
    // Base 1: constant.
    EXPECT_EQ(delays(retry(250ms, 1.0), 0.0, 3), (std::vector<long long>{250, 250, 250}));
    // n = 0 is taken as the first retry.
    fixed_random mid{0.0};
    EXPECT_EQ(backoff_delay(retry(), 0, mid), 1000ms);
    // initial_delay above max_delay: the cap wins from the first retry.
    EXPECT_EQ(backoff_delay(retry(5s, 2.0, 2s), 1, mid), 2000ms);
    // Zero delays stay zero whatever the jitter.
    fixed_random hi{1.0};
    EXPECT_EQ(backoff_delay(retry(0ms), 5, hi), 0ms);
    EXPECT_EQ(backoff_delay(retry(1s, 2.0, 0ms), 5, hi), 0ms);
    // Full jitter (1.0) at U = -1 reaches 0, never below.
    fixed_random lo{-1.0};
    EXPECT_EQ(backoff_delay(retry(1s, 2.0, 30s, 1.0), 3, lo), 0ms);
    EXPECT_EQ(backoff_delay(retry(1s, 2.0, 30s, 1.0), 3, hi), 8000ms);
}

// At the cap the jitter still spreads retries: pinned values map linearly onto [22.5, 37.5] s,
// and the real source covers that range.
TEST(Backoff, JitterStillSpreadsAtTheCap) {
    const auto p = retry();
    const std::vector<std::pair<double, long long>> expected{
        {-1.0, 22500}, {-0.5, 26250}, {-0.1, 29250}, {0.0, 30000},
        {0.1, 30750},  {0.5, 33750},  {1.0, 37500}};
    for (auto [u, want] : expected) {
        fixed_random r{u};
        EXPECT_EQ(backoff_delay(p, 50, r).count(), want) << u;
    }
    std::set<std::int64_t> seen;
    std::int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 10'000; ++i) {
        const auto d = backoff_delay(p, 100, real_random()).count();
        ASSERT_GE(d, 22500);
        ASSERT_LE(d, 37500);
        seen.insert(d);
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    EXPECT_GT(seen.size(), 5000u);
    EXPECT_LT(lo, 23000);
    EXPECT_GT(hi, 37000);
}

}  // namespace
}  // namespace sluice::policy
