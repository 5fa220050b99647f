// The metrics of sluice (DESIGN §6): every family declared in one place, so names cannot drift,
// and per-upstream series bound once so the request path only increments.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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

/// Bucket upper bounds of the latency histograms, in seconds: 1 ms to 60 s.
inline constexpr std::array<double, 15> latency_bounds{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

/// A number that one thread writes and any thread reads. add() is a relaxed load and store,
/// not a read-modify-write: the writer pays what a plain variable costs, with no locked
/// instruction and no cache line taken from another core.
template <typename T>
class owned_value {
  public:
    /// Adds `v`. Only the owning thread may call it.
    void add(T v) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    }
    /// The value, from any thread.
    T get() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<T> value_{0};
};

/// One thread's share of the series that every request updates, for one upstream label:
/// written by that thread alone. upstream_metrics::sync() adds what the shards counted to the
/// prometheus-cpp series, so that a request never touches memory that another I/O thread
/// writes too (one locked increment per series per request, bouncing between cores, cost
/// about 0.5 us per request at 2 threads; BENCHMARKS.md).
struct alignas(64) upstream_shard {
    /// A histogram over latency_bounds: counts per bucket (the last is +Inf) and the sum.
    struct histogram {
        std::array<owned_value<std::uint64_t>, latency_bounds.size() + 1> buckets;
        owned_value<double> sum;
        /// Counts `seconds` in the first bucket whose bound is >= it, as prometheus-cpp does
        /// (a NaN lands in +Inf).
        void observe(double seconds) noexcept;
    };
    std::array<owned_value<std::uint64_t>, 7> attempts;  ///< by attempt_outcome
    histogram request_duration;
    histogram attempt_duration;
    histogram ratelimit_wait;
    owned_value<std::int64_t> connections_active;  ///< change since the start
    owned_value<std::int64_t> connections_idle;    ///< change since the start
    /// Requests by method index * 1000 + status. The owner looks entries up without the lock;
    /// it holds the lock to insert one, and sync() holds it to read them.
    std::unordered_map<std::uint32_t, owned_value<std::uint64_t>> requests;
    std::mutex requests_mutex;
};

/// The series of one upstream label (a configured upstream, or "passthrough"), bound once.
/// Every member function is safe to call from any thread. The per-request ones (request(),
/// attempt(), ratelimit_waited(), connections_changed()) write the calling thread's
/// upstream_shard; sync() folds the shards into the prometheus-cpp series, and the registry
/// calls it before every exposition. The other series are prometheus-cpp's own (atomic).
struct upstream_metrics {
    upstream_metrics();
    upstream_metrics(const upstream_metrics&) = delete;
    upstream_metrics& operator=(const upstream_metrics&) = delete;

    std::string label;
    prometheus::Histogram* request_duration;       ///< seconds, client-observed (via shards)
    prometheus::Histogram* attempt_duration;       ///< seconds, one attempt (via shards)
    prometheus::Histogram* ratelimit_wait;         ///< seconds queued for a token (via shards)
    std::array<prometheus::Counter*, 7> attempts;  ///< by attempt_outcome (via shards)
    std::array<prometheus::Counter*, 4> retries;   ///< by retry_label
    prometheus::Counter* rejected_queue_full;
    prometheus::Counter* rejected_wait_too_long;
    prometheus::Counter* circuit_rejected;
    std::array<prometheus::Counter*, 3> circuit_transitions;  ///< to closed, open, half_open
    prometheus::Gauge* tokens;
    prometheus::Gauge* queue_depth;
    prometheus::Gauge* circuit_state;
    prometheus::Gauge* connections_active;  ///< via shards
    prometheus::Gauge* connections_idle;    ///< via shards
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
        auto& s = local();
        s.attempts[static_cast<std::size_t>(o)].add(1);
        s.attempt_duration.observe(seconds);
    }

    /// Observes the time in seconds one admission waited for its token (0 when it waited not).
    void ratelimit_waited(double seconds) { local().ratelimit_wait.observe(seconds); }

    /// Changes `sluice_upstream_connections{state="active"|"idle"}` by the given counts.
    void connections_changed(std::int64_t active, std::int64_t idle) {
        auto& s = local();
        s.connections_active.add(active);
        s.connections_idle.add(idle);
    }

    /// Adds what every thread's shard counted since the last sync() to the prometheus-cpp
    /// series. Takes a lock of its own; the shards' writers never wait for it.
    void sync();

  private:
    friend class registry;
    struct totals {
        std::array<std::uint64_t, 7> attempts{};
        std::array<std::array<std::uint64_t, latency_bounds.size() + 1>, 3> buckets{};
        std::array<double, 3> sums{};
        std::int64_t connections_active = 0;
        std::int64_t connections_idle = 0;
        std::unordered_map<std::uint32_t, std::uint64_t> requests;
    };

    // The calling thread's shard, made on its first use.
    upstream_shard& local();
    upstream_shard* add_shard();

    const std::uint64_t serial_;  // never reused, so a thread's cache never names a dead one
    prometheus::Family<prometheus::Counter>* requests_ = nullptr;
    std::mutex mutex_;  // guards what follows
    std::vector<std::unique_ptr<upstream_shard>> shards_;
    totals synced_;  // what the series hold already
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

    /// Folds every upstream's shards into its series (upstream_metrics::sync()); the admin
    /// port calls it before /metrics and /status read them.
    void sync();

    /// The text exposition format of every metric (what /metrics serves), after sync().
    std::string serialize();

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
