// Runs the proxy server in-process on an ephemeral port for integration tests.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "config/config.hpp"
#include "core/logging.hpp"
#include "http/server.hpp"
#include "support/raw_client.hpp"
#include "support/scripted_upstream.hpp"
#include "support/test_ca.hpp"

namespace sluice::test {

using namespace std::chrono_literals;

/// A config for tests: loopback listener on port 0, access log off, short timeouts, rate limit,
/// retries and breaker off, and no upstreams (add them with add_upstream).
inline config::config base_config() {
    config::config c;
    c.listen = {"127.0.0.1", 0};
    c.admin_listen = {"127.0.0.1", 0};
    c.threads = 1;
    c.drain_timeout = 2s;
    c.log.access_log = false;
    c.log.level = "warn";
    c.defaults.timeouts.connect = 2s;
    c.defaults.timeouts.request = 3s;
    c.defaults.tls.ca_file = test_ca::instance().root_ca_file().string();
    // Forwarding tests count exact arrivals: policies are off unless a test turns them on.
    c.defaults.retry.enabled = false;
    c.defaults.circuit_breaker.enabled = false;
    c.defaults.rate_limit.enabled = false;
    c.via_id = "sluice-test0001";
    return c;
}

/// Adds an upstream `name` matching `host` and forwarding to `origin` (scheme, host, port).
inline config::upstream& add_upstream(config::config& c, std::string name, std::string host,
                                      std::string scheme, std::string origin_host,
                                      std::uint16_t port) {
    config::upstream u;
    u.name = std::move(name);
    u.hosts.push_back({std::move(host), false, std::nullopt});
    u.origin = {std::move(scheme), std::move(origin_host), port};
    u.policy = c.defaults;
    c.upstreams.push_back(std::move(u));
    return c.upstreams.back();
}

/// The proxy under test, serving on its own thread until destroyed (which drains it).
class running_proxy {
  public:
    explicit running_proxy(config::config c) {
        logging::configure(c.log);
        auto cfg = std::make_shared<const config::config>(std::move(c));
        std::vector<std::string> errors;
        auto rt = http::make_runtime(cfg, "sluice-unused", errors);
        if (!rt)
            throw std::runtime_error(errors.empty() ? "runtime" : errors.front());
        server_ = std::make_unique<http::server>(rt);
        port_ = server_->local_endpoint().port();
        thread_ = std::thread([this] { server_->run(); });
    }
    ~running_proxy() {
        server_->drain();
        thread_.join();
    }
    std::uint16_t port() const { return port_; }
    http::server& server() { return *server_; }

  private:
    std::unique_ptr<http::server> server_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

/// "GET <target> HTTP/1.1" with Host and any extra header lines (each ending in \r\n).
inline std::string get(std::string_view target, std::string_view host = "api.example.test",
                       std::string_view extra = "") {
    std::string r = "GET ";
    r += target;
    r += " HTTP/1.1\r\nHost: ";
    r += host;
    r += "\r\n";
    r += extra;
    r += "\r\n";
    return r;
}

}  // namespace sluice::test
