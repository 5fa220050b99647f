// The admin port (DESIGN §6): /metrics, /healthz, /readyz, /status.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "admin/metrics.hpp"
#include "config/config.hpp"

namespace sluice::admin {

/// What the admin endpoints read from the running proxy; every callback is thread-safe.
struct admin_sources {
    /// True while the proxy listens and is not draining (/readyz).
    std::function<bool()> ready;
    /// Refreshes the gauges computed on demand (tokens, queue depth, circuit state).
    std::function<void()> refresh_gauges;
    /// The /status document (JSON text).
    std::function<std::string()> status_json;
};

/// A small HTTP/1.1 server (Beast) on `admin_listen`. GET and HEAD only (405 otherwise);
/// unknown paths get 404. Runs on the io_context it is given; stays up while draining so that
/// /readyz can say 503 (DESIGN §3.9).
class admin_server {
  public:
    /// Binds `where` (port 0 = ephemeral). Throws std::system_error when it cannot.
    admin_server(boost::asio::io_context& ioc, const config::endpoint& where,
                 std::shared_ptr<registry> metrics, admin_sources sources);

    /// The bound address.
    boost::asio::ip::tcp::endpoint local_endpoint() const;
    /// Starts accepting (spawns the accept loop on the io_context).
    void start();
    /// Stops accepting and closes the listener.
    void stop();

  private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

    boost::asio::io_context& ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::shared_ptr<registry> metrics_;
    admin_sources sources_;
};

}  // namespace sluice::admin
