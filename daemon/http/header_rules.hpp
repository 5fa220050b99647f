// Header rules of a forwarding proxy: framing checks, hop-by-hop removal, Via, redaction
// (RFC 9110 §7.6, RFC 9112 §6, DESIGN §3.1, §3.7).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>

#include "core/text.hpp"

namespace sluice::http {

namespace bhttp = boost::beast::http;

/// A request whose framing cannot be trusted: answer `status` (400 or 501) and close.
struct framing_error {
    unsigned status = 400;
    std::string reason;
};

/// Checks the message framing fields of a request head that Beast has parsed (RFC 9112 §6):
/// `Transfer-Encoding` in HTTP/1.0 (400, §6.1), with `Content-Length` (400, §6.3), `chunked`
/// not last or repeated (400), a coding other than chunked (501: sluice does not decode
/// transfer codings), more than one distinct `Content-Length` or a non-numeric one (400).
/// Empty list elements and whitespace are allowed (`chunked,`), per RFC 9110 §5.6.1.
/// `version` is 10 or 11. Returns nothing when the framing is sound.
std::optional<framing_error> check_request_framing(const bhttp::fields& f, unsigned version);

/// Removes every hop-by-hop field (RFC 9110 §7.6.1): `Connection` and each field it names,
/// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authorization`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade`. Framing is set again by the caller. The request path writes
/// relayed heads with message_head.hpp's one-pass writers instead; this and append_via() are
/// the same rules on Beast's fields, the model those writers are tested and fuzzed against.
void strip_hop_by_hop(bhttp::fields& f);

/// True for the fields RFC 9110 §7.6.1 makes hop-by-hop whatever `Connection` says (the list
/// of strip_hop_by_hop(), Connection itself included).
bool is_hop_by_hop(bhttp::field name) noexcept;

/// The first field of `f` named `name` (a known field, not `field::unknown`), or `f.end()`; the
/// other fields of that name follow it, as Beast keeps the fields of one name together. Finds
/// what `f.find(name)` finds by walking the field list and comparing the field enum: for the
/// dozen fields of a head a fraction of `find`'s cost, which spells the name and compares it
/// case-insensitively down the field index (BENCHMARKS.md). Linear in the number of fields, as
/// the parse that made them is.
bhttp::fields::const_iterator find_field(const bhttp::fields& f, bhttp::field name) noexcept;

/// True when a `Connection` field of `f` lists `token` (case-insensitive).
bool connection_lists(const bhttp::fields& f, std::string_view token);

/// True when any `Via` entry's received-by is `pseudonym`: our own request came back (a loop,
/// RFC 9110 §7.6.3).
bool via_contains(const bhttp::fields& f, std::string_view pseudonym);

/// Appends `Via: <major.minor> <pseudonym>` for a message received as HTTP/`version` (10 or
/// 11), keeping earlier entries (RFC 9110 §7.6.3).
void append_via(bhttp::fields& f, unsigned version, std::string_view pseudonym);

/// Appends the entries of one received `Via` value to `joined`, each followed by ", ": the
/// comma-separated elements with their optional whitespace trimmed, empty ones dropped. A
/// recipient accepts empty list elements, a sender must not generate them (RFC 9110 §5.6.1),
/// so an empty `Via:` line or a stray comma does not become ", , 1.1 sluice-…".
void append_via_entries(std::string& joined, std::string_view value);

/// The `timeout=N` parameter of a `Keep-Alive` field (seconds), if present and valid.
std::optional<std::chrono::seconds> keep_alive_timeout(const bhttp::fields& f);

/// True for fields never written to logs: Authorization, Proxy-Authorization, Cookie,
/// Set-Cookie, and the lowercase names in `redact` (DESIGN §3.7).
bool is_sensitive(std::string_view name, const std::vector<std::string>& redact);

/// Splits a comma-separated field value into trimmed, non-empty elements (RFC 9110 §5.6.1).
std::vector<std::string_view> split_list(std::string_view value);

/// Calls `f(element)` for each element of a comma-separated list, as split_list() would return
/// them, without building the list.
template <class F>
void for_each_list_element(std::string_view value, F&& f) {
    while (!value.empty()) {
        auto comma = value.find(',');
        auto element = trim_ows(value.substr(0, comma));
        if (!element.empty())
            f(element);
        if (comma == std::string_view::npos)
            break;
        value.remove_prefix(comma + 1);
    }
}

}  // namespace sluice::http
