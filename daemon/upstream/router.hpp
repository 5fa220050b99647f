// Routing: request authority -> upstream bundle, with passthrough upstreams in an LRU
// (DESIGN §3.2).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "admin/metrics.hpp"
#include "config/config.hpp"
#include "upstream/tls_context.hpp"
#include "upstream/upstream_state.hpp"

namespace sluice::upstream {

/// Everything the request path needs to know about one upstream: where it forwards, how, and
/// under which policy. Immutable once built; shared by all I/O threads.
struct upstream_bundle {
    std::string name;      ///< configured name, or the authority for a passthrough upstream
    std::string label;     ///< metric label: the name, or "passthrough" (bounded cardinality)
    bool dynamic = false;  ///< created for `unknown_hosts: passthrough`
    config::origin origin;
    /// The Host value of a request sent here: origin.authority(), computed once.
    std::string origin_authority;
    std::vector<std::pair<std::string, std::string>> set_headers;
    config::policy policy;
    std::shared_ptr<tls_client_context> tls;  ///< set when origin.tls()
    /// Identifies the connection pool: scheme, host, port and TLS settings (SNI is the host).
    std::string pool_key;
    /// Passthrough only: internal ranges this upstream may still reach (`allow_cidrs`);
    /// null for configured upstreams, which are trusted (DESIGN §3.2).
    std::shared_ptr<const std::vector<config::cidr>> allow_cidrs;
    /// Bucket, queue and breaker: mutable and shared by every thread (and kept across a reload
    /// when the policy is unchanged).
    std::shared_ptr<upstream_state> state;
    /// The series of this upstream's metric label (DESIGN §6).
    std::shared_ptr<admin::upstream_metrics> metrics;
};

/// Picks the upstream of a request authority. Built from one config; thread-safe.
///
/// Matching (DESIGN §3.2): host compared case-insensitively (hosts arrive lowercased), exact
/// names before wildcards, a pattern with a port before one without, longer wildcard suffixes
/// before shorter; `*.example.com` matches `a.example.com` and `a.b.example.com`, not
/// `example.com`.
class router {
  public:
    /// Builds bundles for every configured upstream and the passthrough template. Returns null
    /// and fills `errors` when a TLS file cannot be loaded.
    /// `previous` (the router being replaced on reload, or null) lends its upstream_state to
    /// upstreams of the same name whose rate_limit, queue and circuit_breaker are unchanged.
    /// `metrics` gives each upstream its series (a private registry is made when null).
    static std::unique_ptr<router> create(const config::config& cfg,
                                          std::vector<std::string>& errors,
                                          const router* previous = nullptr,
                                          std::shared_ptr<admin::registry> metrics = nullptr);

    /// The upstream for `host` (lowercase, IPv6 unbracketed) and `port`, for a request whose
    /// target scheme is `scheme` ("http"/"https"). Null when no upstream matches and
    /// `unknown_hosts` is `reject`. A passthrough bundle forwards to `scheme://host:port`.
    /// A configured upstream comes back without ownership (no reference count to share between
    /// I/O threads on every request): it is valid while this router lives, which the caller
    /// guarantees by holding the runtime. A passthrough bundle is owned: it may be evicted
    /// while its request is in flight.
    std::shared_ptr<const upstream_bundle> route(std::string_view scheme, std::string_view host,
                                                 std::uint16_t port);

    /// The configured (non-dynamic) upstreams, in config order.
    const std::vector<std::shared_ptr<const upstream_bundle>>& configured() const {
        return configured_;
    }

    /// Number of passthrough upstreams currently kept.
    std::size_t dynamic_count() const;
    /// The passthrough upstreams currently kept, most recently used first.
    std::vector<std::shared_ptr<const upstream_bundle>> dynamic_upstreams() const;

  private:
    struct entry {
        config::host_pattern pattern;
        std::shared_ptr<const upstream_bundle> bundle;
    };
    router() = default;
    // The configured upstream for host:port, or null.
    const upstream_bundle* match(std::string_view host, std::uint16_t port) const;

    std::vector<std::shared_ptr<const upstream_bundle>> configured_;
    std::vector<entry> exact_;     // sorted: with port first
    std::vector<entry> wildcard_;  // sorted: longest suffix first, with port first
    bool passthrough_ = false;
    config::policy defaults_;
    std::shared_ptr<tls_client_context> default_tls_;
    std::shared_ptr<const std::vector<config::cidr>> allow_cidrs_;
    std::shared_ptr<admin::upstream_metrics> passthrough_metrics_;
    std::size_t max_dynamic_ = 1024;

    // Passthrough LRU: most recently used at the front.
    mutable std::mutex mutex_;
    std::list<std::shared_ptr<const upstream_bundle>> lru_;
    std::unordered_map<std::string, std::list<std::shared_ptr<const upstream_bundle>>::iterator>
        dynamic_;
};

/// The pool key of an origin with TLS settings `tls` (null for plain HTTP): scheme, authority
/// and port; for TLS the settings that shape a connection (verification, CA, client
/// certificate, minimum version) — by value, so a reload with the same settings reuses the same
/// pools; a mark for passthrough, whose connections were opened under the internal-address
/// check and must never be shared with a configured upstream's (nor the other way round); and
/// the configured upstream's `name`, so that two upstreams on one origin keep their own pool
/// limits and connection gauges, and a renamed upstream's gauges follow the new name.
std::string make_pool_key(const config::origin& o, const config::tls_policy* tls, bool passthrough,
                          std::string_view name = {});

}  // namespace sluice::upstream
