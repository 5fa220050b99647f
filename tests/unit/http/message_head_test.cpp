// Message heads serialized by hand are byte for byte what Beast's own serializer writes.
#include "http/message_head.hpp"

#include <sstream>

#include <vector>

#include <gtest/gtest.h>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>
#include "http/header_rules.hpp"

namespace sluice::http {
namespace {

template <bool isRequest>
std::string beast_head(const bhttp::header<isRequest>& h) {
    std::ostringstream os;
    os << h;
    return os.str();
}

template <bool isRequest>
std::string our_head(const bhttp::header<isRequest>& h) {
    std::string out = "prefix|";  // appends, keeping what is there
    append_head(out, h);
    EXPECT_EQ(out.substr(0, 7), "prefix|");
    return out.substr(7);
}

TEST(MessageHead, RequestMatchesBeast) {
    bhttp::request<bhttp::empty_body> r{bhttp::verb::get, "/v1/items?page=2", 11};
    r.set(bhttp::field::host, "api.example.com");
    r.set(bhttp::field::user_agent, "curl/7.88.1");
    r.insert("X-Trace", "a, b");
    r.insert("x-trace", "c");  // repeated fields keep their order and spelling
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()),
              "GET /v1/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\n"
              "User-Agent: curl/7.88.1\r\nX-Trace: a, b\r\nx-trace: c\r\n\r\n");
}

TEST(MessageHead, UnknownMethodAndHttp10) {
    bhttp::request<bhttp::empty_body> r;
    r.method_string("PURGE");
    r.target("/");
    r.version(10);
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()), "PURGE / HTTP/1.0\r\n\r\n");
}

TEST(MessageHead, ResponseMatchesBeast) {
    bhttp::response<bhttp::empty_body> r{bhttp::status::ok, 11};
    r.set(bhttp::field::server, "nginx");
    r.set(bhttp::field::content_length, "2");
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()), "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\n");

    r.reason("Fine");  // a reason phrase as the upstream sent it is kept
    r.result(299);
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()).substr(0, 19), "HTTP/1.1 299 Fine\r\n");

    bhttp::response<bhttp::empty_body> teapot;
    teapot.result(418);
    teapot.version(10);
    EXPECT_EQ(our_head(teapot.base()), beast_head(teapot.base()));
}

// ---- the relayed heads, written in one pass -------------------------------------------------

const std::vector<std::pair<std::string, std::string>> no_headers;

TEST(UpstreamRequestHead, DropsHopByHopAndManagedFieldsThenAddsOursInOrder) {
    bhttp::request<bhttp::empty_body> r{bhttp::verb::post, "http://api.test/v1?x=1", 11};
    r.insert("Host", "api.test");
    r.insert("Connection", "keep-alive, X-Secret");
    r.insert("X-Secret", "hop");                   // named by Connection: hop-by-hop
    r.insert("Proxy-Authorization", "Basic abc");  // ours, never forwarded
    r.insert("Accept", "*/*");
    r.insert("Via", "1.0 edge");
    r.insert("Expect", "100-continue");  // answered by sluice
    r.insert("Content-Length", "5");
    r.insert("authorization", "Bearer client");  // replaced by set_headers
    r.insert("TE", "trailers");
    r.insert("Via", "1.1 other");
    const std::vector<std::pair<std::string, std::string>> set{{"Authorization", "Bearer ours"}};
    upstream_request_edits e;
    e.target = "/v1?x=1";
    e.host = "origin.test:8443";
    e.client_version = 10;
    e.via_pseudonym = "sluice-1";
    e.set_headers = &set;
    std::string out = "kept|";
    append_upstream_request_head(out, r.base(), e);
    append_upstream_request_framing(out, 5, false);
    EXPECT_EQ(out,
              "kept|POST /v1?x=1 HTTP/1.1\r\nAccept: */*\r\nHost: origin.test:8443\r\n"
              "Via: 1.0 edge, 1.1 other, 1.0 sluice-1\r\nAuthorization: Bearer ours\r\n"
              "Content-Length: 5\r\n\r\n");
}

TEST(UpstreamRequestHead, WithoutViaTheClientsViaPassesAndChunkedFramesTheBody) {
    bhttp::request<bhttp::empty_body> r;
    r.method_string("PURGE");  // an unknown method keeps its spelling
    r.version(11);
    r.insert("Via", "1.1 edge");
    r.insert("Transfer-Encoding", "chunked");
    upstream_request_edits e;
    e.target = "/";
    e.host = "h";
    e.set_headers = &no_headers;
    std::string out;
    append_upstream_request_head(out, r.base(), e);
    append_upstream_request_framing(out, std::nullopt, true);
    EXPECT_EQ(out,
              "PURGE / HTTP/1.1\r\nVia: 1.1 edge\r\nHost: h\r\n"
              "Transfer-Encoding: chunked\r\n\r\n");
}

// A Via named by Connection is dropped before ours is added; an empty Via line (or one of
// stray commas) adds no empty entry (RFC 9110 §5.6.1).
TEST(UpstreamRequestHead, OnlyOurViaWhenTheClientsIsNamedByConnectionOrEmpty) {
    const std::vector<std::vector<std::pair<std::string, std::string>>> inputs{
        {{"Connection", "via"}, {"Via", "1.1 spoofed"}}, {{"Via", ""}}, {{"Via", " , ,"}}};
    for (const auto& fields : inputs) {
        bhttp::request<bhttp::empty_body> r{bhttp::verb::get, "/", 11};
        for (const auto& [name, value] : fields)
            r.insert(name, value);
        upstream_request_edits e;
        e.target = "/";
        e.host = "h";
        e.via_pseudonym = "sluice-1";
        std::string out;
        append_upstream_request_head(out, r.base(), e);
        append_upstream_request_framing(out, std::nullopt, false);
        EXPECT_EQ(out, "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 sluice-1\r\n\r\n")
            << fields.back().second;
    }
}

TEST(UpstreamRequestHead, AFieldNamedByConnectionIsNotSentAndDoesNotCountAsSent) {
    bhttp::request<bhttp::empty_body> r{bhttp::verb::post, "/", 11};
    r.insert("Connection", "Idempotency-Key");
    r.insert("Idempotency-Key", "k1");
    r.insert("X-Api-Key", "client");
    r.insert("Via", "1.1 edge");
    const std::vector<std::pair<std::string, std::string>> set{{"x-api-key", "ours"}};
    upstream_request_edits e;
    e.target = "/";
    e.host = "h";
    e.set_headers = &set;
    EXPECT_FALSE(sends_upstream(r.base(), "idempotency-key", e));  // hop-by-hop here
    EXPECT_TRUE(sends_upstream(r.base(), "X-API-KEY", e));         // set_headers sends it
    EXPECT_FALSE(sends_upstream(r.base(), "Host", e));             // sluice writes its own
    EXPECT_FALSE(sends_upstream(r.base(), "Accept", e));           // not there at all
    EXPECT_TRUE(sends_upstream(r.base(), "Via", e));               // passed on without ours
    e.via_pseudonym = "sluice-1";
    EXPECT_FALSE(sends_upstream(r.base(), "Via", e));  // joined into our own line instead
    r.erase(bhttp::field::connection);
    EXPECT_TRUE(sends_upstream(r.base(), "Idempotency-Key", e));
}

// The upstream head of a bodiless request for "/" to host "h", with no other edits.
std::string bare_upstream_head(const bhttp::request<bhttp::empty_body>& r) {
    upstream_request_edits e;
    e.target = "/";
    e.host = "h";
    std::string out;
    append_upstream_request_head(out, r.base(), e);
    append_upstream_request_framing(out, std::nullopt, false);
    return out;
}

// A few Connection tokens are compared with each field's name, more are looked up in Beast's
// index (message_head.cpp, connection_options): both ways remove the same fields, whatever the
// case of the token and wherever the named field stands.
TEST(UpstreamRequestHead, ConnectionNamesFieldsTheSameWithFewOrManyTokens) {
    for (int extra : {0, 6, 7, 8, 20}) {
        SCOPED_TRACE("tokens: " + std::to_string(2 + extra));
        bhttp::request<bhttp::empty_body> r{bhttp::verb::get, "/", 11};
        r.insert("x-early", "named before the Connection line");
        std::string tokens = "keep-alive, X-EARLY";
        for (int i = 0; i < extra; ++i)
            tokens += ", x-absent-" + std::to_string(i);
        r.insert("Connection", tokens + ", x-Late");
        r.insert("X-Late", "1");
        r.insert("X-Late", "2");
        r.insert("X-Lately", "not named");
        EXPECT_EQ(bare_upstream_head(r),
                  "GET / HTTP/1.1\r\nX-Lately: not named\r\nHost: h\r\n\r\n");
    }
}

TEST(UpstreamRequestHead, ALongConnectionListCostsLookupsNotTokensTimesFields) {
    // 20 000 Connection tokens (all naming one field, and 100 naming others) against 20 000
    // fields: the fields they name go, the rest stay. Matching every token against every
    // field would be 4e8 comparisons; this runs in milliseconds.
    bhttp::request<bhttp::empty_body> r{bhttp::verb::get, "/", 11};
    std::string tokens;
    for (int i = 0; i < 20000; ++i)
        tokens += i % 200 == 0 ? "x-gone-" + std::to_string(i / 200) + "," : "A,";
    r.insert("Connection", tokens);
    for (int i = 0; i < 19900; ++i)
        r.insert("a", "1");
    for (int i = 0; i < 100; ++i) {
        r.insert("X-Gone-" + std::to_string(i), "g");
        r.insert("X-Kept-" + std::to_string(i), "k");
    }
    const std::string out = bare_upstream_head(r);
    EXPECT_EQ(out.find("\r\na: "), std::string::npos);
    EXPECT_EQ(out.find("X-Gone-"), std::string::npos);
    EXPECT_NE(out.find("X-Kept-99: k\r\n"), std::string::npos);
    EXPECT_EQ(out.rfind("Host: h\r\n\r\n"), out.size() - 11);
}

// The response as relay_response used to build it with Beast's field operations: the model the
// one-pass writer must match.
std::string beast_relayed(bhttp::response_header<> h, const client_response_edits& e) {
    using length_field = client_response_edits::length_field;
    strip_hop_by_hop(h);
    if (!e.via_pseudonym.empty())
        append_via(h, e.upstream_version, e.via_pseudonym);
    if (e.length == length_field::remove)
        h.erase(bhttp::field::content_length);
    if (e.length == length_field::set)
        h.set(bhttp::field::content_length, std::to_string(e.content_length));
    if (e.chunked)
        h.insert(bhttp::field::transfer_encoding, "chunked");
    h.version(11);
    if (!e.connection.empty())
        h.set(bhttp::field::connection, e.connection);
    std::string out;
    append_head(out, h);
    return out;
}

TEST(ClientResponseHead, MatchesBeastsFieldOperationsForEveryFraming) {
    using length_field = client_response_edits::length_field;
    bhttp::response<bhttp::empty_body> r{bhttp::status::ok, 10};
    r.reason("Fine");
    r.insert("Server", "up");
    r.insert("Content-Length", "12");
    r.insert("Connection", "close, X-Hop");
    r.insert("X-Hop", "1");
    r.insert("Keep-Alive", "timeout=5");
    r.insert("Via", "1.1 cdn");
    r.insert("Set-Cookie", "a=1");
    r.insert("Transfer-Encoding", "chunked");
    for (auto length : {length_field::keep, length_field::remove, length_field::set}) {
        for (bool chunked : {false, true}) {
            for (std::string_view connection : {"", "close", "keep-alive"}) {
                for (std::string_view via : {"", "sluice-1"}) {
                    client_response_edits e;
                    e.upstream_version = 10;
                    e.via_pseudonym = via;
                    e.length = length;
                    e.content_length = 12;
                    e.chunked = chunked;
                    e.connection = connection;
                    std::string out;
                    append_client_response_head(out, r.base(), e);
                    EXPECT_EQ(out, beast_relayed(r.base(), e));
                }
            }
        }
    }
    client_response_edits e;
    e.upstream_version = 10;
    e.via_pseudonym = "sluice-1";
    e.length = length_field::set;
    e.content_length = 12;
    e.connection = "keep-alive";
    std::string out;
    append_client_response_head(out, r.base(), e);
    EXPECT_EQ(out,
              "HTTP/1.1 200 Fine\r\nServer: up\r\nSet-Cookie: a=1\r\n"
              "Via: 1.1 cdn, 1.0 sluice-1\r\nContent-Length: 12\r\nConnection: keep-alive\r\n"
              "\r\n");
}

}  // namespace
}  // namespace sluice::http
