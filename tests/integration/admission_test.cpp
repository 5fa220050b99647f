// Admission through the real server (DESIGN §3.3, issue 3): the token bucket and its FIFO wait
// queue, immediate 429s with Retry-After, waiters woken one token interval apart, disconnected
// waiters leaving at once (shared case 20), retries taking tokens, Expect: 100-continue under the
// limit, and the long-run rate with the real clock (shared case 18's rate, end to end).
//
// Times are the upstream's own arrival stamps. The only sleeps are inputs: a 20 ms stagger that
// fixes the order in which concurrent requests reach sluice, and the case's "disconnect after
// 0.5 s".
#include <atomic>
#include <thread>

#include "integration/policy_harness.hpp"

namespace sluice::test {
namespace {

/// Rate limit on: `rpm` requests per minute, `burst` tokens, a queue of `max_size` waiting at
/// most `max_wait`.
std::function<void(config::policy&)> rate(double rpm, std::uint32_t burst, std::uint32_t max_size,
                                          milliseconds max_wait) {
    return [=](config::policy& p) {
        p.rate_limit.enabled = true;
        p.rate_limit.requests_per_minute = rpm;
        p.rate_limit.burst_size = burst;
        p.queue.max_size = max_size;
        p.queue.max_wait = max_wait;
    };
}

/// 429 made by sluice: rate limited, with `retry_after`.
void expect_rate_limited(const http_response& r, std::string_view retry_after) {
    EXPECT_EQ(r.status, 429) << r.raw;
    EXPECT_EQ(r.header("Proxy-Status"), rate_limited_status) << r.raw;
    EXPECT_EQ(r.header("Retry-After"), retry_after) << r.raw;
    EXPECT_EQ(r.header("Content-Type").rfind("text/plain", 0), 0u) << r.raw;
}

/// Arrival k of `reqs` came about k token intervals after arrival 0. Arrival 0 is a little late
/// (its connection is new), hence the lower tolerance.
void expect_one_token_apart(const std::vector<received_request>& reqs, milliseconds interval) {
    for (std::size_t k = 1; k < reqs.size(); ++k) {
        SCOPED_TRACE("arrival " + std::to_string(k) + " " + reqs[k].target);
        const auto offset = ms(reqs[k].received_at - reqs[0].received_at);
        const auto want = interval * static_cast<long>(k);
        EXPECT_GE(offset.count(), (want - 50ms).count());
        EXPECT_LT(offset.count(), (want + 100ms).count());
    }
}

/// Echoes the request target.
action echo_target(const received_request& r) {
    return respond(200, r.target);
}

class Admission : public policy_test {};

// 1 req/s, burst 1, queue 3 (max_wait 10 s): of 1 + 3 + 2 concurrent requests, one goes at once,
// three wait and reach the upstream one second apart in FIFO order, two get 429 at once.
TEST_F(Admission, QueueFullRejectsAtOnceAndWaitersGoFifoOneSecondApart) {
    start(echo_target, rate(60, 1, 3, 10s));
    std::vector<std::unique_ptr<raw_client>> c;
    for (int i = 0; i < 6; ++i)
        c.push_back(std::make_unique<raw_client>(proxy->port()));
    std::vector<steady::time_point> sent(6);
    for (int i = 0; i < 6; ++i) {
        if (i > 0)
            std::this_thread::sleep_for(20ms);  // input: the order in which they reach sluice
        sent[i] = steady::now();
        c[i]->send(get_path("/r" + std::to_string(i)));
    }
    // The queue is full: 429 at once, Retry-After = until the head waiter's token (~1 s).
    for (int i : {4, 5}) {
        auto r = c[i]->read_response(2s);
        const auto took = steady::now() - sent[i];
        expect_rate_limited(r, "1");
        EXPECT_LT(ms(took).count(), 200);
    }
    for (int i = 0; i < 4; ++i) {
        auto r = c[i]->read_response(5s);
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.body, "/r" + std::to_string(i));
    }
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 4u);
    for (std::size_t k = 0; k < reqs.size(); ++k)
        EXPECT_EQ(reqs[k].target, "/r" + std::to_string(k));
    expect_one_token_apart(reqs, 1000ms);
}

// max_wait 1.5 s: the second waiter would wait ~2 s, so it gets 429 at once, not after waiting.
TEST_F(Admission, WaitBeyondMaxWaitRejectedAtOnce) {
    start(echo_target, rate(60, 1, 10, 1500ms));
    raw_client a(proxy->port());
    raw_client b(proxy->port());
    raw_client late(proxy->port());
    a.send(get_path("/a"));
    EXPECT_EQ(a.read_response().status, 200);
    b.send(get_path("/b"));             // waits ~1 s: within max_wait
    std::this_thread::sleep_for(20ms);  // input: b is queued first
    const auto sent = steady::now();
    late.send(get_path("/late"));  // would wait ~2 s
    auto r = late.read_response(2s);
    const auto took = steady::now() - sent;
    expect_rate_limited(r, "1");  // ~0.5 s until its wait would be within max_wait
    EXPECT_LT(ms(took).count(), 200);
    EXPECT_EQ(b.read_response(3s).body, "/b");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    expect_one_token_apart(reqs, 1000ms);
}

// Shared case 20: 1 req/s, burst 1, queue 10 (max_wait 10 s); 100 concurrent requests: one goes,
// ten are queued, 89 get 429 + Retry-After at once. 0.5 s later five queued clients disconnect
// (three with RST, two with FIN, the head of the queue among them): they leave at once and take
// no token, so the five still queued reach the upstream at 1, 2, 3, 4 and 5 s, in FIFO order, and
// the upstream sees exactly the six requests of clients still connected.
TEST_F(Admission, Case20QueueBoundsAndDisconnectedWaitersLeaveAtOnce) {
    start(echo_target, rate(60, 1, 10, 10s));
    constexpr int clients = 100;
    std::vector<std::unique_ptr<raw_client>> c;
    for (int i = 0; i < clients; ++i)
        c.push_back(std::make_unique<raw_client>(proxy->port()));
    const auto first_sent = steady::now();
    for (int i = 0; i <= 10; ++i) {
        if (i > 0)
            std::this_thread::sleep_for(20ms);  // input: #0 goes, #1..#10 queue in this order
        c[i]->send(get_path("/c" + std::to_string(i)));
    }
    const auto rest_sent = steady::now();
    for (int i = 11; i < clients; ++i)
        c[i]->send(get_path("/c" + std::to_string(i)));
    for (int i = 11; i < clients; ++i) {
        SCOPED_TRACE(i);
        expect_rate_limited(c[i]->read_response(2s), "1");
    }
    EXPECT_LT(ms(steady::now() - rest_sent).count(), 500);  // all 89 answered at once

    std::this_thread::sleep_until(first_sent + 500ms);  // the case's input
    for (int i : {1, 2, 5, 8, 10}) {
        if (i % 2 == 0)
            c[i]->reset();
        else
            c[i]->close();
    }

    auto r0 = c[0]->read_response();
    EXPECT_EQ(r0.body, "/c0");
    const std::vector<int> remaining = {3, 4, 6, 7, 9};
    for (int i : remaining) {
        auto r = c[i]->read_response(8s);
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.body, "/c" + std::to_string(i));
    }
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1 + remaining.size());
    EXPECT_EQ(reqs[0].target, "/c0");
    for (std::size_t k = 0; k < remaining.size(); ++k)
        EXPECT_EQ(reqs[k + 1].target, "/c" + std::to_string(remaining[k]));
    expect_one_token_apart(reqs, 1000ms);
}

// Every attempt takes a token: with 1 req/s, burst 1, a retry 100 ms after a 503 still waits for
// the next token, ~1 s after the first attempt.
TEST_F(Admission, RetryTakesAToken) {
    start(in_turn({respond(503), respond(200, "ok")}), [](config::policy& p) {
        rate(60, 1, 10, 10s)(p);
        p.retry.enabled = true;
        p.retry.initial_delay = 100ms;
        p.retry.jitter = 0;
    });
    auto r = fetch(get_path("/x"));
    EXPECT_EQ(r.status, 200);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 2u);
    expect_one_token_apart(reqs, 1000ms);
}

class RateLimit : public policy_test {};

/// A POST head with `Expect: 100-continue` and Content-Length `n`, without its body.
std::string expect_continue_head(std::size_t n) {
    return "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\n"
           "Content-Length: " +
           std::to_string(n) + "\r\nExpect: 100-continue\r\n\r\n";
}

// Burst 1, no queue: the first Expect: 100-continue POST gets its 100 and goes; the second gets
// 429 at once, without a 100, and sluice does not wait for (or read) its body: it closes.
TEST_F(RateLimit, ExpectContinueRefusedAtOnceWithoutA100) {
    start([](const received_request& r) { return respond(201, r.body); }, rate(60, 1, 0, 10s));
    raw_client a(proxy->port());
    a.send(expect_continue_head(4));
    EXPECT_EQ(a.read_response().status, 100);
    a.send("data");
    auto ok = a.read_response();
    EXPECT_EQ(ok.status, 201);
    EXPECT_EQ(ok.body, "data");

    raw_client b(proxy->port());
    const auto sent = steady::now();
    b.send(expect_continue_head(10));
    auto r = b.read_response(2s);
    const auto took = steady::now() - sent;
    expect_rate_limited(r, "1");
    EXPECT_LT(ms(took).count(), 200);
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(b.closed_by_peer(3s));
    EXPECT_EQ(upstream->request_count(), 1u);
}

// With a queue, a waiting Expect: 100-continue POST gets its 100 only once its token is due.
TEST_F(RateLimit, ExpectContinueAnsweredWhenTheTokenIsDue) {
    start([](const received_request& r) { return respond(201, r.body); }, rate(60, 1, 10, 10s));
    EXPECT_EQ(fetch(get_path("/first")).status, 201);
    const auto first = upstream->requests().at(0).received_at;
    raw_client b(proxy->port());
    b.send(expect_continue_head(4));
    auto interim = b.read_response(3s);
    const auto at = steady::now();
    EXPECT_EQ(interim.status, 100);
    EXPECT_GE(ms(at - first).count(), 950);
    EXPECT_LT(ms(at - first).count(), 1100);
    b.send("data");
    EXPECT_EQ(b.read_response().body, "data");
}

// The rate with the real clock: 600 requests/min, burst 10; 30 keep-alive clients send GETs back
// to back for 20 s (each waits in the queue, max_wait 10 s). The upstream receives the burst plus
// one request per 100 ms: 210 ± 3 in the 20 s. When the window closes, clients still queued
// disconnect (and so leave the queue).
TEST_F(RateLimit, RealClock600PerMinuteBurst10ThirtyClientsTwentySeconds) {
    start([](const received_request&) { return respond(200, "ok"); }, rate(600, 10, 1000, 10s));
    const auto begin = steady::now();
    const auto end = begin + 20s;
    std::atomic<int> ok{0};
    std::atomic<int> refused{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 30; ++t) {
        threads.emplace_back([&, t] {
            try {
                raw_client c(proxy->port());
                const auto request = get_path("/rate/" + std::to_string(t));
                while (steady::now() < end) {
                    c.send(request);
                    const auto left = std::max(ms(end - steady::now()) + 1ms, milliseconds{1});
                    auto res = c.try_read_response(left);
                    if (res.error) {
                        c.reset();  // the window closed while queued
                        return;
                    }
                    if (res.response->status == 200)
                        ++ok;
                    else
                        ++refused;
                }
            } catch (const std::exception&) {
                ++errors;
            }
        });
    }
    for (auto& th : threads)
        th.join();
    const auto reqs = upstream->requests();
    std::size_t in_window = 0;
    for (const auto& q : reqs) {
        if (q.received_at >= begin && q.received_at < end)
            ++in_window;
    }
    RecordProperty("upstream_arrivals_in_window", static_cast<int>(in_window));
    RecordProperty("client_200s", ok.load());
    EXPECT_NEAR(static_cast<double>(in_window), 210.0, 3.0);
    EXPECT_EQ(refused.load(), 0);  // waits stay ~3 s, under max_wait
    EXPECT_EQ(errors.load(), 0);
    EXPECT_GE(ok.load(), 200);
}

}  // namespace
}  // namespace sluice::test
