// A small blocking TCP (optionally TLS) client for tests; every call has a deadline.
#pragma once

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/test_ca.hpp"

namespace sluice::test {

/// One HTTP response as read off the wire by raw_client.
struct http_response {
    int status = 0;
    std::string reason;
    std::string version;                                       ///< "HTTP/1.1" or "HTTP/1.0"
    std::vector<std::pair<std::string, std::string>> headers;  ///< wire order, names as sent
    std::string body;                                          ///< payload, de-chunked
    std::string raw;  ///< exact bytes of head + body (chunk framing included)
    bool chunked = false;
    bool keep_alive = false;  ///< per the version and Connection header
    /// Transfer ended by the server closing the connection (no Content-Length, not chunked).
    bool close_delimited = false;

    /// Value of the first field named `name` (case-insensitive); empty when absent.
    std::string header(std::string_view name) const;
    /// Number of field lines named `name` (case-insensitive).
    std::size_t header_count(std::string_view name) const;
    bool has_header(std::string_view name) const { return header_count(name) > 0; }
};

/// Result of try_read_response(): the response if one was complete, otherwise why not.
struct read_response_result {
    boost::system::error_code error;  ///< timed_out, eof, connection_reset, a parse error, ...
    std::optional<http_response> response;  ///< set when error is clear
    std::string partial_raw;                ///< bytes of the unfinished response when error is set
};

/// How the server ended the connection, and what arrived before.
struct close_result {
    /// eof (clean FIN; over TLS: close_notify then FIN), ssl stream_truncated (TLS: FIN without
    /// close_notify), connection_reset, or timed_out if the connection is still open.
    boost::system::error_code how;
    std::string data;  ///< everything received (and not yet consumed) before the end
};

/// TLS settings for raw_client::start_tls.
struct tls_client_options {
    std::string sni = "api.example.test";  ///< server name sent; empty: no SNI
    /// Name checked against the certificate (DNS name or IP address); empty: `sni`; both
    /// empty: no host name check.
    std::string verify_host;
    bool verify_peer = true;
    std::filesystem::path ca_file;  ///< trust anchors; empty: test_ca::instance().root_ca_file()
    std::optional<leaf_cert> client_cert;  ///< presented for mTLS when set
};

/// A blocking client for driving a server byte by byte:
///
///   raw_client c(proxy_port);
///   c.send("GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
///   http_response r = c.read_response();
///   EXPECT_EQ(r.status, 200);
///
/// Each operation runs on a private io_context for at most its timeout, so a test never hangs.
/// Throwing variants throw std::system_error; try_* variants return the error. Bytes received
/// beyond one response are kept for the next read. Not thread-safe: one test thread per client.
class raw_client {
  public:
    static constexpr std::chrono::milliseconds default_timeout{5000};

    /// Connects to 127.0.0.1:port. Throws std::system_error if that fails within `timeout`.
    explicit raw_client(std::uint16_t port, std::chrono::milliseconds timeout = default_timeout);
    /// Connects to host (an IP address literal, e.g. "::1"):port.
    raw_client(const std::string& host, std::uint16_t port,
               std::chrono::milliseconds timeout = default_timeout);
    ~raw_client();
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    /// Writes all of `bytes` (through TLS after start_tls). Throws on error or timeout.
    void send(std::string_view bytes, std::chrono::milliseconds timeout = default_timeout);
    boost::system::error_code try_send(std::string_view bytes,
                                       std::chrono::milliseconds timeout = default_timeout);

    /// Reads one response (a 1xx interim response counts as one). `to_head_request`: the
    /// response has no body whatever its headers say. Throws on error or timeout.
    http_response read_response(std::chrono::milliseconds timeout = default_timeout,
                                bool to_head_request = false);
    read_response_result try_read_response(std::chrono::milliseconds timeout = default_timeout,
                                           bool to_head_request = false);

    /// Reads whatever arrives next (at least one byte, buffered bytes first); empty on EOF,
    /// error or timeout.
    std::string read_some(std::chrono::milliseconds timeout = default_timeout);
    /// Reads until the peer ends the connection or `timeout` passes.
    close_result read_until_close(std::chrono::milliseconds timeout = default_timeout);
    /// read_until_close().data.
    std::string read_all_until_close(std::chrono::milliseconds timeout = default_timeout);
    /// Waits for the peer to close (EOF, or reset) within `timeout`, discarding data.
    bool closed_by_peer(std::chrono::milliseconds timeout = default_timeout);

    /// TLS handshake over the current connection (e.g. directly to a TLS upstream, or after a
    /// CONNECT through the proxy). Returns the handshake error; on success later send/read
    /// go through TLS.
    boost::system::error_code start_tls(const tls_client_options& options = {},
                                        std::chrono::milliseconds timeout = default_timeout);
    /// X509_V_OK or the X509_V_ERR_* code of the last handshake's certificate check.
    long tls_verify_result() const;
    /// Negotiated protocol, e.g. "TLSv1.3"; empty before start_tls.
    std::string tls_version() const;

    /// Half-closes the TCP connection (FIN); reading stays possible. Over TLS no close_notify
    /// is sent, so the peer sees a truncated TLS stream.
    void shutdown_send();
    /// Closes with RST (SO_LINGER 0).
    void reset();
    /// Closes normally.
    void close();
    /// Bytes received but not yet consumed by a read.
    const std::string& pending() const;
    /// Local port of the connection (to match it in server-side logs).
    std::uint16_t local_port() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice::test
