// Request-target parsing: forms, normalisation, and the authority tricks of shared case 14.
#include "http/request_target.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

request_target ok(std::string_view method, std::string_view target, std::string_view host = "") {
    auto r = parse_request_target(method, target, host);
    if (auto* e = std::get_if<target_error>(&r)) {
        ADD_FAILURE() << target << ": " << e->reason;
        return {};
    }
    return std::get<request_target>(r);
}

std::string rejected(std::string_view method, std::string_view target, std::string_view host = "") {
    auto r = parse_request_target(method, target, host);
    if (auto* e = std::get_if<target_error>(&r))
        return e->reason;
    ADD_FAILURE() << target << " was accepted";
    return {};
}

TEST(RequestTarget, AbsoluteFormWinsOverHost) {
    auto t = ok("GET", "http://api.example.test/v1?x=1", "other.example.test");
    EXPECT_EQ(t.kind, request_target::form::absolute);
    EXPECT_EQ(t.scheme, "http");
    EXPECT_EQ(t.host, "api.example.test");
    EXPECT_EQ(t.port, 80);
    EXPECT_EQ(t.path_and_query, "/v1?x=1");
    EXPECT_EQ(t.path(), "/v1");
    EXPECT_EQ(t.authority(), "api.example.test");
}

// A Host spelled as the target's authority is the common case and is accepted as it is; any
// other Host must still be an authority of its own (RFC 9112 §3.2).
TEST(RequestTarget, AbsoluteFormHostIsStillChecked) {
    EXPECT_EQ(ok("GET", "http://api.example.test:8080/v1", "api.example.test:8080").host,
              "api.example.test");
    EXPECT_EQ(rejected("GET", "http://api.example.test/v1", "a b"), "invalid Host header");
    EXPECT_EQ(rejected("GET", "http://api.example.test/v1", "u@api.example.test"),
              "invalid Host header");
    EXPECT_EQ(rejected("GET", "http://u@api.example.test/v1", "u@api.example.test"),
              "userinfo in request target");
}

TEST(RequestTarget, CaseAndDefaultPortNormalised) {
    auto t = ok("GET", "http://API.EXAMPLE.TEST:80/v1");
    EXPECT_EQ(t.host, "api.example.test");
    EXPECT_EQ(t.port, 80);
    EXPECT_EQ(t.authority(), "api.example.test");
    auto s = ok("GET", "https://Api.Example.Test:443");
    EXPECT_EQ(s.scheme, "https");
    EXPECT_EQ(s.port, 443);
    EXPECT_EQ(s.path_and_query, "/");
    auto p = ok("GET", "http://api.example.test:8080/x");
    EXPECT_EQ(p.port, 8080);
    EXPECT_EQ(p.authority(), "api.example.test:8080");
}

TEST(RequestTarget, OriginFormTakesHost) {
    auto t = ok("GET", "/v1", "api.example.test");
    EXPECT_EQ(t.kind, request_target::form::origin);
    EXPECT_EQ(t.host, "api.example.test");
    EXPECT_EQ(t.port, 80);
    EXPECT_EQ(t.path_and_query, "/v1");
    auto p = ok("GET", "/v1", "API.example.test:8443");
    EXPECT_EQ(p.host, "api.example.test");
    EXPECT_EQ(p.port, 8443);
    EXPECT_EQ(rejected("GET", "/v1", ""), "missing Host header");
    EXPECT_EQ(rejected("GET", "/v1", "a b"), "invalid Host header");
}

TEST(RequestTarget, Ipv6Literals) {
    auto t = ok("GET", "http://[2001:DB8::1]:8080/x");
    EXPECT_EQ(t.host, "2001:db8::1");
    EXPECT_EQ(t.port, 8080);
    EXPECT_EQ(t.authority(), "[2001:db8::1]:8080");
    EXPECT_EQ(ok("GET", "http://[2001:DB8:0:0::1]/").host, "2001:db8::1");
    auto h = ok("GET", "/x", "[::1]");
    EXPECT_EQ(h.host, "::1");
    auto c = ok("CONNECT", "[::1]:443");
    EXPECT_EQ(c.host, "::1");
    EXPECT_EQ(c.port, 443);
}

TEST(RequestTarget, UserinfoAndFragmentRejected) {
    EXPECT_EQ(rejected("GET", "http://u:p@api.example.test/"), "userinfo in request target");
    rejected("GET", "http://a@api.example.test:b@evil.example.test/");
    EXPECT_EQ(rejected("GET", "http://api.example.test#@evil.example.test/"),
              "fragment in request target");
    EXPECT_EQ(rejected("GET", "/x#frag", "api.example.test"), "fragment in request target");
    rejected("GET", "/x", "user@api.example.test");
    rejected("CONNECT", "user@api.example.test:443");
}

// Boost.URL stops an IPv4 host at its last octet; what follows must not become a path.
TEST(RequestTarget, TextAfterAnIpv4HostIsNotAPath) {
    EXPECT_EQ(rejected("GET", "http://127.0.0.1.:8080/"), "invalid authority in request target");
    rejected("GET", "http://127.0.0.1./");
    rejected("GET", "http://1.2.3.4x/");
    rejected("GET", "http://10.0.0.1.nip.io:8080/x");
}

TEST(RequestTarget, BadSchemesPortsAndHosts) {
    EXPECT_EQ(rejected("GET", "ftp://api.example.test/"), "unsupported scheme");
    rejected("GET", "http://api.example.test:0/");
    rejected("GET", "http://api.example.test:65536/");
    rejected("GET", "http://api.example.test:/");
    rejected("GET", "http:///x");
    rejected("GET", "http://api%2eexample.test/");
    rejected("GET", "http://[v1.x]/");
    rejected("GET", "not a url");
}

TEST(RequestTarget, ConnectNeedsHostAndPort) {
    auto t = ok("CONNECT", "API.example.test:8443");
    EXPECT_EQ(t.kind, request_target::form::authority);
    EXPECT_EQ(t.host, "api.example.test");
    EXPECT_EQ(t.port, 8443);
    EXPECT_EQ(rejected("CONNECT", "api.example.test"), "CONNECT needs host:port");
    rejected("CONNECT", "/path");
    rejected("CONNECT", "http://api.example.test:443/");
}

TEST(RequestTarget, AsteriskOnlyForOptions) {
    auto t = ok("OPTIONS", "*", "api.example.test");
    EXPECT_EQ(t.kind, request_target::form::asterisk);
    EXPECT_EQ(t.path_and_query, "*");
    rejected("GET", "*", "api.example.test");
}

// A target parsed whole, with nothing remembered from earlier ones.
std::variant<request_target, target_error> parsed_whole(std::string_view target,
                                                        std::string_view host) {
    forget_remembered_authorities();
    return parse_request_target("GET", target, host);
}

std::string describe(const std::variant<request_target, target_error>& r) {
    if (const auto* e = std::get_if<target_error>(&r))
        return "error: " + e->reason;
    const auto& t = std::get<request_target>(r);
    return t.scheme + " " + t.host + " " + std::to_string(t.port) + " " + t.path_and_query +
           " kind " + std::to_string(static_cast<int>(t.kind));
}

// Remembered prefixes give what the whole parse gives, for every kind of rest that follows a
// remembered "scheme://authority": paths good and bad, queries, nothing, and the bytes that
// make it another authority (a port, a longer name, Boost.URL's IPv4 stop, userinfo).
TEST(RequestTarget, RememberedAuthoritiesParseAsTheWholeTarget) {
    const std::vector<std::string> prefixes = {
        "http://api.example.test",   "HTTPS://API.example.test:8443", "http://127.0.0.1",
        "http://[2001:db8::1]:8080", "http://api.example.test.",
    };
    const std::vector<std::string> rests = {
        "",
        "/",
        "//",
        "/v1/items?x=1&y=%2F",
        "/a b",
        "/%zz",
        "/%41",
        "/ok?",
        "?q=1",
        ":80/",
        ":0/",
        ":/",
        "x/",
        ".5/",
        "@evil.test/",
        "#frag",
        "/p#frag",
        "/\\x",
        "/\x7f",
        "/?#",
        "/\"quoted\"",
        "/~user/[x]",
        "/a:b@c!$&'()*+,;=-._~?/?:@",
        "/{x}",
        "/x^y|z",
        "/`",
        "/\x80",
        std::string("/nul\0byte", 9),
    };
    const std::vector<std::string> hosts = {"", "api.example.test", "other.test:81", "bad host"};
    for (const auto& prefix : prefixes) {
        for (const auto& host : hosts) {
            for (const auto& rest : rests) {
                const std::string target = prefix + rest;
                const auto whole = describe(parsed_whole(target, host));
                // Remember the prefix (a plain target that parses), then parse again.
                forget_remembered_authorities();
                ok("GET", prefix + "/", "");
                EXPECT_EQ(describe(parse_request_target("GET", target, host)), whole)
                    << target << " with Host " << host;
            }
        }
    }
}

// The memory holds the last four prefixes; a fifth replaces the oldest, and every target still
// parses as it would whole.
TEST(RequestTarget, RememberedAuthoritiesAreReplacedInTurn) {
    forget_remembered_authorities();
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 6; ++i) {
            const std::string target =
                "http://host" + std::to_string(i) + ".test:" + std::to_string(8000 + i) + "/r";
            auto t = ok("GET", target);
            EXPECT_EQ(t.host, "host" + std::to_string(i) + ".test");
            EXPECT_EQ(t.port, 8000 + i);
            EXPECT_EQ(t.path_and_query, "/r");
        }
    }
}

}  // namespace
}  // namespace sluice::http
