// The proxy listener and its I/O threads.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "admin/admin_server.hpp"
#include "http/session.hpp"

namespace sluice::http {

/// Builds the runtime of one config generation: its router (TLS contexts loaded) and the Via
/// pseudonym (`via_id`, or `random_via` when via_id is empty). `previous` (on reload) lends
/// bucket and breaker state to unchanged upstreams; `metrics` is the process registry (a
/// private one is made when null). Returns null and fills `errors` when a TLS file cannot be
/// loaded.
std::shared_ptr<const runtime> make_runtime(std::shared_ptr<const config::config> cfg,
                                            const std::string& random_via,
                                            std::vector<std::string>& errors,
                                            const runtime* previous = nullptr,
                                            std::shared_ptr<admin::registry> metrics = nullptr);

/// A fresh per-process Via pseudonym: "sluice-" and 8 random hex digits (DESIGN §3.1).
std::string random_via_pseudonym();

/// Accepts client connections and serves them on `threads` I/O threads.
///
/// Thread model: one io_context per I/O thread ("worker"), each with its own upstream pools,
/// so a session and its pooled connections never cross threads and pools take no locks. One
/// acceptor (on worker 0) hands each accepted socket to the next worker, round-robin. What is
/// shared between threads is immutable (the runtime: config, router) or guarded by a small
/// lock of its own (the passthrough LRU).
class server {
  public:
    /// Binds the proxy listener of `rt->cfg` (port 0 = ephemeral). Throws std::system_error
    /// when the address cannot be bound.
    explicit server(std::shared_ptr<const runtime> rt);
    ~server();

    /// The bound listener address (the real port when 0 was asked).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    /// Runs the workers; returns when the server has stopped (after drain()).
    void run();

    /// Makes `rt` the runtime of connections accepted from now on (config reload). Thread-safe.
    void swap_runtime(std::shared_ptr<const runtime> rt);
    /// The current runtime. Thread-safe.
    std::shared_ptr<const runtime> current() const;

    /// Stops accepting, closes idle upstream connections and lets open client connections
    /// finish; run() returns once none is left or after `drain_timeout`. Thread-safe.
    void drain();

    /// Client connections open now.
    std::size_t client_connections() const noexcept { return clients_.load(); }

    /// The admin listener's address.
    boost::asio::ip::tcp::endpoint admin_endpoint() const;

    /// Moves the proxy and/or admin listener to new addresses (a reload that changed `listen`
    /// or `admin_listen`): binds the new ones first, then closes the old; connections already
    /// accepted are not touched. False, with both old listeners kept, when a bind fails.
    /// Thread-safe; blocks until worker 0 has done it.
    bool rebind(const config::endpoint& listen, const config::endpoint& admin_listen);

    /// True while listening and not draining (/readyz).
    bool ready() const noexcept { return !draining_.load(); }

    /// The /status document: per upstream its tokens, queue depth, breaker state and time left
    /// open, pool connections, and totals (DESIGN §6).
    std::string status_json() const;

    /// Sets the gauges read at scrape time (tokens, queue depth, circuit state) from the
    /// current runtime.
    void refresh_gauges() const;

  private:
    struct worker;
    boost::asio::awaitable<void> accept_loop(std::shared_ptr<boost::asio::ip::tcp::acceptor> a);
    std::shared_ptr<boost::asio::ip::tcp::acceptor> bind_listener(const config::endpoint& where);
    std::shared_ptr<admin::admin_server> make_admin(const config::endpoint& where);
    void session_ended();
    void stop_all();

    std::shared_ptr<const runtime> rt_;  // guarded by std::atomic_load/store
    // The proxy and admin listeners' addresses, which no upstream connection may reach.
    std::shared_ptr<upstream::own_listeners> own_ = std::make_shared<upstream::own_listeners>();
    std::vector<std::unique_ptr<worker>> workers_;
    mutable std::mutex listeners_;  // guards acceptor_ and admin_ (replaced by rebind)
    std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
    std::shared_ptr<admin::admin_server> admin_;
    std::vector<std::shared_ptr<admin::admin_server>> retired_admins_;
    std::atomic<std::size_t> clients_{0};
    std::atomic<bool> draining_{false};
    std::size_t next_worker_ = 0;
    bool accept_paused_ = false;  // accept() failed and is retried with a backoff (worker 0)
};

}  // namespace sluice::http
