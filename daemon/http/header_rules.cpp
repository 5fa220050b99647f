// Framing checks, hop-by-hop removal and Via handling.
#include "http/header_rules.hpp"

#include "core/text.hpp"

#include <algorithm>
#include <charconv>

#include <boost/beast/core/string.hpp>

namespace sluice::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return boost::beast::iequals(a, b);
}

}  // namespace

std::vector<std::string_view> split_list(std::string_view value) {
    std::vector<std::string_view> out;
    for_each_list_element(value, [&](std::string_view element) { out.push_back(element); });
    return out;
}

std::optional<framing_error> check_request_framing(const bhttp::fields& f, unsigned version) {
    std::vector<std::string_view> codings;
    bool has_te = false;
    for (auto it = find_field(f, bhttp::field::transfer_encoding);
         it != f.end() && it->name() == bhttp::field::transfer_encoding; ++it) {
        has_te = true;
        for (auto c : split_list(it->value()))
            codings.push_back(c);
    }
    const bool has_cl = find_field(f, bhttp::field::content_length) != f.end();
    if (has_te) {
        if (version < 11) {
            return framing_error{400, "Transfer-Encoding in an HTTP/1.0 request"};
        }
        if (has_cl)
            return framing_error{400, "both Content-Length and Transfer-Encoding"};
        if (codings.empty())
            return framing_error{400, "empty Transfer-Encoding"};
        // RFC 9112 §6.1: a coding we do not know is 501; then the chunked-last rule (§6.3).
        for (auto c : codings) {
            bool known = false;
            for (auto k : {"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress"}) {
                known = known || iequals(c, k);
            }
            if (!known)
                return framing_error{501, "unknown transfer coding"};
        }
        auto chunked_count = std::count_if(codings.begin(), codings.end(),
                                           [](auto c) { return iequals(c, "chunked"); });
        if (chunked_count > 1)
            return framing_error{400, "chunked applied more than once"};
        if (chunked_count == 0 || !iequals(codings.back(), "chunked")) {
            return framing_error{400, "chunked is not the final transfer coding"};
        }
        if (codings.size() > 1)
            return framing_error{501, "unsupported transfer coding"};
    }
    if (has_cl) {
        std::optional<std::uint64_t> length;
        for (auto it = find_field(f, bhttp::field::content_length);
             it != f.end() && it->name() == bhttp::field::content_length; ++it) {
            for (auto v : split_list(it->value())) {
                std::uint64_t n = 0;
                auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
                if (ec != std::errc{} || p != v.data() + v.size()) {
                    return framing_error{400, "invalid Content-Length"};
                }
                if (length && *length != n) {
                    return framing_error{400, "conflicting Content-Length values"};
                }
                length = n;
            }
        }
        if (!length)
            return framing_error{400, "invalid Content-Length"};
    }
    // "Transfer_Encoding" is a valid field name that some servers (CGI-style header mapping)
    // read as Transfer-Encoding: a request that may mean different framing to the origin than
    // to us is refused, as a smuggling attempt.
    for (const auto& field : f) {
        if (field.name() != bhttp::field::unknown)
            continue;
        std::string_view name = field.name_string();
        if (name.find('_') == std::string_view::npos)
            continue;
        std::string dashed(name);
        std::replace(dashed.begin(), dashed.end(), '_', '-');
        if (iequals(dashed, "transfer-encoding") || iequals(dashed, "content-length"))
            return framing_error{400, "framing field spelled with an underscore"};
    }
    return std::nullopt;
}

bool connection_lists(const bhttp::fields& f, std::string_view token) {
    for (auto it = find_field(f, bhttp::field::connection);
         it != f.end() && it->name() == bhttp::field::connection; ++it) {
        for (auto t : split_list(it->value())) {
            if (iequals(t, token))
                return true;
        }
    }
    return false;
}

void strip_hop_by_hop(bhttp::fields& f) {
    // Fields named by Connection first, read from the Connection values in place (no copies).
    // Connection itself is left to the pass below: erasing it here would free the value being
    // read.
    for (auto it = find_field(f, bhttp::field::connection);
         it != f.end() && it->name() == bhttp::field::connection; ++it) {
        for_each_list_element(it->value(), [&](std::string_view name) {
            if (!iequals(name, "connection"))
                f.erase(name);
        });
    }
    // One pass over the fields, comparing known names as enums (a lookup by name per
    // hop-by-hop field would walk the field index eight times).
    for (auto it = f.begin(); it != f.end();) {
        if (is_hop_by_hop(it->name()))
            it = f.erase(it);
        else
            ++it;
    }
}

bhttp::fields::const_iterator find_field(const bhttp::fields& f, bhttp::field name) noexcept {
    auto it = f.begin();
    while (it != f.end() && it->name() != name)
        ++it;
    return it;
}

bool is_hop_by_hop(bhttp::field name) noexcept {
    switch (name) {
        case bhttp::field::connection:
        case bhttp::field::keep_alive:
        case bhttp::field::proxy_connection:
        case bhttp::field::proxy_authorization:
        case bhttp::field::te:
        case bhttp::field::trailer:
        case bhttp::field::transfer_encoding:
        case bhttp::field::upgrade:
            return true;
        default:
            return false;
    }
}

bool via_contains(const bhttp::fields& f, std::string_view pseudonym) {
    for (auto it = find_field(f, bhttp::field::via);
         it != f.end() && it->name() == bhttp::field::via; ++it) {
        for (auto entry : split_list(it->value())) {
            // entry: received-protocol SP received-by [ SP comment ]
            auto sp = entry.find_first_of(" \t");
            if (sp == std::string_view::npos)
                continue;
            auto rest = trim_ows(entry.substr(sp + 1));
            auto by = rest.substr(0, rest.find_first_of(" \t"));
            if (iequals(by, pseudonym))
                return true;
        }
    }
    return false;
}

void append_via(bhttp::fields& f, unsigned version, std::string_view pseudonym) {
    // One Via line: earlier entries (however many lines they came in) then ours.
    std::string value;
    for (auto it = find_field(f, bhttp::field::via);
         it != f.end() && it->name() == bhttp::field::via; ++it) {
        append_via_entries(value, it->value());
    }
    value += version == 10 ? "1.0 " : "1.1 ";
    value += pseudonym;
    f.set(bhttp::field::via, value);
}

void append_via_entries(std::string& joined, std::string_view value) {
    while (!value.empty()) {
        const auto comma = value.find(',');
        std::string_view entry = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        const auto first = entry.find_first_not_of(" \t");
        if (first == std::string_view::npos)
            continue;
        entry = entry.substr(first, entry.find_last_not_of(" \t") + 1 - first);
        joined += entry;
        joined += ", ";
    }
}

std::optional<std::chrono::seconds> keep_alive_timeout(const bhttp::fields& f) {
    auto it = find_field(f, bhttp::field::keep_alive);
    if (it == f.end())
        return std::nullopt;
    for (auto param : split_list(it->value())) {
        auto eq = param.find('=');
        if (eq == std::string_view::npos)
            continue;
        if (!iequals(trim_ows(param.substr(0, eq)), "timeout"))
            continue;
        auto v = trim_ows(param.substr(eq + 1));
        unsigned long n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc{} || p != v.data() + v.size())
            return std::nullopt;
        return std::chrono::seconds{std::min<unsigned long>(n, 86400)};
    }
    return std::nullopt;
}

bool is_sensitive(std::string_view name, const std::vector<std::string>& redact) {
    for (auto s : {"authorization", "proxy-authorization", "cookie", "set-cookie"}) {
        if (iequals(name, s))
            return true;
    }
    return std::any_of(redact.begin(), redact.end(),
                       [&](const std::string& r) { return iequals(name, r); });
}

}  // namespace sluice::http
