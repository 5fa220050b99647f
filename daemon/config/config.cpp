// Loads sluice's YAML configuration (DESIGN §4) onto the structs of config.hpp: substitution,
// type checks, bounds and cross-key rules, collecting every error with its position.
#include "config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <sstream>
#include <system_error>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

namespace sluice::config {
namespace {

/// Longest accepted duration. Far beyond any sensible timeout, and small enough that
/// `now + d` never overflows a clock anywhere in the daemon.
constexpr duration max_duration = std::chrono::hours{24 * 365};
// An access line older than this in a buffer is not a log any more.
constexpr duration max_access_log_flush_interval = std::chrono::minutes{1};
/// Largest file a `${file:PATH}` substitution reads: secrets are small, /dev/zero is not.
constexpr std::size_t max_substituted_file = 1024 * 1024;
/// Largest configuration file read, for the same reason.
constexpr std::size_t max_config_file = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Small text helpers.

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string quoted(std::string_view s) {
    return "'" + std::string(s) + "'";
}

bool is_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// RFC 9110 §5.6.2 `tchar`: what a header name is made of.
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_header_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

/// Field values may hold visible characters, spaces and tabs, never CR, LF, NUL or other
/// controls (RFC 9110 §5.5): a newline from a substituted file would split the request.
bool is_header_value(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\t') || u == 0x7f;
    });
}

std::string format_duration(duration d) {
    const auto ms = d.count();
    if (ms != 0 && ms % 3'600'000 == 0)
        return std::to_string(ms / 3'600'000) + "h";
    if (ms != 0 && ms % 60'000 == 0)
        return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0)
        return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

/// Levenshtein distance, for "did you mean" hints on unknown keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// Reads a whole file; on failure returns nullopt and says why in `why`.
std::optional<std::string> read_whole_file(const std::string& path, std::size_t max_bytes,
                                           std::string& why) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                         &std::fclose);
    if (!file) {
        why = std::error_code(errno, std::generic_category()).message();
        return std::nullopt;
    }
    std::string text;
    char buffer[8192];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
        text.append(buffer, n);
        if (text.size() > max_bytes) {
            why = "larger than " + std::to_string(max_bytes / (1024 * 1024)) + " MiB";
            return std::nullopt;
        }
    }
    if (std::ferror(file.get())) {
        why = std::error_code(errno, std::generic_category()).message();
        return std::nullopt;
    }
    return text;
}

// ---------------------------------------------------------------------------------------------
// Substitution: `${env:NAME}`, `${file:PATH}`, `$${` for a literal `${`.

/// Expands the substitutions of one scalar. Every failing substitution adds a reason to
/// `problems`; the result is meaningful only when none was added. The substituted text is not
/// scanned again, so a secret containing `${` stays as it is.
std::string substitute(std::string_view in, std::vector<std::string>& problems) {
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        if (in.substr(i, 3) == "$${") {
            out += "${";
            i += 3;
            continue;
        }
        if (in.substr(i, 2) != "${") {
            out += in[i++];
            continue;
        }
        const std::size_t close = in.find('}', i + 2);
        if (close == std::string_view::npos) {
            problems.push_back("unterminated ${ (write $${ for a literal ${)");
            return out;
        }
        const std::string_view body = in.substr(i + 2, close - i - 2);
        i = close + 1;
        if (body.starts_with("env:")) {
            const std::string name(body.substr(4));
            if (name.empty()) {
                problems.push_back("${env:} needs a variable name");
            } else if (const char* value = std::getenv(name.c_str())) {
                out += value;
            } else {
                problems.push_back("environment variable " + name + " is not set");
            }
        } else if (body.starts_with("file:")) {
            const std::string path(body.substr(5));
            std::string why;
            if (path.empty()) {
                problems.push_back("${file:} needs a path");
            } else if (auto text = read_whole_file(path, max_substituted_file, why)) {
                // Secret files usually end with a newline that must not reach a header value.
                while (!text->empty() && std::string_view(" \t\r\n\v\f").find(text->back()) !=
                                             std::string_view::npos) {
                    text->pop_back();
                }
                out += *text;
            } else {
                problems.push_back("cannot read file " + path + ": " + why);
            }
        } else {
            problems.push_back("unknown substitution ${" + std::string(body) +
                               "}: expected ${env:NAME} or ${file:PATH} (write $${ for a "
                               "literal ${)");
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Addresses, hosts and origins.

bool parse_ipv4(std::string_view text, std::array<std::uint8_t, 16>& bytes) {
    if (text.size() > 15)
        return false;
    const std::string s(text);
    // glibc's inet_pton takes exactly four decimal parts without leading zeros, which is the
    // unambiguous form we want (no "010" octal surprises).
    return ::inet_pton(AF_INET, s.c_str(), bytes.data()) == 1;
}

bool parse_ipv6(std::string_view text, std::array<std::uint8_t, 16>& bytes) {
    if (text.size() > 45)
        return false;
    const std::string s(text);
    return ::inet_pton(AF_INET6, s.c_str(), bytes.data()) == 1;
}

/// The canonical RFC 5952 text of an IPv6 address, so that equal addresses compare equal.
std::string format_ipv6(const std::array<std::uint8_t, 16>& bytes) {
    char buffer[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, bytes.data(), buffer, sizeof buffer);
    return buffer;
}

std::string format_ipv4(const std::array<std::uint8_t, 16>& bytes) {
    char buffer[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, bytes.data(), buffer, sizeof buffer);
    return buffer;
}

/// A lowercase DNS name (or IPv4 literal): labels of [a-z0-9_-], none empty. Underscores are
/// allowed because real service names carry them.
bool is_dns_name(std::string_view s) {
    if (s.empty() || s.size() > 253)
        return false;
    std::size_t label = 0;
    for (char c : s) {
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return false;
        }
        if (++label > 63)
            return false;
    }
    return label != 0;
}

/// Parses a port; `min` is 0 for listeners (ephemeral) and 1 for destinations.
bool parse_port(std::string_view text, unsigned min, std::uint16_t& port, std::string& why) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!is_digits(text) || ec != std::errc{} || end != text.data() + text.size() || value < min ||
        value > 65535) {
        why = "port must be a number between " + std::to_string(min) + " and 65535, got " +
              quoted(text);
        return false;
    }
    port = static_cast<std::uint16_t>(value);
    return true;
}

/// Splits `host:port` / `[v6]:port` / `host` / `[v6]`. `host` keeps no brackets; `bracketed`
/// tells whether it had them. Returns false with a reason on malformed brackets or bare IPv6.
bool split_host_port(std::string_view text, std::string_view& host, bool& bracketed,
                     std::optional<std::string_view>& port, std::string& why) {
    bracketed = false;
    port.reset();
    if (text.starts_with('[')) {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            why = "missing ']' after the IPv6 address";
            return false;
        }
        host = text.substr(1, close - 1);
        bracketed = true;
        const std::string_view rest = text.substr(close + 1);
        if (rest.empty())
            return true;
        if (rest[0] != ':') {
            why = "expected ':port' after ']'";
            return false;
        }
        port = rest.substr(1);
        return true;
    }
    const std::size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
        why = "an IPv6 address must be in brackets, as in [2001:db8::1]:443";
        return false;
    }
    host = text.substr(0, colon);
    if (colon != std::string_view::npos)
        port = text.substr(colon + 1);
    return true;
}

std::optional<endpoint> parse_endpoint(std::string_view text, std::string& why) {
    std::string_view host;
    bool bracketed = false;
    std::optional<std::string_view> port_text;
    if (!split_host_port(text, host, bracketed, port_text, why))
        return std::nullopt;
    if (!port_text) {
        why = "expected IP:port or [IPv6]:port, as in 127.0.0.1:3128 or [::1]:3128";
        return std::nullopt;
    }
    endpoint out;
    std::array<std::uint8_t, 16> bytes{};
    if (bracketed) {
        if (!parse_ipv6(host, bytes)) {
            why = "invalid IPv6 address " + quoted(host);
            return std::nullopt;
        }
        out.host = format_ipv6(bytes);
    } else if (lowercase(host) == "localhost") {
        // Resolving names is not the loader's business; localhost is the one name everybody
        // writes, and it means loopback.
        out.host = "127.0.0.1";
    } else if (parse_ipv4(host, bytes)) {
        out.host = std::string(host);
    } else {
        why = "host must be an IP address or localhost (use 0.0.0.0 for every interface), got " +
              quoted(host);
        return std::nullopt;
    }
    if (!parse_port(*port_text, 0, out.port, why))
        return std::nullopt;
    return out;
}

std::optional<cidr> parse_cidr(std::string_view text, std::string& why) {
    const std::size_t slash = text.find('/');
    const std::string_view address = text.substr(0, slash);
    cidr out;
    out.v6 = address.find(':') != std::string_view::npos;
    if (!(out.v6 ? parse_ipv6(address, out.address) : parse_ipv4(address, out.address))) {
        why = "invalid IP address " + quoted(address) + " (expected e.g. 10.0.0.0/8 or fd00::/8)";
        return std::nullopt;
    }
    const unsigned bits = out.v6 ? 128 : 32;
    out.prefix = bits;
    if (slash != std::string_view::npos) {
        const std::string_view prefix = text.substr(slash + 1);
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), value);
        if (!is_digits(prefix) || ec != std::errc{} || end != prefix.data() + prefix.size() ||
            value > bits) {
            why = "prefix length must be between 0 and " + std::to_string(bits) + ", got " +
                  quoted(prefix);
            return std::nullopt;
        }
        out.prefix = value;
    }
    // A network with host bits set is usually a typo for a different network; saying so is
    // safer than silently widening or narrowing what passthrough may reach.
    std::array<std::uint8_t, 16> network = out.address;
    for (unsigned bit = out.prefix; bit < bits; ++bit) {
        network[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    }
    const std::string canonical =
        (out.v6 ? format_ipv6(network) : format_ipv4(network)) + "/" + std::to_string(out.prefix);
    if (network != out.address) {
        why = "host bits are set; the network is " + canonical;
        return std::nullopt;
    }
    out.text = canonical;
    return out;
}

std::optional<host_pattern> parse_host_pattern(std::string_view text, std::string& why) {
    const std::string lower = lowercase(text);
    if (lower.find('/') != std::string::npos) {
        why =
            "expected host[:port] (api.example.com, *.example.com, [2001:db8::1]:8443), not a "
            "URL";
        return std::nullopt;
    }
    std::string_view host;
    bool bracketed = false;
    std::optional<std::string_view> port_text;
    if (!split_host_port(lower, host, bracketed, port_text, why))
        return std::nullopt;

    host_pattern out;
    if (port_text) {
        std::uint16_t port = 0;
        if (!parse_port(*port_text, 1, port, why))
            return std::nullopt;
        out.port = port;
    }
    if (bracketed) {
        std::array<std::uint8_t, 16> bytes{};
        if (!parse_ipv6(host, bytes)) {
            why = "invalid IPv6 address " + quoted(host);
            return std::nullopt;
        }
        out.host = format_ipv6(bytes);
        return out;
    }
    if (host == "*") {
        why = "a bare * would match every host: use unknown_hosts: passthrough instead";
        return std::nullopt;
    }
    if (host.starts_with("*.")) {
        out.wildcard = true;
        host.remove_prefix(1);  // keep the dot: ".example.com" is the suffix to match
    }
    if (host.find('*') != std::string_view::npos) {
        why = "a wildcard must be the whole first label, as in *.example.com";
        return std::nullopt;
    }
    if (!is_dns_name(out.wildcard ? host.substr(1) : host)) {
        why = "invalid host name " + quoted(text);
        return std::nullopt;
    }
    out.host = std::string(host);
    return out;
}

std::string endpoint_text(const endpoint& e) {
    return (e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host) + ":" +
           std::to_string(e.port);
}

/// The text form of a host pattern, for messages.
std::string pattern_text(const host_pattern& p) {
    std::string s = p.wildcard                              ? "*" + p.host
                    : p.host.find(':') != std::string::npos ? "[" + p.host + "]"
                                                            : p.host;
    if (p.port)
        s += ":" + std::to_string(*p.port);
    return s;
}

std::optional<origin> parse_origin(std::string_view text, std::string& why) {
    const std::size_t separator = text.find("://");
    if (separator == std::string_view::npos) {
        why = "expected http://host[:port] or https://host[:port]";
        return std::nullopt;
    }
    origin out;
    out.scheme = lowercase(text.substr(0, separator));
    if (out.scheme != "http" && out.scheme != "https") {
        why = "scheme must be http or https, got " + quoted(text.substr(0, separator));
        return std::nullopt;
    }
    std::string_view rest = text.substr(separator + 3);
    if (rest.find('#') != std::string_view::npos) {
        why = "an origin has no fragment";
        return std::nullopt;
    }
    if (rest.find('?') != std::string_view::npos) {
        why = "an origin has no query";
        return std::nullopt;
    }
    const std::size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
        if (rest.substr(slash) != "/") {
            why =
                "an origin has no path (requests keep their own path): expected "
                "scheme://host[:port]";
            return std::nullopt;
        }
        rest = rest.substr(0, slash);
    }
    if (rest.find('@') != std::string_view::npos) {
        why = "an origin has no user:password@ part; send credentials with set_headers";
        return std::nullopt;
    }
    const std::string lower = lowercase(rest);
    std::string_view host;
    bool bracketed = false;
    std::optional<std::string_view> port_text;
    if (!split_host_port(lower, host, bracketed, port_text, why))
        return std::nullopt;
    if (host.empty()) {
        why = "missing host";
        return std::nullopt;
    }
    if (bracketed) {
        std::array<std::uint8_t, 16> bytes{};
        if (!parse_ipv6(host, bytes)) {
            why = "invalid IPv6 address " + quoted(host);
            return std::nullopt;
        }
        out.host = format_ipv6(bytes);
    } else if (!is_dns_name(host)) {
        why = "invalid host name " + quoted(host);
        return std::nullopt;
    } else {
        out.host = std::string(host);
    }
    out.port = out.tls() ? 443 : 80;
    if (port_text && !parse_port(*port_text, 1, out.port, why))
        return std::nullopt;
    return out;
}

// ---------------------------------------------------------------------------------------------
// The loader: walks the YAML tree with the key path of every node and collects errors.

/// A YAML value together with what an error message needs to name it.
struct field {
    YAML::Node node;
    std::string path;     ///< key path, e.g. "defaults.retry.jitter"
    YAML::Mark key_mark;  ///< where its key (or list item) starts
};

std::string child_path(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string item_path(const std::string& parent, std::size_t index) {
    return parent + "[" + std::to_string(index) + "]";
}

position to_position(const YAML::Mark& mark) {
    if (mark.is_null() || mark.line < 0 || mark.column < 0)
        return {};
    return {mark.line + 1, mark.column + 1};
}

std::string kind_of(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return "an empty value";
        case YAML::NodeType::Scalar:
            return "a scalar";
        case YAML::NodeType::Sequence:
            return "a sequence";
        case YAML::NodeType::Map:
            return "a mapping";
        default:
            return "nothing";
    }
}

using key_list = std::vector<std::string_view>;

const key_list policy_sections{"rate_limit", "queue", "retry", "circuit_breaker",
                               "timeouts",   "pool",  "tls"};

key_list upstream_keys() {
    key_list keys{"name", "hosts", "origin", "set_headers"};
    keys.insert(keys.end(), policy_sections.begin(), policy_sections.end());
    return keys;
}

/// Headers sluice itself manages (framing, hop-by-hop, routing, loop detection): a configured
/// value would be overwritten, or worse, break the message.
bool is_managed_header(std::string_view lower_name) {
    static const key_list managed{
        "host",    "connection",        "keep-alive",     "proxy-connection",    "te", "trailer",
        "upgrade", "transfer-encoding", "content-length", "proxy-authorization", "via"};
    return std::find(managed.begin(), managed.end(), lower_name) != managed.end();
}

/// Records where a YAML document's root starts and whether it is empty, without building a tree.
class document_probe final : public YAML::EventHandler {
  public:
    bool empty_root() const { return empty_; }
    YAML::Mark root_mark() const { return mark_; }

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { root(mark, true); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { root(mark, false); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
        root(mark, false);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        root(mark, false);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
        root(mark, false);
    }
    void OnMapEnd() override {}

  private:
    void root(const YAML::Mark& mark, bool empty) {
        if (seen_)
            return;
        seen_ = true;
        empty_ = empty;
        mark_ = mark;
    }

    bool seen_ = false;
    bool empty_ = true;
    YAML::Mark mark_ = YAML::Mark::null_mark();
};

/// One load of one text: parses, substitutes and validates it into a config, collecting every
/// error rather than stopping at the first, so that one --check-config run shows them all.
class loader {
  public:
    explicit loader(std::string source) : source_(std::move(source)) {}

    load_result run(std::string_view yaml) {
        yaml_ = yaml;
        auto cfg = std::make_shared<config>();
        cfg->source = source_;
        try {
            std::optional<YAML::Node> root;
            try {
                if (!single_document(yaml))
                    return finish(nullptr);
                root.emplace(YAML::Load(std::string(yaml)));
            } catch (const YAML::Exception& e) {
                errors_.push_back({source_, to_position(e.mark), "", e.msg});
                return finish(nullptr);
            }
            parse_top(field{*root, "", root->Mark()}, *cfg);
        } catch (const std::exception& e) {
            // Nothing above is expected to throw but allocation; the contract is "never throws".
            errors_.push_back({source_, {}, "", std::string("internal error: ") + e.what()});
        }
        return finish(std::move(cfg));
    }

    load_result fail_file(std::string reason) {
        errors_.push_back({source_, {}, "", std::move(reason)});
        return finish(nullptr);
    }

  private:
    /// Checks that the text holds at most one non-empty YAML document, reporting otherwise.
    /// Walks the documents with a bounded loop of its own because yaml-cpp 0.7 never consumes a
    /// stray top-level `,`: YAML::LoadAll then loops forever while allocating, and YAML::Load
    /// silently ignores everything from the comma on (jbeder/yaml-cpp#1040, fixed after 0.7).
    /// Throws YAML::Exception on syntax errors.
    bool single_document(std::string_view yaml) {
        std::istringstream stream{std::string(yaml)};
        YAML::Parser parser(stream);
        std::optional<YAML::Mark> previous_empty;
        for (int document = 0;; ++document) {
            document_probe probe;
            if (!parser.HandleNextDocument(probe))
                return true;
            const YAML::Mark mark = probe.root_mark();
            if (probe.empty_root() && previous_empty && previous_empty->pos == mark.pos) {
                // No progress since the last document: the parser is stuck on this token.
                const auto at = static_cast<std::size_t>(mark.pos);
                fail_at(mark, "",
                        at < yaml.size() ? "unexpected " + quoted(yaml.substr(at, 1))
                                         : std::string("unexpected end of input"));
                return false;
            }
            if (document > 0 && !probe.empty_root()) {
                fail_at(mark, "", "a configuration file holds one YAML document, found a second");
                return false;
            }
            if (document > 1000) {
                fail_at(mark, "", "too many empty YAML documents");
                return false;
            }
            previous_empty = probe.empty_root() ? std::optional(mark) : std::nullopt;
        }
    }

    load_result finish(std::shared_ptr<config> cfg) {
        // Reading order is the most useful order for a person fixing the file.
        std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
            return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
        });
        load_result result;
        if (errors_.empty())
            result.value = std::move(cfg);
        result.errors = std::move(errors_);
        return result;
    }

    // --- errors ---------------------------------------------------------------------------

    void fail_at(const YAML::Mark& mark, const std::string& path, std::string reason) {
        errors_.push_back({source_, to_position(mark), path, std::move(reason)});
    }

    /// An empty value has no position of its own worth showing (yaml-cpp puts it at the next
    /// token), so its key's position is used.
    void fail(const field& f, std::string reason) {
        fail_at(f.node.IsNull() ? f.key_mark : f.node.Mark(), f.path, std::move(reason));
    }

    // --- structure ------------------------------------------------------------------------

    /// Calls `visit(key, field)` for every entry of a mapping, in file order, reporting
    /// non-string keys and duplicate keys. An empty value is an empty mapping.
    template <class Visit>
    void each_entry(const field& f, Visit&& visit) {
        if (f.node.IsNull())
            return;
        if (!f.node.IsMap()) {
            fail(f, "expected a mapping, got " + kind_of(f.node));
            return;
        }
        std::vector<std::pair<std::string, YAML::Mark>> seen;
        for (const auto& entry : f.node) {
            // Copies: yaml-cpp's iterators hand out temporaries, so references into
            // `it->first` would dangle.
            const YAML::Node key_node = entry.first;
            const YAML::Node value_node = entry.second;
            if (!key_node.IsScalar()) {
                fail_at(key_node.Mark(), f.path, "keys must be strings, got " + kind_of(key_node));
                continue;
            }
            const std::string key = key_node.Scalar();
            const field child{value_node, child_path(f.path, key), key_node.Mark()};
            const auto first = std::find_if(seen.begin(), seen.end(),
                                            [&](const auto& s) { return s.first == key; });
            if (first != seen.end()) {
                fail_at(
                    key_node.Mark(), child.path,
                    "duplicate key (first at line " + std::to_string(first->second.line + 1) + ")");
                continue;
            }
            seen.emplace_back(key, key_node.Mark());
            visit(key, child);
        }
    }

    /// each_entry restricted to `known` keys: any other key is an error, with a hint when it
    /// looks like a typo of a known one.
    template <class Visit>
    void each_key(const field& f, const key_list& known, Visit&& visit) {
        each_entry(f, [&](const std::string& key, const field& child) {
            if (std::find(known.begin(), known.end(), key) != known.end()) {
                visit(key, child);
                return;
            }
            std::string reason = "unknown key";
            // Suggest only close matches: one edit per three characters of the key.
            std::size_t best = std::max<std::size_t>(1, key.size() / 3) + 1;
            for (std::string_view candidate : known) {
                const std::size_t d = edit_distance(key, candidate);
                if (d < best) {
                    best = d;
                    reason = "unknown key (did you mean " + std::string(candidate) + "?)";
                }
            }
            fail_at(child.key_mark, child.path, reason);
        });
    }

    /// Calls `visit(item, index)` for every item of a sequence. An empty value is an empty
    /// sequence. Returns false when the value is not a sequence (already reported).
    template <class Visit>
    bool each_item(const field& f, Visit&& visit) {
        if (f.node.IsNull())
            return true;
        if (!f.node.IsSequence()) {
            fail(f, "expected a sequence, got " + kind_of(f.node));
            return false;
        }
        std::size_t index = 0;
        for (const auto& entry : f.node) {
            const YAML::Node item = entry;
            const YAML::Mark mark = item.IsNull() ? dash_before(item.Mark()) : item.Mark();
            visit(field{item, item_path(f.path, index), mark}, index);
            ++index;
        }
        return true;
    }

    /// yaml-cpp places an empty block sequence item (`-` alone on its line) at the next token,
    /// possibly lines later; the `-` itself is the useful position. Falls back to `mark` when
    /// the text before it is not just blanks after a dash (a comment, a flow sequence).
    YAML::Mark dash_before(const YAML::Mark& mark) const {
        if (mark.is_null() || mark.pos <= 0 || static_cast<std::size_t>(mark.pos) > yaml_.size()) {
            return mark;
        }
        std::size_t i = static_cast<std::size_t>(mark.pos);
        while (i > 0 && std::string_view(" \t\r\n").find(yaml_[i - 1]) != std::string_view::npos) {
            --i;
        }
        if (i == 0 || yaml_[i - 1] != '-')
            return mark;
        const std::size_t dash = i - 1;
        const std::size_t line_start = yaml_.rfind('\n', dash) + 1;  // npos + 1 == 0
        YAML::Mark out = mark;
        out.pos = static_cast<int>(dash);
        out.line = static_cast<int>(std::count(yaml_.begin(), yaml_.begin() + dash, '\n'));
        out.column = static_cast<int>(dash - line_start);
        return out;
    }

    // --- scalars --------------------------------------------------------------------------
    // Every read_* sets `out` only when the value is valid, so a bad value leaves the default
    // (or the inherited value) in place and the error is all that remains of it.

    /// The substituted text of a scalar; nullopt (reported) for anything else.
    std::optional<std::string> text(const field& f, std::string_view expected) {
        if (!f.node.IsScalar()) {
            fail(f, "expected " + std::string(expected) + ", got " + kind_of(f.node));
            return std::nullopt;
        }
        std::vector<std::string> problems;
        std::string value = substitute(f.node.Scalar(), problems);
        for (auto& problem : problems)
            fail(f, std::move(problem));
        if (!problems.empty())
            return std::nullopt;
        return value;
    }

    /// The value as written in the file, for messages: never the substituted text, which may
    /// be a secret.
    static std::string raw(const field& f) { return quoted(f.node.Scalar()); }

    /// Fails `f`, whose substituted text `value` a parser rejected with `why`. Parsers quote
    /// what they reject; when `value` came through `${env:…}` or `${file:…}` it may be a
    /// secret, so the message then names the value as written and what it should have been,
    /// never its text or a part of it.
    void fail_value(const field& f, const std::string& value, std::string why,
                    std::string_view expected) {
        if (value == f.node.Scalar()) {
            fail(f, std::move(why));
        } else {
            fail(f, "the substituted value of " + raw(f) + " is not " + std::string(expected) +
                        " (its text is not shown)");
        }
    }

    bool read_string(const field& f, std::string& out) {
        auto value = text(f, "a string");
        if (!value)
            return false;
        out = std::move(*value);
        return true;
    }

    bool read_bool(const field& f, bool& out) {
        auto value = text(f, "true or false");
        if (!value)
            return false;
        // YAML 1.2 booleans only: `yes`/`no`/`on`/`off` are YAML 1.1 traps.
        if (*value == "true" || *value == "True" || *value == "TRUE") {
            out = true;
        } else if (*value == "false" || *value == "False" || *value == "FALSE") {
            out = false;
        } else {
            fail(f, "expected true or false, got " + raw(f));
            return false;
        }
        return true;
    }

    template <class T>
    bool read_unsigned(const field& f, T& out, std::uint64_t min,
                       std::uint64_t max = std::numeric_limits<T>::max()) {
        auto value = text(f, "an integer");
        if (!value)
            return false;
        std::string_view digits = *value;
        const bool negative = digits.starts_with('-');
        if (negative || digits.starts_with('+'))
            digits.remove_prefix(1);
        if (!is_digits(digits)) {
            fail(f, "expected an integer, got " + raw(f));
            return false;
        }
        std::uint64_t number = 0;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), number);
        const bool too_small = ec == std::errc{} && ((negative && number != 0) || number < min);
        const bool too_large = !too_small && (ec != std::errc{} || number > max);
        if (too_small || too_large) {
            // A bound at the type's 32-bit limit is no real bound: "at least 1" reads better.
            const bool open_ended = max >= std::numeric_limits<std::uint32_t>::max();
            fail(f, (too_small && open_ended ? "must be at least " + std::to_string(min)
                                             : "must be between " + std::to_string(min) + " and " +
                                                   std::to_string(max)) +
                        ", got " + raw(f));
            return false;
        }
        out = static_cast<T>(number);
        return true;
    }

    /// Reads a finite number; `check` returns a reason when the value is out of bounds.
    bool read_double(const field& f, double& out,
                     const std::function<std::optional<std::string>(double)>& check) {
        auto value = text(f, "a number");
        if (!value)
            return false;
        double number = 0;
        const char* begin = value->data();
        const char* end = begin + value->size();
        const auto [stop, ec] = std::from_chars(begin, end, number);
        if (value->empty() || ec != std::errc{} || stop != end || !std::isfinite(number)) {
            fail(f, "expected a number, got " + raw(f));
            return false;
        }
        if (auto reason = check(number)) {
            fail(f, *reason + ", got " + raw(f));
            return false;
        }
        out = number;
        return true;
    }

    bool read_duration(const field& f, duration& out, bool positive) {
        auto value = text(f, "a duration");
        if (!value)
            return false;
        const auto parsed = parse_duration(*value);
        if (!parsed) {
            fail(f, "expected a duration with a unit (250ms, 1.5s, 2m, 1h), got " + raw(f));
            return false;
        }
        if (*parsed > max_duration) {
            fail(f, "must be at most " + format_duration(max_duration) + ", got " + raw(f));
            return false;
        }
        if (positive && parsed->count() == 0) {
            fail(f, "must be greater than 0");
            return false;
        }
        out = *parsed;
        return true;
    }

    bool read_size(const field& f, std::uint64_t& out, std::uint64_t min = 0,
                   std::string_view min_text = "") {
        auto value = text(f, "a size");
        if (!value)
            return false;
        const auto parsed = parse_size(*value);
        if (!parsed) {
            fail(f, "expected a size in bytes (512, 64KiB, 10MiB, 1GB), got " + raw(f));
            return false;
        }
        if (*parsed < min) {
            fail(f, "must be at least " + std::string(min_text) + ", got " + raw(f));
            return false;
        }
        out = *parsed;
        return true;
    }

    /// Reads one of `choices` (exact, lowercase) and returns it.
    std::optional<std::string_view> read_choice(const field& f, const key_list& choices) {
        auto value = text(f, "a string");
        if (!value)
            return std::nullopt;
        const auto it = std::find(choices.begin(), choices.end(), *value);
        if (it != choices.end())
            return *it;
        std::string expected;
        for (std::size_t i = 0; i < choices.size(); ++i) {
            expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ");
            expected += choices[i];
        }
        fail(f, "expected " + expected + ", got " + raw(f));
        return std::nullopt;
    }

    /// A list of codes (`429`) and classes (`5xx`); it replaces the inherited set whole.
    bool read_status_set(const field& f, status_set& out) {
        status_set set;
        bool ok = true;
        const bool listed = each_item(f, [&](const field& item, std::size_t) {
            auto value = text(item, "a status code");
            if (!value) {
                ok = false;
                return;
            }
            const std::string lower = lowercase(*value);
            if (lower.size() == 3 && lower[0] >= '1' && lower[0] <= '5' && lower[1] == 'x' &&
                lower[2] == 'x') {
                set.add_class(static_cast<unsigned>(lower[0] - '0'));
                return;
            }
            unsigned code = 0;
            const auto [end, ec] = std::from_chars(lower.data(), lower.data() + lower.size(), code);
            if (is_digits(lower) && ec == std::errc{} && end == lower.data() + lower.size() &&
                code >= 100 && code <= 599) {
                set.codes.set(code);
                return;
            }
            fail(item,
                 "expected a status code between 100 and 599 or a class 1xx-5xx, got " + raw(item));
            ok = false;
        });
        if (listed && ok)
            out = set;
        return listed && ok;
    }

    // --- policy sections ------------------------------------------------------------------
    // Each updates the struct it is given in place, touching only the keys present: that is the
    // deep merge of an upstream's sections over `defaults`.

    void parse_rate_limit(const field& f, rate_limit_policy& out) {
        each_key(f, {"enabled", "requests_per_minute", "burst_size"},
                 [&](const std::string& key, const field& v) {
                     if (key == "enabled") {
                         read_bool(v, out.enabled);
                     } else if (key == "requests_per_minute") {
                         read_double(v, out.requests_per_minute,
                                     [](double x) -> std::optional<std::string> {
                                         if (x > 0 && x <= 1e9)
                                             return std::nullopt;
                                         return "must be greater than 0 and at most 1e9";
                                     });
                     } else if (key == "burst_size") {
                         read_unsigned(v, out.burst_size, 1);
                     }
                 });
    }

    void parse_queue(const field& f, queue_policy& out) {
        each_key(f, {"max_size", "max_wait"}, [&](const std::string& key, const field& v) {
            if (key == "max_size") {
                read_unsigned(v, out.max_size, 0);
            } else if (key == "max_wait") {
                read_duration(v, out.max_wait, false);
            }
        });
    }

    void parse_retry(const field& f, retry_policy& out) {
        // Positions of the delay keys this section sets, for the cross-key check below.
        std::optional<field> initial_delay;
        std::optional<field> max_delay;
        bool delay_failed = false;
        each_key(f,
                 {"enabled", "max_retries", "initial_delay", "exponential_base", "max_delay",
                  "jitter", "retry_on_status", "retry_non_idempotent", "buffer_limit"},
                 [&](const std::string& key, const field& v) {
                     if (key == "enabled") {
                         read_bool(v, out.enabled);
                     } else if (key == "max_retries") {
                         read_unsigned(v, out.max_retries, 0, 100);
                     } else if (key == "initial_delay") {
                         if (read_duration(v, out.initial_delay, false)) {
                             initial_delay.emplace(v);
                         } else {
                             delay_failed = true;
                         }
                     } else if (key == "exponential_base") {
                         read_double(v, out.exponential_base,
                                     [](double x) -> std::optional<std::string> {
                                         if (x >= 1)
                                             return std::nullopt;
                                         return "must be at least 1";
                                     });
                     } else if (key == "max_delay") {
                         if (read_duration(v, out.max_delay, false)) {
                             max_delay.emplace(v);
                         } else {
                             delay_failed = true;
                         }
                     } else if (key == "jitter") {
                         read_double(v, out.jitter, [](double x) -> std::optional<std::string> {
                             if (x >= 0 && x <= 1)
                                 return std::nullopt;
                             return "must be between 0 and 1";
                         });
                     } else if (key == "retry_on_status") {
                         read_status_set(v, out.retry_on_status);
                     } else if (key == "retry_non_idempotent") {
                         read_bool(v, out.retry_non_idempotent);
                     } else if (key == "buffer_limit") {
                         read_size(v, out.buffer_limit);
                     }
                 });
        // Checked on the merged values, but only where this section set one of the two keys:
        // an inherited violation was already reported where it was written.
        if (delay_failed || (!initial_delay && !max_delay))
            return;
        if (out.initial_delay > out.max_delay) {
            fail(initial_delay ? *initial_delay : *max_delay,
                 "initial_delay (" + format_duration(out.initial_delay) +
                     ") must not be greater than max_delay (" + format_duration(out.max_delay) +
                     ")");
        }
    }

    void parse_circuit_breaker(const field& f, circuit_breaker_policy& out) {
        each_key(f,
                 {"enabled", "failure_threshold", "recovery_timeout", "half_open_max_requests",
                  "failure_status"},
                 [&](const std::string& key, const field& v) {
                     if (key == "enabled") {
                         read_bool(v, out.enabled);
                     } else if (key == "failure_threshold") {
                         read_unsigned(v, out.failure_threshold, 1);
                     } else if (key == "recovery_timeout") {
                         read_duration(v, out.recovery_timeout, true);
                     } else if (key == "half_open_max_requests") {
                         read_unsigned(v, out.half_open_max_requests, 1);
                     } else if (key == "failure_status") {
                         read_status_set(v, out.failure_status);
                     }
                 });
    }

    void parse_timeouts(const field& f, timeouts_policy& out) {
        each_key(f, {"connect", "request", "total"}, [&](const std::string& key, const field& v) {
            if (key == "connect") {
                read_duration(v, out.connect, true);
            } else if (key == "request") {
                read_duration(v, out.request, true);
            } else if (key == "total") {
                read_duration(v, out.total, true);
            }
        });
    }

    void parse_pool(const field& f, pool_policy& out) {
        each_key(f, {"max_connections", "idle_timeout", "max_connection_age"},
                 [&](const std::string& key, const field& v) {
                     if (key == "max_connections") {
                         read_unsigned(v, out.max_connections, 1);
                     } else if (key == "idle_timeout") {
                         read_duration(v, out.idle_timeout, true);
                     } else if (key == "max_connection_age") {
                         read_duration(v, out.max_connection_age, true);
                     }
                 });
    }

    void parse_tls(const field& f, tls_policy& out) {
        std::optional<field> cert_file;
        std::optional<field> key_file;
        bool pair_failed = false;
        each_key(f, {"verify", "ca_file", "cert_file", "key_file", "min_version"},
                 [&](const std::string& key, const field& v) {
                     if (key == "verify") {
                         read_bool(v, out.verify);
                     } else if (key == "ca_file") {
                         read_string(v, out.ca_file);
                     } else if (key == "cert_file") {
                         if (read_string(v, out.cert_file)) {
                             cert_file.emplace(v);
                         } else {
                             pair_failed = true;
                         }
                     } else if (key == "key_file") {
                         if (read_string(v, out.key_file)) {
                             key_file.emplace(v);
                         } else {
                             pair_failed = true;
                         }
                     } else if (key == "min_version") {
                         if (auto version = read_choice(v, {"1.2", "1.3"})) {
                             out.min_version = std::string(*version);
                         }
                     }
                 });
        // Same rule as the retry delays: merged values, reported where this section wrote one.
        if (pair_failed || (!cert_file && !key_file))
            return;
        if (out.cert_file.empty() != out.key_file.empty()) {
            fail(cert_file ? *cert_file : *key_file,
                 out.cert_file.empty() ? "key_file is set but cert_file is empty: set both for "
                                         "mTLS, or neither"
                                       : "cert_file is set but key_file is empty: set both for "
                                         "mTLS, or neither");
        }
    }

    /// Parses one policy section by name into `out`; false when `key` is not one.
    bool parse_policy_section(const std::string& key, const field& v, policy& out) {
        if (key == "rate_limit") {
            parse_rate_limit(v, out.rate_limit);
        } else if (key == "queue") {
            parse_queue(v, out.queue);
        } else if (key == "retry") {
            parse_retry(v, out.retry);
        } else if (key == "circuit_breaker") {
            parse_circuit_breaker(v, out.circuit_breaker);
        } else if (key == "timeouts") {
            parse_timeouts(v, out.timeouts);
        } else if (key == "pool") {
            parse_pool(v, out.pool);
        } else if (key == "tls") {
            parse_tls(v, out.tls);
        } else {
            return false;
        }
        return true;
    }

    // --- top-level sections ---------------------------------------------------------------

    void parse_log(const field& f, log_config& out) {
        each_key(
            f, {"level", "format", "access_log", "access_log_flush_interval", "redact_headers"},
            [&](const std::string& key, const field& v) {
                if (key == "level") {
                    if (auto level = read_choice(
                            v, {"trace", "debug", "info", "warn", "error", "critical", "off"})) {
                        out.level = std::string(*level);
                    }
                } else if (key == "format") {
                    if (auto format = read_choice(v, {"text", "json"})) {
                        out.format = *format == "text" ? log_format::text : log_format::json;
                    }
                } else if (key == "access_log") {
                    read_bool(v, out.access_log);
                } else if (key == "access_log_flush_interval") {
                    duration d{};
                    if (read_duration(v, d, false)) {
                        if (d > max_access_log_flush_interval)
                            fail(v, "must be at most 1m, got " + raw(v));
                        else
                            out.access_log_flush_interval = d;
                    }
                } else if (key == "redact_headers") {
                    std::vector<std::string> names;
                    bool ok = true;
                    const bool listed = each_item(v, [&](const field& item, std::size_t) {
                        std::string name;
                        if (!read_string(item, name)) {
                            ok = false;
                        } else if (!is_header_name(name)) {
                            fail(item, "expected a header name, got " + raw(item));
                            ok = false;
                        } else {
                            names.push_back(lowercase(name));
                        }
                    });
                    if (listed && ok)
                        out.redact_headers = std::move(names);
                }
            });
    }

    void parse_limits(const field& f, limits_config& out) {
        each_key(f,
                 {"max_client_connections", "header_read_timeout", "client_idle_timeout",
                  "max_header_bytes", "max_request_body"},
                 [&](const std::string& key, const field& v) {
                     if (key == "max_client_connections") {
                         read_unsigned(v, out.max_client_connections, 1);
                     } else if (key == "header_read_timeout") {
                         read_duration(v, out.header_read_timeout, true);
                     } else if (key == "client_idle_timeout") {
                         read_duration(v, out.client_idle_timeout, true);
                     } else if (key == "max_header_bytes") {
                         // Below 1 KiB even an ordinary request head from curl does not fit;
                         // above 64 KiB one field line could outgrow what Beast holds.
                         if (read_size(v, out.max_header_bytes, 1024, "1KiB") &&
                             out.max_header_bytes > 64 * 1024) {
                             fail(v, "must be at most 64KiB, got " + raw(v));
                         }
                     } else if (key == "max_request_body") {
                         read_size(v, out.max_request_body);
                     }
                 });
    }

    bool read_endpoint(const field& f, endpoint& out) {
        auto value = text(f, "an address");
        if (!value)
            return false;
        std::string why;
        auto parsed = parse_endpoint(*value, why);
        if (!parsed) {
            fail_value(f, *value, std::move(why), "an IP:port address");
            return false;
        }
        out = std::move(*parsed);
        return true;
    }

    /// Where each host pattern was claimed, to report the same host in two places.
    struct host_claim {
        host_pattern pattern;
        std::string upstream;  ///< name, or "upstreams[i]" when the name is missing
        int line = 0;
    };

    void parse_upstream(const field& item, std::size_t index, const policy& defaults,
                        std::vector<upstream>& out, std::vector<host_claim>& claims) {
        if (!item.node.IsMap()) {
            fail(item, "expected a mapping with name, hosts and origin, got " + kind_of(item.node));
            return;
        }
        upstream u;
        u.policy = defaults;  // the deep merge starts from a copy of the parsed defaults
        u.pos = to_position(item.node.Mark());
        bool has_name = false;
        bool has_hosts = false;
        bool has_origin = false;
        std::vector<std::pair<host_pattern, field>> hosts;

        each_key(item, upstream_keys(), [&](const std::string& key, const field& v) {
            if (key == "name") {
                has_name = true;
                std::string name;
                if (!read_string(v, name))
                    return;
                if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                               c == '.' || c == '-';
                    })) {
                    fail(v, "must match [a-z0-9_.-]+, got " + raw(v));
                } else if (name == "passthrough" || name == "unrouted") {
                    // These label values have a fixed meaning in the metrics (DESIGN §6).
                    fail(v, raw(v) + " is reserved");
                } else {
                    for (const auto& other : out) {
                        if (other.name == name) {
                            fail(v, "duplicate upstream name " + raw(v) + " (first at line " +
                                        std::to_string(other.pos.line) + ")");
                            return;
                        }
                    }
                    u.name = std::move(name);
                }
            } else if (key == "hosts") {
                has_hosts = true;
                each_item(v, [&](const field& entry, std::size_t) {
                    auto value = text(entry, "a host");
                    if (!value)
                        return;
                    std::string why;
                    if (auto pattern = parse_host_pattern(*value, why)) {
                        hosts.emplace_back(std::move(*pattern), entry);
                    } else {
                        fail_value(entry, *value, std::move(why), "a host name or pattern");
                    }
                });
                if ((v.node.IsNull() || (v.node.IsSequence() && v.node.size() == 0))) {
                    fail(v, "must list at least one host");
                }
            } else if (key == "origin") {
                has_origin = true;
                auto value = text(v, "an origin URL");
                if (!value)
                    return;
                std::string why;
                if (auto parsed = parse_origin(*value, why)) {
                    u.origin = std::move(*parsed);
                } else {
                    fail_value(v, *value, std::move(why), "an http:// or https:// origin");
                }
            } else if (key == "set_headers") {
                parse_set_headers(v, u.set_headers);
            } else {
                parse_policy_section(key, v, u.policy);
            }
        });

        const auto missing = [&](bool present, std::string_view key) {
            if (!present)
                fail_at(item.node.Mark(), child_path(item.path, key), "missing required key");
        };
        missing(has_name, "name");
        missing(has_hosts, "hosts");
        missing(has_origin, "origin");

        const std::string label = u.name.empty() ? item_path("upstreams", index) : quoted(u.name);
        for (auto& host : hosts) {
            // Not a structured binding: clang 14 (the fuzz build) cannot capture one.
            auto& pattern = host.first;
            auto& entry = host.second;
            const auto claimed =
                std::find_if(claims.begin(), claims.end(),
                             [&](const host_claim& c) { return c.pattern == pattern; });
            if (claimed != claims.end()) {
                fail(entry, "host " + pattern_text(pattern) + " is already routed to upstream " +
                                claimed->upstream + " (line " + std::to_string(claimed->line) +
                                ")");
                continue;
            }
            claims.push_back({pattern, label, to_position(entry.node.Mark()).line});
            u.hosts.push_back(std::move(pattern));
        }
        out.push_back(std::move(u));
    }

    void parse_set_headers(const field& f, std::vector<std::pair<std::string, std::string>>& out) {
        each_entry(f, [&](const std::string& name, const field& v) {
            const std::string lower = lowercase(name);
            if (!is_header_name(name)) {
                fail_at(v.key_mark, v.path, "invalid header name " + quoted(name));
                return;
            }
            if (is_managed_header(lower)) {
                fail_at(v.key_mark, v.path, "sluice manages the " + name + " header itself");
                return;
            }
            for (const auto& [existing, _] : out) {
                if (lowercase(existing) == lower) {
                    // Header names are case-insensitive, so Authorization and authorization
                    // would silently fight over one header.
                    fail_at(v.key_mark, v.path, "header " + quoted(name) + " is set twice");
                    return;
                }
            }
            std::string value;
            if (!read_string(v, value))
                return;
            if (!is_header_value(value)) {
                // The value is probably a secret: name the problem, never the text.
                fail(v, "header value contains a control character (CR, LF, NUL, ...)");
                return;
            }
            out.emplace_back(name, std::move(value));
        });
    }

    void parse_top(const field& root, config& cfg) {
        if (!root.node.IsNull() && !root.node.IsMap()) {
            fail(root, "the configuration must be a mapping of keys, got " + kind_of(root.node));
            return;
        }
        std::optional<field> upstreams;
        std::optional<field> listen;
        std::optional<field> admin_listen;
        each_key(
            root,
            {"listen", "admin_listen", "threads", "drain_timeout", "unknown_hosts",
             "max_dynamic_upstreams", "allow_cidrs", "client_cidrs", "proxy_auth", "connect_ports",
             "via", "via_id", "log", "limits", "defaults", "upstreams"},
            [&](const std::string& key, const field& v) {
                if (key == "listen") {
                    if (read_endpoint(v, cfg.listen))
                        listen.emplace(v);
                } else if (key == "admin_listen") {
                    if (read_endpoint(v, cfg.admin_listen))
                        admin_listen.emplace(v);
                } else if (key == "threads") {
                    read_unsigned(v, cfg.threads, 0, 1024);
                } else if (key == "drain_timeout") {
                    read_duration(v, cfg.drain_timeout, false);
                } else if (key == "unknown_hosts") {
                    if (auto mode = read_choice(v, {"reject", "passthrough"})) {
                        cfg.unknown_hosts = *mode == "reject" ? unknown_hosts_mode::reject
                                                              : unknown_hosts_mode::passthrough;
                    }
                } else if (key == "max_dynamic_upstreams") {
                    read_unsigned(v, cfg.max_dynamic_upstreams, 1);
                } else if (key == "allow_cidrs") {
                    parse_allow_cidrs(v, cfg.allow_cidrs);
                } else if (key == "client_cidrs") {
                    std::vector<cidr> cidrs;
                    if (parse_allow_cidrs(v, cidrs))
                        cfg.client_cidrs = std::move(cidrs);
                } else if (key == "proxy_auth") {
                    parse_proxy_auth(v, cfg.proxy_auth);
                } else if (key == "connect_ports") {
                    std::vector<std::uint16_t> ports;
                    bool ok = true;
                    const bool listed = each_item(v, [&](const field& item, std::size_t) {
                        std::uint16_t port = 0;
                        if (read_unsigned(item, port, 1, 65535)) {
                            ports.push_back(port);
                        } else {
                            ok = false;
                        }
                    });
                    if (listed && ok)
                        cfg.connect_ports = std::move(ports);
                } else if (key == "via") {
                    read_bool(v, cfg.via);
                } else if (key == "via_id") {
                    std::string id;
                    if (!read_string(v, id))
                        return;
                    if (!std::all_of(id.begin(), id.end(), [](char c) {
                            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                        })) {
                        // It goes verbatim into every Via header.
                        fail(v, "must be empty or match [A-Za-z0-9._-]+, got " + raw(v));
                        return;
                    }
                    cfg.via_id = std::move(id);
                } else if (key == "log") {
                    parse_log(v, cfg.log);
                } else if (key == "limits") {
                    parse_limits(v, cfg.limits);
                } else if (key == "defaults") {
                    each_key(v, policy_sections, [&](const std::string& section, const field& s) {
                        parse_policy_section(section, s, cfg.defaults);
                    });
                } else if (key == "upstreams") {
                    upstreams.emplace(v);  // after the loop: they inherit the parsed defaults
                }
            });

        if (upstreams) {
            std::vector<host_claim> claims;
            each_item(*upstreams, [&](const field& item, std::size_t index) {
                parse_upstream(item, index, cfg.defaults, cfg.upstreams, claims);
            });
        }
        // Port 0 asks for two different ephemeral ports, which is no conflict.
        if (cfg.listen == cfg.admin_listen && cfg.listen.port != 0 && (listen || admin_listen)) {
            fail(admin_listen ? *admin_listen : *listen,
                 "listen and admin_listen are both " + endpoint_text(cfg.listen));
        }
    }

    void parse_proxy_auth(const field& f, proxy_auth_config& out) {
        each_key(f, {"users_file", "realm"}, [&](const std::string& key, const field& v) {
            if (key == "users_file") {
                read_string(v, out.users_file);
            } else if (key == "realm") {
                std::string realm;
                if (!read_string(v, realm))
                    return;
                // It goes inside a quoted-string of Proxy-Authenticate (RFC 9110 §5.6.4).
                if (realm.empty() || !std::all_of(realm.begin(), realm.end(), [](char c) {
                        return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
                    })) {
                    fail(v, "must be non-empty printable ASCII without quotes or backslashes");
                    return;
                }
                out.realm = std::move(realm);
            }
        });
    }

    // Parses a list of CIDRs into `out`; false (with errors reported) when not every entry is
    // valid.
    bool parse_allow_cidrs(const field& f, std::vector<cidr>& out) {
        std::vector<cidr> cidrs;
        bool ok = true;
        const bool listed = each_item(f, [&](const field& item, std::size_t) {
            auto value = text(item, "a CIDR");
            if (!value) {
                ok = false;
                return;
            }
            std::string why;
            if (auto parsed = parse_cidr(*value, why)) {
                cidrs.push_back(std::move(*parsed));
            } else {
                fail_value(item, *value, std::move(why), "a CIDR such as 10.0.0.0/8");
                ok = false;
            }
        });
        if (listed && ok)
            out = std::move(cidrs);
        return listed && ok;
    }

    std::string source_;
    std::string_view yaml_;  ///< the text being loaded, for dash_before
    std::vector<config_error> errors_;
};

}  // namespace

std::string origin::authority() const {
    std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    const std::uint16_t default_port = tls() ? 443 : 80;
    if (port != 0 && port != default_port)
        out += ":" + std::to_string(port);
    return out;
}

std::string config_error::to_string() const {
    std::string out =
        file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": ";
    if (!key_path.empty())
        out += key_path + ": ";
    return out + reason;
}

load_result load_file(const std::string& path) {
    try {
        std::string why;
        auto text = read_whole_file(path, max_config_file, why);
        if (!text)
            return loader(path).fail_file("cannot read the configuration file: " + why);
        return load_string(*text, path);
    } catch (const std::exception& e) {
        load_result result;
        result.errors.push_back({path, {}, "", std::string("internal error: ") + e.what()});
        return result;
    }
}

load_result load_string(std::string_view yaml, std::string_view source) {
    try {
        return loader(std::string(source)).run(yaml);
    } catch (const std::exception& e) {
        load_result result;
        result.errors.push_back(
            {std::string(source), {}, "", std::string("internal error: ") + e.what()});
        return result;
    }
}

}  // namespace sluice::config
