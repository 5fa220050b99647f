// Request-target parsing for a forward proxy (RFC 9112 §3.2): which authority a request is for.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace sluice::http {

/// The parsed target of one request, normalised: what routing, the bucket and the metric label
/// are decided from (DESIGN §3.1).
struct request_target {
    enum class form { origin, absolute, authority, asterisk };
    form kind = form::origin;
    std::string scheme;          ///< "http" or "https"; "http" for origin-form (what we serve)
    std::string host;            ///< lowercase reg-name or IP literal, IPv6 without brackets
    std::uint16_t port = 0;      ///< the explicit port, or the scheme's default
    std::string path_and_query;  ///< origin-form target to send upstream ("/" when empty;
                                 ///< "*" for asterisk-form; empty for CONNECT)

    /// `host[:port]`, port omitted when it is the scheme's default, IPv6 bracketed.
    std::string authority() const;
    /// The path without its query, for logs.
    std::string_view path() const;
};

/// Why a target was rejected: always a 400 (`http_request_error`), with this text as details.
struct target_error {
    std::string reason;
};

/// Parses the request-target of a request with `method`, using `host_header` (the value of the
/// single Host field, empty when absent) for origin-form. Rules:
/// - CONNECT takes authority-form `host:port` only (RFC 9112 §3.2.3), port required;
/// - absolute-form (RFC 9112 §3.2.2) with scheme http or https wins over Host;
/// - origin-form and `*` take the authority from Host, which must then be present and valid;
/// - userinfo (`user@host`) and fragments (`#`) are rejected in any form (RFC 9110 §4.2.4);
/// - hosts are lowercased, default ports normalised, ports must be 1–65535.
/// Returns the parsed target or the reason it is invalid.
std::variant<request_target, target_error> parse_request_target(std::string_view method,
                                                                std::string_view target,
                                                                std::string_view host_header);

/// Forgets the absolute-form prefixes this thread remembered: parse_request_target() keeps the
/// scheme, host and port of the last few `scheme://authority` prefixes it parsed whole, and
/// parses only the rest of a target that starts with one of them (then '/' or nothing), with
/// the same result. For tests that compare a remembered parse with a whole one.
void forget_remembered_authorities() noexcept;

/// Parses an authority `host[:port]` (Host header or CONNECT target) into lowercase host and
/// port (`default_port` when absent; `require_port` makes it mandatory). Returns false if
/// invalid: userinfo, empty host, bad port, characters outside RFC 3986 reg-name/IP-literal.
bool parse_authority(std::string_view text, std::uint16_t default_port, bool require_port,
                     std::string& host, std::uint16_t& port);

/// The default port of `scheme`: 443 for https, otherwise 80.
std::uint16_t default_port(std::string_view scheme) noexcept;

}  // namespace sluice::http
