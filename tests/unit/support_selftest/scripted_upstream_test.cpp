// Self-tests of scripted_upstream, driven through raw_client (plain and TLS).
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <chrono>
#include <string>

#include "support/raw_client.hpp"
#include "support/scripted_upstream.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;

const std::string get_v1 = "GET /v1 HTTP/1.1\r\nHost: api.example.test\r\n\r\n";

action ok() {
    return respond(200, "ok");
}

// --- TLS ------------------------------------------------------------------------------------

TEST(ScriptedUpstreamTls, ServesVerifiedResponseAndRecordsSni) {
    scripted_upstream up({.tls = true}, [](const received_request&) { return ok(); });
    raw_client c(up.port());
    ASSERT_FALSE(c.start_tls({.sni = "api.example.test"}));
    EXPECT_EQ(c.tls_verify_result(), X509_V_OK);
    c.send(get_v1);
    auto r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok");
    EXPECT_EQ(r.header("content-length"), "2");

    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].method, "GET");
    EXPECT_EQ(reqs[0].target, "/v1");
    EXPECT_EQ(reqs[0].version, "HTTP/1.1");
    EXPECT_EQ(reqs[0].header("HOST"), "api.example.test");
    EXPECT_EQ(reqs[0].raw, get_v1);
    EXPECT_EQ(reqs[0].sni, "api.example.test");
    auto conns = up.connections();
    ASSERT_EQ(conns.size(), 1u);
    EXPECT_EQ(conns[0].sni, "api.example.test");
    EXPECT_FALSE(conns[0].tls_version.empty());
}

TEST(ScriptedUpstreamTls, VerifiesIpAddressSans) {
    scripted_upstream up({.tls = true});
    raw_client c(up.port());
    ASSERT_FALSE(c.start_tls({.sni = "", .verify_host = "127.0.0.1"}));
    c.send(get_v1);
    EXPECT_EQ(c.read_response().status, 200);
    EXPECT_EQ(up.requests().at(0).sni, "");
}

TEST(ScriptedUpstreamTls, WrongHostFailsVerification) {
    {
        scripted_upstream up({.tls = true, .cert = test_ca::instance().wrong_host_leaf()});
        raw_client c(up.port());
        EXPECT_TRUE(c.start_tls({.sni = "api.example.test"}));
        EXPECT_EQ(c.tls_verify_result(), X509_V_ERR_HOSTNAME_MISMATCH);
    }
    {
        scripted_upstream up({.tls = true});
        raw_client c(up.port());
        EXPECT_TRUE(c.start_tls({.sni = "api.example.test", .verify_host = "evil.example.test"}));
        EXPECT_EQ(c.tls_verify_result(), X509_V_ERR_HOSTNAME_MISMATCH);
    }
}

TEST(ScriptedUpstreamTls, ExpiredCertificateFailsVerification) {
    scripted_upstream up({.tls = true, .cert = test_ca::instance().expired_leaf()});
    raw_client c(up.port());
    EXPECT_TRUE(c.start_tls());
    EXPECT_EQ(c.tls_verify_result(), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(ScriptedUpstreamTls, SelfSignedAndMissingIntermediateFailVerification) {
    {
        scripted_upstream up({.tls = true, .cert = test_ca::instance().self_signed_leaf()});
        raw_client c(up.port());
        EXPECT_TRUE(c.start_tls());
        EXPECT_NE(c.tls_verify_result(), X509_V_OK);
    }
    {
        scripted_upstream up({.tls = true, .cert = test_ca::instance().no_intermediate_leaf()});
        raw_client c(up.port());
        EXPECT_TRUE(c.start_tls());
        EXPECT_EQ(c.tls_verify_result(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    }
}

TEST(ScriptedUpstreamTls, SelectsCertificateBySni) {
    scripted_upstream up(
        {.tls = true,
         .certs_by_sni = {{"other.example.test", test_ca::instance().wrong_host_leaf()}}});
    {
        raw_client c(up.port());
        ASSERT_FALSE(c.start_tls({.sni = "other.example.test"}));
        c.send("GET / HTTP/1.1\r\nHost: other.example.test\r\n\r\n");
        EXPECT_EQ(c.read_response().status, 200);
    }
    {
        raw_client c(up.port());
        ASSERT_FALSE(c.start_tls({.sni = "api.example.test"}));
    }
    ASSERT_TRUE(up.wait_for_requests(1, 5s));
    EXPECT_EQ(up.requests()[0].sni, "other.example.test");
}

TEST(ScriptedUpstreamTls, RequireSniAbortsHandshakeWithoutSni) {
    scripted_upstream up({.tls = true, .require_sni = true});
    {
        raw_client c(up.port());
        EXPECT_TRUE(c.start_tls({.sni = "", .verify_host = "api.example.test"}));
    }
    ASSERT_TRUE(up.wait_until([&] { return up.handshake_failures() == 1; }, 5s));
    EXPECT_EQ(up.connections().at(0).end, connection_end::handshake_failed);
    raw_client c(up.port());
    EXPECT_FALSE(c.start_tls({.sni = "api.example.test"}));
}

TEST(ScriptedUpstreamTls, MutualTlsRequiresTrustedClientCertificate) {
    scripted_upstream up({.tls = true, .require_client_cert = true});
    {
        raw_client c(up.port());
        ASSERT_FALSE(c.start_tls({.client_cert = test_ca::instance().client_leaf()}));
        c.send(get_v1);
        EXPECT_EQ(c.read_response().status, 200);
    }
    ASSERT_EQ(up.requests().size(), 1u);
    EXPECT_EQ(up.requests()[0].client_cert_subject, "client.example.test");

    for (auto cert : {std::optional<leaf_cert>{},
                      std::optional<leaf_cert>{test_ca::instance().untrusted_client_leaf()}}) {
        raw_client c(up.port());
        // TLS 1.3 clients finish their handshake before the server checks the certificate: the
        // rejection then shows on the first read.
        if (!c.start_tls({.client_cert = cert})) {
            c.try_send(get_v1);
            EXPECT_FALSE(c.try_read_response().response);
        }
    }
    EXPECT_TRUE(up.wait_until([&] { return up.handshake_failures() == 2; }, 5s));
    EXPECT_EQ(up.request_count(), 1u);
}

TEST(ScriptedUpstreamTls, CloseSendsCloseNotifyAndTruncationDoesNot) {
    scripted_upstream up({.tls = true}, [](const received_request& r) {
        action a = ok();
        if (r.target == "/close")
            a.close = true;
        else
            a.close_without_notify = true;
        return a;
    });
    {
        raw_client c(up.port());
        ASSERT_FALSE(c.start_tls());
        c.send("GET /close HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
        EXPECT_EQ(c.read_response().body, "ok");
        EXPECT_EQ(c.read_until_close().how, net::error::eof);
    }
    {
        raw_client c(up.port());
        ASSERT_FALSE(c.start_tls());
        c.send("GET /truncate HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
        EXPECT_EQ(c.read_response().body, "ok");
        EXPECT_EQ(c.read_until_close().how, net::ssl::error::stream_truncated);
    }
    ASSERT_TRUE(up.wait_for_closed_connections(2, 5s));
    EXPECT_EQ(up.connections()[0].end, connection_end::closed_by_script);
}

TEST(ScriptedUpstreamTls, TlsVersionCanBeCapped) {
    scripted_upstream up({.tls = true, .max_tls_version = TLS1_2_VERSION});
    raw_client c(up.port());
    ASSERT_FALSE(c.start_tls());
    EXPECT_EQ(c.tls_version(), "TLSv1.2");
    c.send(get_v1);
    EXPECT_EQ(c.read_response().status, 200);
    EXPECT_EQ(up.connections().at(0).tls_version, "TLSv1.2");
}

// --- HTTP behaviour ---------------------------------------------------------------------------

TEST(ScriptedUpstream, KeepAliveRequestsShareAConnection) {
    scripted_upstream up({}, [](const received_request& r) { return respond(200, r.target); });
    raw_client c(up.port());
    c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read_response().body, "/a");
    c.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read_response().body, "/b");

    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].connection_id, reqs[1].connection_id);
    EXPECT_EQ(reqs[0].index_on_connection, 0u);
    EXPECT_EQ(reqs[1].index_on_connection, 1u);
    EXPECT_EQ(up.connections_accepted(), 1u);
}

TEST(ScriptedUpstream, PipelinedRequestsAreRecordedSeparately) {
    scripted_upstream up({}, [](const received_request& r) { return respond(200, r.target); });
    const std::string first = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_client c(up.port());
    c.send(first + second);
    EXPECT_EQ(c.read_response().body, "/a");
    EXPECT_EQ(c.read_response().body, "/b");
    auto reqs = up.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].raw, first);
    EXPECT_EQ(reqs[0].body, "abc");
    EXPECT_EQ(reqs[1].raw, second);
}

TEST(ScriptedUpstream, ChunkedRequestBodyIsRecordedDechunked) {
    scripted_upstream up;
    const std::string wire =
        "PUT /obj/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    raw_client c(up.port());
    c.send(wire);
    EXPECT_EQ(c.read_response().status, 200);
    auto req = up.requests().at(0);
    EXPECT_EQ(req.body, "hello world");
    EXPECT_EQ(req.raw, wire);
    EXPECT_EQ(req.header("transfer-encoding"), "chunked");
}

TEST(ScriptedUpstream, ResetActionResetsTheClientConnection) {
    scripted_upstream up({}, [](const received_request&) { return reset_connection(); });
    raw_client c(up.port());
    c.send(get_v1);
    auto r = c.try_read_response();
    EXPECT_FALSE(r.response);
    EXPECT_EQ(r.error, net::error::connection_reset) << r.error.message();
    ASSERT_TRUE(up.wait_for_closed_connections(1, 5s));
    EXPECT_EQ(up.connections()[0].end, connection_end::reset_by_script);
}

TEST(ScriptedUpstream, CloseAfterIdleClosesAnIdleConnection) {
    scripted_upstream up({}, [](const received_request&) {
        action a = respond(200, "ok", {{"Keep-Alive", "timeout=1"}});
        a.close_after_idle = 300ms;
        return a;
    });
    raw_client c(up.port());
    c.send(get_v1);
    EXPECT_EQ(c.read_response().header("Keep-Alive"), "timeout=1");
    const auto start = std::chrono::steady_clock::now();
    auto closed = c.read_until_close(5s);
    EXPECT_EQ(closed.how, net::error::eof);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
    ASSERT_TRUE(up.wait_for_closed_connections(1, 5s));
    EXPECT_EQ(up.connections()[0].end, connection_end::idle_timeout);
}

TEST(ScriptedUpstream, RequestBeforeIdleDeadlineKeepsConnection) {
    scripted_upstream up({.idle_timeout = 2000ms});
    raw_client c(up.port());
    c.send(get_v1);
    EXPECT_EQ(c.read_response().status, 200);
    c.send(get_v1);
    EXPECT_EQ(c.read_response().status, 200);
    EXPECT_EQ(up.connections_accepted(), 1u);
    EXPECT_EQ(up.active_connections(), 1u);
}

TEST(ScriptedUpstream, HeadScriptSendsContinueBeforeBody) {
    scripted_upstream up({.on_head = continue_if_expected},
                         [](const received_request& r) { return respond(201, r.body); });
    raw_client c(up.port());
    c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    auto interim = c.read_response();
    EXPECT_EQ(interim.status, 100);
    EXPECT_EQ(interim.raw, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send("data");
    auto final_response = c.read_response();
    EXPECT_EQ(final_response.status, 201);
    EXPECT_EQ(final_response.body, "data");
    EXPECT_TRUE(up.requests().at(0).body_complete);
}

TEST(ScriptedUpstream, HeadScriptCanAnswerWithoutReadingTheBody) {
    scripted_upstream up({.on_head = [](const received_request&) {
        action a = respond(413, "too big", {{"Connection", "close"}});
        a.close = true;
        return head_action{.final_action = a};
    }});
    raw_client c(up.port());
    c.send(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nExpect: "
        "100-continue\r\n\r\n");
    EXPECT_EQ(c.read_response().status, 413);
    EXPECT_TRUE(c.closed_by_peer());
    auto req = up.requests().at(0);
    EXPECT_FALSE(req.body_complete);
    EXPECT_TRUE(req.body.empty());
}

TEST(ScriptedUpstream, HangNeverAnswersAndClientTimesOut) {
    scripted_upstream up({}, [](const received_request&) { return hang(); });
    raw_client c(up.port());
    c.send(get_v1);
    const auto start = std::chrono::steady_clock::now();
    auto r = c.try_read_response(200ms);
    EXPECT_EQ(r.error, net::error::timed_out);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_EQ(up.request_count(), 1u);
    c.close();
    ASSERT_TRUE(up.wait_for_closed_connections(1, 5s));
    EXPECT_EQ(up.connections()[0].end, connection_end::peer_closed);
}

TEST(ScriptedUpstream, TimedWritesArriveInPiecesAfterTheirDelays) {
    scripted_upstream up({}, [](const received_request&) {
        return action{
            .delay = 50ms,
            .writes = {{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 0ms}, {"cd", 100ms}}};
    });
    raw_client c(up.port());
    const auto start = std::chrono::steady_clock::now();
    c.send(get_v1);
    EXPECT_EQ(c.read_response().body, "abcd");
    EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
}

TEST(ScriptedUpstream, WriteInPiecesThenCloseGivesCloseDelimitedBody) {
    const std::string body(50 * 1024, 'x');
    scripted_upstream up({}, [&](const received_request&) {
        return write_in_pieces("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body,
                               10 * 1024, 5ms)
            .then_close();
    });
    raw_client c(up.port());
    c.send(get_v1);
    auto r = c.read_response();
    EXPECT_TRUE(r.close_delimited);
    EXPECT_EQ(r.body, body);
}

TEST(ScriptedUpstream, ChainableModifiersSetTheFlags) {
    action a = respond(200, "ok").delayed(5ms).then_close().with_idle_close(1s);
    EXPECT_EQ(a.delay, 5ms);
    EXPECT_TRUE(a.close);
    EXPECT_EQ(a.close_after_idle, 1s);
    EXPECT_TRUE(respond(200).then_reset().reset);
    EXPECT_TRUE(respond(200).then_hang().no_response);
    EXPECT_TRUE(respond(200).then_close_without_notify().close_without_notify);
    EXPECT_EQ(respond(204).writes.at(0).bytes, "HTTP/1.1 204 No Content\r\n\r\n");
    EXPECT_EQ(respond(404, "no").writes.at(0).bytes,
              "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
}

TEST(ScriptedUpstream, MalformedResponsesAreWrittenVerbatim) {
    const std::string bad = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello";
    scripted_upstream up({}, [&](const received_request&) { return write_raw(bad); });
    raw_client c(up.port());
    c.send(get_v1);
    std::string got;
    while (got.size() < bad.size()) {
        auto part = c.read_some(2s);
        ASSERT_FALSE(part.empty());
        got += part;
    }
    EXPECT_EQ(got, bad);
}

TEST(ScriptedUpstream, ConnectionCloseRequestIsHonoured) {
    scripted_upstream up;
    raw_client c(up.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(c.read_response().status, 200);
    EXPECT_EQ(c.read_until_close().how, net::error::eof);
    ASSERT_TRUE(up.wait_for_closed_connections(1, 5s));
    EXPECT_EQ(up.connections()[0].end, connection_end::closed_by_script);
}

TEST(ScriptedUpstream, UnparseableRequestGets400) {
    scripted_upstream up;
    raw_client c(up.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n");
    EXPECT_EQ(c.read_response().status, 400);
    EXPECT_TRUE(c.closed_by_peer());
    ASSERT_TRUE(up.wait_for_closed_connections(1, 5s));
    EXPECT_EQ(up.connections()[0].end, connection_end::bad_request);
    EXPECT_EQ(up.request_count(), 0u);
}

TEST(ScriptedUpstream, CountsConcurrentConnections) {
    scripted_upstream up;
    raw_client a(up.port());
    raw_client b(up.port());
    ASSERT_TRUE(up.wait_for_connections(2, 5s));
    a.send(get_v1);
    b.send(get_v1);
    EXPECT_EQ(a.read_response().status, 200);
    EXPECT_EQ(b.read_response().status, 200);
    EXPECT_EQ(up.max_concurrent_connections(), 2u);
    a.close();
    ASSERT_TRUE(up.wait_for_closed_connections(1, 5s));
    EXPECT_EQ(up.active_connections(), 1u);
}

TEST(ScriptedUpstream, SetScriptAppliesToLaterRequests) {
    scripted_upstream up;
    raw_client c(up.port());
    c.send(get_v1);
    EXPECT_EQ(c.read_response().status, 200);
    up.set_script([](const received_request&) { return respond(503, "", {{"Retry-After", "3"}}); });
    c.send(get_v1);
    auto r = c.read_response();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.header("Retry-After"), "3");
}

TEST(ScriptedUpstream, StopClosesConnectionsAndThePort) {
    scripted_upstream up({.tls = true}, [](const received_request&) { return hang(); });
    const auto port = up.port();
    raw_client c(port);
    ASSERT_FALSE(c.start_tls());
    c.send(get_v1);
    ASSERT_TRUE(up.wait_for_requests(1, 5s));
    up.stop();
    EXPECT_TRUE(c.closed_by_peer(5s));
    EXPECT_EQ(up.connections().at(0).end, connection_end::stopped);
    EXPECT_THROW(raw_client{port}, std::system_error);
}

}  // namespace
}  // namespace sluice::test
