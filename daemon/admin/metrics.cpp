// The DESIGN §6 metric families and the per-upstream series.
#include "admin/metrics.hpp"

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

}  // namespace

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries buckets{
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    return buckets;
}

void upstream_metrics::request(std::string_view method, unsigned code, double seconds) {
    request_duration->Observe(seconds);
    const std::size_t m = method_index(method);
    const std::uint32_t key = static_cast<std::uint32_t>(m * 1000 + std::min(code, 999u));
    prometheus::Counter* counter;
    {
        std::lock_guard lock(mutex_);
        auto it = by_method_code_.find(key);
        if (it == by_method_code_.end()) {
            std::string method_label(m < standard_methods.size() ? standard_methods[m] : "other");
            auto* c = &requests_->Add(
                {{"upstream", label}, {"method", method_label}, {"code", std::to_string(code)}});
            it = by_method_code_.emplace(key, c).first;
        }
        counter = it->second;
    }
    counter->Increment();
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

std::string registry::serialize() const {
    prometheus::TextSerializer serializer;
    return serializer.Serialize(registry_->Collect());
}

}  // namespace sluice::admin
