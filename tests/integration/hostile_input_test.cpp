// Hostile input (issue 6; cases 8, 14 and 26): one row per malformed or malicious request, each
// with the exact status sluice must answer itself, whether the connection must close because the
// framing is lost, and the check that nothing of it reached the scripted upstream.
#include <cstdio>
#include <ostream>

#include "integration/policy_harness.hpp"

namespace sluice::test {
namespace {

using namespace std::string_literals;

struct hostile_case {
    std::string name;
    /// Raw bytes the client sends; "{listen}" and "{admin}" stand for sluice's own ports;
    /// "{pause}" splits them into writes a moment apart, which sluice reads one by one.
    std::string request;
    int status = 400;
    std::string error = "http_request_error";  ///< the Proxy-Status error type
    bool framing_lost = true;                  ///< the connection must close after the answer
    /// allow_cidrs admits 127.0.0.0/8 and connect_ports holds sluice's own ports, so that only
    /// the own-port rule can refuse.
    bool own_ports = false;
};

// gtest would print a row as a byte dump (70 KiB for some); its name says enough.
void PrintTo(const hostile_case& c, std::ostream* os) {
    *os << c.name;
}

// ---- request builders ---------------------------------------------------------------------

const std::string api_post_line = "POST http://api.example.test/hostile HTTP/1.1\r\n";
const std::string api_host = "Host: api.example.test\r\n";

/// A POST to the configured upstream with `fields` (each ending in CRLF) and `body`.
std::string post(std::string_view fields, std::string_view body = {}) {
    return api_post_line + api_host + std::string(fields) + "\r\n" + std::string(body);
}

/// `request_line` (without CRLF), Host of the configured upstream, `fields`, no body.
std::string with_line(std::string_view request_line, std::string_view fields = {}) {
    return std::string(request_line) + "\r\n" + api_host + std::string(fields) + "\r\n";
}

/// A GET to the configured upstream with `fields`.
std::string api_get(std::string_view fields) {
    return get("http://api.example.test/hostile", "api.example.test", fields);
}

/// A chunked POST whose body is `chunked_body` verbatim.
std::string chunked_post(std::string_view chunked_body) {
    return post("Transfer-Encoding: chunked\r\n", chunked_body);
}

std::string connect_to(std::string_view authority) {
    return "CONNECT " + std::string(authority) + " HTTP/1.1\r\nHost: " + std::string(authority) +
           "\r\n\r\n";
}

// ---- row builders -------------------------------------------------------------------------

/// A request sluice cannot parse or frame: `status`, http_request_error, connection closed.
hostile_case malformed(std::string name, std::string request, int status = 400) {
    return {std::move(name), std::move(request), status};
}

/// A passthrough GET of `url` that resolves to an internal address: 403, the connection stays
/// usable (the request itself was well framed).
hostile_case internal_get(std::string name, std::string_view url, std::string_view host) {
    return {std::move(name), get(url, host), 403, "destination_ip_prohibited", false};
}

/// A passthrough CONNECT to an internal address: 403, and the connection closes (the client
/// may already be sending tunnel bytes).
hostile_case internal_connect(std::string name, std::string_view authority) {
    return {std::move(name), connect_to(authority), 403, "destination_ip_prohibited", true};
}

/// A request for sluice's own listener or admin port, in the config where nothing else refuses
/// it: 403; a CONNECT also closes.
hostile_case own_port(std::string name, std::string request) {
    const bool tunnel = request.starts_with("CONNECT ");
    return {std::move(name), std::move(request), 403, "destination_ip_prohibited", tunnel, true};
}

const std::string pause_marker = "{pause}";

/// `count` copies of `line`, with a pause after every `per_write` of them (0: none).
std::string repeated(std::string_view line, int count, int per_write = 0) {
    std::string out;
    for (int i = 1; i <= count; ++i) {
        out += line;
        if (per_write > 0 && i % per_write == 0)
            out += pause_marker;
    }
    return out;
}

// A smuggled second request: if any framing rule gives way, the upstream sees it.
const std::string smuggled = "GET /admin HTTP/1.1\r\nHost: api.example.test\r\n\r\n";

std::vector<hostile_case> framing_rows() {
    const std::string hello_chunked = "5\r\nhello\r\n0\r\n\r\n";
    return {
        // Case 8 (a): both framings; the body smuggles a request behind an empty chunked body.
        malformed(
            "ContentLengthAndTransferEncoding",
            post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n" + smuggled)),
        malformed(
            "TransferEncodingThenContentLength",
            post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n" + smuggled)),
        // Case 8 (b): conflicting lengths, as two lines and as one list.
        malformed("TwoConflictingContentLengths",
                  post("Content-Length: 5\r\nContent-Length: 40\r\n", "hello" + smuggled)),
        malformed("ConflictingContentLengthList", post("Content-Length: 5, 40\r\n", "hello")),
        malformed("ContentLengthWithPlusSign", post("Content-Length: +5\r\n", "hello")),
        malformed("ContentLengthNegative", post("Content-Length: -1\r\n", "hello")),
        malformed("ContentLengthHex", post("Content-Length: 0x5\r\n", "hello")),
        malformed("ContentLengthOverflow",
                  post("Content-Length: 99999999999999999999999\r\n", "hello")),
        malformed("ContentLengthWithInnerSpace", post("Content-Length: 1 0\r\n", "0123456789")),
        malformed("ContentLengthEmpty", post("Content-Length: \r\n", "hello")),
        // Case 8 (c): Transfer-Encoding variants.
        malformed("ChunkedNotTheFinalCoding",
                  post("Transfer-Encoding: chunked, gzip\r\n", hello_chunked)),
        // RFC 9112 §6.3: in a request, chunked must be the final coding.
        malformed("GzipAloneOnARequest", post("Transfer-Encoding: gzip\r\n", "hello")),
        malformed("XchunkedIsAnUnknownCoding", post("Transfer-Encoding: xchunked\r\n", "hello"),
                  501),
        malformed(
            "ChunkedOnTwoLines",
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", hello_chunked)),
        malformed("ChunkedTwiceInOneList",
                  post("Transfer-Encoding: chunked, chunked\r\n", hello_chunked)),
        malformed("IdentityIsAnUnknownCoding", post("Transfer-Encoding: identity\r\n", "hello"),
                  501),
        malformed("UnknownCodingBeforeChunked",
                  post("Transfer-Encoding: foo, chunked\r\n", hello_chunked), 501),
        malformed("GzipThenChunkedIsUnsupported",
                  post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", hello_chunked),
                  501),
        malformed("TransferEncodingInHttp10",
                  "POST http://api.example.test/hostile HTTP/1.0\r\nHost: api.example.test\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n" +
                      hello_chunked),
        malformed("SpaceBeforeColonInTransferEncoding",
                  post("Transfer-Encoding : chunked\r\n", hello_chunked)),
        malformed("SpaceBeforeColonInContentLength", post("Content-Length : 5\r\n", "hello")),
        malformed("VerticalTabBeforeChunked", post("Transfer-Encoding: \x0b"
                                                   "chunked\r\n",
                                                   hello_chunked)),
        // A name that CGI-style back ends map onto Transfer-Encoding; the body only makes sense
        // if it is honoured.
        malformed("UnderscoreTransferEncoding",
                  post("Transfer_Encoding: chunked\r\n", hello_chunked)),
        // Chunked bodies whose framing breaks after a sound head.
        malformed("ChunkSizeNotHex", chunked_post("zz\r\nhello\r\n0\r\n\r\n")),
        malformed("ChunkSizeNegative", chunked_post("-1\r\nhello\r\n0\r\n\r\n")),
        malformed("ChunkSizeOverflow", chunked_post("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
        malformed("ChunkDataWithoutCrlf", chunked_post("5\r\nhelloXX0\r\n\r\n")),
        malformed("ChunkSizeWithTrailingSpace", chunked_post("5 \r\nhello\r\n0\r\n\r\n")),
        malformed("TrailerWithContentLength",
                  chunked_post("5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n")),
        malformed("EmptyTransferEncoding", post("Transfer-Encoding: \r\n", "hello")),
        malformed("ChunkExtensionWithControlByte", chunked_post("5;\x01"
                                                                "ext\r\nhello\r\n0\r\n\r\n")),
    };
}

std::vector<hostile_case> syntax_rows() {
    return {
        // RFC 9112 §5.2: obs-fold in a request is refused (sluice answers 400, DESIGN §3.1).
        malformed("ObsFoldContinuationLine", api_get("X-Folded: a\r\n b\r\n")),
        malformed("ObsFoldHidesTransferEncoding",
                  post("Transfer-Encoding:\r\n chunked\r\n", "5\r\nhello\r\n0\r\n\r\n")),
        // The folded line is complete, and parsed, before the rest of the head arrives.
        malformed("ObsFoldInAnEarlierRead",
                  api_get("X-Folded: a\r\n b\r\nX-After: 1\r\n" + pause_marker)),
        malformed(
            "WhitespaceLineAfterRequestLine",
            "GET http://api.example.test/hostile HTTP/1.1\r\n X-Lead: 1\r\n" + api_host + "\r\n"),
        malformed("BareLfLineEndings",
                  "GET http://api.example.test/hostile HTTP/1.1\nHost: api.example.test\n\n"),
        malformed("BareLfEndsOneField", api_get("X-A: 1\nX-B: 2\r\n")),
        malformed("BareCrInsideValue", api_get("X-A: a\rb\r\n")),
        malformed("NulInValue", api_get("X-A: a\0b\r\n"s)),
        malformed("NulInName", api_get("X\0A: b\r\n"s)),
        malformed("SohInValue", api_get("X-A: a\x01"
                                        "b\r\n")),
        malformed("DelInValue", api_get("X-A: a\x7f"
                                        "b\r\n")),
        malformed("SpaceInsideName", api_get("X Y: v\r\n")),
        malformed("AtSignInName", api_get("X@Y: v\r\n")),
        malformed("EmptyName", api_get(": v\r\n")),
        malformed("FieldLineWithoutColon", api_get("NoColonHere\r\n")),
        malformed("TwoSpacesAfterMethod", with_line("GET  http://api.example.test/ HTTP/1.1")),
        malformed("SpaceAfterVersion", with_line("GET http://api.example.test/ HTTP/1.1 ")),
        malformed("NulInTarget", with_line("GET http://api.example.test/\0 HTTP/1.1"s)),
        malformed("SpaceInsideTarget", with_line("GET http://api.example.test/a b HTTP/1.1")),
        malformed("NonAsciiInTarget", with_line("GET http://api.example.test/\xc3\xa9 HTTP/1.1")),
        malformed("AsteriskFormWithGet", with_line("GET * HTTP/1.1")),
        malformed("TabAsSeparator", with_line("GET\thttp://api.example.test/ HTTP/1.1")),
        // A well-formed version sluice does not speak: 505 (RFC 9110 §15.6.6, as nginx does).
        malformed("Http20Version", with_line("GET http://api.example.test/ HTTP/2.0"), 505),
        malformed("VersionWithTrailingGarbage",
                  with_line("GET http://api.example.test/ HTTP/1.1x")),
        malformed("LowercaseVersion", with_line("GET http://api.example.test/ http/1.1")),
        malformed("VersionWithoutMinor", with_line("GET http://api.example.test/ HTTP/1")),
        // Case 26: limits (max_header_bytes 64 KiB, max_request_body 10 MiB).
        malformed(
            "OverlongRequestTarget",
            with_line("GET http://api.example.test/" + std::string(70 * 1024, 'a') + " HTTP/1.1"),
            414),
        malformed("OverlongHeaderValue", api_get("X-Big: " + std::string(70 * 1024, 'h') + "\r\n"),
                  431),
        malformed("TenThousandSmallHeaders", api_get(repeated("X-A: v\r\n", 10000)), 431),
        // The limit is on the whole head, however it arrives: 80 KiB of small lines, 256 (2 KiB)
        // a write, and 320 KiB of 8 KiB lines, one a write.
        malformed("TenThousandSmallHeadersDribbled", api_get(repeated("X-A: v\r\n", 10000, 256)),
                  431),
        malformed("FortyLargeHeadersDribbled",
                  api_get(repeated("X-Big: " + std::string(8 * 1024, 'h') + "\r\n", 40, 1)), 431),
        malformed("ContentLengthOverMaxRequestBody", post("Content-Length: 11534336\r\n"), 413),
        malformed("ChunkOverMaxRequestBody", chunked_post("a00001\r\nhello"), 413),
        // RFC 9110 §10.1.1: an expectation other than 100-continue may be refused with 417.
        {"UnknownExpectation", api_get("Expect: foo\r\n"), 417, "http_request_error", false},
    };
}

std::vector<hostile_case> authority_rows() {
    return {
        // Case 14.
        malformed("UserinfoHidingAnotherHost",
                  get("http://a@api.example.test:b@evil.example.test/")),
        malformed("FragmentInAuthority", get("http://api.example.test#@evil.example.test/")),
        malformed("UserAndPasswordInTarget", get("http://u:p@api.example.test/")),
        malformed("MissingHostOnHttp11OriginForm", "GET /hostile HTTP/1.1\r\n\r\n"),
        malformed("TwoHostHeadersOriginForm",
                  "GET /hostile HTTP/1.1\r\nHost: api.example.test\r\nHost: evil.example.test\r\n"
                  "\r\n"),
        malformed("TwoHostHeadersAbsoluteForm", api_get("Host: evil.example.test\r\n")),
        malformed("HostWithSpace", get("/hostile", "api.example.test evil")),
        malformed("HostWithPath", get("/hostile", "api.example.test/evil")),
        malformed("HostWithUserinfo", get("/hostile", "evil@api.example.test")),
        malformed("HostPercentEncoded", get("/hostile", "api%2eexample.test")),
        malformed("FtpScheme", get("ftp://api.example.test/hostile")),
        malformed("PercentEncodedHostInTarget", get("http://127.0.0.%31/", "127.0.0.1")),
        malformed("EmptyHostInTarget", get("http:///hostile")),
        malformed("PortOutOfRange", get("http://api.example.test:99999/")),
        malformed("PortZero", get("http://api.example.test:0/")),
        malformed("Ipv6LoopbackWithoutBrackets", get("http://::1/")),
        malformed("Ipv6LinkLocalWithoutBrackets", get("http://fe80::1/")),
        malformed("AuthorityFormWithGet", with_line("GET api.example.test:443 HTTP/1.1")),
        // https:// absolute-form is served (TLS origination), so it meets the address rules.
        internal_get("HttpsAbsoluteFormToLoopback", "https://127.0.0.1/", "127.0.0.1"),
    };
}

std::vector<hostile_case> ssrf_rows() {
    return {
        internal_get("Loopback", "http://127.0.0.1/", "127.0.0.1"),
        internal_get("LoopbackShortForm", "http://127.1/", "127.1"),
        internal_get("LoopbackDecimal", "http://2130706433/", "2130706433"),
        internal_get("LoopbackOctal", "http://0177.0.0.1/", "0177.0.0.1"),
        internal_get("LoopbackHexOctet", "http://0x7f.0.0.1/", "0x7f.0.0.1"),
        internal_get("LoopbackHexWhole", "http://0x7f000001/", "0x7f000001"),
        internal_get("Ipv6Loopback", "http://[::1]/", "[::1]"),
        internal_get("Ipv4MappedLoopback", "http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]"),
        internal_get("Ipv4MappedLoopbackHex", "http://[::ffff:7f00:1]/", "[::ffff:7f00:1]"),
        internal_get("Nat64Loopback", "http://[64:ff9b::7f00:1]/", "[64:ff9b::7f00:1]"),
        internal_get("Ipv4CompatibleLoopback", "http://[::127.0.0.1]/", "[::127.0.0.1]"),
        internal_get("Private10", "http://10.0.0.1/", "10.0.0.1"),
        internal_get("Private172", "http://172.16.0.1/", "172.16.0.1"),
        internal_get("Private192", "http://192.168.1.1/", "192.168.1.1"),
        internal_get("CloudMetadata", "http://169.254.169.254/latest/meta-data/",
                     "169.254.169.254"),
        internal_get("CarrierGradeNat", "http://100.64.0.1/", "100.64.0.1"),
        internal_get("ThisNetwork", "http://0.0.0.0/", "0.0.0.0"),
        internal_get("Ipv6LinkLocal", "http://[fe80::1]/", "[fe80::1]"),
        internal_get("Ipv6UniqueLocal", "http://[fc00::1]/", "[fc00::1]"),
        internal_get("Multicast", "http://224.0.0.1/", "224.0.0.1"),
        // Boost.URL ends an IPv4 host at its last octet and would lose ":port": refused as a
        // malformed authority before any address is looked at.
        malformed("LoopbackTrailingDot", get("http://127.0.0.1./", "127.0.0.1")),
        internal_get("UppercaseScheme", "HTTP://127.0.0.1/", "127.0.0.1"),
        internal_get("Localhost", "http://localhost/", "localhost"),
        internal_get("LocalhostFullyQualified", "http://localhost.:80/", "localhost.:80"),
    };
}

std::vector<hostile_case> connect_rows() {
    return {
        {"ConnectToDisallowedPort", connect_to("api.example.test:22"), 403, "http_request_denied",
         true},
        internal_connect("ConnectToLoopback", "127.0.0.1:443"),
        internal_connect("ConnectToLoopbackDecimal", "2130706433:443"),
        internal_connect("ConnectToIpv6Loopback", "[::1]:443"),
        internal_connect("ConnectToIpv4MappedLoopback", "[::ffff:127.0.0.1]:443"),
        internal_connect("ConnectToLocalhost", "localhost:443"),
        internal_connect("ConnectToPrivate", "10.0.0.1:443"),
        internal_connect("ConnectToCloudMetadata", "169.254.169.254:443"),
        malformed("ConnectWithOriginForm", connect_to("/hostile")),
        malformed("ConnectWithAbsoluteForm", connect_to("http://api.example.test:443/")),
        malformed("ConnectWithoutPort", connect_to("api.example.test")),
        malformed("ConnectWithUserinfo", connect_to("u@api.example.test:443")),
        malformed("ConnectToPortZero", connect_to("api.example.test:0")),
        // Sluice never forwards to its own listener or admin port, whatever allow_cidrs says
        // (403 chosen over 508/502 proxy_loop_detected: the rule is about the destination).
        own_port("OwnListenerAbsoluteForm",
                 get("http://127.0.0.1:{listen}/", "127.0.0.1:{listen}")),
        own_port("OwnListenerByName", get("http://localhost:{listen}/", "localhost:{listen}")),
        own_port("OwnAdminPortMetrics",
                 get("http://127.0.0.1:{admin}/metrics", "127.0.0.1:{admin}")),
        // "127.0.0.1." is a name that routes as 127.0.0.1 (trailing dot): its port counts too.
        malformed("OwnListenerTrailingDot",
                  get("http://127.0.0.1.:{listen}/", "127.0.0.1:{listen}")),
        own_port("ConnectToOwnListener", connect_to("127.0.0.1:{listen}")),
        own_port("ConnectToOwnAdminPort", connect_to("127.0.0.1:{admin}")),
    };
}

std::vector<hostile_case> all_rows() {
    std::vector<hostile_case> rows;
    for (auto part : {framing_rows(), syntax_rows(), authority_rows(), ssrf_rows(), connect_rows()})
        rows.insert(rows.end(), part.begin(), part.end());
    return rows;
}

/// `bytes` with control bytes escaped and cut to a readable length, for failure messages.
std::string printable(std::string_view bytes) {
    std::string out;
    for (char ch : bytes.substr(0, 400)) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n\n";
        } else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += ch;
        }
    }
    if (bytes.size() > 400)
        out += "...";
    return out;
}

void replace_all(std::string& s, std::string_view what, std::string_view with) {
    for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size()))
        s.replace(at, what.size(), with);
}

/// Sends `bytes`, one write per piece between pauses. Errors are not failures: sluice may
/// answer and close before it has read everything.
void send_request(raw_client& client, std::string_view bytes) {
    for (std::size_t at = 0;;) {
        const auto end = bytes.find(pause_marker, at);
        if (client.try_send(bytes.substr(at, end - at)) || end == std::string_view::npos)
            return;
        // The client's pace is the input: each piece arrives, and is read, on its own.
        std::this_thread::sleep_for(5ms);
        at = end + pause_marker.size();
    }
}

// ---- the test -----------------------------------------------------------------------------

class HostileInput : public ::testing::TestWithParam<hostile_case> {
  protected:
    void SetUp() override {
        upstream = std::make_unique<scripted_upstream>(upstream_options{.tls = true});
        auto c = base_config();
        add_upstream(c, "api", "api.example.test", "https", "localhost", upstream->port());
        c.unknown_hosts = config::unknown_hosts_mode::passthrough;
        if (GetParam().own_ports)
            c.allow_cidrs.push_back(config::cidr{"127.0.0.0/8", false, {127}, 8});
        proxy = std::make_unique<running_proxy>(c);
        if (GetParam().own_ports)
            allow_connect_to_own_ports(std::move(c));
    }

    // Ports are ephemeral, so connect_ports can name them only once bound: a reload does it.
    void allow_connect_to_own_ports(config::config c) {
        auto& s = proxy->server();
        c.connect_ports = {443, proxy->port(), s.admin_endpoint().port()};
        auto previous = s.current();
        std::vector<std::string> errors;
        auto rt = http::make_runtime(std::make_shared<const config::config>(std::move(c)),
                                     "sluice-unused", errors, previous.get(), previous->metrics);
        ASSERT_TRUE(rt) << (errors.empty() ? "" : errors.front());
        s.swap_runtime(rt);
    }

    std::string with_ports(std::string request) const {
        replace_all(request, "{listen}", std::to_string(proxy->port()));
        replace_all(request, "{admin}", std::to_string(proxy->server().admin_endpoint().port()));
        return request;
    }

    // The upstream accepts in arrival order: once this probe's failed handshake is counted,
    // every connection sluice opened before it answered has been counted too. Only the probe
    // may be there: no connection from sluice, hence no byte.
    void expect_upstream_untouched() {
        {
            raw_client probe(upstream->port());
            probe.try_send("not a TLS ClientHello\r\n\r\n");
            ASSERT_TRUE(
                upstream->wait_until([&] { return upstream->handshake_failures() >= 1; }, 3s));
        }
        EXPECT_EQ(upstream->connections_accepted(), 1u) << "sluice connected to the upstream";
        for (const auto& r : upstream->requests())
            ADD_FAILURE() << "the upstream received:\n" << printable(r.raw);
    }

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

TEST_P(HostileInput, RefusedBySluiceAndNothingReachesTheUpstream) {
    const hostile_case& row = GetParam();
    const std::string request = with_ports(row.request);
    {
        raw_client client(proxy->port());
        send_request(client, request);
        // Read as a head only: a 2xx to CONNECT has no body; an error's body is left unread.
        auto got = client.try_read_response(3s, request.starts_with("CONNECT "));
        if (!got.response) {
            ADD_FAILURE() << "no response (" << got.error.message()
                          << "); received: " << printable(got.partial_raw);
        } else {
            const http_response& r = *got.response;
            EXPECT_EQ(r.status, row.status) << "response:\n" << printable(r.raw);
            EXPECT_TRUE(r.header("Proxy-Status").starts_with("sluice;"))
                << "Proxy-Status: " << r.header("Proxy-Status");
            EXPECT_EQ(proxy_error_type(r), row.error);
            if (row.framing_lost && r.status == row.status) {
                EXPECT_FALSE(r.keep_alive) << "no Connection: close";
                EXPECT_TRUE(client.closed_by_peer(3s)) << "the connection stayed open";
            }
        }
    }
    expect_upstream_untouched();
}

INSTANTIATE_TEST_SUITE_P(Rows, HostileInput, ::testing::ValuesIn(all_rows()),
                         [](const ::testing::TestParamInfo<hostile_case>& info) {
                             return info.param.name;
                         });

}  // namespace
}  // namespace sluice::test
