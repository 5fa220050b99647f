// The DESIGN §6 metric families and the per-upstream series.
#include "admin/metrics.hpp"

#include <algorithm>

#include <prometheus/text_serializer.h>

namespace sluice::admin {

namespace {

constexpr std::array<std::string_view, 9> standard_methods{
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"};

std::size_t method_index(std::string_view m) {
    for (std::size_t i = 0; i < standard_methods.size(); ++i) {
        if (standard_methods[i] == m)
            return i;
    }
    return standard_methods.size();  // "other"
}

std::atomic<std::uint64_t> next_serial{1};

}  // namespace

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries buckets(latency_bounds.begin(),
                                                                 latency_bounds.end());
    return buckets;
}

void upstream_shard::histogram::observe(double seconds) noexcept {
    const auto* bound = std::find_if(latency_bounds.begin(), latency_bounds.end(),
                                     [seconds](double b) { return b >= seconds; });
    buckets[static_cast<std::size_t>(bound - latency_bounds.begin())].add(1);
    sum.add(seconds);
}

upstream_metrics::upstream_metrics() : serial_(next_serial.fetch_add(1)) {}

upstream_shard& upstream_metrics::local() {
    // Nearly every request of a thread goes to the upstream its last one went to.
    thread_local std::uint64_t last_serial = 0;
    thread_local upstream_shard* last = nullptr;
    if (last_serial == serial_)
        return *last;
    thread_local std::unordered_map<std::uint64_t, upstream_shard*> mine;
    auto& shard = mine[serial_];
    if (!shard)
        shard = add_shard();
    last_serial = serial_;
    last = shard;
    return *shard;
}

upstream_shard* upstream_metrics::add_shard() {
    std::lock_guard lock(mutex_);
    shards_.push_back(std::make_unique<upstream_shard>());
    return shards_.back().get();
}

void upstream_metrics::request(std::string_view method, unsigned code, double seconds) {
    auto& s = local();
    s.request_duration.observe(seconds);
    const auto key = static_cast<std::uint32_t>(method_index(method) * 1000 + std::min(code, 999u));
    auto it = s.requests.find(key);
    if (it == s.requests.end()) {
        std::lock_guard lock(s.requests_mutex);
        it = s.requests.try_emplace(key).first;
    }
    it->second.add(1);
}

void upstream_metrics::sync() {
    std::lock_guard lock(mutex_);
    totals now;
    for (const auto& s : shards_) {
        for (std::size_t i = 0; i < now.attempts.size(); ++i)
            now.attempts[i] += s->attempts[i].get();
        const upstream_shard::histogram* hs[] = {&s->request_duration, &s->attempt_duration,
                                                 &s->ratelimit_wait};
        for (std::size_t h = 0; h < 3; ++h) {
            for (std::size_t b = 0; b < now.buckets[h].size(); ++b)
                now.buckets[h][b] += hs[h]->buckets[b].get();
            now.sums[h] += hs[h]->sum.get();
        }
        now.connections_active += s->connections_active.get();
        now.connections_idle += s->connections_idle.get();
        std::lock_guard requests_lock(s->requests_mutex);
        for (const auto& [key, count] : s->requests)
            now.requests[key] += count.get();
    }

    for (std::size_t i = 0; i < now.attempts.size(); ++i) {
        if (now.attempts[i] != synced_.attempts[i])
            attempts[i]->Increment(static_cast<double>(now.attempts[i] - synced_.attempts[i]));
    }
    prometheus::Histogram* series[] = {request_duration, attempt_duration, ratelimit_wait};
    for (std::size_t h = 0; h < 3; ++h) {
        std::vector<double> increments(now.buckets[h].size());
        bool any = false;
        for (std::size_t b = 0; b < increments.size(); ++b) {
            increments[b] = static_cast<double>(now.buckets[h][b] - synced_.buckets[h][b]);
            any = any || increments[b] != 0;
        }
        if (any)
            series[h]->ObserveMultiple(increments, now.sums[h] - synced_.sums[h]);
    }
    connections_active->Increment(
        static_cast<double>(now.connections_active - synced_.connections_active));
    connections_idle->Increment(
        static_cast<double>(now.connections_idle - synced_.connections_idle));
    for (const auto& [key, count] : now.requests) {
        const std::uint64_t before = synced_.requests[key];
        if (count == before)
            continue;
        auto& counter = by_method_code_[key];
        if (!counter) {
            const std::size_t m = key / 1000;
            std::string method_label(m < standard_methods.size() ? standard_methods[m] : "other");
            counter = &requests_->Add({{"upstream", label},
                                       {"method", method_label},
                                       {"code", std::to_string(key % 1000)}});
        }
        counter->Increment(static_cast<double>(count - before));
    }
    synced_ = std::move(now);
}

registry::registry(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("sluice_requests_total")
                    .Help("Requests answered, by upstream, method and final status to the client.")
                    .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("sluice_request_duration_seconds")
                            .Help("Client-observed request duration, queueing included.")
                            .Register(*registry_)),
      attempts_(prometheus::BuildCounter()
                    .Name("sluice_upstream_attempts_total")
                    .Help("Upstream attempts by outcome.")
                    .Register(*registry_)),
      attempt_duration_(prometheus::BuildHistogram()
                            .Name("sluice_upstream_attempt_duration_seconds")
                            .Help("Duration of one upstream attempt until its response head.")
                            .Register(*registry_)),
      retries_(prometheus::BuildCounter()
                   .Name("sluice_retries_total")
                   .Help("Retries by reason.")
                   .Register(*registry_)),
      ratelimit_wait_(prometheus::BuildHistogram()
                          .Name("sluice_ratelimit_wait_seconds")
                          .Help("Time requests waited in the queue for a token.")
                          .Register(*registry_)),
      ratelimit_rejected_(prometheus::BuildCounter()
                              .Name("sluice_ratelimit_rejected_total")
                              .Help("Requests refused with 429 by the rate limiter, by reason.")
                              .Register(*registry_)),
      ratelimit_tokens_(prometheus::BuildGauge()
                            .Name("sluice_ratelimit_tokens")
                            .Help("Tokens available in the upstream's bucket.")
                            .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("sluice_queue_depth")
                       .Help("Requests waiting for a token.")
                       .Register(*registry_)),
      circuit_state_(prometheus::BuildGauge()
                         .Name("sluice_circuit_state")
                         .Help("Circuit breaker state: 0 closed, 1 open, 2 half-open.")
                         .Register(*registry_)),
      circuit_transitions_(prometheus::BuildCounter()
                               .Name("sluice_circuit_transitions_total")
                               .Help("Circuit breaker transitions, by the state entered.")
                               .Register(*registry_)),
      circuit_rejected_(prometheus::BuildCounter()
                            .Name("sluice_circuit_rejected_total")
                            .Help("Requests failed fast because the circuit was open.")
                            .Register(*registry_)),
      upstream_connections_(prometheus::BuildGauge()
                                .Name("sluice_upstream_connections")
                                .Help("Upstream connections, by state (active, idle).")
                                .Register(*registry_)),
      connections_opened_(prometheus::BuildCounter()
                              .Name("sluice_upstream_connections_opened_total")
                              .Help("Upstream connections opened.")
                              .Register(*registry_)),
      tls_handshakes_(prometheus::BuildCounter()
                          .Name("sluice_tls_handshakes_total")
                          .Help("TLS handshakes with upstreams, by session resumption.")
                          .Register(*registry_)),
      tunnels_active_(prometheus::BuildGauge()
                          .Name("sluice_tunnels_active")
                          .Help("CONNECT tunnels open.")
                          .Register(*registry_)) {
    client_connections_ = &prometheus::BuildGauge()
                               .Name("sluice_client_connections")
                               .Help("Client connections open.")
                               .Register(*registry_)
                               .Add({});
    auto& accept_errors = prometheus::BuildCounter()
                              .Name("sluice_accept_errors_total")
                              .Help("Failed accepts on the proxy listener, by reason.")
                              .Register(*registry_);
    accept_fd_exhausted_ = &accept_errors.Add({{"reason", "fd_exhausted"}});
    accept_other_ = &accept_errors.Add({{"reason", "other"}});
    clients_rejected_ = &prometheus::BuildCounter()
                             .Name("sluice_client_connections_rejected_total")
                             .Help("Client connections closed at accept, by reason.")
                             .Register(*registry_)
                             .Add({{"reason", "max_client_connections"}});
    auto& reloads = prometheus::BuildCounter()
                        .Name("sluice_config_reloads_total")
                        .Help("Config reloads, by result.")
                        .Register(*registry_);
    reload_success_ = &reloads.Add({{"result", "success"}});
    reload_failure_ = &reloads.Add({{"result", "failure"}});
    prometheus::BuildGauge()
        .Name("sluice_build_info")
        .Help("Build information; the value is always 1.")
        .Register(*registry_)
        .Add({{"version", std::string(version)}})
        .Set(1);
}

std::shared_ptr<upstream_metrics> registry::upstream(const std::string& label) {
    std::lock_guard lock(mutex_);
    if (auto it = upstreams_.find(label); it != upstreams_.end())
        return it->second;
    auto m = std::make_shared<upstream_metrics>();
    const prometheus::Labels u{{"upstream", label}};
    auto with = [&](const char* key, const char* value) {
        prometheus::Labels l = u;
        l.emplace(key, value);
        return l;
    };
    m->label = label;
    m->requests_ = &requests_;
    m->request_duration = &request_duration_.Add(u, latency_buckets());
    m->attempt_duration = &attempt_duration_.Add(u, latency_buckets());
    m->ratelimit_wait = &ratelimit_wait_.Add(u, latency_buckets());
    const char* outcomes[] = {"success",   "http_5xx", "http_429", "connect_error",
                              "tls_error", "timeout",  "reset"};
    for (std::size_t i = 0; i < m->attempts.size(); ++i) {
        m->attempts[i] = &attempts_.Add(with("outcome", outcomes[i]));
    }
    const char* reasons[] = {"status", "connect_error", "timeout", "reset"};
    for (std::size_t i = 0; i < m->retries.size(); ++i) {
        m->retries[i] = &retries_.Add(with("reason", reasons[i]));
    }
    m->rejected_queue_full = &ratelimit_rejected_.Add(with("reason", "queue_full"));
    m->rejected_wait_too_long = &ratelimit_rejected_.Add(with("reason", "wait_too_long"));
    m->circuit_rejected = &circuit_rejected_.Add(u);
    const char* states[] = {"closed", "open", "half_open"};
    for (std::size_t i = 0; i < m->circuit_transitions.size(); ++i) {
        m->circuit_transitions[i] = &circuit_transitions_.Add(with("to", states[i]));
    }
    m->tokens = &ratelimit_tokens_.Add(u);
    m->queue_depth = &queue_depth_.Add(u);
    m->circuit_state = &circuit_state_.Add(u);
    m->connections_active = &upstream_connections_.Add(with("state", "active"));
    m->connections_idle = &upstream_connections_.Add(with("state", "idle"));
    m->connections_opened = &connections_opened_.Add(u);
    m->handshakes_full = &tls_handshakes_.Add(with("resumed", "false"));
    m->handshakes_resumed = &tls_handshakes_.Add(with("resumed", "true"));
    m->tunnels_active = &tunnels_active_.Add(u);
    upstreams_.emplace(label, m);
    return m;
}

void registry::sync() {
    std::lock_guard lock(mutex_);
    for (auto& [label, m] : upstreams_)
        m->sync();
}

std::string registry::serialize() {
    sync();
    prometheus::TextSerializer serializer;
    return serializer.Serialize(registry_->Collect());
}

}  // namespace sluice::admin
