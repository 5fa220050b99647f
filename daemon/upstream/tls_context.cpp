// Building verified TLS client contexts.
#include "upstream/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <boost/asio/ssl/context.hpp>

namespace sluice::upstream {

namespace ssl = boost::asio::ssl;

std::string last_openssl_error() {
    // The first error queued is the cause (e.g. "No such file or directory"); the rest are the
    // layers that passed it on.
    unsigned long first = ERR_get_error();
    ERR_clear_error();
    if (first == 0)
        return "unknown error";
    const char* reason = ERR_reason_error_string(first);
    return reason ? reason : "error " + std::to_string(first);
}

tls_client_context::~tls_client_context() = default;

std::shared_ptr<tls_client_context> tls_client_context::create(const config::tls_policy& tls,
                                                               std::string& error) {
    std::shared_ptr<tls_client_context> out(new tls_client_context());
    out->ctx_ = std::make_unique<ssl::context>(ssl::context::tls_client);
    out->verify_ = tls.verify;
    SSL_CTX* ctx = out->ctx_->native_handle();
    ERR_clear_error();

    SSL_CTX_set_min_proto_version(ctx, tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // Sessions are kept per pool by the pool itself (SSL_get1_session / SSL_set_session).
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);

    if (tls.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        int ok = tls.ca_file.empty()
                     ? SSL_CTX_set_default_verify_paths(ctx)
                     : SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr);
        if (ok != 1) {
            error = "cannot load CA file '" +
                    (tls.ca_file.empty() ? std::string("system default") : tls.ca_file) +
                    "': " + last_openssl_error();
            return nullptr;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!tls.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1) {
            error = "cannot load cert_file '" + tls.cert_file + "': " + last_openssl_error();
            return nullptr;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            error = "cannot load key_file '" + tls.key_file + "': " + last_openssl_error();
            return nullptr;
        }
    }
    return out;
}

}  // namespace sluice::upstream
