// libFuzzer target: the request-target parser (daemon/http/request_target.cpp), which picks the
// upstream, its bucket and its metric label from untrusted client input (DESIGN §3.1, §3.2).
//
// Input: `METHOD \n TARGET \n HOST` (the Host field value; missing parts are empty), so that
// seeds read like the request line they stand for.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "http/request_target.hpp"

namespace {

using sluice::http::request_target;

/// The next `\n`-terminated part of `rest` (all of it when there is no `\n`).
std::string_view take_line(std::string_view& rest) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    return line;
}

/// A host as routing sees it: a lowercase reg-name or an IP literal without brackets.
bool plausible_host(std::string_view host) {
    if (host.empty())
        return false;
    for (char c : host) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                        c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/// What may go upstream as a request-target: visible ASCII only (no SP, CR, LF, controls),
/// so the outgoing request line cannot be split (RFC 9112 §3).
bool visible_ascii(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f)
            return false;
    }
    return true;
}

/// The host and port that routing uses survive `authority()` and a re-parse unchanged: the
/// Host header regenerated for passthrough names the same destination.
void check_authority_round_trip(const request_target& t) {
    std::string host;
    std::uint16_t port = 0;
    FUZZ_CHECK(sluice::http::parse_authority(t.authority(), sluice::http::default_port(t.scheme),
                                             false, host, port));
    FUZZ_CHECK(host == t.host);
    FUZZ_CHECK(port == t.port);
}

void check_target(std::string_view method, const request_target& t) {
    FUZZ_CHECK(t.scheme == "http" || t.scheme == "https");
    FUZZ_CHECK(plausible_host(t.host));
    FUZZ_CHECK(t.port != 0);
    FUZZ_CHECK((method == "CONNECT") == (t.kind == request_target::form::authority));
    switch (t.kind) {
        case request_target::form::authority:
            FUZZ_CHECK(t.path_and_query.empty());
            break;
        case request_target::form::asterisk:
            FUZZ_CHECK(method == "OPTIONS");
            FUZZ_CHECK(t.path_and_query == "*");
            break;
        case request_target::form::origin:
        case request_target::form::absolute:
            FUZZ_CHECK(t.path_and_query.starts_with('/'));
            break;
    }
    FUZZ_CHECK(visible_ascii(t.path_and_query));
    FUZZ_CHECK(t.path_and_query.find('#') == std::string::npos);
    FUZZ_CHECK(t.path_and_query.starts_with(t.path()));
    FUZZ_CHECK(t.path().find('?') == std::string_view::npos);
    check_authority_round_trip(t);
}

}  // namespace

/// libFuzzer entry point: parses one `METHOD\nTARGET\nHOST` input and checks what comes out.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    const std::string_view method = take_line(rest);
    const std::string_view target = take_line(rest);
    const std::string_view host_header = rest;

    sluice::http::forget_remembered_authorities();
    auto parsed = sluice::http::parse_request_target(method, target, host_header);
    if (const auto* t = std::get_if<request_target>(&parsed)) {
        check_target(method, *t);
    } else {
        FUZZ_CHECK(!std::get<sluice::http::target_error>(parsed).reason.empty());
    }
    // Parsed again it may start with the prefix the first parse remembered: the same result.
    auto again = sluice::http::parse_request_target(method, target, host_header);
    FUZZ_CHECK(parsed.index() == again.index());
    if (const auto* t = std::get_if<request_target>(&parsed)) {
        const auto& u = std::get<request_target>(again);
        FUZZ_CHECK(t->kind == u.kind && t->scheme == u.scheme && t->host == u.host &&
                   t->port == u.port && t->path_and_query == u.path_and_query);
    } else {
        FUZZ_CHECK(std::get<sluice::http::target_error>(parsed).reason ==
                   std::get<sluice::http::target_error>(again).reason);
    }

    // The authority parser alone, as the Host header and CONNECT targets reach it.
    for (const bool require_port : {false, true}) {
        std::string host;
        std::uint16_t port = 0;
        if (sluice::http::parse_authority(host_header, 80, require_port, host, port)) {
            FUZZ_CHECK(plausible_host(host));
            FUZZ_CHECK(port != 0);
        }
    }
    return 0;
}
