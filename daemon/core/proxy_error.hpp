// The errors sluice answers for itself: RFC 9209 Proxy-Status error types and their statuses
// (DESIGN §5). The whole error table is `describe()`.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace sluice {

/// RFC 9209 §2.3 proxy error types that sluice emits; the enumerator names are the wire names.
enum class proxy_errc {
    http_request_error = 1,             ///< malformed request (400), or 501 for an unknown coding
    http_request_denied,                ///< host or port not allowed (403)
    destination_ip_prohibited,          ///< private address refused (403)
    dns_error,                          ///< name did not resolve (502)
    destination_ip_unroutable,          ///< no route to the resolved address (502)
    connection_refused,                 ///< TCP RST on connect (502)
    connection_timeout,                 ///< TCP connect or TLS handshake timed out (502)
    connection_terminated,              ///< closed or reset before a full response head (502)
    connection_read_timeout,            ///< attempt or total timeout waiting on the upstream (504)
    connection_write_timeout,           ///< the upstream stopped taking the request (504)
    tls_protocol_error,                 ///< TLS handshake failed, not for the certificate (502)
    tls_certificate_error,              ///< peer certificate did not verify (502)
    http_protocol_error,                ///< malformed upstream response (502)
    http_response_header_section_size,  ///< upstream response head over the limit (502)
    http_response_incomplete,           ///< upstream response body cut short (502)
    proxy_loop_detected,                ///< our own Via pseudonym came back (502)
    proxy_internal_response,            ///< rate limited (429) or draining (503)
    destination_unavailable,            ///< circuit open (503)
    proxy_internal_error,               ///< a bug or resource failure (500)
};

/// The error category of proxy_errc; `message()` gives the RFC 9209 type name.
const std::error_category& proxy_category() noexcept;

/// Makes an error_code of proxy_category from `e`.
inline std::error_code make_error_code(proxy_errc e) noexcept {
    return {static_cast<int>(e), proxy_category()};
}

/// The RFC 9209 type name of `e`, e.g. "dns_error".
std::string_view type_name(proxy_errc e) noexcept;

/// The status code sluice answers with for `e` when it makes the response itself
/// (DESIGN §5): 400, 403, 429, 500, 502, 503 or 504.
unsigned default_status(proxy_errc e) noexcept;

/// The value of a `Proxy-Status` header for an error made by sluice (RFC 9209 §2):
/// `sluice; error=dns_error; details="..."`. `details` is made a valid sf-string (quotes and
/// backslashes escaped, non-printable bytes dropped) and omitted when empty.
std::string proxy_status_error(proxy_errc e, std::string_view details = {});

/// The `Proxy-Status` value for a response relayed from the upstream (RFC 9209 §2.1.2):
/// `sluice; received-status=503`.
std::string proxy_status_received(unsigned status);

}  // namespace sluice

template <>
struct std::is_error_code_enum<sluice::proxy_errc> : std::true_type {};
