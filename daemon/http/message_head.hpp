// A message head as bytes: start line, fields, blank line, as Beast's serializer writes it, but
// into one contiguous buffer that a small body can follow, so that a request or a response
// leaves in one write (and, over TLS, in one record). The relayed heads are written in one pass
// over the parsed fields, with the proxy's changes applied as they are written: no field is
// erased from or inserted into Beast's field index on the way (DESIGN §9).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>

namespace sluice::http {

namespace bhttp = boost::beast::http;

/// Appends "METHOD target HTTP/x.y\r\n", every field as "Name: value\r\n", then "\r\n".
void append_head(std::string& out, const bhttp::request_header<>& h);

/// Appends "HTTP/x.y code reason\r\n" (the reason as received, or the standard one), every
/// field as "Name: value\r\n", then "\r\n".
void append_head(std::string& out, const bhttp::response_header<>& h);

/// What a client's request head becomes upstream (DESIGN §3.1, §3.7).
struct upstream_request_edits {
    std::string_view target;  ///< origin-form target (path and query)
    std::string_view host;    ///< the Host value
    /// Our Via entry is "1.0 <pseudonym>" or "1.1 <pseudonym>" after the client's version
    /// (10 or 11); an empty pseudonym adds none and passes the client's Via lines on as they are.
    unsigned client_version = 11;
    std::string_view via_pseudonym;
    /// The upstream's set_headers: each replaces any field of its name (names never one of
    /// the fields sluice manages, which config validation refuses).
    const std::vector<std::pair<std::string, std::string>>* set_headers = nullptr;
};

/// Appends the request head sent upstream up to its framing: "METHOD target HTTP/1.1", then the
/// client's fields in their order without the hop-by-hop ones (RFC 9110 §7.6.1: Connection and
/// what it names, Keep-Alive, Proxy-Connection, Proxy-Authorization, TE, Trailer,
/// Transfer-Encoding, Upgrade), Host, Expect, Content-Length, the fields set_headers replaces and
/// (when a Via entry is added) Via; then Host, one Via line (the client's entries, then ours) and
/// set_headers in order. append_upstream_request_framing() ends it. The same fields in the same
/// order as Beast's strip/erase/set sequence gives (tests/fuzz/fuzz_request_head.cpp checks it).
/// Call it with the head as it arrived: the trailer fields of a chunked body, which Beast's
/// parser adds to the same fields, must never be forwarded as header fields.
void append_upstream_request_head(std::string& out, const bhttp::request_header<>& req,
                                  const upstream_request_edits& e);

/// Ends a head begun by append_upstream_request_head(): Content-Length: `content_length`, or
/// Transfer-Encoding: chunked, or neither (no body), then the blank line.
void append_upstream_request_framing(std::string& out, std::optional<std::uint64_t> content_length,
                                     bool chunked);

/// Whether the request sent upstream carries a field named `name` (case-insensitive): the
/// client's, unless it is hop-by-hop, named by Connection or managed by sluice (Host, Expect,
/// Content-Length, Via), or one of set_headers. The retry policy asks it about
/// Idempotency-Key (DESIGN §3.5).
bool sends_upstream(const bhttp::request_header<>& req, std::string_view name,
                    const upstream_request_edits& e);

/// What an upstream's final response head becomes for the client (DESIGN §3.1).
struct client_response_edits {
    /// Our Via entry follows the upstream's version (10 or 11); empty pseudonym: none added.
    unsigned upstream_version = 11;
    std::string_view via_pseudonym;
    enum class length_field {
        keep,    ///< Content-Length passes as received (HEAD, 304)
        remove,  ///< none is sent (204, or a body framed by chunked or the close)
        set,     ///< Content-Length: `content_length`
    };
    length_field length = length_field::keep;
    std::uint64_t content_length = 0;
    bool chunked = false;         ///< Transfer-Encoding: chunked is added
    std::string_view connection;  ///< a Connection value to add ("close", "keep-alive"), or none
};

/// Appends the response head sent to the client: "HTTP/1.1 code reason", the upstream's fields
/// in their order without the hop-by-hop ones (as above), Via (when an entry is added) and
/// Content-Length (unless kept); then one Via line, Content-Length, Transfer-Encoding: chunked
/// and Connection, each when asked for.
void append_client_response_head(std::string& out, const bhttp::response_header<>& res,
                                 const client_response_edits& e);

}  // namespace sluice::http
