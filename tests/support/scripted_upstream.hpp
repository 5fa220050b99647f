// An in-process HTTP/1.1 origin server for tests, scripted per request at the raw-bytes level.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/test_ca.hpp"

namespace sluice::test {

/// Header fields in wire order, names spelled as sent.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// One request as the upstream received it.
struct received_request {
    std::string method;   ///< as sent, e.g. "GET"
    std::string target;   ///< request-target as sent, e.g. "/v1?x=1"
    std::string version;  ///< "HTTP/1.1" or "HTTP/1.0"
    header_list headers;  ///< every field line, in wire order
    std::string body;     ///< payload, de-chunked
    std::string raw;      ///< exact bytes of head + body (chunk framing and trailers included)
    bool body_complete = true;      ///< false when a head_script answered before the body was read
    std::size_t connection_id = 0;  ///< 1-based, in accept order
    std::size_t index_on_connection = 0;  ///< 0 for the first request of its connection
    std::string sni;                      ///< TLS server name the client sent; empty: none/plain
    std::string client_cert_subject;      ///< CN of the verified client certificate, if any
    std::chrono::steady_clock::time_point received_at;  ///< when the head had been parsed

    /// Value of the first field named `name` (case-insensitive); empty when absent.
    std::string header(std::string_view name) const;
    /// Number of field lines named `name` (case-insensitive).
    std::size_t header_count(std::string_view name) const;
    /// True when at least one field line is named `name` (case-insensitive).
    bool has_header(std::string_view name) const { return header_count(name) > 0; }
};

/// Bytes written to the client after a pause.
struct timed_write {
    std::string bytes;
    std::chrono::milliseconds delay{0};  ///< waited before this write
};

/// What the upstream does for one request, in this order: wait `delay`, perform `writes`,
/// then end the exchange as the flags say (first set flag wins: reset, close,
/// close_without_notify, no_response; none: keep the connection alive for the next request).
struct action {
    std::chrono::milliseconds delay{0};  ///< before writing anything
    std::vector<timed_write> writes;     ///< raw bytes, each after its own delay
    bool reset = false;                  ///< then RST (SO_LINGER 0 + close)
    bool close = false;  ///< then graceful close: TLS close_notify, FIN, drain until the peer
                         ///< closes (at most options.linger_timeout), close
    bool close_without_notify = false;  ///< TLS: FIN without close_notify (truncation attack
                                        ///< shape); plain TCP: same as close
    bool no_response = false;  ///< then hang: read nothing more, discard input until the peer
                               ///< closes or the upstream stops
    /// Keep-alive, but close gracefully if the next request has not started within this time
    /// (overrides options.idle_timeout for this connection from now on).
    std::optional<std::chrono::milliseconds> close_after_idle;

    // Chainable modifiers for the helpers below: `return respond(503).delayed(100ms);`
    /// Sets `delay`.
    action delayed(std::chrono::milliseconds d) && {
        delay = d;
        return std::move(*this);
    }
    /// Sets `close`.
    action then_close() && {
        close = true;
        return std::move(*this);
    }
    /// Sets `close_without_notify`.
    action then_close_without_notify() && {
        close_without_notify = true;
        return std::move(*this);
    }
    /// Sets `reset`.
    action then_reset() && {
        reset = true;
        return std::move(*this);
    }
    /// Sets `no_response`.
    action then_hang() && {
        no_response = true;
        return std::move(*this);
    }
    /// Sets `close_after_idle`.
    action with_idle_close(std::chrono::milliseconds idle) && {
        close_after_idle = idle;
        return std::move(*this);
    }
};

/// Builds "HTTP/1.1 <status> <reason>\r\n" + `headers` + a Content-Length (unless
/// `content_length` is false, or status is 1xx/204/304) + "\r\n" + body. A Content-Length
/// among `headers` replaces the generated one.
std::string response_bytes(int status, std::string_view body = {}, const header_list& headers = {},
                           bool content_length = true);
/// Encodes `chunks` with chunked transfer coding, ending with the zero-size chunk and an empty
/// trailer section. Empty strings are skipped (they would end the body early).
std::string chunked_body(const std::vector<std::string>& chunks);

/// A well-formed response with Content-Length, written at once; the connection stays open.
action respond(int status, std::string body = {}, header_list extra_headers = {});
/// A well-formed `Transfer-Encoding: chunked` response, all chunks in one write.
action respond_chunked(int status, const std::vector<std::string>& chunks,
                       header_list extra_headers = {});
/// Writes `bytes` verbatim (any malformed response a test needs).
action write_raw(std::string bytes);
/// Writes `bytes` in pieces of `piece_size` bytes, the first at once and each later one
/// `gap` after the previous (slow or dribbling responses).
action write_in_pieces(const std::string& bytes, std::size_t piece_size,
                       std::chrono::milliseconds gap);
/// Reads the request, then never answers (for timeout tests).
action hang();
/// RST without writing anything.
action reset_connection();

/// What to do once a request head is parsed, before its body is read (only with
/// options.on_head): interim writes such as "HTTP/1.1 100 Continue\r\n\r\n", or a final
/// answer without reading the body (e.g. 413 + close).
struct head_action {
    std::vector<timed_write> writes;  ///< written before reading the body
    /// If set: performed right away, the body is not read (received_request::body_complete is
    /// false) and the script is not called. End with close/reset if the request has a body,
    /// or the unread body is parsed as the next request.
    std::optional<action> final_action;
};
/// head_action writing "HTTP/1.1 100 Continue\r\n\r\n" when the request has
/// `Expect: 100-continue`, nothing otherwise.
head_action continue_if_expected(const received_request& head);

/// Decides the answer to one complete request. Runs on the upstream's thread: keep it quick
/// and never block on the test thread.
using script = std::function<action(const received_request&)>;
/// Decides what to do after a request head (body not yet read, `body` empty). Without one, a
/// request with `Expect: 100-continue` gets no interim response: the upstream just waits for
/// the body, like a server that ignores Expect.
using head_script = std::function<head_action(const received_request&)>;

/// How a connection ended, as seen by the upstream.
enum class connection_end {
    open,              ///< still open
    peer_closed,       ///< EOF from the client (with or without TLS close_notify)
    peer_reset,        ///< RST or another read/write error from the client side
    closed_by_script,  ///< action close / close_without_notify, or Connection: close honoured
    reset_by_script,   ///< action reset
    idle_timeout,      ///< close_after_idle / options.idle_timeout elapsed
    handshake_failed,  ///< TLS handshake failed (no SNI with require_sni, no client cert, ...)
    bad_request,       ///< the request could not be parsed; a 400 was sent
    stopped,           ///< the upstream was stopped while the connection was open
};

/// Snapshot of one accepted connection.
struct connection_info {
    std::size_t id = 0;        ///< 1-based, in accept order
    std::size_t requests = 0;  ///< complete request heads received
    connection_end end = connection_end::open;
    std::string detail;               ///< error message for failures, else empty
    std::string sni;                  ///< TLS: server name sent by the client
    std::string tls_version;          ///< TLS: e.g. "TLSv1.3"
    bool session_reused = false;      ///< TLS: resumed session
    std::string client_cert_subject;  ///< TLS: CN of the verified client certificate
    bool incomplete_request = false;  ///< ended while a request was partly received
    std::chrono::steady_clock::time_point accepted_at;
    std::optional<std::chrono::steady_clock::time_point> ended_at;
};

/// Configuration of a scripted_upstream; every field has a usable default.
struct upstream_options {
    bool tls = false;
    /// Certificate served when the SNI matches no entry of certs_by_sni. Default:
    /// test_ca::instance().api_leaf().
    std::optional<leaf_cert> cert;
    /// SNI host name (lower case) → certificate to serve for it.
    std::map<std::string, leaf_cert> certs_by_sni;
    bool require_sni = false;          ///< abort the handshake (unrecognized_name) without SNI
    bool require_client_cert = false;  ///< mTLS: demand and verify a client certificate
    /// CA file for verifying client certificates. Default: test_ca::instance().client_ca_file().
    std::filesystem::path client_ca_file;
    /// Close (gracefully) a connection on which no request has started for this long, before
    /// the first request or after a response (nullopt: never). See also
    /// action::close_after_idle.
    std::optional<std::chrono::milliseconds> idle_timeout;
    /// Close after the response when the request asked for it (Connection: close, HTTP/1.0
    /// without keep-alive), as real servers do.
    bool honour_connection_close = true;
    /// Graceful close: how long to keep reading (and discarding) after the FIN, until the
    /// client closes too, so that close() does not send RST for late client bytes. 0: close()
    /// right after the FIN, as servers do on keep-alive timeout (late bytes then get RST).
    std::chrono::milliseconds linger_timeout{2000};
    /// TLS protocol bounds as OpenSSL constants (TLS1_2_VERSION, TLS1_3_VERSION); 0: library
    /// default.
    int min_tls_version = 0;
    int max_tls_version = 0;
    std::uint32_t header_limit = 64 * 1024;          ///< bytes; larger heads get 400
    std::uint64_t body_limit = 64ull * 1024 * 1024;  ///< bytes; larger bodies get 400
    /// Called after each request head, before the body is read; empty: always read the body.
    head_script on_head;
};

/// An HTTP/1.1 origin server on 127.0.0.1, ephemeral port, plain TCP or TLS, running on its
/// own thread and io_context. Each connection is served by its own coroutine; requests are
/// parsed with Beast (keep-alive and pipelining work), recorded, and answered with whatever
/// bytes the script returns. The destructor (or stop()) closes everything and joins.
///
///   scripted_upstream up({.tls = true}, [](const received_request& r) {
///       return r.target == "/slow" ? hang() : respond(200, "ok");
///   });
///   ... point the proxy at 127.0.0.1:up.port() ...
///   ASSERT_TRUE(up.wait_for_requests(1, 2s));
class scripted_upstream {
  public:
    using options = upstream_options;

    /// Binds 127.0.0.1:0 and starts serving. Throws on bind/TLS setup errors. An empty
    /// script answers every request with respond(200, "ok").
    explicit scripted_upstream(options opts = {}, script s = {});
    /// Equivalent to stop().
    ~scripted_upstream();
    scripted_upstream(const scripted_upstream&) = delete;
    scripted_upstream& operator=(const scripted_upstream&) = delete;

    /// The bound port (never 0).
    std::uint16_t port() const { return port_; }
    /// "127.0.0.1:<port>".
    std::string authority() const;

    /// Replaces the script for requests completed from now on.
    void set_script(script s);
    /// Replaces options.on_head for request heads parsed from now on.
    void set_head_script(head_script s);

    /// Every request received so far, in arrival order (thread-safe snapshot).
    std::vector<received_request> requests() const;
    std::size_t request_count() const;
    /// Every connection accepted so far, in accept order.
    std::vector<connection_info> connections() const;
    std::size_t connections_accepted() const;
    /// Connections not yet ended. A connection ends when the upstream sends its FIN (it may
    /// then linger, draining, until the client closes) or when the client ends it.
    std::size_t active_connections() const;
    /// Highest number of connections open at the same time.
    std::size_t max_concurrent_connections() const;
    /// TLS handshakes that failed.
    std::size_t handshake_failures() const;

    /// Waits until at least `n` requests were received; false on timeout.
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Waits until at least `n` connections were accepted; false on timeout.
    bool wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Waits until at least `n` connections have ended (for any reason); false on timeout.
    bool wait_for_closed_connections(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Waits until `pred` holds. It is evaluated now and after every event of this upstream
    /// (accept, request, connection end, handshake failure), without the internal lock held,
    /// so it may call the accessors above. Returns pred()'s last value.
    bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) const;

    /// Stops accepting, closes every connection (abruptly) and joins the thread. Idempotent;
    /// afterwards connecting to port() is refused and the snapshots stay readable. Not from a
    /// script (it runs on the thread being joined).
    void stop();

  private:
    struct impl;  // the server itself (scripted_upstream.cpp)

    // Shared with the server thread, guarded by mutex_.
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::uint64_t events_ = 0;
    script script_;
    head_script head_script_;
    std::vector<received_request> requests_;
    std::vector<connection_info> connections_;
    std::size_t active_ = 0;
    std::size_t max_active_ = 0;
    std::size_t handshake_failures_ = 0;

    std::uint16_t port_ = 0;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice::test
