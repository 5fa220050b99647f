// TLS client context of an upstream: trust store, client certificate, protocol floor (DESIGN §3.6).
#pragma once

#include <memory>
#include <string>

#include "config/config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sluice::upstream {

/// One OpenSSL client context (SSL_CTX) built from a `tls` policy; shared by every connection of
/// the upstreams that use it, from any thread (SSL_CTX is thread-safe once built).
class tls_client_context {
  public:
    /// Builds the context: peer verification against `tls.ca_file` or the system store (unless
    /// `verify: false`), TLS >= `min_version`, the client certificate and key when set, and a
    /// client session cache for resumption. Returns null and sets `error` (naming the file and
    /// OpenSSL's reason) when a file cannot be loaded.
    static std::shared_ptr<tls_client_context> create(const config::tls_policy& tls,
                                                      std::string& error);

    ~tls_client_context();
    tls_client_context(const tls_client_context&) = delete;
    tls_client_context& operator=(const tls_client_context&) = delete;

    /// The Asio context, to construct streams from.
    boost::asio::ssl::context& native() noexcept { return *ctx_; }
    /// Whether peer verification is on.
    bool verify() const noexcept { return verify_; }

  private:
    tls_client_context() = default;
    std::unique_ptr<boost::asio::ssl::context> ctx_;
    bool verify_ = true;
};

/// The reason of the first queued OpenSSL error on this thread ("unknown error" when none);
/// clears the queue.
std::string last_openssl_error();

}  // namespace sluice::upstream
