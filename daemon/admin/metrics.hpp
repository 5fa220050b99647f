// The metrics of sluice (DESIGN §6): every family declared in one place, so names cannot drift,
// and per-upstream series bound once so the request path only increments.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace sluice::admin {

/// Outcomes of one upstream attempt: the `outcome` label of `sluice_upstream_attempts_total`.
enum class attempt_outcome {
    success,
    http_5xx,
    http_429,
    connect_error,
    tls_error,
    timeout,
    reset
};
/// Why a request was retried: the `reason` label of `sluice_retries_total`.
enum class retry_label { status, connect_error, timeout, reset };

/// The series of one upstream label (a configured upstream, or "passthrough"), bound once.
/// Every member is safe to use from any thread (prometheus-cpp metrics are atomic).
struct upstream_metrics {
    std::string label;
    prometheus::Histogram* request_duration;       ///< seconds, client-observed
    prometheus::Histogram* attempt_duration;       ///< seconds, one attempt
    prometheus::Histogram* ratelimit_wait;         ///< seconds queued for a token
    std::array<prometheus::Counter*, 7> attempts;  ///< by attempt_outcome
    std::array<prometheus::Counter*, 4> retries;   ///< by retry_label
    prometheus::Counter* rejected_queue_full;
    prometheus::Counter* rejected_wait_too_long;
    prometheus::Counter* circuit_rejected;
    std::array<prometheus::Counter*, 3> circuit_transitions;  ///< to closed, open, half_open
    prometheus::Gauge* tokens;
    prometheus::Gauge* queue_depth;
    prometheus::Gauge* circuit_state;
    prometheus::Gauge* connections_active;
    prometheus::Gauge* connections_idle;
    prometheus::Counter* connections_opened;
    prometheus::Counter* handshakes_full;
    prometheus::Counter* handshakes_resumed;
    prometheus::Gauge* tunnels_active;

    /// Counts one finished request: `sluice_requests_total{upstream,method,code}` (method
    /// outside the standard set becomes "other": label values stay a closed set) and its
    /// duration in seconds.
    void request(std::string_view method, unsigned code, double seconds);

    /// Counts one attempt with its outcome and duration in seconds.
    void attempt(attempt_outcome o, double seconds) {
        attempts[static_cast<std::size_t>(o)]->Increment();
        attempt_duration->Observe(seconds);
    }

  private:
    friend class registry;
    prometheus::Family<prometheus::Counter>* requests_ = nullptr;
    std::mutex mutex_;  // guards the (method, code) cache below
    std::unordered_map<std::uint32_t, prometheus::Counter*> by_method_code_;
};

/// Every metric family of DESIGN §6 on one prometheus-cpp registry. Built once per process and
/// kept across reloads; the admin port serializes it.
class registry {
  public:
    /// Registers every family and `sluice_build_info{version}` = 1.
    explicit registry(std::string_view version);

    /// The series of upstream `label`, created on first use and kept (labels are configured
    /// names and "passthrough"/"unrouted": a bounded set).
    std::shared_ptr<upstream_metrics> upstream(const std::string& label);

    /// `sluice_client_connections`.
    prometheus::Gauge& client_connections() { return *client_connections_; }
    /// `sluice_accept_errors_total{reason}`: a failed accept() on the proxy listener; reason
    /// `fd_exhausted` (EMFILE/ENFILE/ENOBUFS/ENOMEM: accepting pauses with a backoff) or
    /// `other`.
    void accept_error(bool fd_exhausted) {
        (fd_exhausted ? accept_fd_exhausted_ : accept_other_)->Increment();
    }
    /// `sluice_client_connections_rejected_total{reason="max_client_connections"}`: accepted
    /// connections closed at once because `limits.max_client_connections` were open.
    void client_rejected() { clients_rejected_->Increment(); }
    /// `sluice_config_reloads_total{result}`.
    void reload(bool success) { (success ? reload_success_ : reload_failure_)->Increment(); }

    /// The registry, for the text exposition.
    prometheus::Registry& prometheus() { return *registry_; }

    /// The text exposition format of every metric (what /metrics serves).
    std::string serialize() const;

  private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>& requests_;
    prometheus::Family<prometheus::Histogram>& request_duration_;
    prometheus::Family<prometheus::Counter>& attempts_;
    prometheus::Family<prometheus::Histogram>& attempt_duration_;
    prometheus::Family<prometheus::Counter>& retries_;
    prometheus::Family<prometheus::Histogram>& ratelimit_wait_;
    prometheus::Family<prometheus::Counter>& ratelimit_rejected_;
    prometheus::Family<prometheus::Gauge>& ratelimit_tokens_;
    prometheus::Family<prometheus::Gauge>& queue_depth_;
    prometheus::Family<prometheus::Gauge>& circuit_state_;
    prometheus::Family<prometheus::Counter>& circuit_transitions_;
    prometheus::Family<prometheus::Counter>& circuit_rejected_;
    prometheus::Family<prometheus::Gauge>& upstream_connections_;
    prometheus::Family<prometheus::Counter>& connections_opened_;
    prometheus::Family<prometheus::Counter>& tls_handshakes_;
    prometheus::Family<prometheus::Gauge>& tunnels_active_;
    prometheus::Gauge* client_connections_;
    prometheus::Counter* accept_fd_exhausted_;
    prometheus::Counter* accept_other_;
    prometheus::Counter* clients_rejected_;
    prometheus::Counter* reload_success_;
    prometheus::Counter* reload_failure_;

    std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<upstream_metrics>> upstreams_;
};

/// Buckets for API latencies and waits: 1 ms to 60 s, in seconds.
const prometheus::Histogram::BucketBoundaries& latency_buckets();

}  // namespace sluice::admin
