// Circuit breaker (DESIGN §3.4): transitions, probe limit, re-open timing and Retry-After, with
// a fake clock.
#include "policy/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

#include "support/fake_clock.hpp"

namespace sluice::policy {
namespace {

using namespace std::chrono_literals;
using test::fake_clock;

config::circuit_breaker_policy breaker_policy(std::uint32_t threshold = 5,
                                              config::duration recovery = 30s,
                                              std::uint32_t probes = 1) {
    config::circuit_breaker_policy p;
    p.failure_threshold = threshold;
    p.recovery_timeout = recovery;
    p.half_open_max_requests = probes;
    return p;
}

/// Opens `b` with `threshold` failures now.
void trip(circuit_breaker& b, std::uint32_t threshold) {
    for (std::uint32_t i = 1; i < threshold; ++i)
        ASSERT_EQ(b.record_failure(b.try_acquire()), std::nullopt);
    ASSERT_EQ(b.record_failure(b.try_acquire()), circuit_state::open);
}

TEST(CircuitBreaker, StateNamesAndGaugeValues) {
    EXPECT_EQ(to_string(circuit_state::closed), "closed");
    EXPECT_EQ(to_string(circuit_state::open), "open");
    EXPECT_EQ(to_string(circuit_state::half_open), "half_open");
    EXPECT_EQ(static_cast<int>(circuit_state::closed), 0);
    EXPECT_EQ(static_cast<int>(circuit_state::open), 1);
    EXPECT_EQ(static_cast<int>(circuit_state::half_open), 2);
}

TEST(CircuitBreaker, OpensAfterThresholdConsecutiveFailures) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(5), clk};
    EXPECT_EQ(b.current(), circuit_state::closed);
    for (int i = 1; i <= 4; ++i) {
        const auto p = b.try_acquire();
        ASSERT_TRUE(p.allowed);
        EXPECT_FALSE(p.probe);
        EXPECT_EQ(b.record_failure(p), std::nullopt);
        EXPECT_EQ(b.consecutive_failures(), static_cast<unsigned>(i));
    }
    EXPECT_EQ(b.current(), circuit_state::closed);
    EXPECT_EQ(b.record_failure(b.try_acquire()), circuit_state::open);
    EXPECT_EQ(b.current(), circuit_state::open);
    EXPECT_EQ(b.open_remaining(), 30s);
}

TEST(CircuitBreaker, SuccessResetsTheConsecutiveCount) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(3), clk};
    for (int round = 0; round < 10; ++round) {
        EXPECT_EQ(b.record_failure(b.try_acquire()), std::nullopt);
        EXPECT_EQ(b.record_failure(b.try_acquire()), std::nullopt);
        EXPECT_EQ(b.record_success(b.try_acquire()), std::nullopt);
        EXPECT_EQ(b.consecutive_failures(), 0u);
    }
    // Neutral outcomes (4xx, client gone) neither count nor reset.
    EXPECT_EQ(b.record_failure(b.try_acquire()), std::nullopt);
    b.record_neutral(b.try_acquire());
    EXPECT_EQ(b.record_failure(b.try_acquire()), std::nullopt);
    EXPECT_EQ(b.consecutive_failures(), 2u);
    EXPECT_EQ(b.record_failure(b.try_acquire()), circuit_state::open);
}

TEST(CircuitBreaker, OpenFailsFastWithRemainingTimeAsRetryAfter) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(1, 30s), clk};
    clk.set(100s);
    trip(b, 1);

    auto p = b.try_acquire();
    EXPECT_FALSE(p.allowed);
    EXPECT_EQ(p.retry_after, 30s);
    EXPECT_EQ(p.transition, std::nullopt);

    clk.set(110s + 500ms);  // 19.5 s left
    p = b.try_acquire();
    EXPECT_FALSE(p.allowed);
    EXPECT_EQ(p.retry_after, 20s);
    EXPECT_EQ(b.open_remaining(), 19500ms);

    clk.set(129s + 999ms);  // 1 ms left
    EXPECT_EQ(b.try_acquire().retry_after, 1s);
    EXPECT_EQ(b.open_remaining(), 1ms);
    EXPECT_EQ(b.current(), circuit_state::open);

    // Exactly recovery_timeout after opening: half-open, reported once, by the call that moved.
    clk.set(130s);
    EXPECT_EQ(b.current(), circuit_state::half_open);
    EXPECT_EQ(b.open_remaining(), 0ms);
    p = b.try_acquire();
    EXPECT_TRUE(p.allowed);
    EXPECT_TRUE(p.probe);
    EXPECT_EQ(p.transition, circuit_state::half_open);
    const auto q = b.try_acquire();
    EXPECT_FALSE(q.allowed);
    EXPECT_EQ(q.transition, std::nullopt);
    EXPECT_EQ(q.retry_after, 1s);
}

TEST(CircuitBreaker, ProbeSuccessCloses) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(2, 10s), clk};
    trip(b, 2);
    clk.advance(10s);
    const auto probe = b.try_acquire();
    ASSERT_TRUE(probe.probe);
    EXPECT_EQ(b.record_success(probe), circuit_state::closed);
    EXPECT_EQ(b.current(), circuit_state::closed);
    EXPECT_EQ(b.probes_in_flight(), 0u);
    EXPECT_EQ(b.consecutive_failures(), 0u);
    // Back to normal: the threshold counts afresh.
    EXPECT_EQ(b.record_failure(b.try_acquire()), std::nullopt);
    EXPECT_EQ(b.record_failure(b.try_acquire()), circuit_state::open);
}

TEST(CircuitBreaker, ProbeFailureReopensAndRestartsTheTimeout) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(1, 30s), clk};
    trip(b, 1);    // opened at 0
    clk.set(45s);  // 15 s after it could have half-opened
    const auto probe = b.try_acquire();
    ASSERT_TRUE(probe.probe);
    clk.set(47s);  // the probe fails 2 s later: re-opened at 47 s, not at 45 s
    EXPECT_EQ(b.record_failure(probe), circuit_state::open);
    EXPECT_EQ(b.open_remaining(), 30s);

    clk.set(76s + 999ms);
    auto p = b.try_acquire();
    EXPECT_FALSE(p.allowed);
    EXPECT_EQ(p.retry_after, 1s);
    clk.set(77s);
    p = b.try_acquire();
    EXPECT_TRUE(p.allowed);
    EXPECT_EQ(p.transition, circuit_state::half_open);
}

// 200 requests arrive at once in HALF_OPEN: exactly half_open_max_requests become probes.
TEST(CircuitBreaker, ProbeLimitUnder200ConcurrentRequests) {
    for (std::uint32_t limit : {1u, 3u}) {
        fake_clock clk;
        circuit_breaker b{breaker_policy(1, 5s, limit), clk};
        trip(b, 1);
        clk.advance(5s);
        std::vector<circuit_permit> probes;
        int refused = 0;
        int transitions = 0;
        for (int i = 0; i < 200; ++i) {
            const auto p = b.try_acquire();
            transitions += p.transition.has_value();
            if (p.allowed) {
                EXPECT_TRUE(p.probe);
                probes.push_back(p);
            } else {
                ++refused;
                EXPECT_EQ(p.retry_after, 1s);
            }
        }
        EXPECT_EQ(probes.size(), limit);
        EXPECT_EQ(refused, 200 - static_cast<int>(limit));
        EXPECT_EQ(transitions, 1);
        EXPECT_EQ(b.probes_in_flight(), limit);

        // A neutral probe outcome (a 404, the client left) frees its slot for one more probe.
        b.record_neutral(probes.back());
        probes.pop_back();
        const auto again = b.try_acquire();
        EXPECT_TRUE(again.allowed && again.probe);
        EXPECT_FALSE(b.try_acquire().allowed);
        probes.push_back(again);

        // The first probe to succeed closes; the others' outcomes are stale and ignored.
        EXPECT_EQ(b.record_success(probes[0]), circuit_state::closed);
        for (std::size_t i = 1; i < probes.size(); ++i)
            EXPECT_EQ(b.record_failure(probes[i]), std::nullopt);
        EXPECT_EQ(b.current(), circuit_state::closed);
        EXPECT_EQ(b.probes_in_flight(), 0u);
    }
}

// The same with 200 real threads calling at once behind a mutex, as the daemon does.
TEST(CircuitBreaker, ProbeLimitUnder200Threads) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(1, 5s, 2), clk};
    trip(b, 1);
    clk.advance(5s);
    std::mutex m;
    std::atomic<int> allowed{0};
    std::latch start{200};
    std::vector<std::thread> threads;
    for (int i = 0; i < 200; ++i) {
        threads.emplace_back([&] {
            start.arrive_and_wait();
            std::lock_guard lock{m};
            if (b.try_acquire().allowed)
                ++allowed;
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(allowed.load(), 2);
    EXPECT_EQ(b.probes_in_flight(), 2u);
}

// Outcomes count only in the state period their permit was granted in.
TEST(CircuitBreaker, StaleOutcomesDoNotDecide) {
    fake_clock clk;
    circuit_breaker b{breaker_policy(2, 10s, 2), clk};
    // Four requests allowed while CLOSED; two fail and open the circuit at 0 s.
    const auto r1 = b.try_acquire();
    const auto r2 = b.try_acquire();
    const auto r3 = b.try_acquire();
    const auto r4 = b.try_acquire();
    EXPECT_EQ(b.record_failure(r1), std::nullopt);
    EXPECT_EQ(b.record_failure(r2), circuit_state::open);
    // The third fails late: no restart of the timeout.
    clk.set(4s);
    EXPECT_EQ(b.record_failure(r3), std::nullopt);
    EXPECT_EQ(b.open_remaining(), 6s);
    // A late success of a CLOSED-era request does not close an open circuit either.
    EXPECT_EQ(b.record_success(r4), std::nullopt);
    EXPECT_EQ(b.current(), circuit_state::open);

    // Two probes; one fails (re-open at 10 s), the other is still running.
    clk.set(10s);
    const auto p1 = b.try_acquire();
    const auto p2 = b.try_acquire();
    ASSERT_TRUE(p1.probe && p2.probe);
    EXPECT_EQ(b.record_failure(p1), circuit_state::open);
    // Half-open again at 20 s: the old probe still holds a slot, so only one new probe runs.
    clk.set(20s);
    const auto p3 = b.try_acquire();
    EXPECT_TRUE(p3.allowed);
    EXPECT_EQ(p3.transition, circuit_state::half_open);
    EXPECT_FALSE(b.try_acquire().allowed);
    // The old probe's success is stale: it frees the slot but does not close.
    EXPECT_EQ(b.record_success(p2), std::nullopt);
    EXPECT_EQ(b.current(), circuit_state::half_open);
    EXPECT_TRUE(b.try_acquire().allowed);
    EXPECT_EQ(b.record_success(p3), circuit_state::closed);
}

TEST(CircuitBreaker, FailureStatusNeverIncludes4xx) {
    fake_clock clk;
    auto policy = breaker_policy();
    circuit_breaker b{policy, clk};
    for (unsigned s : {500u, 502u, 503u, 504u, 599u})
        EXPECT_TRUE(b.is_failure_status(s)) << s;
    for (unsigned s : {200u, 204u, 301u, 304u, 400u, 404u, 429u, 499u, 600u, 0u})
        EXPECT_FALSE(b.is_failure_status(s)) << s;

    policy.failure_status = {};
    policy.failure_status.codes.set(429);
    policy.failure_status.codes.set(404);
    policy.failure_status.codes.set(503);
    circuit_breaker custom{policy, clk};
    EXPECT_FALSE(custom.is_failure_status(429));
    EXPECT_FALSE(custom.is_failure_status(404));
    EXPECT_TRUE(custom.is_failure_status(503));
    EXPECT_FALSE(custom.is_failure_status(500));
}

TEST(CircuitBreaker, DisabledAlwaysAllows) {
    fake_clock clk;
    auto policy = breaker_policy(1);
    policy.enabled = false;
    circuit_breaker b{policy, clk};
    for (int i = 0; i < 100; ++i) {
        const auto p = b.try_acquire();
        ASSERT_TRUE(p.allowed);
        EXPECT_FALSE(p.probe);
        EXPECT_EQ(b.record_failure(p), std::nullopt);
    }
    EXPECT_EQ(b.current(), circuit_state::closed);
    EXPECT_EQ(b.open_remaining(), 0ms);
}

}  // namespace
}  // namespace sluice::policy
