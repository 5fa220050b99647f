// CONNECT tunnels (DESIGN §3.8): allowed hosts and ports only, 200 without framing headers,
// early data forwarded, real TLS end to end through the tunnel, policy applied per tunnel.
#include "integration/harness.hpp"

namespace sluice::test {
namespace {

class Connect : public ::testing::Test {
  protected:
    void start(bool tls, std::function<void(config::config&)> tweak = {}) {
        upstream_options opts;
        opts.tls = tls;
        upstream = std::make_unique<scripted_upstream>(
            opts, [](const received_request& r) { return respond(200, "tunnelled " + r.target); });
        auto c = base_config();
        add_upstream(c, "api", "localhost", "https", "localhost", upstream->port());
        c.connect_ports = {upstream->port()};
        if (tweak)
            tweak(c);
        proxy = std::make_unique<running_proxy>(std::move(c));
    }
    std::string connect_line() const {
        auto authority = "localhost:" + std::to_string(upstream->port());
        return "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    }

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

TEST_F(Connect, TlsEndToEndThroughTheTunnel) {
    start(true);
    raw_client c(proxy->port());
    c.send(connect_line());
    auto established = c.read_response(5s, true);
    EXPECT_EQ(established.status, 200);
    EXPECT_FALSE(established.has_header("Content-Length"));
    EXPECT_FALSE(established.has_header("Transfer-Encoding"));
    tls_client_options tls;
    tls.sni = "localhost";
    ASSERT_FALSE(c.start_tls(tls));  // verified against the test CA, end to end
    c.send("GET /inside HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "tunnelled /inside");
    ASSERT_TRUE(upstream->wait_for_requests(1, 2s));
    EXPECT_EQ(upstream->requests()[0].sni, "localhost");
}

TEST_F(Connect, BytesSentWithTheHeadAreForwarded) {
    start(false);
    raw_client c(proxy->port());
    c.send(connect_line() + "GET /early HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(c.read_response(5s, true).status, 200);
    auto r = c.read_response();
    EXPECT_EQ(r.body, "tunnelled /early");
}

TEST_F(Connect, HalfCloseIsPassedOnAndInFlightDataDelivered) {
    start(false);
    raw_client c(proxy->port());
    c.send(connect_line() + "GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(c.read_response(5s, true).status, 200);
    c.shutdown_send();  // the client is done sending; the answer must still arrive
    auto rest = c.read_until_close(5s);
    EXPECT_NE(rest.data.find("tunnelled /last"), std::string::npos);
    EXPECT_EQ(rest.how, boost::asio::error::eof);
}

TEST_F(Connect, PortNotInConnectPortsIs403) {
    start(false, [](config::config& c) { c.connect_ports = {443}; });
    raw_client c(proxy->port());
    c.send(connect_line());
    auto r = c.read_response(5s, true);
    EXPECT_EQ(r.status, 403);
    EXPECT_NE(r.header("Proxy-Status").find("http_request_denied"), std::string::npos);
    EXPECT_TRUE(c.closed_by_peer(3s));
    EXPECT_EQ(upstream->connections_accepted(), 0u);
}

TEST_F(Connect, UnknownHostIs403) {
    start(false);
    raw_client c(proxy->port());
    auto authority = "other.example.test:" + std::to_string(upstream->port());
    c.send("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
    EXPECT_EQ(c.read_response(5s, true).status, 403);
}

TEST_F(Connect, EachTunnelTakesAToken) {
    start(false, [](config::config& c) {
        auto& p = c.upstreams[0].policy;
        p.rate_limit.enabled = true;
        p.rate_limit.burst_size = 1;
        p.rate_limit.requests_per_minute = 1;
        p.queue.max_size = 0;
    });
    raw_client first(proxy->port());
    first.send(connect_line());
    EXPECT_EQ(first.read_response(5s, true).status, 200);
    raw_client second(proxy->port());
    second.send(connect_line());
    auto r = second.read_response(5s, true);
    EXPECT_EQ(r.status, 429);
    EXPECT_TRUE(r.has_header("Retry-After"));
}

TEST_F(Connect, FailedConnectIs502AndABreakerFailure) {
    start(false, [](config::config& c) {
        auto& p = c.upstreams[0].policy;
        p.circuit_breaker.enabled = true;
        p.circuit_breaker.failure_threshold = 1;
    });
    const auto port = upstream->port();
    upstream.reset();  // nothing listens there any more
    raw_client c(proxy->port());
    auto authority = "localhost:" + std::to_string(port);
    const std::string line =
        "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    c.send(line);
    auto r = c.read_response(5s, true);
    EXPECT_EQ(r.status, 502);
    EXPECT_NE(r.header("Proxy-Status").find("connection_refused"), std::string::npos);
    raw_client again(proxy->port());
    again.send(line);
    auto open = again.read_response(5s, true);
    EXPECT_EQ(open.status, 503);  // the circuit opened
    EXPECT_NE(open.header("Proxy-Status").find("circuit open"), std::string::npos);
}

}  // namespace
}  // namespace sluice::test
