// Regressions found by attacking the proxy: each test is the reproduction of one bug, kept so
// the whole kind stays fixed.
#include "integration/harness.hpp"

namespace sluice::test {
namespace {

class Regression : public ::testing::Test {
  protected:
    void start(script s, upstream_options opts = {}) {
        opts.tls = true;
        upstream = std::make_unique<scripted_upstream>(opts, std::move(s));
        auto c = base_config();
        add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
        c.upstreams[0].policy.retry.buffer_limit = 1024;
        proxy = std::make_unique<running_proxy>(std::move(c));
    }

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

// An upstream that answers a streamed upload early and closes must not leave the rest of the
// body on the client connection to be parsed as new requests (request smuggling).
TEST_F(Regression, EarlyResponseToStreamedBodyClosesTheClientConnection) {
    upstream_options opts;
    opts.on_head = [](const received_request& r) {
        head_action h;
        if (r.target == "/upload") {
            h.final_action = respond(413, "too big", {{"Connection", "close"}}).then_close();
        }
        return h;
    };
    start({}, opts);
    raw_client c(proxy->port());
    const std::string smuggled =
        "GET http://api.example.test/SMUGGLED HTTP/1.1\r\nHost: api.example.test\r\n\r\n";
    c.send(
        "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: " +
        std::to_string(4096 + smuggled.size()) + "\r\n\r\n" + std::string(4096, 'A'));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.header("Connection"), "close");
    c.try_send(smuggled);  // still inside the declared body
    EXPECT_TRUE(c.closed_by_peer(3s));
    for (const auto& req : upstream->requests())
        EXPECT_EQ(req.target.find("SMUGGLED"), std::string::npos);
}

// Upstreams that answer an upload early but go on reading its body (as many application
// servers do), keeping the connection open.
upstream_options answers_uploads_early() {
    upstream_options opts;
    opts.on_head = [](const received_request& r) {
        head_action h;
        if (r.target == "/upload") {
            h.writes.push_back(
                {"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\n\r\ntoo big"});
        }
        return h;
    };
    return opts;
}

// A streamed upload (over retry.buffer_limit) of which the client sends a first part, then
// pauses.
std::string paused_upload() {
    return "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\n"
           "Content-Length: 5000000\r\n\r\n" +
           std::string(64 * 1024, 'A');
}

// The early answer reaches the client at once, though the client has paused its upload and the
// upstream keeps the connection open. It used to wait for timeouts.request when the upstream's
// answer was read in the same turn as a piece of the body: the body won the race, and the read
// that had already taken the answer was forgotten. Five rounds, as the race is one of timing.
TEST_F(Regression, EarlyAnswerToAPausedUploadIsRelayedAtOnce) {
    start([](const received_request& r) { return respond(200, r.target); },
          answers_uploads_early());
    for (int round = 0; round < 5; ++round) {
        raw_client c(proxy->port());
        c.send(paused_upload());
        auto r = c.read_response(1500ms);  // timeouts.request is 3 s
        EXPECT_EQ(r.status, 413) << "round " << round;
    }
}

// That upstream still expects the rest of the body on its connection: the connection must not
// go back to the pool, or the next request sent on it would be read as body, lost, or mixed
// into the upload.
TEST_F(Regression, ConnectionOfAnUploadCutShortIsNotReused) {
    start([](const received_request& r) { return respond(200, r.target); },
          answers_uploads_early());
    {
        raw_client c(proxy->port());
        c.send(paused_upload());
        EXPECT_EQ(c.read_response().status, 413);
    }
    raw_client next(proxy->port());
    next.send(get("http://api.example.test/next"));
    auto r = next.read_response(1500ms);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "/next");
    EXPECT_EQ(upstream->connections_accepted(), 2u);
}

// Shared case 9 (b): an Expect: 100-continue upload of 2 MiB whose upstream answers 413 and
// closes without reading it. The client gets its 100 from sluice at once (DESIGN §3.1), then
// the 413 at once, though it pauses after the first part of its body. (Cases 9 (a) and (c),
// the 100 and an upstream that ignores Expect: Forwarding.ExpectContinueAnsweredBySluice...)
TEST_F(Regression, Case9ExpectContinueThenAnEarly413) {
    upstream_options opts;
    opts.on_head = [](const received_request&) {
        head_action h;
        h.final_action = respond(413, "too big", {{"Connection", "close"}}).then_close();
        return h;
    };
    start({}, opts);
    raw_client c(proxy->port());
    c.send(
        "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_EQ(c.read_response(1500ms).status, 100);
    c.send(std::string(64 * 1024, 'A'));  // then nothing more
    auto r = c.read_response(1500ms);     // timeouts.request is 3 s
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.header("Connection"), "close");
}

// A passthrough request must never borrow a pooled connection a configured upstream opened to
// an internal address.
TEST_F(Regression, PassthroughNeverReusesAConfiguredUpstreamsConnection) {
    upstream = std::make_unique<scripted_upstream>(upstream_options{}, script{});
    auto c = base_config();
    add_upstream(c, "internal", "internal.example.test", "http", "127.0.0.1", upstream->port());
    c.unknown_hosts = config::unknown_hosts_mode::passthrough;
    proxy = std::make_unique<running_proxy>(std::move(c));
    raw_client cl(proxy->port());
    cl.send(get("http://internal.example.test/warm"));
    ASSERT_EQ(cl.read_response().status, 200);
    cl.send(get("http://127.0.0.1:" + std::to_string(upstream->port()) + "/bypass"));
    auto r = cl.read_response();
    EXPECT_EQ(r.status, 403);
    EXPECT_NE(r.header("Proxy-Status").find("destination_ip_prohibited"), std::string::npos);
    EXPECT_EQ(upstream->request_count(), 1u);
}

// Status codes outside 100-599 are malformed responses, not informational ones.
TEST_F(Regression, StatusOutsideTheValidRangeIs502) {
    start([](const received_request& r) {
        if (r.target == "/099")
            return write_raw("HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok");
        return write_raw("HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nok");
    });
    for (auto target : {"/099", "/600"}) {
        raw_client c(proxy->port());
        c.send(get(std::string("http://api.example.test") + target));
        auto r = c.read_response();
        EXPECT_EQ(r.status, 502) << target;
        EXPECT_NE(r.header("Proxy-Status").find("http_protocol_error"), std::string::npos);
    }
}

// Upstream responses are held to the request's strictness (issue 6, point 4): a folded field
// line, or a head over max_header_bytes made of many small lines (Beast alone bounded only
// one line at a time), is a 502 and the connection is not reused.
TEST_F(Regression, FoldedOrOversizedResponseHeadIs502) {
    start([](const received_request& r) {
        if (r.target == "/folded")
            return write_raw("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok");
        std::string many = "HTTP/1.1 200 OK\r\n";
        for (int i = 0; i < 10000; ++i)
            many += "X-" + std::to_string(i) + ": v\r\n";
        return write_raw(many + "Content-Length: 2\r\n\r\nok");
    });
    for (auto target : {"/folded", "/many"}) {
        raw_client c(proxy->port());
        c.send(get(std::string("http://api.example.test") + target));
        auto r = c.read_response();
        EXPECT_EQ(r.status, 502) << target;
        EXPECT_NE(r.header("Proxy-Status").find("error=http_"), std::string::npos) << target;
        EXPECT_NE(r.body.find("200"), 0u);
    }
    EXPECT_EQ(upstream->connections_accepted(), 2u);  // neither connection was reused
}

// Once an informational response arrived, the request was seen: a close after it is not the
// stale keep-alive race, and a POST is never sent twice.
TEST_F(Regression, NoReplayAfterAnInformationalResponse) {
    start([](const received_request& r) {
        if (r.index_on_connection == 0)
            return respond(200, "warm");
        return write_raw("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n").then_close();
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/warm"));
    ASSERT_EQ(c.read_response().status, 200);
    c.send(
        "POST http://api.example.test/orders HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 2\r\n\r\n{}");
    EXPECT_EQ(c.read_response().status, 103);
    EXPECT_EQ(c.read_response().status, 502);
    EXPECT_EQ(upstream->request_count(), 2u);  // the warm-up and one POST
}

// A body cut short upstream aborts an HTTP/1.0 client with a reset: a FIN would end its
// close-delimited body as if complete.
TEST_F(Regression, TruncatedBodyResetsHttp10Client) {
    start([](const received_request&) {
        action a;
        a.writes.push_back(
            {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0ms});
        a.reset = true;
        return a;
    });
    raw_client c(proxy->port());
    c.send("GET http://api.example.test/cut HTTP/1.0\r\n\r\n");
    auto end = c.read_until_close(3s);
    EXPECT_EQ(end.how, boost::asio::error::connection_reset);
}

// timeouts.request starts when the request has been sent: a slow upload is not a timeout.
TEST_F(Regression, SlowUploadIsNotAnAttemptTimeout) {
    upstream = std::make_unique<scripted_upstream>(
        upstream_options{.tls = true},
        [](const received_request& r) { return respond(200, std::to_string(r.body.size())); });
    auto c = base_config();
    auto& u = add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
    u.policy.timeouts.request = 300ms;
    u.policy.retry.buffer_limit = 16;  // streamed
    proxy = std::make_unique<running_proxy>(std::move(c));
    raw_client cl(proxy->port());
    cl.send(
        "PUT http://api.example.test/slow HTTP/1.1\r\nHost: api.example.test\r\n"
        "Content-Length: 40\r\n\r\n");
    for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(150ms);  // the client's pace is the input: 600 ms in all
        cl.send(std::string(10, 'x'));
    }
    auto r = cl.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "40");
}

// A refused CONNECT closes the connection: tunnel bytes must not be parsed as requests.
TEST_F(Regression, RefusedConnectCloses) {
    start({});
    raw_client c(proxy->port());
    c.send("CONNECT api.example.test:8443 HTTP/1.1\r\nHost: api.example.test:8443\r\n\r\n" +
           get("http://api.example.test/after-connect"));
    EXPECT_EQ(c.read_response(5s, true).status, 403);  // 8443 is not in connect_ports
    EXPECT_TRUE(c.closed_by_peer(3s));
    EXPECT_EQ(upstream->request_count(), 0u);
}

// A Host that is not an authority is a malformed request even when the target wins.
TEST_F(Regression, InvalidHostWithAbsoluteFormIs400) {
    start({});
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/x", "a b c"));
    EXPECT_EQ(c.read_response().status, 400);
    EXPECT_EQ(upstream->request_count(), 0u);
}

// A fully qualified name (trailing dot) routes like the name itself.
TEST_F(Regression, TrailingDotRoutesToTheSameUpstream) {
    start({});
    raw_client c(proxy->port());
    c.send(get("http://api.example.test./x"));
    EXPECT_EQ(c.read_response().status, 200);
    EXPECT_EQ(upstream->request_count(), 1u);
}

// Response transfer codings other than chunked are not decoded, so they are not relayed.
TEST_F(Regression, UnsupportedResponseTransferCodingIs502) {
    start([](const received_request&) {
        return write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot-really-gzip")
            .then_close();
    });
    raw_client c(proxy->port());
    c.send(get("http://api.example.test/gz"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 502);
    EXPECT_NE(r.header("Proxy-Status").find("http_protocol_error"), std::string::npos);
}

// An endless stream of 1xx is cut off.
TEST_F(Regression, InformationalFloodIs502) {
    start([](const received_request&) {
        std::string flood;
        for (int i = 0; i < 150; ++i)
            flood += "HTTP/1.1 103 Early Hints\r\n\r\n";
        return write_raw(flood + response_bytes(200, "late"));
    });
    raw_client c(proxy->port());
    c.send("GET http://api.example.test/flood HTTP/1.0\r\n\r\n");  // 1.0: no 1xx relayed
    auto r = c.read_response();
    EXPECT_EQ(r.status, 502);
}

}  // namespace
}  // namespace sluice::test
