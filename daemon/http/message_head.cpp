// Serializing message heads by hand: the fields are already valid (Beast parsed or set them).
#include "http/message_head.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <boost/beast/core/string.hpp>
#include <boost/container/small_vector.hpp>

#include "http/header_rules.hpp"

namespace sluice::http {

namespace {

void append_version(std::string& out, unsigned version) {
    out += "HTTP/";
    out += static_cast<char>('0' + version / 10);
    out += '.';
    out += static_cast<char>('0' + version % 10);
}

// One resize and two copies, not four appends (each a capacity check and a call): a head
// has a dozen of these.
void append_field(std::string& out, std::string_view name, std::string_view value) {
    const std::size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    if (!name.empty())
        std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    if (!value.empty())
        std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

void append_fields(std::string& out, const bhttp::fields& f) {
    for (const auto& field : f)
        append_field(out, field.name_string(), field.value());
    out += "\r\n";
}

void append_status_line(std::string& out, unsigned version, const bhttp::response_header<>& h) {
    append_version(out, version);
    const unsigned code = h.result_int();
    const char digits[] = {' ', static_cast<char>('0' + code / 100 % 10),
                           static_cast<char>('0' + code / 10 % 10),
                           static_cast<char>('0' + code % 10), ' '};
    out.append(digits, sizeof digits);
    out += h.reason();
    out += "\r\n";
}

// The fields a message's Connection fields name (RFC 9110 §7.6.1). A token that names a
// hop-by-hop field needs no lookup (that field goes anyway); "keep-alive" is nearly always the
// only token. A few other tokens are compared with each field's name; past `few_tokens` the
// named fields are found once through Beast's field index instead: O((tokens + fields) log),
// so that a crafted Connection list cannot make a head cost tokens × fields.
class connection_options {
  public:
    explicit connection_options(const bhttp::fields& f) {
        for (const auto& field : f) {
            if (field.name() != bhttp::field::connection)
                continue;
            for_each_list_element(field.value(), [&](std::string_view token) {
                if (boost::beast::iequals(token, "keep-alive"))
                    return;
                tokens_.push_back(token);
            });
        }
        if (tokens_.size() <= few_tokens)
            return;
        indexed_ = true;
        // One lookup per token; tokens naming the same field collapse to one range.
        boost::container::small_vector<std::pair<const void*, std::string_view>, 4> ranges;
        for (auto token : tokens_) {
            const auto first = f.find(token);
            if (first != f.end())
                ranges.emplace_back(&*first, token);
        }
        std::sort(ranges.begin(), ranges.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        const auto last =
            std::unique(ranges.begin(), ranges.end(),
                        [](const auto& a, const auto& b) { return a.first == b.first; });
        for (auto r = ranges.begin(); r != last; ++r) {
            auto [first, end] = f.equal_range(r->second);
            for (; first != end; ++first)
                named_.push_back(&*first);
        }
        std::sort(named_.begin(), named_.end());
    }

    /// Whether `field` (not hop-by-hop itself) is named by a Connection token.
    bool lists(const bhttp::fields::value_type& field) const {
        if (indexed_)
            return std::binary_search(named_.begin(), named_.end(), &field);
        const std::string_view name = field.name_string();
        for (auto token : tokens_) {
            if (token.size() == name.size() && boost::beast::iequals(token, name))
                return true;
        }
        return false;
    }

  private:
    static constexpr std::size_t few_tokens = 8;
    boost::container::small_vector<std::string_view, 4> tokens_;
    bool indexed_ = false;
    boost::container::small_vector<const bhttp::fields::value_type*, 4> named_;
};

// Fields of a request that sluice writes itself (DESIGN §3.1): never the client's.
bool managed_request_field(bhttp::field name) {
    switch (name) {
        case bhttp::field::host:
        case bhttp::field::expect:
        case bhttp::field::content_length:
            return true;
        default:
            return false;
    }
}

bool in_set_headers(std::string_view name, const upstream_request_edits& e) {
    if (!e.set_headers)
        return false;
    for (const auto& [set_name, value] : *e.set_headers) {
        if (boost::beast::iequals(name, set_name))
            return true;
    }
    return false;
}

// The Via values of a message, kept to be joined into one field with sluice's own entry. Views
// into the message's fields; two fit without an allocation.
using via_values = boost::container::small_vector<std::string_view, 2>;

// Appends the fields of `f` a proxy forwards, skipping those `skip(field)` names too; gathers
// the Via values into `via` instead of writing them when `join_via` is set.
template <class Skip>
void append_forwarded_fields(std::string& out, const bhttp::fields& f, bool join_via,
                             via_values& via, Skip&& skip) {
    const connection_options listed(f);
    for (const auto& field : f) {
        const auto name = field.name();
        if (is_hop_by_hop(name) || skip(field))
            continue;
        if (listed.lists(field))
            continue;
        if (join_via && name == bhttp::field::via) {
            via.push_back(field.value());
            continue;
        }
        append_field(out, field.name_string(), field.value());
    }
}

// The Via field: the message's entries (", "-joined) and then sluice's, written straight into
// `out` (a joined copy cost an allocation per message once a pseudonym outgrew the small-string
// buffer).
void append_via_line(std::string& out, const via_values& via, unsigned version,
                     std::string_view pseudonym) {
    out += "Via: ";
    for (const auto value : via)
        append_via_entries(out, value);
    out += version == 10 ? "1.0 " : "1.1 ";
    out += pseudonym;
    out += "\r\n";
}

void append_content_length(std::string& out, std::uint64_t n) {
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    append_field(out, "Content-Length", std::string_view(digits, end - digits));
}

}  // namespace

void append_head(std::string& out, const bhttp::request_header<>& h) {
    out += h.method_string();
    out += ' ';
    out += h.target();
    out += ' ';
    append_version(out, h.version());
    out += "\r\n";
    append_fields(out, h);
}

void append_head(std::string& out, const bhttp::response_header<>& h) {
    append_status_line(out, h.version(), h);
    append_fields(out, h);
}

void append_upstream_request_head(std::string& out, const bhttp::request_header<>& req,
                                  const upstream_request_edits& e) {
    out += req.method_string();
    out += ' ';
    out += e.target;
    out += " HTTP/1.1\r\n";
    const bool add_via = !e.via_pseudonym.empty();
    via_values via;
    append_forwarded_fields(out, req, add_via, via, [&](const auto& field) {
        return managed_request_field(field.name()) || in_set_headers(field.name_string(), e);
    });
    append_field(out, "Host", e.host);
    if (add_via)
        append_via_line(out, via, e.client_version, e.via_pseudonym);
    if (e.set_headers) {
        for (const auto& [name, value] : *e.set_headers)
            append_field(out, name, value);
    }
}

void append_upstream_request_framing(std::string& out, std::optional<std::uint64_t> content_length,
                                     bool chunked) {
    if (content_length)
        append_content_length(out, *content_length);
    else if (chunked)
        append_field(out, "Transfer-Encoding", "chunked");
    out += "\r\n";
}

bool sends_upstream(const bhttp::request_header<>& req, std::string_view name,
                    const upstream_request_edits& e) {
    if (in_set_headers(name, e))
        return true;
    auto [first, end] = req.equal_range(name);
    if (first == end)
        return false;
    const connection_options listed(req);
    for (; first != end; ++first) {
        const auto id = first->name();
        const bool dropped = is_hop_by_hop(id) || managed_request_field(id) ||
                             (id == bhttp::field::via && !e.via_pseudonym.empty()) ||
                             listed.lists(*first);
        if (!dropped)
            return true;
    }
    return false;
}

void append_client_response_head(std::string& out, const bhttp::response_header<>& res,
                                 const client_response_edits& e) {
    using length_field = client_response_edits::length_field;
    append_status_line(out, 11, res);
    const bool add_via = !e.via_pseudonym.empty();
    via_values via;
    append_forwarded_fields(out, res, add_via, via, [&](const auto& field) {
        return e.length != length_field::keep && field.name() == bhttp::field::content_length;
    });
    if (add_via)
        append_via_line(out, via, e.upstream_version, e.via_pseudonym);
    if (e.length == length_field::set)
        append_content_length(out, e.content_length);
    if (e.chunked)
        append_field(out, "Transfer-Encoding", "chunked");
    if (!e.connection.empty())
        append_field(out, "Connection", e.connection);
    out += "\r\n";
}

}  // namespace sluice::http
