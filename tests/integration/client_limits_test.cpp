// Client-side limits and admission (issue 6, point 3; shared case 27): the whole-head deadline
// answered with 408, silent connections cut at header_read_timeout, client_cidrs and
// Proxy-Authorization: Basic against a users file.
#include <crypt.h>

#include <fstream>

#include "integration/harness.hpp"

namespace sluice::test {
namespace {

using steady = std::chrono::steady_clock;

class ClientLimits : public ::testing::Test {
  protected:
    void start(const std::function<void(config::config&)>& tweak = {}) {
        upstream = std::make_unique<scripted_upstream>(upstream_options{.tls = true}, script{});
        auto c = base_config();
        add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
        if (tweak)
            tweak(c);
        proxy = std::make_unique<running_proxy>(std::move(c));
    }

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

TEST_F(ClientLimits, SlowHeadIsAnswered408AtTheWholeHeadDeadline) {
    start([](config::config& c) { c.limits.header_read_timeout = 1s; });
    raw_client c(proxy->port());
    const auto t0 = steady::now();
    // A byte every 200 ms keeps each read short; only a deadline on the whole head stops it.
    const std::string head = get("http://api.example.test/slow");
    for (std::size_t i = 0; i < 4; ++i) {  // 0.8 s of dribbling, then nothing
        c.send(head.substr(i, 1));
        std::this_thread::sleep_for(200ms);
    }
    auto r = c.read_response(3s);
    const auto elapsed = steady::now() - t0;
    EXPECT_EQ(r.status, 408);
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_NE(r.header("Proxy-Status").find("error=http_request_error"), std::string::npos);
    EXPECT_TRUE(c.closed_by_peer(2s));
    EXPECT_GE(elapsed, 1s);
    EXPECT_LT(elapsed, 2s);
    EXPECT_EQ(upstream->request_count(), 0u);
}

TEST_F(ClientLimits, SilentNewConnectionIsClosedAtHeaderReadTimeoutNotIdleTimeout) {
    start([](config::config& c) {
        c.limits.header_read_timeout = 1s;
        c.limits.client_idle_timeout = 30s;
    });
    raw_client c(proxy->port());
    const auto t0 = steady::now();
    EXPECT_TRUE(c.closed_by_peer(3s));
    EXPECT_LT(steady::now() - t0, 2s);
}

TEST_F(ClientLimits, KeepAliveConnectionWaitsIdleTimeoutThenHeadDeadlineFromFirstByte) {
    start([](config::config& c) {
        c.limits.header_read_timeout = 1s;
        c.limits.client_idle_timeout = 3s;
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/one"));
    ASSERT_EQ(c.read_response().status, 200);
    std::this_thread::sleep_for(1500ms);  // idle past header_read_timeout: still open
    c.send(get("http://api.example.test/two"));
    EXPECT_EQ(c.read_response().status, 200);
}

TEST_F(ClientLimits, ClientOutsideClientCidrsIs403AndNothingIsForwarded) {
    start([](config::config& c) {
        config::cidr ten;
        ten.text = "10.0.0.0/8";
        ten.address[0] = 10;
        ten.prefix = 8;
        c.client_cidrs = std::vector{ten};
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/x"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 403);
    EXPECT_NE(r.header("Proxy-Status").find("error=http_request_denied"), std::string::npos);
    EXPECT_NE(r.body.find("client_cidrs"), std::string::npos);
    EXPECT_TRUE(c.closed_by_peer(2s));
    EXPECT_EQ(upstream->request_count(), 0u);
}

class ProxyAuth : public ClientLimits {
  protected:
    void SetUp() override {
        char name[] = "/tmp/sluice-users-XXXXXX";
        int fd = mkstemp(name);
        ASSERT_GE(fd, 0);
        ::close(fd);
        users_ = name;
        crypt_data data{};
        std::ofstream(users_) << "alice:" << crypt_r("s3cret", "$6$saltsalt$", &data) << "\n";
        start([this](config::config& c) {
            c.proxy_auth.users_file = users_;
            c.proxy_auth.realm = "egress";
        });
    }
    void TearDown() override { std::remove(users_.c_str()); }
    std::string users_;
};

TEST_F(ProxyAuth, MissingCredentialsGet407WithAChallenge) {
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/x"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 407);
    EXPECT_EQ(r.header("Proxy-Authenticate"), "Basic realm=\"egress\", charset=\"UTF-8\"");
    EXPECT_NE(r.header("Proxy-Status").find("error=http_request_denied"), std::string::npos);
    // No body was pending: the connection stays usable for the retry with credentials.
    c.send(get("http://api.example.test/x", "api.example.test",
               "Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"));
    EXPECT_EQ(c.read_response().status, 200);
    ASSERT_EQ(upstream->request_count(), 1u);
    EXPECT_FALSE(upstream->requests()[0].has_header("Proxy-Authorization"));
}

TEST_F(ProxyAuth, WrongPasswordIs407AndAPendingBodyClosesTheConnection) {
    raw_client c(proxy->port());
    c.send(
        "POST http://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n"
        "Proxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\nContent-Length: 5\r\n\r\nhello");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 407);
    EXPECT_NE(r.body.find("rejected"), std::string::npos);
    EXPECT_TRUE(c.closed_by_peer(2s));
    EXPECT_EQ(upstream->request_count(), 0u);
}

TEST_F(ProxyAuth, ConnectNeedsCredentialsToo) {
    raw_client c(proxy->port());
    c.send("CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n");
    EXPECT_EQ(c.read_response(5s, true).status, 407);
}

}  // namespace
}  // namespace sluice::test
