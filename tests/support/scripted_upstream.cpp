// The scripted upstream server: accept loop, per-connection coroutine, TLS setup with SNI.
//
// Threading: one io_context run by one thread owned by the server; every coroutine and
// handler runs there. The test thread only touches the shared state in scripted_upstream
// (under its mutex) and, in stop(), posts the shutdown and joins.
#include "support/scripted_upstream.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <cstdio>
#include <thread>

namespace sluice::test {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

/// The TCP socket under a connection. It can make later reads report EOF at once, so that an
/// ssl::stream sends close_notify and completes async_shutdown without waiting for the
/// peer's close_notify (what a server does before it sends FIN).
class tap_socket {
  public:
    using executor_type = tcp::socket::executor_type;
    using lowest_layer_type = tcp::socket::lowest_layer_type;

    explicit tap_socket(tcp::socket socket) : socket_(std::move(socket)) {}

    executor_type get_executor() noexcept { return socket_.get_executor(); }
    lowest_layer_type& lowest_layer() noexcept { return socket_.lowest_layer(); }
    const lowest_layer_type& lowest_layer() const noexcept { return socket_.lowest_layer(); }
    tcp::socket& socket() noexcept { return socket_; }
    void fake_eof() noexcept { fake_eof_ = true; }

    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
        return net::async_initiate<ReadToken, void(error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& b) {
                if (fake_eof_) {
                    net::post(socket_.get_executor(),
                              beast::bind_front_handler(
                                  std::move(handler), error_code(net::error::eof), std::size_t{0}));
                } else {
                    socket_.async_read_some(b, std::move(handler));
                }
            },
            token, buffers);
    }

    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
        return socket_.async_write_some(buffers, std::forward<WriteToken>(token));
    }

  private:
    tcp::socket socket_;
    bool fake_eof_ = false;
};

using plain_stream = tap_socket;
using tls_stream = ssl::stream<tap_socket>;

struct read_result {
    error_code ec;
    std::size_t bytes = 0;
    bool expired = false;  ///< the deadline cancelled the read
};

/// One read_some, cancelled after `deadline` if given. The timer handler may outlive this
/// frame, so it only touches `socket` while the read is still pending (which keeps it alive).
template <class AsyncReadStream>
net::awaitable<read_result> read_some(AsyncReadStream& stream, tcp::socket& socket,
                                      net::mutable_buffer buffer,
                                      std::optional<milliseconds> deadline) {
    struct watch {
        bool done = false;
        bool expired = false;
    };
    auto w = std::make_shared<watch>();
    std::optional<net::steady_timer> timer;
    if (deadline) {
        timer.emplace(socket.get_executor(), *deadline);
        timer->async_wait([w, &socket](error_code ec) {
            if (!ec && !w->done) {
                w->expired = true;
                error_code ignored;
                socket.cancel(ignored);
            }
        });
    }
    auto [ec, n] = co_await stream.async_read_some(buffer, use_tuple);
    w->done = true;
    if (timer)
        timer->cancel();
    co_return read_result{ec, n, w->expired && ec == net::error::operation_aborted};
}

net::awaitable<void> sleep_for(milliseconds d) {
    if (d.count() <= 0)
        co_return;
    net::steady_timer timer(co_await net::this_coro::executor, d);
    co_await timer.async_wait(use_tuple);
}

std::string version_string(unsigned v) {
    return "HTTP/" + std::to_string(v / 10) + "." + std::to_string(v % 10);
}

std::string certificate_cn(X509* cert) {
    if (!cert)
        return {};
    char buf[256] = {};
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

void report_exception(std::exception_ptr e) {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "scripted_upstream: coroutine failed: %s\n", ex.what());
    }
}

enum class next_step { keep_alive, done };

}  // namespace

// ---------------------------------------------------------------------------------------------
// Free helpers.

std::string received_request::header(std::string_view name) const {
    for (const auto& [n, v] : headers)
        if (beast::iequals(n, name))
            return v;
    return {};
}

std::size_t received_request::header_count(std::string_view name) const {
    return static_cast<std::size_t>(
        std::count_if(headers.begin(), headers.end(),
                      [&](const auto& h) { return beast::iequals(h.first, name); }));
}

std::string response_bytes(int status, std::string_view body, const header_list& headers,
                           bool content_length) {
    auto known = http::int_to_status(static_cast<unsigned>(status));
    std::string reason =
        known == http::status::unknown ? "Unknown" : std::string(http::obsolete_reason(known));
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    bool framed = false;
    for (const auto& [name, value] : headers) {
        if (beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding"))
            framed = true;
        out += name + ": " + value + "\r\n";
    }
    const bool bodyless = status < 200 || status == 204 || status == 304;
    if (content_length && !bodyless && !framed)
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    out += "\r\n";
    out += body;
    return out;
}

std::string chunked_body(const std::vector<std::string>& chunks) {
    std::string out;
    char size[32];
    for (const auto& c : chunks) {
        if (c.empty())
            continue;
        std::snprintf(size, sizeof size, "%zx\r\n", c.size());
        out += size;
        out += c;
        out += "\r\n";
    }
    out += "0\r\n\r\n";
    return out;
}

action respond(int status, std::string body, header_list extra_headers) {
    action a;
    a.writes.push_back({response_bytes(status, body, extra_headers), milliseconds{0}});
    return a;
}

action respond_chunked(int status, const std::vector<std::string>& chunks,
                       header_list extra_headers) {
    extra_headers.emplace_back("Transfer-Encoding", "chunked");
    action a;
    a.writes.push_back({response_bytes(status, chunked_body(chunks), extra_headers), {}});
    return a;
}

action write_raw(std::string bytes) {
    action a;
    a.writes.push_back({std::move(bytes), milliseconds{0}});
    return a;
}

action write_in_pieces(const std::string& bytes, std::size_t piece_size, milliseconds gap) {
    action a;
    piece_size = std::max<std::size_t>(piece_size, 1);
    for (std::size_t at = 0; at < bytes.size(); at += piece_size)
        a.writes.push_back({bytes.substr(at, piece_size), at == 0 ? milliseconds{0} : gap});
    return a;
}

action hang() {
    action a;
    a.no_response = true;
    return a;
}

action reset_connection() {
    action a;
    a.reset = true;
    return a;
}

head_action continue_if_expected(const received_request& head) {
    head_action h;
    if (beast::iequals(head.header("Expect"), "100-continue"))
        h.writes.push_back({"HTTP/1.1 100 Continue\r\n\r\n", milliseconds{0}});
    return h;
}

// ---------------------------------------------------------------------------------------------
// The server.

struct scripted_upstream::impl {
    /// One accepted connection; owned by its coroutine.
    template <class Stream>
    struct connection {
        template <class... Args>
        connection(impl& server, std::size_t id, Args&&... args)
            : server(server), id(id), stream(std::forward<Args>(args)...) {}
        ~connection() { server.finish(*this, connection_end::stopped, {}); }
        connection(const connection&) = delete;
        connection& operator=(const connection&) = delete;

        tap_socket& tap() {
            if constexpr (std::is_same_v<Stream, tls_stream>)
                return stream.next_layer();
            else
                return stream;
        }
        tcp::socket& socket() { return tap().socket(); }

        impl& server;
        std::size_t id;
        Stream stream;
        beast::flat_buffer buffer;
        bool finished = false;
        bool mid_request = false;  ///< bytes of an unfinished request were received
        std::string sni;
        std::string client_cert_subject;
    };

    impl(scripted_upstream& owner, upstream_options o) : owner(owner), opts(std::move(o)) {
        if (opts.tls)
            setup_tls();
        ioc = std::make_unique<net::io_context>(1);
        acceptor.emplace(*ioc);
        tcp::endpoint ep(net::ip::make_address_v4("127.0.0.1"), 0);
        acceptor->open(ep.protocol());
        acceptor->set_option(net::socket_base::reuse_address(true));
        acceptor->bind(ep);
        acceptor->listen(net::socket_base::max_listen_connections);
        port = acceptor->local_endpoint().port();
        net::co_spawn(*ioc, accept_loop(), report_exception);
        thread = std::thread([this] {
            try {
                ioc->run();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "scripted_upstream: io thread failed: %s\n", e.what());
            }
        });
    }

    ~impl() { stop(); }

    void stop() {
        if (thread.joinable()) {
            net::post(*ioc, [this] {
                error_code ignored;
                acceptor->close(ignored);
                ioc->stop();
            });
            thread.join();
        }
        acceptor.reset();
        // Destroys the suspended connection coroutines: their sockets close, their
        // connection records end as `stopped`.
        ioc.reset();
        // A connection accepted but whose coroutine never ran has no record to end itself.
        std::lock_guard lock(owner.mutex_);
        for (auto& info : owner.connections_) {
            if (info.end != connection_end::open)
                continue;
            info.end = connection_end::stopped;
            info.ended_at = std::chrono::steady_clock::now();
            --owner.active_;
        }
        ++owner.events_;
        owner.changed_.notify_all();
    }

    // --- TLS ---------------------------------------------------------------------------------

    std::unique_ptr<ssl::context> make_tls_context(const leaf_cert& cert) {
        auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
        ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3);
        if (opts.min_tls_version != 0)
            SSL_CTX_set_min_proto_version(ctx->native_handle(), opts.min_tls_version);
        if (opts.max_tls_version != 0)
            SSL_CTX_set_max_proto_version(ctx->native_handle(), opts.max_tls_version);
        ctx->use_certificate_chain_file(cert.cert_chain_file.string());
        ctx->use_private_key_file(cert.key_file.string(), ssl::context::pem);
        static const unsigned char sid_ctx[] = "sluice-scripted-upstream";
        SSL_CTX_set_session_id_context(ctx->native_handle(), sid_ctx, sizeof sid_ctx - 1);
        if (opts.require_client_cert) {
            const auto ca = opts.client_ca_file.empty() ? test_ca::instance().client_ca_file()
                                                        : opts.client_ca_file;
            ctx->load_verify_file(ca.string());
            SSL_CTX_set_client_CA_list(ctx->native_handle(),
                                       SSL_load_client_CA_file(ca.string().c_str()));
            ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
        }
        return ctx;
    }

    void setup_tls() {
        default_ctx = make_tls_context(opts.cert ? *opts.cert : test_ca::instance().api_leaf());
        for (const auto& [name, cert] : opts.certs_by_sni)
            sni_ctx.emplace(lower(name), make_tls_context(cert));
        SSL_CTX_set_tlsext_servername_callback(default_ctx->native_handle(), &on_servername);
        SSL_CTX_set_tlsext_servername_arg(default_ctx->native_handle(), this);
    }

    /// Picks the certificate by SNI; with require_sni, aborts a handshake that has none.
    static int on_servername(SSL* ssl, int* alert, void* arg) {
        auto* self = static_cast<impl*>(arg);
        const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (name == nullptr || *name == '\0') {
            if (!self->opts.require_sni)
                return SSL_TLSEXT_ERR_OK;
            *alert = SSL_AD_UNRECOGNIZED_NAME;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        if (auto it = self->sni_ctx.find(lower(name)); it != self->sni_ctx.end())
            SSL_set_SSL_CTX(ssl, it->second->native_handle());
        return SSL_TLSEXT_ERR_OK;
    }

    // --- bookkeeping (shared state lives in owner, under its mutex) ---------------------------

    std::size_t register_connection() {
        std::lock_guard lock(owner.mutex_);
        connection_info info;
        info.id = owner.connections_.size() + 1;
        info.accepted_at = std::chrono::steady_clock::now();
        owner.connections_.push_back(info);
        owner.max_active_ = std::max(owner.max_active_, ++owner.active_);
        ++owner.events_;
        owner.changed_.notify_all();
        return info.id;
    }

    template <class F>
    void update(std::size_t id, F&& f) {
        std::lock_guard lock(owner.mutex_);
        f(owner.connections_.at(id - 1));
        ++owner.events_;
        owner.changed_.notify_all();
    }

    template <class Stream>
    void finish(connection<Stream>& c, connection_end how, std::string detail) {
        if (c.finished)
            return;
        c.finished = true;
        std::lock_guard lock(owner.mutex_);
        auto& info = owner.connections_.at(c.id - 1);
        info.end = how;
        info.detail = std::move(detail);
        info.incomplete_request = c.mid_request;
        info.ended_at = std::chrono::steady_clock::now();
        if (how == connection_end::handshake_failed)
            ++owner.handshake_failures_;
        --owner.active_;
        ++owner.events_;
        owner.changed_.notify_all();
    }

    void record(received_request req) {
        std::lock_guard lock(owner.mutex_);
        owner.requests_.push_back(std::move(req));
        ++owner.events_;
        owner.changed_.notify_all();
    }

    script current_script() {
        std::lock_guard lock(owner.mutex_);
        return owner.script_;
    }

    head_script current_head_script() {
        std::lock_guard lock(owner.mutex_);
        return owner.head_script_;
    }

    // --- connection lifecycle ----------------------------------------------------------------

    net::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
            if (ec) {
                if (!acceptor->is_open())
                    co_return;
                co_await sleep_for(milliseconds{10});  // e.g. EMFILE: do not spin
                continue;
            }
            error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            const std::size_t id = register_connection();
            if (opts.tls)
                net::co_spawn(*ioc, serve_tls(std::move(socket), id), report_exception);
            else
                net::co_spawn(*ioc, serve_plain(std::move(socket), id), report_exception);
        }
    }

    net::awaitable<void> serve_plain(tcp::socket socket, std::size_t id) {
        auto c = std::make_unique<connection<plain_stream>>(*this, id, std::move(socket));
        co_await serve(*c);
    }

    net::awaitable<void> serve_tls(tcp::socket socket, std::size_t id) {
        auto c = std::make_unique<connection<tls_stream>>(*this, id, tap_socket(std::move(socket)),
                                                          *default_ctx);
        auto [ec] = co_await c->stream.async_handshake(ssl::stream_base::server, use_tuple);
        SSL* ssl = c->stream.native_handle();
        if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name))
            c->sni = name;
        if (ec) {
            error_code ignored;
            c->socket().close(ignored);
            finish(*c, connection_end::handshake_failed, ec.message());
            co_return;
        }
        c->client_cert_subject = certificate_cn(SSL_get0_peer_certificate(ssl));
        update(id, [&](connection_info& info) {
            info.sni = c->sni;
            info.tls_version = SSL_get_version(ssl);
            info.session_reused = SSL_session_reused(ssl) == 1;
            info.client_cert_subject = c->client_cert_subject;
        });
        co_await serve(*c);
    }

    /// Reads more bytes into the connection buffer.
    template <class Stream>
    net::awaitable<read_result> read_more(connection<Stream>& c,
                                          std::optional<milliseconds> deadline = {}) {
        auto r = co_await read_some(c.stream, c.socket(), c.buffer.prepare(64 * 1024), deadline);
        c.buffer.commit(r.bytes);
        co_return r;
    }

    /// Ends the connection after a failed read: EOF, reset, or idle deadline.
    template <class Stream>
    net::awaitable<void> end_after_read_error(connection<Stream>& c, const read_result& r) {
        if (r.expired) {
            co_await send_fin(c, true);
            finish(c, connection_end::idle_timeout, {});
            co_await linger_and_close(c);
        } else if (r.ec == net::error::eof || r.ec == ssl::error::stream_truncated) {
            co_await send_fin(c, true);
            finish(c, connection_end::peer_closed,
                   r.ec == net::error::eof ? std::string() : r.ec.message());
            co_await linger_and_close(c);
        } else {
            error_code ignored;
            c.socket().close(ignored);
            finish(c, connection_end::peer_reset, r.ec.message());
        }
    }

    /// Serves requests on one connection until it ends.
    template <class Stream>
    net::awaitable<void> serve(connection<Stream>& c) {
        std::optional<milliseconds> idle = opts.idle_timeout;
        for (std::size_t index = 0;; ++index) {
            if (c.buffer.size() == 0) {
                auto r = co_await read_more(c, idle);
                if (r.ec) {
                    co_await end_after_read_error(c, r);
                    co_return;
                }
            }
            c.mid_request = true;

            http::request_parser<http::string_body> parser;
            parser.header_limit(opts.header_limit);
            parser.body_limit(opts.body_limit);
            std::string raw;

            // The head. put() reports exactly how many bytes it consumed, which is what
            // `raw` records; the rest stays in the buffer for the next request.
            if (!co_await parse_until(c, parser, raw, /*whole_message=*/false))
                co_return;

            received_request req;
            const auto& msg = parser.get();
            req.method = std::string(msg.method_string());
            req.target = std::string(msg.target());
            req.version = version_string(msg.version());
            for (const auto& field : msg)
                req.headers.emplace_back(std::string(field.name_string()),
                                         std::string(field.value()));
            req.connection_id = c.id;
            req.index_on_connection = index;
            req.sni = c.sni;
            req.client_cert_subject = c.client_cert_subject;
            req.received_at = std::chrono::steady_clock::now();
            update(c.id, [](connection_info& info) { ++info.requests; });

            action act;
            bool have_action = false;
            if (auto on_head = current_head_script()) {
                head_action h;
                try {
                    h = on_head(req);
                } catch (const std::exception& e) {
                    fail_script(c, e.what());
                    co_return;
                }
                if (!co_await perform_writes(c, h.writes))
                    co_return;
                if (h.final_action) {
                    act = std::move(*h.final_action);
                    have_action = true;
                    req.body_complete = parser.is_done();
                    req.raw = raw;
                    record(req);
                }
            }
            if (!have_action) {
                if (!co_await parse_until(c, parser, raw, /*whole_message=*/true))
                    co_return;
                req.body = parser.get().body();
                req.raw = std::move(raw);
                record(req);
                auto s = current_script();
                try {
                    act = s ? s(req) : respond(200, "ok");
                } catch (const std::exception& e) {
                    fail_script(c, e.what());
                    co_return;
                }
            }
            c.mid_request = false;

            if (co_await perform(c, act, parser.keep_alive()) == next_step::done)
                co_return;
            if (act.close_after_idle)
                idle = act.close_after_idle;
        }
    }

    /// Feeds the buffer to the parser (reading more as needed) until the head, or with
    /// `whole_message` the whole message, is parsed. On failure the connection is ended and
    /// false is returned.
    template <class Stream>
    net::awaitable<bool> parse_until(connection<Stream>& c,
                                     http::request_parser<http::string_body>& parser,
                                     std::string& raw, bool whole_message) {
        parser.eager(whole_message);
        auto finished = [&] { return whole_message ? parser.is_done() : parser.is_header_done(); };
        while (!finished()) {
            if (c.buffer.size() == 0) {
                auto r = co_await read_more(c);
                if (r.ec) {
                    co_await end_after_read_error(c, r);
                    co_return false;
                }
            }
            error_code ec;
            const std::size_t used = parser.put(c.buffer.data(), ec);
            raw.append(static_cast<const char*>(c.buffer.data().data()), used);
            c.buffer.consume(used);
            if (ec == http::error::need_more || (!ec && used == 0 && !finished())) {
                auto r = co_await read_more(c);
                if (r.ec) {
                    co_await end_after_read_error(c, r);
                    co_return false;
                }
                continue;
            }
            if (ec) {
                co_await reject(c, ec);
                co_return false;
            }
        }
        co_return true;
    }

    /// Answers an unparseable request with 400 and closes, as an origin server would.
    template <class Stream>
    net::awaitable<void> reject(connection<Stream>& c, error_code parse_error) {
        std::string bytes = response_bytes(400, "", {{"Connection", "close"}});
        co_await net::async_write(c.stream, net::buffer(bytes), use_tuple);
        co_await send_fin(c, true);
        finish(c, connection_end::bad_request, parse_error.message());
        co_await linger_and_close(c);
    }

    template <class Stream>
    void fail_script(connection<Stream>& c, const std::string& what) {
        std::fprintf(stderr, "scripted_upstream: script threw: %s\n", what.c_str());
        reset(c);
        finish(c, connection_end::reset_by_script, "script threw: " + what);
    }

    template <class Stream>
    net::awaitable<bool> perform_writes(connection<Stream>& c,
                                        const std::vector<timed_write>& writes) {
        for (const auto& w : writes) {
            co_await sleep_for(w.delay);
            auto [ec, n] = co_await net::async_write(c.stream, net::buffer(w.bytes), use_tuple);
            if (ec) {
                error_code ignored;
                c.socket().close(ignored);
                finish(c, connection_end::peer_reset, "write: " + ec.message());
                co_return false;
            }
        }
        co_return true;
    }

    /// Performs one action; tells whether the connection stays open for another request.
    template <class Stream>
    net::awaitable<next_step> perform(connection<Stream>& c, const action& a,
                                      bool request_keep_alive) {
        co_await sleep_for(a.delay);
        if (!co_await perform_writes(c, a.writes))
            co_return next_step::done;
        if (a.reset) {
            reset(c);
            finish(c, connection_end::reset_by_script, {});
            co_return next_step::done;
        }
        if (a.close || a.close_without_notify) {
            co_await send_fin(c, a.close);
            finish(c, connection_end::closed_by_script,
                   a.close ? std::string() : "without close_notify");
            co_await linger_and_close(c);
            co_return next_step::done;
        }
        if (a.no_response) {
            auto ec = co_await drain(c, std::nullopt);
            error_code ignored;
            c.socket().close(ignored);
            finish(c,
                   ec == net::error::eof ? connection_end::peer_closed : connection_end::peer_reset,
                   ec == net::error::eof ? std::string() : ec.message());
            co_return next_step::done;
        }
        if (!request_keep_alive && opts.honour_connection_close) {
            co_await send_fin(c, true);
            finish(c, connection_end::closed_by_script, "request asked for close");
            co_await linger_and_close(c);
            co_return next_step::done;
        }
        co_return next_step::keep_alive;
    }

    template <class Stream>
    void reset(connection<Stream>& c) {
        error_code ignored;
        c.socket().set_option(net::socket_base::linger(true, 0), ignored);
        c.socket().close(ignored);
    }

    /// Graceful close, first half: close_notify (TLS, if `notify`), then FIN. The client can
    /// observe the close from here on, so callers record the connection's end right after.
    /// (No strings are passed into coroutines by value: GCC 12 mis-copies such parameters.)
    template <class Stream>
    net::awaitable<void> send_fin(connection<Stream>& c, bool notify) {
        if constexpr (std::is_same_v<Stream, tls_stream>) {
            if (notify && c.socket().is_open()) {
                c.tap().fake_eof();
                co_await c.stream.async_shutdown(use_tuple);  // stream_truncated is expected
            }
        }
        error_code ignored;
        c.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    /// Graceful close, second half: drain what the peer still sends (at most
    /// opts.linger_timeout) so that close() does not turn into a RST, then close.
    template <class Stream>
    net::awaitable<void> linger_and_close(connection<Stream>& c) {
        co_await drain(c, opts.linger_timeout);
        error_code ignored;
        c.socket().close(ignored);
    }

    /// Reads and discards raw bytes until the peer closes or `limit` elapses; returns why it
    /// stopped (eof, a socket error, or timed_out).
    template <class Stream>
    net::awaitable<error_code> drain(connection<Stream>& c, std::optional<milliseconds> limit) {
        if (!c.socket().is_open())
            co_return net::error::not_connected;
        const auto deadline = std::chrono::steady_clock::now() + limit.value_or(milliseconds{0});
        char scratch[16 * 1024];
        for (;;) {
            std::optional<milliseconds> left;
            if (limit) {
                left = std::chrono::duration_cast<milliseconds>(deadline -
                                                                std::chrono::steady_clock::now());
                if (left->count() <= 0)
                    co_return net::error::timed_out;
            }
            auto r = co_await read_some(c.socket(), c.socket(), net::buffer(scratch), left);
            if (r.expired)
                co_return net::error::timed_out;
            if (r.ec)
                co_return r.ec;
        }
    }

    scripted_upstream& owner;
    upstream_options opts;
    // Declared before the io_context: SSL objects in connection frames refer to them.
    std::unique_ptr<ssl::context> default_ctx;
    std::map<std::string, std::unique_ptr<ssl::context>> sni_ctx;
    std::unique_ptr<net::io_context> ioc;
    std::optional<tcp::acceptor> acceptor;
    std::uint16_t port = 0;
    std::thread thread;
};

// ---------------------------------------------------------------------------------------------
// Public interface.

scripted_upstream::scripted_upstream(options opts, script s)
    : script_(std::move(s)), head_script_(opts.on_head) {
    impl_ = std::make_unique<impl>(*this, std::move(opts));
    port_ = impl_->port;
}

scripted_upstream::~scripted_upstream() {
    stop();
}

void scripted_upstream::stop() {
    if (impl_)
        impl_->stop();
}

std::string scripted_upstream::authority() const {
    return "127.0.0.1:" + std::to_string(port_);
}

void scripted_upstream::set_script(script s) {
    std::lock_guard lock(mutex_);
    script_ = std::move(s);
}

void scripted_upstream::set_head_script(head_script s) {
    std::lock_guard lock(mutex_);
    head_script_ = std::move(s);
}

std::vector<received_request> scripted_upstream::requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

std::size_t scripted_upstream::request_count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
}

std::vector<connection_info> scripted_upstream::connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
}

std::size_t scripted_upstream::connections_accepted() const {
    std::lock_guard lock(mutex_);
    return connections_.size();
}

std::size_t scripted_upstream::active_connections() const {
    std::lock_guard lock(mutex_);
    return active_;
}

std::size_t scripted_upstream::max_concurrent_connections() const {
    std::lock_guard lock(mutex_);
    return max_active_;
}

std::size_t scripted_upstream::handshake_failures() const {
    std::lock_guard lock(mutex_);
    return handshake_failures_;
}

bool scripted_upstream::wait_for_requests(std::size_t n, milliseconds timeout) const {
    return wait_until([&] { return request_count() >= n; }, timeout);
}

bool scripted_upstream::wait_for_connections(std::size_t n, milliseconds timeout) const {
    return wait_until([&] { return connections_accepted() >= n; }, timeout);
}

bool scripted_upstream::wait_for_closed_connections(std::size_t n, milliseconds timeout) const {
    return wait_until(
        [&] {
            std::lock_guard lock(mutex_);
            return connections_.size() - active_ >= n;
        },
        timeout);
}

bool scripted_upstream::wait_until(const std::function<bool()>& pred, milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mutex_);
    for (;;) {
        const std::uint64_t seen = events_;
        lock.unlock();
        if (pred())
            return true;
        lock.lock();
        if (!changed_.wait_until(lock, deadline, [&] { return events_ != seen; })) {
            lock.unlock();
            return pred();
        }
    }
}

}  // namespace sluice::test
