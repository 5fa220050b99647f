// Upstream connections and the keep-alive pool of one origin on one I/O thread (DESIGN §3.6).
//
// A pool belongs to one worker (one io_context, one thread): it is never touched from another
// thread, so it takes no lock. Limits (`max_connections`) therefore apply per I/O thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "admin/metrics.hpp"
#include "core/deadline_stream.hpp"
#include "core/proxy_error.hpp"
#include "upstream/destination.hpp"
#include "upstream/router.hpp"
#include "upstream/tls_stream.hpp"

typedef struct ssl_session_st SSL_SESSION;

namespace sluice::upstream {

namespace net = boost::asio;
namespace beast = boost::beast;
using steady_clock = std::chrono::steady_clock;

/// One TCP (or TLS over TCP) connection to an origin, with its read buffer. Owned by a request
/// while in use, by its pool while idle.
class connection {
  public:
    /// A connection over `tcp` (plain) or `tls` (exactly one is set).
    connection(std::unique_ptr<deadline_stream> tcp, std::unique_ptr<tls_stream> tls);
    ~connection();

    /// The TCP layer, for timeouts (`expires_after`) and closing.
    deadline_stream& lowest() noexcept { return tls_ ? tls_->next_layer() : *tcp_; }
    /// The TLS stream, or null for plain HTTP.
    tls_stream* tls() noexcept { return tls_.get(); }
    /// The plain stream, or null for TLS.
    deadline_stream* plain() noexcept { return tcp_.get(); }
    /// Read buffer: bytes received from the upstream and not yet parsed. Empty when idle.
    beast::flat_buffer& buffer() noexcept { return buffer_; }

    /// Requests completed on this connection before the current one (0 = fresh).
    unsigned uses = 0;
    /// Whether the TLS handshake resumed a session.
    bool resumed = false;
    /// The TLS session this connection last offered the pool for resumption (pool::release());
    /// only compared, never dereferenced.
    const void* offered_session = nullptr;
    /// When the connection was opened; retired after `pool.max_connection_age`.
    steady_clock::time_point created;
    /// While idle: when the pool closes it (idle_timeout, or sooner per upstream Keep-Alive).
    steady_clock::time_point idle_deadline;
    /// While idle: when it was given back to the pool.
    steady_clock::time_point released;

    /// How long an idle connection keeps its buffers: OpenSSL's two record buffers (16 KiB
    /// each), the TLS receive buffer (16 KiB) and our read buffer. A connection in steady use keeps
    /// them, so a request costs no allocation of either; one idle this long gives them back
    /// (trim()).
    static constexpr auto buffers_kept = std::chrono::seconds{1};
    /// Whether trim() ran since the connection was last taken from the pool.
    bool trimmed = false;
    /// Frees the buffers of an idle connection (they are allocated again when it is used).
    void trim() noexcept;

    /// True when an idle connection can take a request: no bytes wait in our buffers, and the
    /// peer has neither closed it nor sent anything unsolicited, asked of the kernel on every
    /// reuse (a non-blocking MSG_PEEK: 0 bytes is a FIN, any byte is unsolicited). Skipping
    /// the check for a connection released moments ago was tried and undone: bytes an upstream
    /// sends right after its response would be read as the next request's response, perhaps
    /// another client's, and a FIN already there would fail a streamed upload that cannot be
    /// replayed (pool_connection_test).
    bool idle_looks_alive();

    /// Closes the socket at once (no TLS close_notify: the pool never waits on a peer).
    void close() noexcept;

  private:
    std::unique_ptr<deadline_stream> tcp_;
    std::unique_ptr<tls_stream> tls_;
    beast::flat_buffer buffer_;
};

/// Why a new connection could not be opened, classified for Proxy-Status (RFC 9209).
struct connect_error {
    proxy_errc code;
    std::string details;
};

/// Resolves `host` and connects to `port` before `deadline` (TCP only). When `allow_cidrs` is
/// set (a passthrough upstream) only resolved addresses outside the internal ranges, or inside
/// `allow_cidrs`, are tried (DESIGN §3.2), and exactly those. Errors come back classified for
/// Proxy-Status: dns_error, connection_refused, connection_timeout, destination_ip_prohibited,
/// destination_ip_unroutable. Addresses that reach one of `self` (sluice's own listeners) are
/// never tried, whatever the upstream (destination_ip_prohibited when none is left).
net::awaitable<std::variant<std::unique_ptr<deadline_stream>, connect_error>> connect_tcp(
    net::any_io_executor ex, const std::string& host, std::uint16_t port,
    steady_clock::time_point deadline, const std::vector<config::cidr>* allow_cidrs,
    const own_listeners* self);

/// Result of pool::acquire: a connection, or the reason there is none.
struct acquire_result {
    std::unique_ptr<connection> conn;
    std::optional<connect_error> error;
};

/// The keep-alive pool of one origin (one pool_key) on one I/O thread.
class pool : public std::enable_shared_from_this<pool> {
  public:
    /// A pool whose timers and connections run on `ex` (the worker's executor), reporting its
    /// connections on `metrics` (shared by every pool of the same upstream label).
    pool(net::any_io_executor ex, std::shared_ptr<admin::upstream_metrics> metrics,
         std::shared_ptr<const own_listeners> self = nullptr);
    ~pool();

    /// Returns an idle live connection (unless `fresh`), or opens a new one when fewer than
    /// `b.policy.pool.max_connections` are open, or waits for one to be released. Never
    /// returns after `deadline`: a wait that runs out gives `connection_limit` details under
    /// `connection_timeout`. Connect and TLS errors come back classified. Names are resolved
    /// anew for each connection.
    net::awaitable<acquire_result> acquire(const upstream_bundle& b, bool fresh,
                                           steady_clock::time_point deadline);

    /// acquire()'s first step, without a coroutine: the most recently used idle connection that
    /// is still young, within its idle deadline and looks alive (closing the stale ones on the
    /// way), or null when there is none (or `fresh`). The request path calls it first and
    /// awaits acquire() only when it returns null: a busy pool costs no coroutine frame. `now`
    /// is the caller's reading of steady_clock (the attempt's start), against which the idle
    /// deadlines and ages are checked.
    std::unique_ptr<connection> take_idle(const upstream_bundle& b, bool fresh,
                                          steady_clock::time_point now = steady_clock::now());

    /// Gives `c` back. Kept idle when `reusable` and young enough, until
    /// min(`idle_timeout`, the upstream's `Keep-Alive: timeout` less a safety margin);
    /// closed otherwise. Wakes one waiter either way.
    void release(std::unique_ptr<connection> c, bool reusable, const upstream_bundle& b,
                 std::optional<std::chrono::seconds> keep_alive);

    /// Open connections (in use, idle or connecting).
    std::size_t open() const noexcept { return open_; }
    /// Idle connections.
    std::size_t idle() const noexcept { return idle_.size(); }
    /// Requests waiting for a connection.
    std::size_t waiting() const noexcept { return waiters_.size(); }
    /// TLS handshakes done by this pool: total and resumed.
    std::uint64_t handshakes = 0, resumed_handshakes = 0;
    /// Connections opened by this pool.
    std::uint64_t opened = 0;

    /// Closes every idle connection (drain, shutdown).
    void close_idle();

  private:
    net::awaitable<acquire_result> open_connection(const upstream_bundle& b,
                                                   steady_clock::time_point deadline);
    void wake_one();
    /// Brings the active/idle gauges in line with this pool's counts (deltas: several pools
    /// share one label).
    void report();
    void arm_sweep();
    net::awaitable<void> sweep();

    net::any_io_executor ex_;
    std::deque<std::unique_ptr<connection>> idle_;  // most recently used at the back
    std::size_t open_ = 0;
    std::deque<std::shared_ptr<net::steady_timer>> waiters_;
    net::steady_timer sweep_timer_;
    bool sweeping_ = false;
    SSL_SESSION* session_ = nullptr;  // last resumable session, for the next handshake
    std::shared_ptr<admin::upstream_metrics> metrics_;
    std::shared_ptr<const own_listeners> self_;
    std::int64_t reported_active_ = 0, reported_idle_ = 0;  // what the gauges were told
};

/// The pools of one I/O thread, by pool key.
class pool_set {
  public:
    /// Pools on `ex` that never connect to `self` (sluice's own listeners; none when null).
    explicit pool_set(net::any_io_executor ex, std::shared_ptr<const own_listeners> self = nullptr)
        : ex_(std::move(ex)), self_(std::move(self)) {}
    /// Sluice's own listeners, which no connection may reach (may be null).
    const own_listeners* self() const noexcept { return self_.get(); }
    /// The pool for `b`, created on first use. Empty pools are dropped as others are created,
    /// so passthrough origins do not accumulate.
    std::shared_ptr<pool> get(const upstream_bundle& b);
    /// Closes the idle connections of every pool.
    void close_idle();
    /// Visits every pool: f(key, pool&).
    template <class F>
    void for_each(F&& f) const {
        for (const auto& [k, p] : pools_)
            f(k, *p);
    }

  private:
    net::any_io_executor ex_;
    std::shared_ptr<const own_listeners> self_;
    std::unordered_map<std::string, std::shared_ptr<pool>> pools_;
};

}  // namespace sluice::upstream
