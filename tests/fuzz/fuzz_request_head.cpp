// libFuzzer target: a client's request head as the daemon reads and judges it. Beast's
// request_parser<empty_body> reads the head with the daemon's limits, then the header rules of
// daemon/http/header_rules.cpp run in the order of the session (DESIGN §3.1): version, framing,
// Via loop, Host, target; then the request that would go upstream is modelled with Beast's
// field operations, the daemon's one-pass writer (append_upstream_request_head) must write the
// same bytes, and those bytes are read back.
//
// Input: the raw bytes a client sends (request line, fields, CRLF CRLF; anything after is body),
// all arrived at once: one put() whose header_limit is the whole head's, as in the session's
// read loop. That loop also refuses obsolete line folding before any rule runs; here Beast joins
// folded lines instead, so the rules see a superset of what the daemon lets through.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "config/config.hpp"
#include "fuzz_check.hpp"
#include "http/header_rules.hpp"
#include "http/message_head.hpp"
#include "http/request_target.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using namespace sluice::http;

/// This instance's Via pseudonym, as server.cpp makes it; seeds use it to reach the loop check.
constexpr std::string_view pseudonym = "sluice-0000f022";

/// Every element split_list hands out is a trimmed, non-empty list member.
void check_list_elements(std::string_view value) {
    for (auto element : split_list(value)) {
        FUZZ_CHECK(!element.empty());
        FUZZ_CHECK(element.find(',') == std::string_view::npos);
        FUZZ_CHECK(element.front() != ' ' && element.front() != '\t');
        FUZZ_CHECK(element.back() != ' ' && element.back() != '\t');
    }
}

/// A head that passes check_request_framing is framed for us exactly as Beast will read its
/// body: otherwise the bytes Beast takes for the next request are not what we forwarded (request
/// smuggling, shared case 8).
void check_framing_agrees(const bhttp::request_parser<bhttp::empty_body>& head) {
    const auto& req = head.get();
    const bool has_te = req.count(bhttp::field::transfer_encoding) > 0;
    const bool has_cl = req.count(bhttp::field::content_length) > 0;
    FUZZ_CHECK(!(has_te && has_cl));
    FUZZ_CHECK(head.chunked() == has_te);
    FUZZ_CHECK(head.content_length().has_value() == has_cl);
    if (has_cl) {
        // check_request_framing accepted it: every listed value is this one length.
        for (auto it = req.find(bhttp::field::content_length);
             it != req.end() && it->name() == bhttp::field::content_length; ++it) {
            for (auto v : split_list(it->value())) {
                std::uint64_t n = 0;
                const auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), n);
                FUZZ_CHECK(err == std::errc{} && end == v.data() + v.size());
                FUZZ_CHECK(n == *head.content_length());
            }
        }
    }
}

/// After strip_hop_by_hop no hop-by-hop field is left, nor any field a Connection named.
void check_stripped(const bhttp::fields& in, const bhttp::fields& out) {
    for (auto name :
         {bhttp::field::connection, bhttp::field::keep_alive, bhttp::field::proxy_connection,
          bhttp::field::proxy_authorization, bhttp::field::te, bhttp::field::trailer,
          bhttp::field::transfer_encoding, bhttp::field::upgrade}) {
        FUZZ_CHECK(out.count(name) == 0);
    }
    for (auto it = in.find(bhttp::field::connection);
         it != in.end() && it->name() == bhttp::field::connection; ++it) {
        for (auto nominated : split_list(it->value()))
            FUZZ_CHECK(out.count(nominated) == 0);
    }
}

/// An upstream's set_headers, as config validation lets them through (no managed name).
const std::vector<std::pair<std::string, std::string>> set_headers{
    {"Authorization", "Bearer t0ken"}, {"x-api-key", "k"}};

/// The model of the request the session sends upstream: Beast's own field operations (strip,
/// erase, set) applied to the client's head, in the order DESIGN §3.1 gives.
/// append_upstream_request_head, which writes the same in one pass, must agree with it byte
/// for byte.
bhttp::request<bhttp::string_body> upstream_request(
    const bhttp::request_parser<bhttp::empty_body>& head, const request_target& target) {
    const auto& req = head.get();
    bhttp::request<bhttp::empty_body> in = req;  // the session moves its fields away
    bhttp::request<bhttp::string_body> out;
    // An unknown method's name is kept in the fields, and moves with them.
    static_cast<bhttp::fields&>(out) = std::move(static_cast<bhttp::fields&>(in));
    if (req.method() != bhttp::verb::unknown)
        out.method(req.method());
    FUZZ_CHECK(out.method_string() == req.method_string());
    strip_hop_by_hop(out);
    check_stripped(req, out);
    out.erase(bhttp::field::host);
    out.erase(bhttp::field::expect);
    out.erase(bhttp::field::content_length);
    out.target(target.path_and_query);
    out.version(11);
    out.set(bhttp::field::host, target.authority());
    append_via(out, req.version(), pseudonym);
    FUZZ_CHECK(via_contains(out, pseudonym));
    for (const auto& [name, value] : set_headers)
        out.set(name, value);
    if (head.chunked())
        out.chunked(true);
    else if (head.content_length())
        out.content_length(*head.content_length());
    return out;
}

/// The session's one-pass writer gives the model's bytes.
void check_one_pass_head(const bhttp::request_parser<bhttp::empty_body>& head,
                         const request_target& target,
                         const bhttp::request<bhttp::string_body>& model) {
    std::string expected;
    append_head(expected, model);
    upstream_request_edits e;
    e.target = target.path_and_query;
    const std::string host = target.authority();
    e.host = host;
    e.client_version = head.get().version();
    e.via_pseudonym = pseudonym;
    e.set_headers = &set_headers;
    std::string written;
    append_upstream_request_head(written, head.get(), e);
    std::optional<std::uint64_t> length;
    if (head.content_length())
        length = *head.content_length();
    append_upstream_request_framing(written, length, head.chunked());
    FUZZ_CHECK(written == expected);
    // The retry policy's question about a field agrees with the model's fields, for every
    // field the client sent and a few it may not have, except those sluice writes itself.
    const auto agrees = [&](std::string_view name) {
        for (auto own : {"Host", "Via", "Content-Length", "Transfer-Encoding"}) {
            if (beast::iequals(name, own))
                return;
        }
        FUZZ_CHECK(sends_upstream(head.get(), name, e) == (model.count(name) > 0));
    };
    for (auto name : {"Idempotency-Key", "x-api-key", "Authorization", "Connection"})
        agrees(name);
    for (const auto& f : head.get())
        agrees(f.name_string());
}

/// The forwarded head, written by append_head (what the session sends) and read back by Beast,
/// is one request with the same line and fields: nothing the client sent can split it or
/// smuggle a second one in.
void check_written_head(const bhttp::request<bhttp::string_body>& out) {
    std::string wire;
    append_head(wire, out);

    bhttp::request_parser<bhttp::empty_body> back;
    back.header_limit(static_cast<std::uint32_t>(wire.size() + 1));
    // The head alone is checked. Beast's default body limit (1 MiB) would refuse, while reading
    // the head, a Content-Length that sluice accepts (limits.max_request_body, 10 MiB by
    // default; the session reads heads with no limit).
    back.body_limit(boost::none);
    beast::error_code ec;
    const std::size_t used = back.put(net::buffer(wire), ec);
    FUZZ_CHECK(!ec);
    FUZZ_CHECK(back.is_header_done());
    FUZZ_CHECK(used == wire.size());
    FUZZ_CHECK(back.chunked() == out.chunked());
    FUZZ_CHECK(back.content_length().has_value() == (out.count(bhttp::field::content_length) > 0));
    const auto& again = back.get();
    FUZZ_CHECK(again.method_string() == out.method_string());
    FUZZ_CHECK(again.target() == out.target());
    FUZZ_CHECK(again.version() == 11);
    FUZZ_CHECK(std::distance(again.begin(), again.end()) == std::distance(out.begin(), out.end()));
    auto a = again.begin();
    for (auto o = out.begin(); o != out.end(); ++o, ++a) {
        FUZZ_CHECK(beast::iequals(a->name_string(), o->name_string()));
        FUZZ_CHECK(a->value() == o->value());
    }
}

}  // namespace

/// libFuzzer entry point: reads one request head and applies the daemon's rules to it.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const sluice::config::limits_config limits;  // the defaults of a config without `limits`
    bhttp::request_parser<bhttp::empty_body> head;
    head.header_limit(
        static_cast<std::uint32_t>(std::min<std::uint64_t>(limits.max_header_bytes, UINT32_MAX)));
    head.body_limit(limits.max_request_body);
    beast::error_code ec;
    head.put(net::const_buffer(data, size), ec);
    if (ec == bhttp::error::need_more)
        head.put_eof(ec);  // the client closed before the head was complete
    if (ec || !head.is_header_done())
        return 0;  // the session answers 400/413/431 from the error alone

    const auto& req = head.get();
    const unsigned version = req.version();
    for (const auto& f : req)
        check_list_elements(f.value());
    if (auto timeout = keep_alive_timeout(req))
        FUZZ_CHECK(timeout->count() >= 0 && timeout->count() <= 86400);
    if (version == 11 && connection_lists(req, "close"))
        FUZZ_CHECK(!head.keep_alive());
    for (const auto& f : req) {
        if (beast::iequals(f.name_string(), "proxy-authorization"))
            FUZZ_CHECK(is_sensitive(f.name_string(), {}));
        FUZZ_CHECK(is_sensitive(f.name_string(), {std::string(f.name_string())}));
    }

    if (version != 10 && version != 11)
        return 0;  // 505
    if (auto bad = check_request_framing(req, version)) {
        FUZZ_CHECK(bad->status == 400 || bad->status == 501);
        FUZZ_CHECK(!bad->reason.empty());
        return 0;
    }
    check_framing_agrees(head);
    if (via_contains(req, pseudonym))
        return 0;  // 502 proxy_loop_detected
    if (req.count(bhttp::field::host) > 1)
        return 0;
    const auto host_it = req.find(bhttp::field::host);
    if (version == 11 && host_it == req.end())
        return 0;
    const std::string_view host_value =
        host_it == req.end() ? std::string_view{} : std::string_view(host_it->value());
    auto parsed = parse_request_target(req.method_string(), req.target(), host_value);
    const auto* target = std::get_if<request_target>(&parsed);
    if (!target || target->kind == request_target::form::authority)
        return 0;  // 400, or a CONNECT tunnel that forwards no head
    const auto model = upstream_request(head, *target);
    check_one_pass_head(head, *target, model);
    check_written_head(model);
    return 0;
}
