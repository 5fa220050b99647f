// Host matching and the passthrough LRU.
#include "upstream/router.hpp"

#include <algorithm>

namespace sluice::upstream {

std::string make_pool_key(const config::origin& o, const config::tls_policy* tls, bool passthrough,
                          std::string_view name) {
    std::string key = passthrough ? "passthrough|" : "upstream|";
    if (!name.empty()) {
        key += name;
        key += '|';
    }
    key += o.scheme + "://" + o.authority() + ":" + std::to_string(o.port);
    if (tls && o.tls()) {
        key += "|verify=" + std::string(tls->verify ? "1" : "0") + "|ca=" + tls->ca_file +
               "|cert=" + tls->cert_file + "|key=" + tls->key_file + "|min=" + tls->min_version;
    }
    return key;
}

std::unique_ptr<router> router::create(const config::config& cfg, std::vector<std::string>& errors,
                                       const router* previous,
                                       std::shared_ptr<admin::registry> metrics) {
    if (!metrics)
        metrics = std::make_shared<admin::registry>("unversioned");
    std::unique_ptr<router> r(new router());
    r->passthrough_ = cfg.unknown_hosts == config::unknown_hosts_mode::passthrough;
    r->defaults_ = cfg.defaults;
    r->max_dynamic_ = std::max<std::size_t>(1, cfg.max_dynamic_upstreams);
    r->allow_cidrs_ = std::make_shared<const std::vector<config::cidr>>(cfg.allow_cidrs);
    r->passthrough_metrics_ = metrics->upstream("passthrough");

    std::string error;
    r->default_tls_ = tls_client_context::create(cfg.defaults.tls, error);
    if (!r->default_tls_)
        errors.push_back(cfg.source + ": defaults.tls: " + error);

    for (std::size_t i = 0; i < cfg.upstreams.size(); ++i) {
        const auto& u = cfg.upstreams[i];
        auto b = std::make_shared<upstream_bundle>();
        b->name = u.name;
        b->label = u.name;
        b->origin = u.origin;
        b->origin_authority = b->origin.authority();
        b->set_headers = u.set_headers;
        b->policy = u.policy;
        if (u.origin.tls()) {
            if (u.policy.tls == cfg.defaults.tls) {
                b->tls = r->default_tls_;
            } else {
                b->tls = tls_client_context::create(u.policy.tls, error);
                if (!b->tls) {
                    config::config_error e{cfg.source, u.pos,
                                           "upstreams[" + std::to_string(i) + "].tls", error};
                    errors.push_back(e.to_string());
                }
            }
        }
        b->pool_key = make_pool_key(b->origin, &b->policy.tls, false, b->name);
        if (previous) {
            for (const auto& old : previous->configured_) {
                if (old->name == b->name && old->state->same_policy(b->policy)) {
                    b->state = old->state;
                }
            }
        }
        if (!b->state)
            b->state = std::make_shared<upstream_state>(b->policy, real_clock());
        b->metrics = metrics->upstream(b->label);
        r->configured_.push_back(b);
        for (const auto& p : u.hosts) {
            (p.wildcard ? r->wildcard_ : r->exact_).push_back(entry{p, b});
        }
    }
    if (!errors.empty())
        return nullptr;
    std::stable_sort(r->exact_.begin(), r->exact_.end(), [](const entry& a, const entry& b) {
        return a.pattern.port.has_value() > b.pattern.port.has_value();
    });
    std::stable_sort(r->wildcard_.begin(), r->wildcard_.end(), [](const entry& a, const entry& b) {
        if (a.pattern.host.size() != b.pattern.host.size()) {
            return a.pattern.host.size() > b.pattern.host.size();
        }
        return a.pattern.port.has_value() > b.pattern.port.has_value();
    });
    return r;
}

const upstream_bundle* router::match(std::string_view host, std::uint16_t port) const {
    auto port_ok = [port](const config::host_pattern& p) { return !p.port || *p.port == port; };
    for (const auto& e : exact_) {
        if (e.pattern.host == host && port_ok(e.pattern))
            return e.bundle.get();
    }
    for (const auto& e : wildcard_) {
        // pattern.host is ".example.com": the host must be longer, so one label at least.
        const auto& suffix = e.pattern.host;
        if (host.size() > suffix.size() && host.ends_with(suffix) && port_ok(e.pattern)) {
            return e.bundle.get();
        }
    }
    return nullptr;
}

std::shared_ptr<const upstream_bundle> router::route(std::string_view scheme, std::string_view host,
                                                     std::uint16_t port) {
    if (const auto* b = match(host, port))
        return {std::shared_ptr<const upstream_bundle>{}, b};  // not owned: see route()
    if (!passthrough_)
        return nullptr;

    config::origin o{std::string(scheme), std::string(host), port};
    std::string key = make_pool_key(o, nullptr, true);
    std::lock_guard lock(mutex_);
    if (auto it = dynamic_.find(key); it != dynamic_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return *it->second;
    }
    auto b = std::make_shared<upstream_bundle>();
    b->name = o.authority();
    b->label = "passthrough";
    b->dynamic = true;
    b->origin = o;
    b->origin_authority = b->origin.authority();
    b->policy = defaults_;
    if (o.tls())
        b->tls = default_tls_;
    b->pool_key = make_pool_key(o, &b->policy.tls, true);
    b->allow_cidrs = allow_cidrs_;
    b->state = std::make_shared<upstream_state>(b->policy, real_clock());
    b->metrics = passthrough_metrics_;
    lru_.push_front(b);
    dynamic_[key] = lru_.begin();
    // Evict the least recently used; requests in flight keep their bundle alive.
    while (lru_.size() > max_dynamic_) {
        const auto& victim = lru_.back();
        dynamic_.erase(make_pool_key(victim->origin, nullptr, true));
        lru_.pop_back();
    }
    return b;
}

std::vector<std::shared_ptr<const upstream_bundle>> router::dynamic_upstreams() const {
    std::lock_guard lock(mutex_);
    return {lru_.begin(), lru_.end()};
}

std::size_t router::dynamic_count() const {
    std::lock_guard lock(mutex_);
    return lru_.size();
}

}  // namespace sluice::upstream
