// The shared, mutable part of one upstream: its token bucket and wait queue, its circuit
// breaker, and the driver that performs their decisions with timers (DESIGN §3.3, §3.4).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/metrics.hpp"
#include "config/config.hpp"
#include "core/clock.hpp"
#include "policy/admission_queue.hpp"
#include "policy/circuit_breaker.hpp"

namespace sluice::upstream {

/// Bucket, queue and breaker of one upstream, shared by every I/O thread. One small mutex guards
/// them; it is never held across I/O or a suspension point.
class upstream_state {
  public:
    /// Fresh state for `p`: a full bucket, an empty queue, a closed circuit.
    upstream_state(const config::policy& p, const clock& clk);

    /// What a wait for a token sees of the queue: a snapshot for /status and the gauges.
    struct snapshot {
        double tokens = 0;  ///< available tokens, >= 0
        std::size_t queue_depth = 0;
        policy::circuit_state circuit = policy::circuit_state::closed;
        std::chrono::milliseconds open_remaining{0};
    };
    snapshot read() const;

    /// Whether this state can be carried over to a config whose policy is `p` (reload keeps
    /// bucket and breaker when neither policy changed, DESIGN §3.9).
    bool same_policy(const config::policy& p) const;

    // Used by try_admit() / wait_admission() below and by the request path to report attempt
    // outcomes.
    std::mutex mutex;
    policy::admission_queue queue;
    policy::circuit_breaker breaker;
    /// Queued waiters by id: each entry re-arms that waiter's timer (posted to its own thread).
    std::unordered_map<policy::waiter_id, std::function<void()>> wakers;

    /// Wakes every queued waiter so it looks again (draining: they give up with 503).
    void wake_all();

  private:
    config::rate_limit_policy rate_;
    config::queue_policy queue_policy_;
    config::circuit_breaker_policy breaker_policy_;
};

/// The outcome of admitting one attempt.
struct admission_result {
    enum class kind {
        go,            ///< token taken and circuit allows: attempt now with `permit`
        rate_limited,  ///< 429: queue full or the wait would exceed max_wait
        circuit_open,  ///< 503: fail fast
        client_gone,   ///< the client disconnected while queued (its place was given back)
        deadline,      ///< the token would come after timeouts.total
        draining,      ///< the server is draining: queued requests get 503
    };
    kind what = kind::go;
    policy::circuit_permit permit;
    std::chrono::seconds retry_after{0};  ///< rate_limited / circuit_open: the Retry-After
    bool queue_full = false;              ///< rate_limited: queue full (else: wait too long)
    std::chrono::nanoseconds waited{0};   ///< time spent queued
};

/// A request the token bucket queued: its place, and the timer that wakes it (try_admit()).
struct queued_admission {
    policy::admission place;
    std::shared_ptr<boost::asio::steady_timer> timer;
};

/// Admits one attempt to the upstream (every attempt, retries included, takes a token,
/// DESIGN §3.3), in two steps so that the common case costs no coroutine. try_admit() takes a
/// token at once and asks the breaker (DESIGN §3.4), or refuses at once, and returns the
/// result; or it queues the request, fills `queued` and returns nothing. Counts rejections and
/// breaker transitions on `metrics`, and every admitted request's wait.
std::optional<admission_result> try_admit(upstream_state& state,
                                          const boost::asio::any_io_executor& executor,
                                          admin::upstream_metrics& metrics,
                                          queued_admission& queued);

/// The second step for a request try_admit() queued (same `queued`): waits in FIFO order until
/// the instant its token is due (a timer at exactly that time, re-armed earlier when a waiter
/// ahead gives up), then asks the breaker. While queued, `client` is watched: a client that
/// disconnects leaves the queue at once and its token goes back. `deadline` is the request's
/// timeouts.total deadline: a token due after it is given up at once (kind::deadline);
/// `draining` set gives kind::draining.
boost::asio::awaitable<admission_result> wait_admission(
    upstream_state& state, boost::asio::ip::tcp::socket& client, queued_admission& queued,
    std::chrono::steady_clock::time_point deadline, admin::upstream_metrics& metrics,
    const std::atomic<bool>* draining = nullptr);

/// Counts a breaker transition (the value a circuit_breaker call returned) on `metrics`.
void count_transition(admin::upstream_metrics& metrics,
                      std::optional<policy::circuit_state> transition);

}  // namespace sluice::upstream
