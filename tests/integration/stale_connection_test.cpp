// Shared case 1: the stale keep-alive race. Pooled connections are closed before the upstream's
// announced Keep-Alive timeout, an idle connection the upstream closed is never written to, and
// a request that dies on a reused connection before any response byte is sent once more on a
// fresh one, for every method, without the client seeing an error.
#include "integration/harness.hpp"

namespace sluice::test {
namespace {

class StaleConnection : public ::testing::Test {
  protected:
    void start(script s) {
        upstream = std::make_unique<scripted_upstream>(upstream_options{.tls = true}, std::move(s));
        auto c = base_config();
        add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
        proxy = std::make_unique<running_proxy>(std::move(c));
    }

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

// The upstream announces `Keep-Alive: timeout=1` and closes idle connections after exactly
// 1.000 s. A second request at 0.95..1.05 s must never fail, and sluice must have closed the
// idle connection itself before the upstream's timeout.
TEST_F(StaleConnection, AnnouncedKeepAliveTimeoutIsRespected) {
    start([](const received_request&) {
        return respond(200, "ok", {{"Keep-Alive", "timeout=1"}}).with_idle_close(1000ms);
    });
    std::size_t runs = 0;
    for (auto offset = 950ms; offset <= 1050ms; offset += 25ms, ++runs) {
        raw_client c(proxy->port());
        c.send(get("http://api.example.test/first"));
        ASSERT_EQ(c.read_response().status, 200);
        auto answered = std::chrono::steady_clock::now();
        std::this_thread::sleep_until(answered + offset);  // the client's timing is the input
        c.send(get("http://api.example.test/second"));
        auto r = c.read_response();
        EXPECT_EQ(r.status, 200) << "second request at " << offset.count() << " ms";
        EXPECT_EQ(r.body, "ok");
    }
    // Every connection was closed by sluice (peer_closed), before the upstream's 1 s timer.
    ASSERT_TRUE(upstream->wait_for_closed_connections(upstream->connections_accepted(), 3s));
    EXPECT_GE(upstream->connections_accepted(), runs);
    for (const auto& info : upstream->connections()) {
        EXPECT_EQ(info.end, connection_end::peer_closed) << "connection " << info.id;
    }
}

// No announcement: sluice keeps the connection (idle_timeout 60 s) and the upstream closes it at
// 1.000 s. Requests around that instant either see the close before writing (MSG_PEEK) or race
// it and are replayed on a fresh connection; the client never sees an error.
TEST_F(StaleConnection, UnannouncedCloseNeverReachesTheClient) {
    start([](const received_request&) { return respond(200, "ok").with_idle_close(1000ms); });
    for (auto offset = 950ms; offset <= 1050ms; offset += 25ms) {
        raw_client c(proxy->port());
        c.send(get("http://api.example.test/first"));
        ASSERT_EQ(c.read_response().status, 200);
        auto answered = std::chrono::steady_clock::now();
        std::this_thread::sleep_until(answered + offset);
        c.send(get("http://api.example.test/second"));
        auto r = c.read_response();
        EXPECT_EQ(r.status, 200) << "second request at " << offset.count() << " ms";
        EXPECT_EQ(r.body, "ok");
    }
}

// Variant B: on reuse the upstream reads the whole request, then resets without answering.
// GET and POST alike are sent once more on a fresh connection.
TEST_F(StaleConnection, ResetOnReuseIsReplayedOnceOnAFreshConnection) {
    start([](const received_request& r) {
        if (r.index_on_connection > 0)
            return reset_connection();
        return respond(200, r.method + ":" + r.body);
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/a"));
    EXPECT_EQ(c.read_response().body, "GET:");
    c.send(get("http://api.example.test/b"));
    EXPECT_EQ(c.read_response().body, "GET:");
    c.send(
        "POST http://api.example.test/orders HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 13\r\n\r\n{\"sku\":\"abc\"}");
    EXPECT_EQ(c.read_response().body, "POST:{\"sku\":\"abc\"}");
    // a, b (reset), b again, POST (reset), POST again: five arrivals on three connections.
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 5u);
    EXPECT_EQ(upstream->connections_accepted(), 3u);
    EXPECT_EQ(reqs[3].body, "{\"sku\":\"abc\"}");
    EXPECT_EQ(reqs[4].body, reqs[3].body);
}

// The replay happens once: a fresh connection that fails too is an error for the client, and a
// failure on a fresh connection is never replayed.
TEST_F(StaleConnection, FreshConnectionFailureIsNotReplayed) {
    start([](const received_request& r) {
        if (r.target == "/ok")
            return respond(200, "ok");
        return reset_connection();
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/ok"));
    ASSERT_EQ(c.read_response().status, 200);
    c.send(get("http://api.example.test/fail"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 502);
    EXPECT_NE(r.header("Proxy-Status").find("error=connection_terminated"), std::string::npos);
    // /ok, /fail on the reused connection, /fail once more on a fresh one: no third try.
    EXPECT_EQ(upstream->request_count(), 3u);
    EXPECT_EQ(upstream->connections_accepted(), 2u);
}

}  // namespace
}  // namespace sluice::test
