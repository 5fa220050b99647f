// Micro-benchmarks of the per-request admission path (issue 3: under 1 us per request
// uncontended): admission_queue::admit + circuit_breaker::try_acquire/record_success + the retry
// decision, with the real clock, alone and with 2 threads sharing one upstream behind a mutex as
// the daemon does.
#include <benchmark/benchmark.h>

#include <mutex>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "policy/admission_queue.hpp"
#include "policy/backoff.hpp"
#include "policy/circuit_breaker.hpp"
#include "policy/retry_after.hpp"
#include "policy/retry_decision.hpp"

namespace {

using namespace sluice;

/// One upstream's shared policy state, configured so the bucket never runs dry during a run
/// (the admitted-at-once path is the one every request takes when not overloaded).
struct upstream_state {
    config::policy policy = [] {
        config::policy p;
        p.rate_limit.requests_per_minute = 1e9;
        p.rate_limit.burst_size = 4'000'000'000u;
        return p;
    }();
    policy::admission_queue queue{policy.rate_limit, policy.queue, real_clock()};
    policy::circuit_breaker breaker{policy.circuit_breaker, real_clock()};
    std::mutex mutex;
};

/// One request through the policies, as the session coroutine will run it: admit, breaker
/// check, (the attempt), outcome recorded, retry decision on the response.
inline void one_request(upstream_state& u, unsigned status) {
    policy::circuit_permit permit;
    {
        std::lock_guard lock{u.mutex};
        benchmark::DoNotOptimize(u.queue.admit());
        permit = u.breaker.try_acquire();
    }
    policy::retry_decision retry{u.policy.retry, real_random(), "GET", false, true};
    policy::attempt_report report;
    report.status = status;
    const auto verdict = retry.decide(report);
    benchmark::DoNotOptimize(verdict);
    {
        std::lock_guard lock{u.mutex};
        if (u.breaker.is_failure_status(status))
            benchmark::DoNotOptimize(u.breaker.record_failure(permit));
        else
            benchmark::DoNotOptimize(u.breaker.record_success(permit));
    }
}

upstream_state& shared_upstream() {
    static upstream_state state;
    return state;
}

// A 200: the common case.
void BM_admission_path(benchmark::State& state) {
    upstream_state& u = shared_upstream();
    for (auto _ : state)
        one_request(u, 200);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_admission_path);
BENCHMARK(BM_admission_path)->Threads(2)->UseRealTime();

// A 429 with its retry computed (backoff with jitter); the breaker does not count 4xx.
void BM_admission_path_retry(benchmark::State& state) {
    upstream_state& u = shared_upstream();
    for (auto _ : state)
        one_request(u, 429);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_admission_path_retry);
BENCHMARK(BM_admission_path_retry)->Threads(2)->UseRealTime();

// The pieces alone.
void BM_admit(benchmark::State& state) {
    upstream_state u;
    for (auto _ : state)
        benchmark::DoNotOptimize(u.queue.admit());
}
BENCHMARK(BM_admit);

void BM_breaker(benchmark::State& state) {
    upstream_state u;
    for (auto _ : state)
        benchmark::DoNotOptimize(u.breaker.record_success(u.breaker.try_acquire()));
}
BENCHMARK(BM_breaker);

void BM_backoff(benchmark::State& state) {
    const config::retry_policy p;
    unsigned n = 0;
    for (auto _ : state)
        benchmark::DoNotOptimize(policy::backoff_delay(p, ++n % 8 + 1, real_random()));
}
BENCHMARK(BM_backoff);

void BM_parse_retry_after_date(benchmark::State& state) {
    const auto now = std::chrono::system_clock::now();
    for (auto _ : state)
        benchmark::DoNotOptimize(policy::parse_retry_after("Wed, 21 Oct 2037 07:28:00 GMT", now));
}
BENCHMARK(BM_parse_retry_after_date);

}  // namespace

BENCHMARK_MAIN();
