// One client connection: the request path of DESIGN §2, driven by a coroutine.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive/list.hpp>
#include "core/deadline_stream.hpp"

#include "admin/metrics.hpp"
#include "config/config.hpp"
#include "upstream/pool.hpp"
#include "upstream/router.hpp"

namespace sluice::http {

class basic_authenticator;

/// What one config generation gives the request path: immutable, shared by all threads,
/// swapped whole on reload.
struct runtime {
    std::shared_ptr<const config::config> cfg;
    std::unique_ptr<upstream::router> router;
    std::string via_pseudonym;  ///< received-by of our Via entries, e.g. "sluice-1a2b3c4d"
    std::shared_ptr<admin::registry> metrics;  ///< process-wide, kept across reloads
    std::shared_ptr<admin::upstream_metrics> unrouted_metrics;  ///< upstream="unrouted"
    /// Client addresses that may use the proxy (empty: anyone); see effective_client_cidrs.
    std::vector<config::cidr> client_cidrs;
    /// Proxy-Authorization checker when `proxy_auth.users_file` is set, else null.
    std::shared_ptr<basic_authenticator> auth;
};

/// A client connection waiting for its next request: an entry its session owns and links into
/// worker_state::idle_clients while it waits (no allocation per request), unlinked when the wait
/// ends or the session goes.
struct idle_client
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
    explicit idle_client(deadline_stream& s) : stream(&s) {}
    deadline_stream* stream;
};

/// Per-I/O-thread state a session uses: the thread's upstream pools, and what drain needs.
struct worker_state {
    upstream::pool_set pools;
    /// The server's draining flag (DESIGN §3.9); never null once the server is built.
    const std::atomic<bool>* draining = nullptr;
    /// Client connections waiting for their next request, cancelled when draining begins.
    boost::intrusive::list<idle_client, boost::intrusive::constant_time_size<false>> idle_clients;
};

/// Serves one accepted client connection until it closes: reads requests (keep-alive,
/// pipelined, answered in order), routes them, forwards each over a pooled upstream
/// connection and streams the response back, or answers with a DESIGN §5 error. Never throws;
/// every I/O error ends in a response or a close. `rt` is the config generation current when the
/// connection was accepted.
boost::asio::awaitable<void> serve_client(boost::asio::ip::tcp::socket socket,
                                          std::shared_ptr<const runtime> rt, worker_state& worker);

}  // namespace sluice::http
