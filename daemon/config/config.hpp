// The configuration of sluice as plain structs (DESIGN §4): every field has its default and unit.
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::config {

/// All configured durations; YAML spells them with a unit (`250ms`, `1s`, `2m`, `1h`).
using duration = std::chrono::milliseconds;

/// A set of HTTP status codes (100–599), written in YAML as a list of codes (`429`) and
/// classes (`5xx`).
struct status_set {
    std::bitset<600> codes;

    /// Returns true when `status` (any unsigned value; out of range is never contained) is in
    /// the set.
    bool contains(unsigned status) const { return status < codes.size() && codes.test(status); }
    /// Adds every code of class `digit`xx (digit 1–5).
    void add_class(unsigned digit) {
        for (unsigned s = digit * 100; s < digit * 100 + 100; ++s)
            codes.set(s);
    }
    friend bool operator==(const status_set&, const status_set&) = default;
};

/// Token bucket of one upstream (DESIGN §3.3).
struct rate_limit_policy {
    bool enabled = true;
    double requests_per_minute = 600;  ///< refill rate, tokens per minute, in (0, 1e9]
    std::uint32_t burst_size = 60;     ///< bucket capacity, tokens, >= 1
    friend bool operator==(const rate_limit_policy&, const rate_limit_policy&) = default;
};

/// Wait queue in front of the bucket (DESIGN §3.3). `max_size: 0` or `max_wait: 0s` = no queue.
struct queue_policy {
    std::uint32_t max_size = 1000;                 ///< waiting requests
    duration max_wait = std::chrono::seconds{30};  ///< longest wait for a token
    friend bool operator==(const queue_policy&, const queue_policy&) = default;
};

/// Retries with exponential backoff and jitter (DESIGN §3.5).
struct retry_policy {
    bool enabled = true;
    std::uint32_t max_retries = 3;                     ///< 0–100
    duration initial_delay = std::chrono::seconds{1};  ///< delay before retry 1
    double exponential_base = 2.0;                     ///< >= 1
    duration max_delay = std::chrono::seconds{30};     ///< cap on one delay
    double jitter = 0.25;                              ///< 0–1, fraction of the delay, +/-
    status_set retry_on_status = default_retry_on_status();
    bool retry_non_idempotent = false;
    std::uint64_t buffer_limit = 1024 * 1024;  ///< bytes of request body kept for re-sending

    static status_set default_retry_on_status() {
        status_set s;
        for (unsigned c : {429u, 502u, 503u, 504u})
            s.codes.set(c);
        return s;
    }
    friend bool operator==(const retry_policy&, const retry_policy&) = default;
};

/// Three-state circuit breaker (DESIGN §3.4).
struct circuit_breaker_policy {
    bool enabled = true;
    std::uint32_t failure_threshold = 5;                   ///< consecutive failures, >= 1
    duration recovery_timeout = std::chrono::seconds{30};  ///< time OPEN before HALF_OPEN
    std::uint32_t half_open_max_requests = 1;              ///< concurrent probes, >= 1
    status_set failure_status = default_failure_status();  ///< default: every 5xx

    static status_set default_failure_status() {
        status_set s;
        s.add_class(5);
        return s;
    }
    friend bool operator==(const circuit_breaker_policy&, const circuit_breaker_policy&) = default;
};

/// Timeouts (DESIGN §3.5, §3.6). Each is > 0.
struct timeouts_policy {
    duration connect = std::chrono::seconds{5};   ///< TCP connect + TLS handshake
    duration request = std::chrono::seconds{30};  ///< one attempt, until the response head
    duration total = std::chrono::seconds{120};   ///< whole request: queue + attempts + backoff
    friend bool operator==(const timeouts_policy&, const timeouts_policy&) = default;
};

/// Upstream connection pool (DESIGN §3.6). Limits apply per I/O thread.
struct pool_policy {
    std::uint32_t max_connections = 64;                     ///< open connections, >= 1
    duration idle_timeout = std::chrono::seconds{60};       ///< idle connection lifetime
    duration max_connection_age = std::chrono::minutes{5};  ///< any connection's lifetime
    friend bool operator==(const pool_policy&, const pool_policy&) = default;
};

/// Upstream TLS client settings (DESIGN §3.6). Paths are files read at startup.
struct tls_policy {
    bool verify = true;               ///< verify chain and host name; false is for tests only
    std::string ca_file;              ///< PEM bundle; empty = system trust store
    std::string cert_file;            ///< PEM client certificate (mTLS); with key_file
    std::string key_file;             ///< PEM private key of cert_file
    std::string min_version = "1.2";  ///< "1.2" or "1.3"
    friend bool operator==(const tls_policy&, const tls_policy&) = default;
};

/// Every per-upstream policy; `defaults` holds one, each upstream deep-merges its own keys on
/// top (DESIGN §3.2).
struct policy {
    rate_limit_policy rate_limit;
    queue_policy queue;
    retry_policy retry;
    circuit_breaker_policy circuit_breaker;
    timeouts_policy timeouts;
    pool_policy pool;
    tls_policy tls;
    friend bool operator==(const policy&, const policy&) = default;
};

/// Where an upstream forwards to: `scheme://host[:port]`. The scheme decides TLS.
struct origin {
    std::string scheme;      ///< "http" or "https"
    std::string host;        ///< lowercase DNS name or IP literal (IPv6 without brackets)
    std::uint16_t port = 0;  ///< explicit or the scheme's default (80/443)

    bool tls() const { return scheme == "https"; }
    /// `host[:port]` with the port omitted when it is the scheme's default and IPv6 hosts
    /// bracketed: the value of the `Host` header sent upstream (RFC 9110 §7.2).
    std::string authority() const;
    friend bool operator==(const origin&, const origin&) = default;
};

/// One entry of an upstream's `hosts`: `api.example.com`, `*.example.com`, `[2001:db8::1]`,
/// optionally with `:port`.
struct host_pattern {
    std::string host;                   ///< lowercase; for a wildcard the suffix ".example.com"
    bool wildcard = false;              ///< true for `*.suffix`: matches one or more labels
    std::optional<std::uint16_t> port;  ///< matches any port when empty
    friend bool operator==(const host_pattern&, const host_pattern&) = default;
};

/// Position of a YAML node, 1-based, for error messages.
struct position {
    int line = 0;
    int column = 0;
    friend bool operator==(const position&, const position&) = default;
};

/// A configured upstream (DESIGN §3.2, §3.7).
struct upstream {
    std::string name;  ///< [a-z0-9_.-]+, unique, not "passthrough" nor "unrouted"
    std::vector<host_pattern> hosts;
    config::origin origin;
    /// Request headers added or replaced, in file order, values already substituted.
    std::vector<std::pair<std::string, std::string>> set_headers;
    config::policy policy;  ///< defaults deep-merged with this upstream's own keys
    position pos;           ///< where the upstream's entry starts
};

enum class unknown_hosts_mode { reject, passthrough };
enum class log_format { text, json };

/// `log` section.
struct log_config {
    std::string level = "info";  ///< trace | debug | info | warn | error | critical | off
    log_format format = log_format::text;
    bool access_log = true;
    /// Longest time an access line waits in its thread's buffer before it is written; 0: lines
    /// are written at the end of each turn of the event loop (Envoy's file flush interval,
    /// nginx's `access_log ... flush=`).
    duration access_log_flush_interval = std::chrono::seconds{1};
    std::vector<std::string> redact_headers;  ///< lowercase header names never logged
};

/// `limits` section: protections on the client side.
struct limits_config {
    std::uint32_t max_client_connections = 10000;
    duration header_read_timeout = std::chrono::seconds{10};  ///< whole request head
    duration client_idle_timeout = std::chrono::seconds{60};  ///< between requests
    std::uint64_t max_header_bytes = 64 * 1024;               ///< request head, bytes
    std::uint64_t max_request_body = 10 * 1024 * 1024;        ///< bytes
};

/// A listening address: `127.0.0.1:3128`, `[::1]:3128`, `0.0.0.0:3128`. Port 0 = ephemeral.
struct endpoint {
    std::string host;  ///< IP literal (IPv6 without brackets)
    std::uint16_t port = 0;
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// An `allow_cidrs` entry, e.g. `10.1.0.0/16` or `fd00::/8`.
struct cidr {
    std::string text;  ///< as written, normalised
    bool v6 = false;
    std::array<std::uint8_t, 16> address{};  ///< network address, IPv4 in the first 4 bytes
    unsigned prefix = 0;
};

/// `proxy_auth` section: `Proxy-Authorization: Basic` against a users file (issue 6).
struct proxy_auth_config {
    std::string users_file;        ///< htpasswd-style `name:hash` lines; empty = no auth
    std::string realm = "sluice";  ///< sent in Proxy-Authenticate
};

/// The whole configuration: immutable once loaded, shared as `shared_ptr<const config>`.
struct config {
    std::string source;  ///< file the config came from
    endpoint listen{"127.0.0.1", 3128};
    endpoint admin_listen{"127.0.0.1", 9464};
    unsigned threads = 0;  ///< I/O threads; 0 = hardware concurrency
    duration drain_timeout = std::chrono::seconds{15};
    unknown_hosts_mode unknown_hosts = unknown_hosts_mode::reject;
    std::uint32_t max_dynamic_upstreams = 1024;
    std::vector<cidr> allow_cidrs;
    std::vector<std::uint16_t> connect_ports{443};
    /// Client addresses allowed to use the proxy; unset = anyone when `listen` is loopback,
    /// loopback only otherwise (http::effective_client_cidrs).
    std::optional<std::vector<cidr>> client_cidrs;
    proxy_auth_config proxy_auth;
    bool via = true;
    std::string via_id;  ///< empty = random per process
    log_config log;
    limits_config limits;
    policy defaults;
    std::vector<upstream> upstreams;
};

/// One validation error: `FILE:LINE:COLUMN: key.path: reason`.
struct config_error {
    std::string file;
    position pos;
    std::string key_path;  ///< e.g. "upstreams[0].rate_limit.burst_size"
    std::string reason;
    std::string to_string() const;
};

/// Result of loading: `value` set and `errors` empty, or `value` null and every error listed.
struct load_result {
    std::shared_ptr<const config> value;
    std::vector<config_error> errors;
};

/// Reads, substitutes (`${env:NAME}`, `${file:PATH}`) and validates the YAML file at `path`.
/// Never throws; every problem (I/O, YAML syntax, unknown key, bad value) is an error.
load_result load_file(const std::string& path);

/// Same as load_file for text already in memory; `source` names it in errors.
load_result load_string(std::string_view yaml, std::string_view source);

/// Parses a duration with unit: `250ms`, `1s`, `1.5s`, `2m`, `1h`, `0s`, `0`. Returns nullopt
/// when malformed, negative, or without a unit (except for 0).
std::optional<duration> parse_duration(std::string_view text);

/// Parses a size in bytes: `512`, `64KiB`, `10MiB`, `1GiB`, `1KB` (=1000). nullopt if bad.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace sluice::config
