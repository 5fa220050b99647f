// Request-target parsing on Boost.URL, with the stricter host rules a proxy needs.
#include "http/request_target.hpp"

#include <array>

#include <boost/url/grammar/charset.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/pchars.hpp>

namespace sluice::http {

namespace urls = boost::urls;

namespace {

// A DNS name as routed on: letters, digits, '-', '_' and '.'; no percent-encoding, which would
// let two spellings of one host pick different upstreams.
bool valid_reg_name(std::string_view host) {
    if (host.empty() || host.size() > 253)
        return false;
    for (char c : host) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

// Extracts host and port from Boost.URL's view of an authority; false when not acceptable.
template <class View>
bool take_host_port(const View& v, std::uint16_t default_port_value, bool require_port,
                    std::string& host, std::uint16_t& port) {
    if (v.has_userinfo())
        return false;
    switch (v.host_type()) {
        case urls::host_type::name: {
            std::string_view name = v.encoded_host();
            // "api.example.com." is the same name, fully qualified: route it the same way.
            if (name.size() > 1 && name.back() == '.')
                name.remove_suffix(1);
            if (!valid_reg_name(name) || name.back() == '.')
                return false;
            host = lower(name);
            break;
        }
        case urls::host_type::ipv4:
            host = v.host_ipv4_address().to_string();
            break;
        case urls::host_type::ipv6:
            // Canonical text (RFC 5952), as the config stores hosts: [2001:DB8::0:1] matches.
            host = v.host_ipv6_address().to_string();
            break;
        default:
            return false;  // IPvFuture, or no host at all
    }
    if (v.has_port()) {
        std::string_view p = v.port();
        if (p.empty() || p.size() > 5)
            return false;
        unsigned value = 0;
        for (char c : p)
            value = value * 10 + static_cast<unsigned>(c - '0');
        if (value == 0 || value > 65535)
            return false;
        port = static_cast<std::uint16_t>(value);
    } else {
        if (require_port)
            return false;
        port = default_port_value;
    }
    return true;
}

// The last absolute-form prefixes ("scheme://authority", byte for byte) this thread parsed
// whole, with what they gave. A proxy client sends one origin's prefix on request after request,
// and Boost.URL's full parse of it costs ~2,500 instructions, about 2 % of a request
// (BENCHMARKS.md); a target that starts with a remembered prefix followed by '/' or nothing
// takes the remembered scheme, host and port and has only its origin-form rest parsed, which
// is what the full parse of the same bytes gives. Per thread: no lock, and the same few origins
// dominate each worker.
struct authority_memo {
    std::string prefix;          // scheme "://" authority, as received
    std::size_t scheme_end = 0;  // prefix.substr(0, scheme_end) is the scheme as received
    std::string scheme;          // "http" or "https"
    std::string host;
    std::uint16_t port = 0;
};

struct authority_memos {
    static constexpr std::size_t size = 4;
    std::array<authority_memo, size> entries;
    std::size_t used = 0;
    std::size_t next = 0;  // replaced next, round robin

    const authority_memo* find(std::string_view target) const {
        for (std::size_t i = 0; i < used; ++i) {
            const auto& m = entries[i];
            if (target.starts_with(m.prefix) &&
                (target.size() == m.prefix.size() || target[m.prefix.size()] == '/'))
                return &m;
        }
        return nullptr;
    }

    void remember(std::string_view prefix, std::size_t scheme_end, const request_target& t) {
        if (prefix.size() > 256)
            return;  // not worth the copy
        auto& m = entries[next];
        next = (next + 1) % size;
        if (used < size)
            ++used;  // filled in order: entries [0, used) are set
        m.prefix.assign(prefix);
        m.scheme_end = scheme_end;
        m.scheme = t.scheme;
        m.host = t.host;
        m.port = t.port;
    }
};

thread_local authority_memos memos;

// What may follow a remembered prefix without a parse: from its '/', only path and query
// characters other than '%' (RFC 3986 §3.3, §3.4: pchar, '/', '?'). Every such string is a
// valid origin-form (absolute-path ["?" query]); anything else (a '%' to check, a character
// that is not allowed) goes through Boost.URL's origin-form rule.
constexpr auto plain_origin_form_chars = urls::pchars + '/' + '?';

bool valid_origin_form(std::string_view rest) {
    if (urls::grammar::find_if_not(rest.data(), rest.data() + rest.size(),
                                   plain_origin_form_chars) == rest.data() + rest.size())
        return true;
    return static_cast<bool>(urls::parse_origin_form(rest));
}

// The Host check of an absolute-form request: the target wins, but a Host that is not even an
// authority is a malformed request (RFC 9112 §3.2). A Host spelled as the target's authority
// (what clients send) was just validated as that.
bool host_acceptable(std::string_view host_header, std::string_view target_authority) {
    if (host_header.empty() || host_header == target_authority)
        return true;
    std::string ignored_host;
    std::uint16_t ignored_port = 0;
    return parse_authority(host_header, 80, false, ignored_host, ignored_port);
}

}  // namespace

void forget_remembered_authorities() noexcept {
    memos.used = 0;
    memos.next = 0;
}

std::uint16_t default_port(std::string_view scheme) noexcept {
    return scheme == "https" ? 443 : 80;
}

std::string request_target::authority() const {
    std::string out;
    bool v6 = host.find(':') != std::string::npos;
    if (v6)
        out += '[';
    out += host;
    if (v6)
        out += ']';
    if (port != default_port(scheme.empty() ? "http" : scheme)) {
        out += ':';
        out += std::to_string(port);
    }
    return out;
}

std::string_view request_target::path() const {
    std::string_view p = path_and_query;
    return p.substr(0, p.find('?'));
}

bool parse_authority(std::string_view text, std::uint16_t default_port_value, bool require_port,
                     std::string& host, std::uint16_t& port) {
    auto r = urls::parse_authority(text);
    if (!r)
        return false;
    return take_host_port(*r, default_port_value, require_port, host, port);
}

std::variant<request_target, target_error> parse_request_target(std::string_view method,
                                                                std::string_view target,
                                                                std::string_view host_header) {
    request_target t;
    if (target.find('#') != std::string_view::npos) {
        return target_error{"fragment in request target"};
    }
    if (method == "CONNECT") {
        t.kind = request_target::form::authority;
        t.scheme = "https";
        if (!parse_authority(target, 443, true, t.host, t.port)) {
            return target_error{"CONNECT needs host:port"};
        }
        return t;
    }
    if (!target.empty() && target.front() != '/' && target != "*") {
        if (const auto* m = memos.find(target)) {
            // The same prefix parsed whole before: only the rest (empty, or path-abempty and
            // query from its '/') is new, and is valid origin-form exactly when it is valid as
            // the rest of the absolute-form target.
            const std::string_view rest = target.substr(m->prefix.size());
            if (!rest.empty() && !valid_origin_form(rest))
                return target_error{"malformed absolute-form target"};
            const std::string_view authority =
                std::string_view(m->prefix).substr(m->scheme_end + 3);
            if (!host_acceptable(host_header, authority))
                return target_error{"invalid Host header"};
            t.kind = request_target::form::absolute;
            t.scheme = m->scheme;
            t.host = m->host;
            t.port = m->port;
            t.path_and_query = rest.empty() ? std::string_view("/") : rest;
            return t;
        }
        auto r = urls::parse_absolute_uri(target);
        if (!r)
            return target_error{"malformed absolute-form target"};
        const urls::url_view& u = *r;
        if (u.scheme_id() == urls::scheme::http) {
            t.scheme = "http";
        } else if (u.scheme_id() == urls::scheme::https) {
            t.scheme = "https";
        } else {
            return target_error{"unsupported scheme"};
        }
        if (u.has_userinfo())
            return target_error{"userinfo in request target"};
        if (!u.has_authority())
            return target_error{"no authority in request target"};
        if (!take_host_port(u, default_port(t.scheme), false, t.host, t.port)) {
            return target_error{"invalid authority in request target"};
        }
        if (!host_acceptable(host_header, u.encoded_authority()))
            return target_error{"invalid Host header"};
        t.kind = request_target::form::absolute;
        std::string_view path = u.encoded_path();
        // Boost.URL ends an IPv4 host at its last octet: "http://127.0.0.1.:8080/" or
        // "http://1.2.3.4x/" leave the rest as a rootless path, with the port silently lost.
        // After an authority a path is empty or starts with '/' (RFC 3986 §3.3).
        if (!path.empty() && path.front() != '/')
            return target_error{"invalid authority in request target"};
        t.path_and_query = path.empty() ? "/" : std::string(path);
        if (u.has_query()) {
            t.path_and_query += '?';
            t.path_and_query += u.encoded_query();
        }
        // Remembered when the authority is followed by a path from '/' or by nothing: the only
        // rests a later target's origin-form parse is equivalent for.
        const std::string_view authority = u.encoded_authority();
        const auto prefix_end =
            static_cast<std::size_t>(authority.data() + authority.size() - target.data());
        const std::string_view rest = target.substr(prefix_end);
        if (rest.empty() || rest.front() == '/')
            memos.remember(target.substr(0, prefix_end), u.scheme().size(), t);
        return t;
    }
    t.scheme = "http";
    if (target == "*") {
        if (method != "OPTIONS")
            return target_error{"asterisk-form is only for OPTIONS"};
        t.kind = request_target::form::asterisk;
        t.path_and_query = "*";
    } else {
        auto r = urls::parse_origin_form(target);
        if (!r)
            return target_error{"malformed origin-form target"};
        t.kind = request_target::form::origin;
        t.path_and_query = std::string(target);
    }
    if (host_header.empty())
        return target_error{"missing Host header"};
    if (!parse_authority(host_header, 80, false, t.host, t.port)) {
        return target_error{"invalid Host header"};
    }
    return t;
}

}  // namespace sluice::http
