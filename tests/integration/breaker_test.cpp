// The circuit breaker through the real server (DESIGN §3.4, issue 3): it opens after
// failure_threshold consecutive failures, fails fast without touching the upstream, half-opens
// after recovery_timeout, lets one probe through, closes on its success and re-opens on its
// failure; 4xx never counts, successes reset the count, connect errors and timeouts count.
//
// Timing: recovery_timeout (500 ms) is the input of these tests. The circuit opens while sluice
// handles the third failure, i.e. after the upstream received it and before the client read the
// answer; so sleeping until "answer read + 500 ms" is surely past the recovery timeout, and a
// request at "third arrival + 400 ms" is surely before it. No test polls for a state.
#include <atomic>

#include "integration/policy_harness.hpp"

namespace sluice::test {
namespace {

class Breaker : public policy_test {
  protected:
    // failure_threshold 3, recovery_timeout 500 ms, one probe at a time; retries stay off.
    static void breaker(config::policy& p) {
        p.circuit_breaker.enabled = true;
        p.circuit_breaker.failure_threshold = 3;
        p.circuit_breaker.recovery_timeout = 500ms;
        p.circuit_breaker.half_open_max_requests = 1;
    }

    // The upstream answers `status` (switchable by the test) with body "status <n>"; /slow
    // answers after 300 ms.
    void start_switchable(const std::function<void(config::policy&)>& extra = {}) {
        start(
            [s = status](const received_request& r) {
                const int code = s->load();
                action a = respond(code, "status " + std::to_string(code));
                if (r.target == "/slow")
                    a.delay = 300ms;
                return a;
            },
            [&extra](config::policy& p) {
                breaker(p);
                if (extra)
                    extra(p);
            });
    }

    // Three 503s: each reaches the upstream and is relayed. Returns when the third answer was
    // read (the circuit is open by then).
    steady::time_point open_circuit() {
        status->store(503);
        const std::size_t before = upstream->request_count();
        for (int i = 0; i < 3; ++i) {
            auto r = fetch(get_path("/fail"));
            EXPECT_EQ(r.status, 503);
            EXPECT_EQ(r.body, "status 503");
        }
        EXPECT_EQ(upstream->request_count(), before + 3);
        return steady::now();
    }

    // 503 circuit open, made by sluice at once, with the remaining open time (< 1 s) as
    // Retry-After, and the upstream untouched.
    void expect_fails_fast() {
        const std::size_t before = upstream->request_count();
        const auto begin = steady::now();
        auto r = fetch(get_path("/"));
        const auto took = steady::now() - begin;
        EXPECT_EQ(r.status, 503) << r.raw;
        EXPECT_EQ(r.header("Proxy-Status"), circuit_open_status) << r.raw;
        EXPECT_EQ(r.header("Retry-After"), "1") << r.raw;
        EXPECT_EQ(r.header("Content-Type").rfind("text/plain", 0), 0u);
        EXPECT_LT(ms(took).count(), 100);
        EXPECT_EQ(upstream->request_count(), before);
    }

    // A request that reaches the upstream and gets its 200.
    void expect_flows() {
        const std::size_t before = upstream->request_count();
        auto r = fetch(get_path("/ok"));
        EXPECT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body, "status 200");
        EXPECT_EQ(upstream->request_count(), before + 1);
    }

    steady::time_point last_arrival() { return upstream->requests().back().received_at; }

    std::shared_ptr<std::atomic<int>> status = std::make_shared<std::atomic<int>>(200);
};

TEST_F(Breaker, OpensFailsFastHalfOpensAndClosesOnProbeSuccess) {
    start_switchable();
    const auto opened_by = open_circuit();
    const auto third_failure = last_arrival();
    expect_fails_fast();
    expect_fails_fast();
    // Still open just before recovery_timeout.
    std::this_thread::sleep_until(third_failure + 400ms);
    expect_fails_fast();
    // recovery_timeout has passed: one probe goes through; its success closes the circuit.
    std::this_thread::sleep_until(opened_by + 500ms);
    status->store(200);
    expect_flows();
    for (int i = 0; i < 5; ++i)
        expect_flows();
}

TEST_F(Breaker, FailedProbeReopensAndRestartsTheTimeout) {
    start_switchable();
    const auto opened_by = open_circuit();
    std::this_thread::sleep_until(opened_by + 500ms);
    // The probe reaches the upstream, fails, and is relayed; the circuit is open again.
    auto probe = fetch(get_path("/probe"));
    EXPECT_EQ(probe.status, 503);
    EXPECT_EQ(probe.body, "status 503");
    const auto reopened_by = steady::now();
    const auto probe_arrival = last_arrival();
    EXPECT_EQ(upstream->request_count(), 4u);
    expect_fails_fast();
    // The timeout restarted at the probe's failure: still open 400 ms after it, although that is
    // more than 500 ms after the first opening.
    std::this_thread::sleep_until(probe_arrival + 400ms);
    expect_fails_fast();
    std::this_thread::sleep_until(reopened_by + 500ms);
    status->store(200);
    expect_flows();
    expect_flows();
}

// half_open_max_requests 1: while the probe is in flight, other requests fail fast.
TEST_F(Breaker, HalfOpenLetsOneProbeAtATime) {
    start_switchable();
    const auto opened_by = open_circuit();
    std::this_thread::sleep_until(opened_by + 500ms);
    status->store(200);
    http_response probe_answer;
    std::thread probe([&] { probe_answer = fetch(get_path("/slow")); });
    ASSERT_TRUE(upstream->wait_for_requests(4, 2s));  // the probe is at the upstream
    expect_fails_fast();
    probe.join();
    EXPECT_EQ(probe_answer.status, 200);
    expect_flows();
}

// 4xx never counts, whatever failure_status says; a success resets the consecutive count.
TEST_F(Breaker, ClientErrorsNeverOpenAndSuccessResetsTheCount) {
    start(
        [](const received_request& r) {
            const int code = r.target == "/" ? 200 : std::stoi(r.target.substr(1));
            return respond(code, "status " + std::to_string(code));
        },
        [](config::policy& p) {
            breaker(p);
            p.circuit_breaker.failure_status.add_class(4);  // asks for it; DESIGN §3.4 forbids
        });
    std::size_t sent = 0;
    for (int round = 0; round < 3; ++round) {
        for (int code : {400, 404, 429, 499}) {
            auto r = fetch(get_path("/" + std::to_string(code)));
            ++sent;
            EXPECT_EQ(r.status, code);
            EXPECT_EQ(upstream->request_count(), sent);
        }
    }
    // Two failures, a success, two failures: never three in a row, still closed.
    for (const char* path : {"/503", "/500", "/", "/502", "/503"}) {
        auto r = fetch(get_path(path));
        ++sent;
        EXPECT_EQ(r.body, "status " + std::string(path == std::string("/") ? "200" : path + 1));
        EXPECT_EQ(upstream->request_count(), sent);
    }
    // The third consecutive failure opens it.
    EXPECT_EQ(fetch(get_path("/504")).status, 504);
    ++sent;
    EXPECT_EQ(upstream->request_count(), sent);
    expect_fails_fast();
}

// failure_status decides which statuses count: with [503] only, 500s do not open the circuit.
TEST_F(Breaker, FailureStatusDecidesWhichStatusesCount) {
    start_switchable([](config::policy& p) {
        p.circuit_breaker.failure_status = {};
        p.circuit_breaker.failure_status.codes.set(503);
    });
    status->store(500);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(fetch(get_path("/")).status, 500);
    EXPECT_EQ(upstream->request_count(), 5u);
    open_circuit();
    expect_fails_fast();
}

// Connect errors count: three refused connects open the circuit; the fourth request fails fast
// with 503 circuit open instead of trying to connect.
TEST_F(Breaker, ConnectErrorsCount) {
    start_proxy("http", "127.0.0.1", closed_port(), breaker);
    for (int i = 0; i < 3; ++i) {
        auto r = fetch(get_path("/"));
        EXPECT_EQ(r.status, 502) << r.raw;
        EXPECT_EQ(proxy_error_type(r), "connection_refused") << r.raw;
    }
    auto r = fetch(get_path("/"));
    EXPECT_EQ(r.status, 503) << r.raw;
    EXPECT_EQ(r.header("Proxy-Status"), circuit_open_status);
    EXPECT_EQ(r.header("Retry-After"), "1");
}

// Attempt timeouts count too.
TEST_F(Breaker, AttemptTimeoutsCount) {
    start([](const received_request&) { return hang(); },
          [](config::policy& p) {
              breaker(p);
              p.timeouts.request = 200ms;
          });
    for (int i = 0; i < 3; ++i) {
        auto r = fetch(get_path("/"));
        EXPECT_EQ(r.status, 504) << r.raw;
        EXPECT_EQ(proxy_error_type(r), "connection_read_timeout");
    }
    expect_fails_fast();
}

}  // namespace
}  // namespace sluice::test
