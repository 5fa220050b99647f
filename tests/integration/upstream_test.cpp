// The upstream side of the request path (DESIGN §3.6, §5, shared case 22): keep-alive pooling and
// its limit, TLS verification, SNI and the pool key, mTLS, session resumption, the classified
// errors of DESIGN §5, passthrough, and 1xx responses from HTTP/1.1 upstreams.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "integration/harness.hpp"

namespace sluice::test {
namespace {

using steady = std::chrono::steady_clock;

/// base_config() with the policies that are not under test here turned off, so that a test sees
/// exactly one attempt per request and is never rate limited (set before add_upstream: an
/// upstream copies the defaults).
config::config quiet_config() {
    auto c = base_config();
    c.defaults.rate_limit.enabled = false;
    c.defaults.retry.enabled = false;
    c.defaults.retry.max_retries = 0;
    c.defaults.circuit_breaker.enabled = false;
    return c;
}

/// The `error=` token of a Proxy-Status value, e.g. "dns_error"; empty when there is none.
std::string proxy_error_type(const http_response& r) {
    const std::string v = r.header("Proxy-Status");
    const auto at = v.find("error=");
    if (at == std::string::npos)
        return {};
    const auto end = v.find_first_of("; ", at + 6);
    return v.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
}

/// A response sluice made itself per DESIGN §5: status, `Proxy-Status: sluice; error=<type>`,
/// a text/plain body that says something.
void expect_local_error(const http_response& r, int status, std::string_view type) {
    EXPECT_EQ(r.status, status) << r.raw;
    EXPECT_EQ(r.header("Proxy-Status").rfind("sluice; error=", 0), 0u) << r.raw;
    EXPECT_EQ(proxy_error_type(r), type) << r.raw;
    EXPECT_EQ(r.header("Content-Type").rfind("text/plain", 0), 0u) << r.raw;
    EXPECT_FALSE(r.body.empty()) << r.raw;
}

/// One request on a new client connection.
http_response fetch(const running_proxy& p, std::string_view target,
                    std::string_view host = "api.example.test",
                    std::chrono::milliseconds timeout = raw_client::default_timeout) {
    raw_client c(p.port());
    c.send(get(target, host));
    return c.read_response(timeout);
}

/// 127.0.0.0/8 as an `allow_cidrs` entry.
config::cidr loopback_cidr() {
    config::cidr c;
    c.text = "127.0.0.0/8";
    c.v6 = false;
    c.address = {127, 0, 0, 0};
    c.prefix = 8;
    return c;
}

/// A port on 127.0.0.1 where nothing listens: bound by an acceptor, read back, closed.
std::uint16_t closed_port() {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0},
                                     /*reuse_address=*/false);
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

/// A listener on 127.0.0.1 that never accepts. The kernel still completes up to `backlog` + 1
/// connections into its queue; `rcvbuf` (bytes; 0: the default) is the receive buffer they
/// inherit, i.e. how much of a request each takes before its sender stalls.
class silent_listener {
  public:
    explicit silent_listener(int backlog, int rcvbuf = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0)
            throw std::runtime_error("socket");
        if (rcvbuf > 0)
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        addr_.sin_family = AF_INET;
        addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr_.sin_port = 0;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_) != 0 ||
            ::listen(fd_, backlog) != 0) {
            ::close(fd_);
            throw std::runtime_error("bind/listen");
        }
        socklen_t len = sizeof addr_;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len);
    }
    ~silent_listener() { ::close(fd_); }
    silent_listener(const silent_listener&) = delete;
    silent_listener& operator=(const silent_listener&) = delete;
    std::uint16_t port() const { return ntohs(addr_.sin_port); }

  protected:
    sockaddr_in addr_{};

  private:
    int fd_ = -1;
};

/// A silent listener with `listen(fd, 0)`, its accept queue filled by a few non-blocking
/// connects: further SYNs are dropped, so connecting to it times out.
class black_hole_listener : public silent_listener {
  public:
    black_hole_listener() : silent_listener(0) {
        for (int i = 0; i < 3; ++i) {
            int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (s < 0)
                throw std::runtime_error("socket");
            ::connect(s, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);  // EINPROGRESS
            fillers_.push_back(s);
        }
    }
    ~black_hole_listener() {
        for (int s : fillers_)
            ::close(s);
    }

  private:
    std::vector<int> fillers_;
};

// ---- 1. pooling ---------------------------------------------------------------------------

TEST(UpstreamPool, SequentialRequestsUseOneUpstreamConnection) {
    scripted_upstream up({.tls = true},
                         [](const received_request& r) { return respond(200, r.target); });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    {
        raw_client cl(p.port());
        for (int i = 0; i < 100; ++i) {
            const std::string path = "/same/" + std::to_string(i);
            cl.send(get("http://api.example.test" + path));
            auto r = cl.read_response();
            ASSERT_EQ(r.status, 200) << i;
            ASSERT_EQ(r.body, path);
        }
    }
    EXPECT_EQ(up.connections_accepted(), 1u);
    for (int i = 0; i < 100; ++i) {
        const std::string path = "/new/" + std::to_string(i);
        raw_client cl(p.port());
        cl.send(get("http://api.example.test" + path));
        auto r = cl.read_response();
        ASSERT_EQ(r.status, 200) << i;
        ASSERT_EQ(r.body, path);
    }
    EXPECT_EQ(up.request_count(), 200u);
    EXPECT_EQ(up.connections_accepted(), 1u);
    EXPECT_EQ(up.max_concurrent_connections(), 1u);
}

TEST(UpstreamPool, MaxConnectionsBoundsConcurrentUpstreamConnections) {
    scripted_upstream up({.tls = true}, [](const received_request& r) {
        return respond(200, r.target).delayed(200ms);
    });
    auto c = quiet_config();
    auto& u = add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    u.policy.pool.max_connections = 2;
    running_proxy p(std::move(c));

    const auto start = steady::now();
    std::vector<std::unique_ptr<raw_client>> clients;
    for (int i = 0; i < 10; ++i) {
        clients.push_back(std::make_unique<raw_client>(p.port()));
        clients.back()->send(get("http://api.example.test/c" + std::to_string(i)));
    }
    for (int i = 0; i < 10; ++i) {
        auto r = clients[i]->read_response(5s);
        EXPECT_EQ(r.status, 200) << i << "\n" << r.raw;
        EXPECT_EQ(r.body, "/c" + std::to_string(i));
    }
    const auto elapsed = steady::now() - start;
    EXPECT_EQ(up.request_count(), 10u);
    EXPECT_LE(up.max_concurrent_connections(), 2u);
    EXPECT_EQ(up.connections_accepted(), 2u);
    // 10 requests of 200 ms over 2 connections: at least 5 rounds.
    EXPECT_GE(elapsed, 950ms);
}

// ---- 2. TLS verification (case 22) --------------------------------------------------------

struct tls_run {
    http_response response;
    std::size_t accepted = 0;
    std::size_t handshake_failures = 0;
};

/// One request through an upstream "api" (origin https://localhost:PORT) to a TLS upstream
/// serving `cert`. Retries stay enabled (with short delays) so that a retried certificate
/// failure would show as extra connections.
tls_run run_tls(const leaf_cert& cert, const std::function<void(config::upstream&)>& tweak = {}) {
    scripted_upstream up({.tls = true, .cert = cert});
    auto c = quiet_config();
    c.defaults.retry.enabled = true;
    c.defaults.retry.max_retries = 3;
    c.defaults.retry.initial_delay = 10ms;
    c.defaults.retry.max_delay = 20ms;
    auto& u = add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    if (tweak)
        tweak(u);
    running_proxy p(std::move(c));
    tls_run out;
    out.response = fetch(p, "http://api.example.test/tls");
    if (out.response.status != 200)
        up.wait_until([&] { return up.handshake_failures() >= 1; }, 2s);
    out.accepted = up.connections_accepted();
    out.handshake_failures = up.handshake_failures();
    return out;
}

void expect_certificate_error_once(const tls_run& t) {
    expect_local_error(t.response, 502, "tls_certificate_error");
    EXPECT_EQ(t.accepted, 1u) << "a certificate failure is never retried";
    EXPECT_EQ(t.handshake_failures, 1u);
}

TEST(UpstreamTls, WrongHostCertificateIsRejected) {
    expect_certificate_error_once(run_tls(test_ca::instance().wrong_host_leaf()));
}

TEST(UpstreamTls, ExpiredCertificateIsRejected) {
    expect_certificate_error_once(run_tls(test_ca::instance().expired_leaf()));
}

TEST(UpstreamTls, SelfSignedCertificateIsRejected) {
    expect_certificate_error_once(run_tls(test_ca::instance().self_signed_leaf()));
}

TEST(UpstreamTls, MissingIntermediateIsRejected) {
    expect_certificate_error_once(run_tls(test_ca::instance().no_intermediate_leaf()));
}

TEST(UpstreamTls, CaFileThatDidNotSignTheChainIsRejected) {
    // A self-signed certificate of an unrelated "CA" is the only trust anchor; the upstream
    // serves the good api chain, which does not lead to it.
    auto unrelated = test_ca::instance().leaf("upstream-test-unrelated-anchor",
                                              {"unrelated.example.test"}, {.self_signed = true});
    expect_certificate_error_once(run_tls(test_ca::instance().api_leaf(), [&](auto& u) {
        u.policy.tls.ca_file = unrelated.cert_file.string();
    }));
}

TEST(UpstreamTls, GoodChainIsAccepted) {
    auto t = run_tls(test_ca::instance().api_leaf());
    EXPECT_EQ(t.response.status, 200) << t.response.raw;
    EXPECT_EQ(t.accepted, 1u);
    EXPECT_EQ(t.handshake_failures, 0u);
}

TEST(UpstreamTls, VerifyOffAcceptsSelfSigned) {
    auto t = run_tls(test_ca::instance().self_signed_leaf(),
                     [](auto& u) { u.policy.tls.verify = false; });
    EXPECT_EQ(t.response.status, 200) << t.response.raw;
    EXPECT_EQ(t.response.body, "ok");
    EXPECT_EQ(t.handshake_failures, 0u);
}

// ---- 3. SNI and the pool key --------------------------------------------------------------

TEST(UpstreamSni, OriginHostNameIsSentAsSni) {
    scripted_upstream up({.tls = true});
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    EXPECT_EQ(fetch(p, "http://api.example.test/").status, 200);
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].sni, "localhost");
    auto conns = up.connections();
    ASSERT_EQ(conns.size(), 1u);
    EXPECT_EQ(conns[0].sni, "localhost");
}

TEST(UpstreamSni, CertificateChosenBySniIsVerified) {
    // Without SNI the upstream aborts; with an unknown name it serves a certificate for
    // other.example.test. Only SNI "localhost" gets the right certificate.
    scripted_upstream up({.tls = true,
                          .cert = test_ca::instance().wrong_host_leaf(),
                          .certs_by_sni = {{"localhost", test_ca::instance().api_leaf()}},
                          .require_sni = true});
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    auto r = fetch(p, "http://api.example.test/");
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(up.handshake_failures(), 0u);
}

TEST(UpstreamSni, IpLiteralOriginSendsNoSniAndVerifiesTheIpSan) {
    scripted_upstream up({.tls = true});  // api leaf: SAN IP 127.0.0.1
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "127.0.0.1", up.port());
    running_proxy p(std::move(c));
    auto r = fetch(p, "http://api.example.test/");
    EXPECT_EQ(r.status, 200) << r.raw;
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].sni, "");
    EXPECT_EQ(reqs[0].header("Host"), "127.0.0.1:" + std::to_string(up.port()));
}

TEST(UpstreamSni, IpLiteralOriginRejectsCertificateWithoutThatIp) {
    // Valid chain, DNS SAN "localhost" only: connecting by IP address must not accept it.
    auto dns_only = test_ca::instance().leaf("upstream-test-localhost-only", {"localhost"});
    scripted_upstream up({.tls = true, .cert = dns_only});
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "127.0.0.1", up.port());
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "tls_certificate_error");
    EXPECT_EQ(up.request_count(), 0u);
}

TEST(UpstreamSni, UpstreamAbortingWithoutSniIsATlsProtocolError) {
    scripted_upstream up({.tls = true, .require_sni = true});
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "127.0.0.1", up.port());
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "tls_protocol_error");
    EXPECT_TRUE(up.wait_until([&] { return up.handshake_failures() == 1; }, 2s));
    EXPECT_EQ(up.connections_accepted(), 1u);
}

TEST(UpstreamSni, PoolKeyIncludesTheServerName) {
    scripted_upstream up({.tls = true},
                         [](const received_request& r) { return respond(200, r.target); });
    auto c = quiet_config();
    add_upstream(c, "by-name", "a.example.test", "https", "localhost", up.port());
    add_upstream(c, "by-ip", "b.example.test", "https", "127.0.0.1", up.port());
    running_proxy p(std::move(c));
    raw_client cl(p.port());
    for (int round = 0; round < 2; ++round) {
        for (auto host : {"a.example.test", "b.example.test"}) {
            cl.send(get(std::string("http://") + host + "/" + host, host));
            auto r = cl.read_response();
            EXPECT_EQ(r.status, 200) << r.raw;
            EXPECT_EQ(r.body, std::string("/") + host);
        }
    }
    EXPECT_EQ(up.connections_accepted(), 2u);
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 4u);
    std::set<std::size_t> a_conns, b_conns;
    for (const auto& r : reqs) {
        if (r.target == "/a.example.test") {
            EXPECT_EQ(r.sni, "localhost");
            a_conns.insert(r.connection_id);
        } else {
            EXPECT_EQ(r.sni, "");
            b_conns.insert(r.connection_id);
        }
    }
    EXPECT_EQ(a_conns.size(), 1u);
    EXPECT_EQ(b_conns.size(), 1u);
    EXPECT_NE(*a_conns.begin(), *b_conns.begin());
}

// ---- 4. mTLS ------------------------------------------------------------------------------

TEST(UpstreamMtls, ClientCertificateIsPresented) {
    scripted_upstream up({.tls = true, .require_client_cert = true});
    auto c = quiet_config();
    auto& u = add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    const auto client = test_ca::instance().client_leaf();
    u.policy.tls.cert_file = client.cert_chain_file.string();
    u.policy.tls.key_file = client.key_file.string();
    running_proxy p(std::move(c));
    auto r = fetch(p, "http://api.example.test/mtls");
    EXPECT_EQ(r.status, 200) << r.raw;
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].client_cert_subject, "client.example.test");
    EXPECT_EQ(up.connections()[0].client_cert_subject, "client.example.test");
}

TEST(UpstreamMtls, MissingClientCertificateIsATlsFailure) {
    scripted_upstream up({.tls = true, .require_client_cert = true});
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    auto r = fetch(p, "http://api.example.test/mtls");
    EXPECT_EQ(r.status, 502) << r.raw;
    EXPECT_EQ(r.header("Proxy-Status").rfind("sluice; error=", 0), 0u) << r.raw;
    // The upstream refused the handshake (with TLS 1.3 the client learns it from an alert
    // after its own side completed): a TLS failure or a connection ended before any response,
    // never a malformed HTTP response.
    const auto type = proxy_error_type(r);
    EXPECT_TRUE(type == "tls_protocol_error" || type == "connection_terminated")
        << "Proxy-Status: " << r.header("Proxy-Status");
    EXPECT_TRUE(up.wait_until([&] { return up.handshake_failures() == 1; }, 2s));
    EXPECT_EQ(up.connections_accepted(), 1u);
    EXPECT_EQ(up.request_count(), 0u);
}

// ---- 5. session resumption ----------------------------------------------------------------

TEST(UpstreamTls, SessionResumedOnTheNextConnection) {
    scripted_upstream up({.tls = true}, [](const received_request& r) {
        if (r.target == "/first")
            return respond(200, "first", {{"Connection", "close"}}).then_close();
        return respond(200, "second");
    });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    raw_client cl(p.port());
    cl.send(get("http://api.example.test/first"));
    EXPECT_EQ(cl.read_response().body, "first");
    cl.send(get("http://api.example.test/second"));
    EXPECT_EQ(cl.read_response().body, "second");
    auto conns = up.connections();
    ASSERT_EQ(conns.size(), 2u);
    EXPECT_FALSE(conns[0].session_reused);
    EXPECT_TRUE(conns[1].session_reused);
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].connection_id, 1u);
    EXPECT_EQ(reqs[1].connection_id, 2u);
}

// ---- 6. DESIGN §5: responses sluice makes itself ------------------------------------------

TEST(UpstreamErrors, DnsFailureIsDnsError) {
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "nonexistent.invalid", 443);
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "dns_error");
}

TEST(UpstreamErrors, ConnectionRefused) {
    const auto port = closed_port();
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "http", "127.0.0.1", port);
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "connection_refused");
}

TEST(UpstreamErrors, ConnectTimeout) {
    black_hole_listener hole;
    auto c = quiet_config();
    auto& u = add_upstream(c, "api", "api.example.test", "http", "127.0.0.1", hole.port());
    u.policy.timeouts.connect = 300ms;
    running_proxy p(std::move(c));
    const auto start = steady::now();
    auto r = fetch(p, "http://api.example.test/");
    const auto elapsed = steady::now() - start;
    expect_local_error(r, 502, "connection_timeout");
    EXPECT_GE(elapsed, 250ms);
    EXPECT_LT(elapsed, 2s);
}

TEST(UpstreamErrors, TlsToAPlainUpstreamIsATlsProtocolError) {
    scripted_upstream up;  // plain HTTP
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "tls_protocol_error");
    EXPECT_EQ(up.connections_accepted(), 1u);
    EXPECT_EQ(up.request_count(), 0u);
}

TEST(UpstreamErrors, AttemptTimeoutIs504) {
    scripted_upstream up({.tls = true}, [](const received_request&) { return hang(); });
    auto c = quiet_config();
    auto& u = add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    u.policy.timeouts.request = 300ms;
    running_proxy p(std::move(c));
    const auto start = steady::now();
    auto r = fetch(p, "http://api.example.test/slow");
    const auto elapsed = steady::now() - start;
    expect_local_error(r, 504, "connection_read_timeout");
    EXPECT_GE(elapsed, 250ms);
    EXPECT_LT(elapsed, 2s);
    EXPECT_EQ(up.request_count(), 1u);
}

TEST(UpstreamErrors, UpstreamThatStopsReadingTheRequestIsAWriteTimeout) {
    // RFC 9209 §2.3.10 connection_write_timeout, not a read timeout: the request never got
    // there. The body is buffered whole (under retry.buffer_limit), then written at once.
    // Never accepts; each connection takes 4 KiB of the request, then the sender stalls: an
    // upstream that has stopped reading.
    silent_listener deaf(16, 4096);
    auto c = quiet_config();
    auto& u = add_upstream(c, "api", "api.example.test", "http", "127.0.0.1", deaf.port());
    u.policy.timeouts.request = 300ms;
    u.policy.retry.buffer_limit = 16 * 1024 * 1024;
    c.limits.max_request_body = 16 * 1024 * 1024;
    running_proxy p(std::move(c));
    const std::string body(12 * 1024 * 1024, 'b');  // far more than the path to it buffers
    raw_client client(p.port());
    const auto start = steady::now();
    client.send(
        "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body);
    auto r = client.read_response();
    const auto elapsed = steady::now() - start;
    expect_local_error(r, 504, "connection_write_timeout");
    EXPECT_NE(r.header("Proxy-Status").find("stopped reading the request"), std::string::npos)
        << r.raw;
    EXPECT_GE(elapsed, 250ms);
    EXPECT_LT(elapsed, 5s);  // one timeout, not a write timeout and then a read timeout
}

TEST(UpstreamErrors, ResetOnAFreshConnectionIsConnectionTerminated) {
    scripted_upstream up({.tls = true}, [](const received_request&) { return reset_connection(); });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "connection_terminated");
    EXPECT_EQ(up.connections_accepted(), 1u);
    EXPECT_EQ(up.request_count(), 1u);
}

TEST(UpstreamErrors, CloseWithoutAnswerOnAFreshConnectionIsConnectionTerminated) {
    scripted_upstream up({.tls = true},
                         [](const received_request&) { return action{}.then_close(); });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/"), 502, "connection_terminated");
    EXPECT_EQ(up.connections_accepted(), 1u);
    EXPECT_EQ(up.request_count(), 1u);
}

TEST(UpstreamErrors, MalformedResponseIsHttpProtocolError) {
    scripted_upstream up({.tls = true}, [](const received_request& r) {
        if (r.target == "/status")
            return write_raw("HTTP/1.1 2OO OK\r\n\r\n");
        return write_raw("this is not HTTP\r\n\r\n");
    });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://api.example.test/status"), 502, "http_protocol_error");
    expect_local_error(fetch(p, "http://api.example.test/garbage"), 502, "http_protocol_error");
    EXPECT_EQ(up.request_count(), 2u);
    // Neither poisoned connection was reused.
    EXPECT_EQ(up.connections_accepted(), 2u);
}

TEST(UpstreamErrors, UnknownHostIsDenied) {
    scripted_upstream up({.tls = true});
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    ASSERT_EQ(c.unknown_hosts, config::unknown_hosts_mode::reject);
    running_proxy p(std::move(c));
    expect_local_error(fetch(p, "http://unknown.example.test/", "unknown.example.test"), 403,
                       "http_request_denied");
    EXPECT_EQ(up.connections_accepted(), 0u);
}

TEST(UpstreamErrors, PassthroughToLoopbackIsProhibitedWithoutAllowCidrs) {
    scripted_upstream up;
    auto c = quiet_config();
    c.unknown_hosts = config::unknown_hosts_mode::passthrough;
    running_proxy p(std::move(c));
    const auto authority = up.authority();
    expect_local_error(fetch(p, "http://" + authority + "/x", authority), 403,
                       "destination_ip_prohibited");
    EXPECT_EQ(up.connections_accepted(), 0u);
}

// ---- 7. passthrough -----------------------------------------------------------------------

TEST(UpstreamPassthrough, ForwardsToTheAuthorityAskedOverOnePooledConnection) {
    scripted_upstream up({}, [](const received_request& r) { return respond(200, r.target); });
    auto c = quiet_config();
    c.unknown_hosts = config::unknown_hosts_mode::passthrough;
    c.allow_cidrs.push_back(loopback_cidr());  // DESIGN §3.2: loopback only when allowed
    running_proxy p(std::move(c));
    const auto authority = up.authority();  // "127.0.0.1:PORT"
    raw_client cl(p.port());
    for (auto path : {"/x", "/y"}) {
        cl.send(get("http://" + authority + path, authority));
        auto r = cl.read_response();
        EXPECT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body, path);
    }
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 2u);
    for (const auto& r : reqs) {
        EXPECT_EQ(r.header("Host"), authority);
        EXPECT_EQ(r.header_count("Host"), 1u);
    }
    EXPECT_EQ(reqs[0].target, "/x");
    EXPECT_EQ(up.connections_accepted(), 1u);
}

// ---- 8. informational responses from the upstream -----------------------------------------

TEST(UpstreamInformational, EarlyHintsReachHttp11ClientsOnly) {
    scripted_upstream up({.tls = true}, [](const received_request&) {
        return write_raw(
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: x-hop\r\nX-Hop: 1\r\n"
            "Keep-Alive: timeout=5\r\n\r\n" +
            response_bytes(200, "final"));
    });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    {
        raw_client cl(p.port());
        cl.send(get("http://api.example.test/hints"));
        auto hints = cl.read_response();
        EXPECT_EQ(hints.status, 103) << hints.raw;
        EXPECT_EQ(hints.header("Link"), "</a>");
        // Relayed as a proxy relays a final head: hop-by-hop fields go, our Via is added.
        for (auto name : {"Connection", "X-Hop", "Keep-Alive"})
            EXPECT_FALSE(hints.has_header(name)) << name << " in " << hints.raw;
        EXPECT_NE(hints.header("Via").find("1.1 "), std::string::npos) << hints.raw;
        auto r = cl.read_response();
        EXPECT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body, "final");
    }
    {
        raw_client old(p.port());
        old.send("GET http://api.example.test/hints HTTP/1.0\r\n\r\n");
        auto r = old.read_response();
        EXPECT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body, "final");
        EXPECT_TRUE(old.closed_by_peer(2s));
        EXPECT_EQ(old.pending(), "");
    }
    EXPECT_EQ(up.request_count(), 2u);
}

TEST(UpstreamInformational, UnsolicitedContinueIsNotRelayed) {
    scripted_upstream up({.tls = true}, [](const received_request& r) {
        return write_raw("HTTP/1.1 100 Continue\r\n\r\n" + response_bytes(200, r.target));
    });
    auto c = quiet_config();
    add_upstream(c, "api", "api.example.test", "https", "localhost", up.port());
    running_proxy p(std::move(c));
    raw_client cl(p.port());
    cl.send(get("http://api.example.test/one"));
    auto r = cl.read_response();
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "/one");
    cl.send(get("http://api.example.test/two"));
    auto r2 = cl.read_response();
    EXPECT_EQ(r2.status, 200) << r2.raw;
    EXPECT_EQ(r2.body, "/two");
    EXPECT_EQ(up.connections_accepted(), 1u);
}

}  // namespace
}  // namespace sluice::test
