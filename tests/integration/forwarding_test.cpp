// Forwarding through the real server to a scripted TLS upstream: methods, framing, keep-alive,
// pipelining, headers, and shared cases 10, 11, 12, 13, 14 and 26.
#include "integration/harness.hpp"

namespace sluice::test {
namespace {

class Forwarding : public ::testing::Test {
  protected:
    // A TLS upstream and a proxy with upstream "api" (hosts api.example.test) in front of it.
    void start(script s = {}, upstream_options opts = {}) {
        opts.tls = true;
        upstream = std::make_unique<scripted_upstream>(opts, std::move(s));
        auto c = base_config();
        add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
        tweak(c);
        proxy = std::make_unique<running_proxy>(std::move(c));
    }
    virtual void tweak(config::config&) {}

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

TEST_F(Forwarding, GetLeavesOverVerifiedTlsWithHostRegenerated) {
    start([](const received_request&) { return respond(200, "hello", {{"X-Up", "1"}}); });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/v1/items?q=1", "other.example.test"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello");
    EXPECT_EQ(r.header("X-Up"), "1");
    EXPECT_EQ(r.header("Via"), "1.1 sluice-test0001");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].target, "/v1/items?q=1");
    EXPECT_EQ(reqs[0].header("Host"), "localhost:" + std::to_string(upstream->port()));
    EXPECT_EQ(reqs[0].header("Via"), "1.1 sluice-test0001");
    EXPECT_EQ(reqs[0].sni, "localhost");
    EXPECT_EQ(reqs[0].version, "HTTP/1.1");
}

TEST_F(Forwarding, EachMethodWithItsBody) {
    start([](const received_request& r) { return respond(200, r.method + ":" + r.body); });
    raw_client c(proxy->port());
    for (std::string m : {"GET", "DELETE", "OPTIONS", "TRACE"}) {
        c.send(m + " http://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
        auto r = c.read_response();
        EXPECT_EQ(r.status, 200) << m;
        EXPECT_EQ(r.body, m + ":") << m;
    }
    for (std::string m : {"POST", "PUT", "PATCH"}) {
        c.send(m +
               " http://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n"
               "Content-Length: 5\r\n\r\nhello");
        auto r = c.read_response();
        EXPECT_EQ(r.body, m + ":hello") << m;
    }
    c.send("HEAD http://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
    auto h = c.read_response(5s, true);
    EXPECT_EQ(h.status, 200);
    EXPECT_EQ(h.header("Content-Length"), "5");  // "HEAD:" as the GET would have it
    EXPECT_EQ(upstream->connections_accepted(), 1u);
}

TEST_F(Forwarding, ChunkedRequestIsReframedAndBodyIdentical) {
    start([](const received_request& r) { return respond(200, r.body); });
    raw_client c(proxy->port());
    c.send(
        "POST http://api.example.test/up HTTP/1.1\r\nHost: api.example.test\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\n01234\r\na\r\n56789abcde\r\n0\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.body, "0123456789abcde");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].body, "0123456789abcde");
    // Small bodies are buffered, so they go upstream with a Content-Length.
    EXPECT_EQ(reqs[0].header("Content-Length"), "15");
    EXPECT_FALSE(reqs[0].has_header("Transfer-Encoding"));
}

// Trailer fields of a chunked body are not header fields: Beast adds them to the request's
// fields once the body is read, and none of them may reach the upstream's head, whatever they
// name (a framing field spelled with an underscore, a Connection list, our own Via, a key that
// would make a POST retryable).
TEST_F(Forwarding, ChunkedRequestTrailersNeverBecomeHeaderFields) {
    start([](const received_request& r) { return respond(200, r.body); });
    raw_client c(proxy->port());
    c.send(
        "POST http://api.example.test/up HTTP/1.1\r\nHost: api.example.test\r\n"
        "X-Kept: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"
        "Transfer_Encoding: chunked\r\nIdempotency-Key: k1\r\nConnection: x-kept\r\n"
        "Via: 1.1 elsewhere\r\nX-Trailer: t\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "hi");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].header("X-Kept"), "1");  // a trailer Connection removes nothing
    for (auto name : {"Transfer_Encoding", "Idempotency-Key", "X-Trailer", "Connection"})
        EXPECT_FALSE(reqs[0].has_header(name)) << name << " in " << reqs[0].raw;
    EXPECT_EQ(reqs[0].header("Via").find("elsewhere"), std::string::npos) << reqs[0].raw;
    EXPECT_EQ(reqs[0].header("Content-Length"), "2");
}

TEST_F(Forwarding, LargeUploadIsStreamedChunked) {
    start([](const received_request& r) { return respond(200, std::to_string(r.body.size())); });
    const std::size_t size = 3 * 1024 * 1024;  // > retry.buffer_limit (1 MiB): streamed
    std::string body(size, 'x');
    for (std::size_t i = 0; i < size; i += 4096)
        body[i] = static_cast<char>('a' + (i / 4096) % 26);
    raw_client c(proxy->port());
    c.send(
        "PUT http://api.example.test/blob HTTP/1.1\r\nHost: api.example.test\r\n"
        "Transfer-Encoding: chunked\r\n\r\n");
    for (std::size_t off = 0; off < size; off += 100000) {
        std::size_t n = std::min<std::size_t>(100000, size - off);
        char hex[32];
        std::snprintf(hex, sizeof hex, "%zx\r\n", n);
        c.send(std::string(hex) + body.substr(off, n) + "\r\n");
    }
    c.send("0\r\n\r\n");
    auto r = c.read_response(10s);
    EXPECT_EQ(r.body, std::to_string(size));
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].body, body);
    EXPECT_EQ(reqs[0].header("Transfer-Encoding"), "chunked");
}

TEST_F(Forwarding, ResponseFramingsReachTheClient) {
    start([](const received_request& r) {
        if (r.target == "/chunked")
            return respond_chunked(200, {"ab", "cd", "ef"});
        return respond(200, "fixed");
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/chunked"));
    auto r = c.read_response();
    EXPECT_TRUE(r.chunked);
    EXPECT_EQ(r.body, "abcdef");
    c.send(get("http://api.example.test/fixed"));
    auto f = c.read_response();
    EXPECT_EQ(f.header("Content-Length"), "5");
    EXPECT_EQ(f.body, "fixed");
    EXPECT_EQ(upstream->connections_accepted(), 1u);
}

TEST_F(Forwarding, PipelinedRequestsAnsweredInOrder) {
    start([](const received_request& r) {
        action a = respond(200, r.target);
        if (r.target == "/1")
            a.delay = 100ms;  // the first is the slowest
        return a;
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/1") + get("http://api.example.test/2") +
           get("http://api.example.test/3"));
    EXPECT_EQ(c.read_response().body, "/1");
    EXPECT_EQ(c.read_response().body, "/2");
    EXPECT_EQ(c.read_response().body, "/3");
}

// RFC 9112 §2.2: empty lines before a request-line are ignored, whether they come with it, in a
// write of their own (the CRLF some clients send after a POST body), or as bare LFs.
TEST_F(Forwarding, EmptyLinesBeforeARequestLineAreIgnored) {
    start([](const received_request& r) { return respond(200, r.target); });
    raw_client c(proxy->port());
    c.send("\r\n\r\n" + get("http://api.example.test/1"));
    EXPECT_EQ(c.read_response().body, "/1");
    c.send(
        "POST http://api.example.test/2 HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 4\r\n\r\nbody\r\n");
    EXPECT_EQ(c.read_response().body, "/2");
    c.send("\n");
    c.send("\r\n" + get("http://api.example.test/3"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "/3");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[1].body, "body");
}

TEST_F(Forwarding, Http10ClientGetsCloseDelimitedOrLength) {
    start([](const received_request& r) {
        if (r.target == "/chunked")
            return respond_chunked(200, {"one", "two"});
        return respond(200, "len");
    });
    {
        raw_client c(proxy->port());
        c.send("GET http://api.example.test/chunked HTTP/1.0\r\n\r\n");
        auto r = c.read_response();
        EXPECT_FALSE(r.chunked);
        EXPECT_TRUE(r.close_delimited);
        EXPECT_EQ(r.body, "onetwo");  // close_delimited: the close ended it
    }
    {
        raw_client c(proxy->port());
        c.send("GET http://api.example.test/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        auto r = c.read_response();
        EXPECT_EQ(r.body, "len");
        EXPECT_EQ(r.header("Connection"), "keep-alive");
        c.send("GET http://api.example.test/y HTTP/1.0\r\n\r\n");
        EXPECT_EQ(c.read_response().body, "len");
        EXPECT_TRUE(c.closed_by_peer(2s));
    }
}

// Shared case 9 (a) and (c): the 100 comes from sluice and Expect is not forwarded, so an
// upstream that ignores Expect is served the same way. (b): Regression.Case9...
TEST_F(Forwarding, ExpectContinueAnsweredBySluiceAndNotForwarded) {
    start([](const received_request& r) { return respond(201, r.body); });
    raw_client c(proxy->port());
    c.send(
        "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    auto interim = c.read_response();
    EXPECT_EQ(interim.status, 100);
    c.send("data");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(r.body, "data");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_FALSE(reqs[0].has_header("Expect"));

    // No 1xx ever goes to an HTTP/1.0 client: the body just follows.
    raw_client old(proxy->port());
    old.send(
        "POST http://api.example.test/upload HTTP/1.0\r\nContent-Length: 2\r\n"
        "Expect: 100-continue\r\n\r\nok");
    auto r10 = old.read_response();
    EXPECT_EQ(r10.status, 201);
    EXPECT_EQ(r10.body, "ok");
}

TEST_F(Forwarding, SetHeadersReplaceClientValues) {
    upstream = std::make_unique<scripted_upstream>(
        upstream_options{.tls = true},
        [](const received_request& r) { return respond(200, r.header("Authorization")); });
    auto c = base_config();
    auto& u = add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
    u.set_headers = {{"Authorization", "Bearer from-config"}, {"X-Tenant", "t1"}};
    proxy = std::make_unique<running_proxy>(std::move(c));
    raw_client cl(proxy->port());
    cl.send(
        get("http://api.example.test/", "api.example.test", "Authorization: Bearer client\r\n"));
    EXPECT_EQ(cl.read_response().body, "Bearer from-config");
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].header_count("Authorization"), 1u);
    EXPECT_EQ(reqs[0].header("X-Tenant"), "t1");
}

TEST_F(Forwarding, OwnViaIsALoopButAnotherInstanceIsNot) {
    start();
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/", "api.example.test", "Via: 1.1 sluice-test0001\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 502);
    EXPECT_EQ(r.header("Proxy-Status"),
              "sluice; error=proxy_loop_detected; details=\"request came back to sluice\"");
    c.send(get("http://api.example.test/", "api.example.test", "Via: 1.1 sluice-other\r\n"));
    auto ok = c.read_response();
    EXPECT_EQ(ok.status, 200);
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].header("Via"), "1.1 sluice-other, 1.1 sluice-test0001");
}

// Case 10: HEAD relayed at once with its Content-Length, the connection reused after it.
TEST_F(Forwarding, Case10HeadThenGetOnOneConnection) {
    start([](const received_request& r) {
        if (r.method == "HEAD") {
            return write_raw("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
        }
        return respond(200, "ok");
    });
    raw_client c(proxy->port());
    c.send("HEAD http://api.example.test/big HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
    auto h = c.read_response(2s, true);
    EXPECT_EQ(h.status, 200);
    EXPECT_EQ(h.header("Content-Length"), "1048576");
    EXPECT_TRUE(h.body.empty());
    c.send(get("http://api.example.test/small"));
    auto g = c.read_response(2s);
    EXPECT_EQ(g.body, "ok");
    EXPECT_EQ(upstream->connections_accepted(), 1u);
}

// Case 11: 204 and 304 relayed without a body on a reused connection.
TEST_F(Forwarding, Case11NoBodyStatusesKeepTheConnection) {
    start([](const received_request& r) {
        if (r.target == "/204")
            return write_raw("HTTP/1.1 204 No Content\r\n\r\n");
        if (r.target == "/304") {
            return write_raw(
                "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 1234\r\n\r\n");
        }
        return respond(200, "ok");
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/204"));
    auto a = c.read_response(2s);
    EXPECT_EQ(a.status, 204);
    EXPECT_TRUE(a.body.empty());
    c.send(get("http://api.example.test/304"));
    auto b = c.read_response(2s, true);
    EXPECT_EQ(b.status, 304);
    EXPECT_EQ(b.header("ETag"), "\"x\"");
    c.send(get("http://api.example.test/200"));
    EXPECT_EQ(c.read_response(2s).body, "ok");
    EXPECT_EQ(upstream->connections_accepted(), 1u);
}

// Case 11, bad variant: a 204 that carries a body poisons its connection; the bytes after it
// are never parsed as the next response.
TEST_F(Forwarding, Case11NoContentWithBodyRetiresTheConnection) {
    start([](const received_request& r) {
        if (r.target == "/204") {
            return write_raw("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello");
        }
        return respond(200, "next");
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/204"));
    EXPECT_EQ(c.read_response(2s).status, 204);
    c.send(get("http://api.example.test/next"));
    auto r = c.read_response(2s);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "next");
    EXPECT_EQ(upstream->connections_accepted(), 2u);
}

// Case 11, close variant: the upstream closes an idle connection; it is never written to (the
// MSG_PEEK before every reuse sees the close; pool_connection_test pins it on real sockets).
TEST_F(Forwarding, Case11ClosedIdleConnectionIsNotReused) {
    start([](const received_request& r) {
        action a = write_raw("HTTP/1.1 204 No Content\r\n\r\n");
        if (r.target == "/first")
            a.close = true;
        return a;
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/first"));
    EXPECT_EQ(c.read_response(2s).status, 204);
    ASSERT_TRUE(upstream->wait_for_closed_connections(1, 2s));
    c.send(get("http://api.example.test/second"));
    EXPECT_EQ(c.read_response(2s).status, 204);
    EXPECT_EQ(upstream->connections_accepted(), 2u);
    EXPECT_EQ(upstream->request_count(), 2u);  // nothing was written into the closed one
}

// Case 12: a close-delimited body arrives whole, re-framed as chunked for HTTP/1.1, and its
// connection is not pooled.
TEST_F(Forwarding, Case12CloseDelimitedBodyReframed) {
    std::string chunk(10 * 1024, 'z');
    start([&](const received_request&) {
        action a;
        a.writes.push_back({"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", 0ms});
        for (int i = 0; i < 30; ++i)
            a.writes.push_back({chunk, 10ms});
        a.close = true;  // TLS close_notify, then FIN: the body is complete
        return a;
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/stream"));
    auto r = c.read_response(5s);
    EXPECT_TRUE(r.chunked);
    EXPECT_EQ(r.body.size(), 300u * 1024);
    raw_client old(proxy->port());
    old.send("GET http://api.example.test/stream HTTP/1.0\r\n\r\n");
    auto r10 = old.read_response(5s);
    EXPECT_TRUE(r10.close_delimited);
    EXPECT_EQ(r10.body.size(), 300u * 1024);
    EXPECT_EQ(upstream->connections_accepted(), 2u);
}

// Case 12, RST variant: the client sees an aborted response, never a clean short one.
TEST_F(Forwarding, Case12UpstreamResetMidBodyAbortsClient) {
    start([](const received_request&) {
        action a;
        a.writes.push_back({"HTTP/1.1 200 OK\r\n\r\n", 0ms});
        a.writes.push_back({std::string(20000, 'a'), 10ms});
        a.reset = true;
        return a;
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/stream"));
    auto r = c.try_read_response(5s);
    EXPECT_TRUE(r.error) << "a truncated body must not end like a complete one";
    EXPECT_FALSE(r.response.has_value());
}

// Case 12, truncation: FIN without close_notify over TLS is not a complete body either.
TEST_F(Forwarding, Case12TlsTruncationAbortsClient) {
    start([](const received_request&) {
        action a;
        a.writes.push_back({"HTTP/1.1 200 OK\r\n\r\n" + std::string(5000, 'a'), 0ms});
        a.close_without_notify = true;
        return a;
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/stream"));
    auto r = c.try_read_response(5s);
    EXPECT_TRUE(r.error);
}

// Case 13: hop-by-hop fields and those named by Connection are removed both ways.
TEST_F(Forwarding, Case13HopByHopRemovedBothWays) {
    start([](const received_request&) {
        return respond(
            200, "ok",
            {{"Connection", "X-Internal"}, {"X-Internal", "1"}, {"Keep-Alive", "timeout=5"}});
    });
    raw_client c(proxy->port());
    c.send(
        "GET http://api.example.test/h HTTP/1.1\r\nHost: api.example.test\r\n"
        "Connection:\r\nConnection: close, X-Trace\r\nX-Trace: s\r\n"
        "Keep-Alive: timeout=99\r\nProxy-Connection: keep-alive\r\n"
        "TE: trailers, deflate\r\nUpgrade: h2c\r\n"
        "Proxy-Authorization: Basic dGVzdDp0ZXN0\r\nX-End: 1\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(r.has_header("X-Internal"));
    EXPECT_FALSE(r.has_header("Keep-Alive"));
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(c.closed_by_peer(2s));
    auto reqs = upstream->requests();
    ASSERT_EQ(reqs.size(), 1u);
    for (auto name : {"Connection", "X-Trace", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade",
                      "Proxy-Authorization"}) {
        EXPECT_FALSE(reqs[0].has_header(name)) << name;
    }
    EXPECT_EQ(reqs[0].header("X-End"), "1");
    // The upstream connection stayed pooled: the next client reuses it.
    raw_client c2(proxy->port());
    c2.send(get("http://api.example.test/again"));
    EXPECT_EQ(c2.read_response().status, 200);
    EXPECT_EQ(upstream->connections_accepted(), 1u);
}

// Case 14: the target's authority routes; Host cannot pick another upstream; tricks are 400.
TEST_F(Forwarding, Case14AuthorityRules) {
    start([](const received_request& r) { return respond(200, r.header("Host")); });
    const std::string origin_host = "localhost:" + std::to_string(upstream->port());
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/v1", "other.example.test"));
    EXPECT_EQ(c.read_response().body, origin_host);
    c.send(get("/v1", "api.example.test"));
    EXPECT_EQ(c.read_response().body, origin_host);
    c.send(get("http://API.EXAMPLE.TEST:80/v1", "x"));
    EXPECT_EQ(c.read_response().body, origin_host);
    // Host naming a routed upstream cannot rescue an unrouted target.
    c.send(get("http://other.example.test/v1", "api.example.test"));
    auto denied = c.read_response();
    EXPECT_EQ(denied.status, 403);
    EXPECT_EQ(denied.header("Proxy-Status"),
              "sluice; error=http_request_denied; details=\"no upstream for host "
              "other.example.test\"");
    for (auto target :
         {"http://a@api.example.test:b@evil.example.test/",
          "http://api.example.test#@evil.example.test/", "http://u:p@api.example.test/"}) {
        raw_client bad(proxy->port());
        bad.send(get(target));
        auto r = bad.read_response();
        EXPECT_EQ(r.status, 400) << target;
        EXPECT_NE(r.header("Proxy-Status").find("error=http_request_error"), std::string::npos);
        EXPECT_TRUE(bad.closed_by_peer(2s));
    }
    EXPECT_EQ(upstream->request_count(), 3u);
}

// Case 26: large bodies stream both ways; big headers within the limit pass; over-limit
// requests get 431 / 413 and nothing goes upstream.
TEST_F(Forwarding, Case26LimitsAndLargeMessages) {
    const std::string nine_mib(9 * 1024 * 1024, 'n');
    start([&](const received_request& r) {
        if (r.target == "/cl")
            return respond(200, nine_mib, {{"Set-Cookie", std::string(10240, 'c')}});
        if (r.target == "/chunked") {
            std::vector<std::string> chunks(9, std::string(1024 * 1024, 'n'));
            return respond_chunked(200, chunks);
        }
        return respond(
            200, std::to_string(r.body.size()) + "/" + std::to_string(r.header("Cookie").size()));
    });
    raw_client c(proxy->port(), 10s);
    c.send(get("http://api.example.test/cl"));
    auto a = c.read_response(10s);
    EXPECT_EQ(a.body.size(), nine_mib.size());
    EXPECT_EQ(a.header("Set-Cookie").size(), 10240u);
    c.send(get("http://api.example.test/chunked"));
    EXPECT_EQ(c.read_response(10s).body.size(), nine_mib.size());
    c.send(
        "POST http://api.example.test/post HTTP/1.1\r\nHost: api.example.test\r\n"
        "Cookie: " +
        std::string(12 * 1024, 'k') +
        "\r\n"
        "Content-Length: " +
        std::to_string(2 * 1024 * 1024) + "\r\n\r\n" + std::string(2 * 1024 * 1024, 'p'));
    EXPECT_EQ(c.read_response(10s).body, "2097152/12288");

    raw_client big_head(proxy->port());
    big_head.send(get("http://api.example.test/x", "api.example.test",
                      "X-Big: " + std::string(70 * 1024, 'h') + "\r\n"));
    auto h = big_head.read_response();
    EXPECT_EQ(h.status, 431);
    EXPECT_TRUE(big_head.closed_by_peer(3s));

    raw_client big_body(proxy->port());
    big_body.send(
        "POST http://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 11534336\r\n\r\n");
    auto b = big_body.read_response();
    EXPECT_EQ(b.status, 413);
    EXPECT_TRUE(big_body.closed_by_peer(3s));
    EXPECT_EQ(upstream->request_count(), 3u);
}

}  // namespace
}  // namespace sluice::test
