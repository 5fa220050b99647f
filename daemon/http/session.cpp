// The request path (DESIGN §2): parse -> route -> attempt (pool, write, read head) -> stream the
// response back. The policies are called from here; none is implemented here.
#include "http/session.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "core/coarse_clock.hpp"
#include "core/logging.hpp"
#include "core/proxy_error.hpp"
#include "http/header_rules.hpp"
#include "http/message_head.hpp"
#include "http/proxy_auth.hpp"
#include "http/request_target.hpp"
#include "policy/retry_after.hpp"
#include "policy/retry_decision.hpp"
#include "upstream/upstream_state.hpp"

namespace sluice::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using net::ip::tcp;
using steady_clock = std::chrono::steady_clock;
using namespace net::experimental::awaitable_operators;
// co_await of an operation started with `deferred` runs it from the awaiting coroutine's own
// frame; with use_awaitable, Asio wraps each operation in a coroutine frame of its own (an
// allocation, and a frame to push and pop, per read and write: BENCHMARKS.md, "Profile").
// Awaitable operators (|| and &&) need awaitables: awaitable_tuple.
constexpr auto use_tuple = net::as_tuple(net::deferred);
constexpr auto awaitable_tuple = net::as_tuple(net::use_awaitable);

namespace {

constexpr std::size_t relay_buffer_size = 64 * 1024;
// What an idle connection reads its next request head into: most request heads fit (a longer
// one grows the buffer), and 10 000 idle connections cost 10 MiB, not 40 (DESIGN §9).
constexpr std::size_t idle_read_size = 1024;
// Beast reads max(512, free capacity) bytes at a time: a body read needs room for at least one
// whole TLS record, or a 1 GiB download turns into two million 512-byte reads.
constexpr std::size_t body_read_capacity = 32 * 1024;

void reserve_for_body(beast::flat_buffer& b) {
    if (b.capacity() - b.size() < body_read_capacity)
        b.reserve(b.size() + body_read_capacity);
}

/// A response sluice makes itself (DESIGN §5).
struct local_response {
    proxy_errc error;
    std::string details;
    unsigned status = 0;  // 0: default_status(error)
    bool close = false;   // the request's framing can no longer be trusted
    std::optional<std::chrono::seconds> retry_after = {};  // 429 / 503: Retry-After
    std::string proxy_authenticate = {};                   // 407: the challenge
};

/// How an attempt ended before any response byte reached the client.
struct attempt_failure {
    proxy_errc error;
    std::string details;
    bool before_response_byte = false;  // nothing of a response arrived: a stale connection?
    bool client_gone = false;           // the client left mid-body: nobody to answer
};

// How a failed attempt counts for the retry decision (DESIGN §3.5). Errors that are not the
// upstream's fault or cannot heal by retrying (a prohibited address, a broken request body, a
// malformed response) have none.
std::optional<policy::attempt_outcome> retry_outcome(proxy_errc e) {
    switch (e) {
        case proxy_errc::dns_error:
        case proxy_errc::connection_refused:
        case proxy_errc::connection_timeout:
        case proxy_errc::destination_ip_unroutable:
            return policy::attempt_outcome::connect_error;
        case proxy_errc::tls_certificate_error:
            return policy::attempt_outcome::tls_certificate_error;
        case proxy_errc::tls_protocol_error:
            return policy::attempt_outcome::tls_error;
        case proxy_errc::connection_read_timeout:
        case proxy_errc::connection_write_timeout:
            return policy::attempt_outcome::timeout;
        case proxy_errc::connection_terminated:
            return policy::attempt_outcome::reset_before_head;
        default:
            return std::nullopt;
    }
}

// The `outcome` label of a failed attempt (DESIGN §6).
admin::attempt_outcome attempt_label(proxy_errc e) {
    switch (e) {
        case proxy_errc::dns_error:
        case proxy_errc::connection_refused:
        case proxy_errc::connection_timeout:
        case proxy_errc::destination_ip_unroutable:
        case proxy_errc::destination_ip_prohibited:
            return admin::attempt_outcome::connect_error;
        case proxy_errc::tls_certificate_error:
        case proxy_errc::tls_protocol_error:
            return admin::attempt_outcome::tls_error;
        case proxy_errc::connection_read_timeout:
        case proxy_errc::connection_write_timeout:
            return admin::attempt_outcome::timeout;
        default:
            return admin::attempt_outcome::reset;
    }
}

// The `outcome` label of an attempt that got a response head.
admin::attempt_outcome response_label(unsigned status) {
    if (status == 429)
        return admin::attempt_outcome::http_429;
    if (status >= 500)
        return admin::attempt_outcome::http_5xx;
    return admin::attempt_outcome::success;
}

// Whether a failed attempt is the upstream's failure for the circuit breaker (DESIGN §3.4).
bool breaker_failure(proxy_errc e) {
    return retry_outcome(e).has_value() || e == proxy_errc::http_protocol_error ||
           e == proxy_errc::http_response_header_section_size;
}

/// The request body as read so far: all of it (`complete`), or a prefix while the rest is still
/// to be streamed from the client.
struct request_body {
    std::string buffered;
    bool complete = true;
    bool chunked = false;                 // the client sent it chunked
    std::optional<std::uint64_t> length;  // the client's Content-Length
    std::uint64_t bytes_read = 0;
};

bool is_timeout(const beast::error_code& ec) {
    return ec == beast::error::timeout || ec == net::error::timed_out;
}

// Calls f(stream) with the connection's TLS or plain stream; both paths share one template.
template <class F>
auto with_stream(upstream::connection& c, F&& f) {
    if (auto* s = c.tls())
        return f(*s);
    return f(*c.plain());
}

class session {
  public:
    session(tcp::socket socket, std::shared_ptr<const runtime> rt, worker_state& worker)
        : client_(std::move(socket)),
          rt_(std::move(rt)),
          cfg_(*rt_->cfg),
          worker_(worker),
          relay_() {
        beast::error_code ec;
        auto ep = client_.socket().remote_endpoint(ec);
        // No peer address: the client reset the connection between accept and here. It is
        // gone, not refused: nothing is served or logged (a 403 for client_cidrs, before).
        client_gone_ = static_cast<bool>(ec);
        if (!ec)
            client_addr_ = ep.address().to_string() + ":" + std::to_string(ep.port());
        client_allowed_ = !ec && client_allowed(ep.address(), rt_->client_cidrs);
    }

    net::awaitable<void> run() {
        if (client_gone_)
            co_return;
        for (;;) {
            if (!co_await wait_for_request())
                break;
            bool keep_alive = co_await serve_one();
            if (!keep_alive)
                break;
        }
        co_await close_gracefully();
    }

  private:
    // ---- one request ----------------------------------------------------------------------

    // Per-request state, reset for every request on the connection.
    struct exchange {
        steady_clock::time_point start;
        std::string method;
        unsigned version = 11;
        bool client_keep_alive = true;
        request_target target;
        std::shared_ptr<const upstream::upstream_bundle> upstream;
        unsigned status = 0;
        std::uint64_t bytes_out = 0;
        // Bytes of the request body read from the client (bytes_in), with those of `body` when
        // one is read, so that a response sluice makes after reading it still counts them.
        std::uint64_t bytes_in = 0;
        const request_body* body = nullptr;
        unsigned attempts = 0;
        std::chrono::nanoseconds queue_wait{0};
        std::string_view breaker;  // state the breaker was seen in, for the access log
        std::string_view error;
        steady_clock::time_point total_deadline;
        bool logged = false;
    };

    // What one request needs while it is served, kept out of the coroutine frames: GCC gives
    // every local of a coroutine a slot in its frame, and a frame over 1020 bytes is neither
    // recycled by Asio (it evicts a cached one instead) nor kept by malloc's tcache, so each
    // costs a slow malloc and free per request (BENCHMARKS.md). Leased from a per-thread spare
    // list (state_lease), so an idle connection holds none.
    struct request_state {
        exchange x;
        std::optional<bhttp::request_parser<bhttp::empty_body>> head;
        // The same parser once the head is done, reading the body.
        std::optional<bhttp::request_parser<bhttp::buffer_body>> body_parser;
        request_body body;
        // The current attempt's response.
        std::optional<bhttp::response_parser<bhttp::buffer_body>> response;
        // The response sluice makes instead of relaying one, once it is decided.
        std::optional<local_response> reply;
        upstream::queued_admission queued;
        upstream::admission_result admitted;
    };

    // A request_state for one request, from this thread's spares (at most 64 are kept), and
    // given back empty: nothing of a request (an upstream bundle, say) outlives it.
    class state_lease {
      public:
        state_lease() {
            auto& s = spares();
            if (s.list.empty()) {
                state_ = std::make_unique<request_state>();
            } else {
                state_ = std::move(s.list.back());
                s.list.pop_back();
            }
        }
        ~state_lease() {
            std::destroy_at(state_.get());
            std::construct_at(state_.get());
            if (spares_gone())
                return;  // the thread is ending: the state is freed with the lease
            if (auto& s = spares(); s.list.size() < 64)
                s.list.push_back(std::move(state_));
        }
        state_lease(const state_lease&) = delete;
        state_lease& operator=(const state_lease&) = delete;
        request_state& operator*() const noexcept { return *state_; }

      private:
        struct spare_list {
            std::vector<std::unique_ptr<request_state>> list;
            ~spare_list() { spares_gone() = true; }
        };
        static spare_list& spares() {
            thread_local spare_list s;
            return s;
        }
        // Trivially destructible, so it can still be read while the thread's spare list is
        // being destroyed (a coroutine frame destroyed at thread exit ends its lease late).
        static bool& spares_gone() {
            thread_local bool gone = false;
            return gone;
        }
        std::unique_ptr<request_state> state_;
    };

    // Waits for the first byte of the next request (unless it is buffered already); false when
    // the connection ends instead, a quiet close being normal here. A coroutine of its own, so
    // that an idle connection holds none of serve_one's request state, no relay buffer and no
    // body-sized read buffer.
    net::awaitable<bool> wait_for_request() {
        if (buffer_.size() != 0)
            co_return true;  // pipelined
        if (buffer_.capacity() > idle_read_size)
            buffer_.shrink_to_fit();
        relay_.release();
        if (draining())
            co_return false;
        // A new connection that stays silent is cut at header_read_timeout (a slow-loris
        // defence), a keep-alive one at client_idle_timeout.
        if (first_request_)
            client_.expires_at(accepted_at_ + cfg_.limits.header_read_timeout);
        else
            client_.expires_after(cfg_.limits.client_idle_timeout);
        // Registered while idle, so that drain can close it at once.
        worker_.idle_clients.push_back(idle_entry_);
        if (!first_request_) {
            // The response has just been written (usually inline, see deadline_stream): read
            // now and Asio's speculative recv(2) fails with EAGAIN before the client could
            // answer. Behind the handlers already queued, the next request has often arrived.
            co_await net::post(client_.get_executor(), net::deferred);
        }
        auto [ec, n] = co_await client_.async_read_some(buffer_.prepare(idle_read_size), use_tuple);
        idle_entry_.unlink();
        if (ec)
            co_return false;
        buffer_.commit(n);
        co_return true;
    }

    // Serves one request; returns whether the client connection stays open for another.
    // Its state lives in a leased request_state, not in this frame (see request_state).
    net::awaitable<bool> serve_one() {
        state_lease lease;
        request_state& rs = *lease;
        exchange& x = rs.x;
        // limits.header_read_timeout bounds the whole head, not each read: from the accept for
        // the first request, from the first byte for later ones (DESIGN §4).
        x.start = steady_clock::now();
        x.total_deadline = x.start + cfg_.defaults.timeouts.total;

        auto& head = rs.head.emplace();
        // No body limit while the head is parsed: Beast would fail a Content-Length over it
        // before the request line is known, and the 413 would be logged without method, host
        // and path. admit_request() answers it, the body parser enforces it.
        head.body_limit(boost::none);
        const auto header_timeout = cfg_.limits.header_read_timeout;
        const auto head_deadline =
            first_request_ ? accepted_at_ + header_timeout : x.start + header_timeout;
        first_request_ = false;
        // A head cut by the deadline fails with beast::error::timeout and leaves the socket
        // open, so that a 408 can still be sent (deadline_stream cancels, it does not close).
        client_.expires_at(head_deadline);
        // Usually the whole head came with the read that woke this connection.
        std::size_t n = 0;
        beast::error_code ec;
        if (auto done = parse_buffered_head(buffer_, head, cfg_.limits.max_header_bytes, n)) {
            ec = *done;
        } else {
            auto read =
                co_await read_head_bytes(client_, buffer_, head, cfg_.limits.max_header_bytes, n);
            std::tie(ec, n) = read;
        }
        if (ec) {
            if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
                ec == net::error::eof || ec == net::error::connection_reset)
                co_return false;
            rs.reply = read_error_response(ec, n);
            co_await respond(x, *rs.reply);
            co_return false;
        }
        const auto& req = head.get();
        x.method = std::string(req.method_string());
        x.version = req.version();
        x.client_keep_alive = head.keep_alive();  // the parser sees every Connection line
        const bool body_pending =
            head.chunked() || (head.content_length() && *head.content_length() > 0);
        if (draining()) {
            // A request that arrives on an open connection while draining (DESIGN §5).
            x.client_keep_alive = false;
            rs.reply = local_response{proxy_errc::proxy_internal_response, "draining", 503, true};
            co_await respond(x, *rs.reply);
            co_return false;
        }
        bool expects_continue = false;
        rs.reply = admit_request(x, head, body_pending, expects_continue);
        if (!rs.reply || !rs.reply->close) {
            // Only proxy_auth needs a coroutine (its check may run off-thread).
            if (!client_allowed_) {
                x.upstream = nullptr;  // refused before routing: upstream="unrouted"
                rs.reply = local_response{proxy_errc::http_request_denied,
                                          "client address not in client_cidrs", 403, true};
            } else if (rt_->auth && !co_await authenticate_client(req, rs.reply)) {
                x.upstream = nullptr;
            }
        }
        if (rs.reply) {
            // The unread body of a rejected request would be taken for the next request.
            if (body_pending)
                rs.reply->close = true;
            co_await respond(x, *rs.reply);
            co_return !rs.reply->close && x.client_keep_alive;
        }

        // The first attempt is admitted before the body is read, so that Expect: 100-continue
        // is answered only for a request that will go (DESIGN §3.1).
        if (!admit_now(rs))
            co_await wait_admission(rs);
        if (!take_admission(rs)) {
            finish(x);  // the client went away while queued: status 0, nothing was sent
            co_return false;
        }
        if (rs.reply) {
            rs.reply->close = rs.reply->close || body_pending;
            co_await respond(x, *rs.reply);
            co_return !rs.reply->close && x.client_keep_alive;
        }

        if (x.target.kind == request_target::form::authority) {
            co_await tunnel(x, rs.admitted.permit);
            co_return false;  // a tunnel ends its connection
        }

        // The request as it goes upstream, in wire_: the head (from the fields as they arrived:
        // the trailers of a chunked body, which Beast adds to the same fields, never become
        // header fields upstream), its framing, then a complete body. Every attempt sends these
        // bytes again.
        wire_.clear();
        const bool idempotency_key = write_upstream_head(x, head.get());
        request_body& body = rs.body;
        x.body = &body;
        body.chunked = head.chunked();
        if (auto cl = head.content_length())
            body.length = *cl;
        auto& body_parser = rs.body_parser.emplace(std::move(head));
        body_parser.body_limit(cfg_.limits.max_request_body);
        if (body_pending) {
            if (expects_continue) {
                static constexpr std::string_view continue_head = "HTTP/1.1 100 Continue\r\n\r\n";
                client_.expires_after(cfg_.limits.client_idle_timeout);
                auto [wec, wn] =
                    co_await net::async_write(client_, net::buffer(continue_head), use_tuple);
                if (wec) {
                    finish(x);  // the client went away: status 0
                    co_return false;
                }
            }
            co_await read_body_prefix(body_parser, body, x.upstream->policy.retry.buffer_limit,
                                      rs.reply);
            if (rs.reply) {
                if (rs.reply->status != 0)
                    co_await respond(x, *rs.reply);
                else
                    finish(x);  // the client went away mid-body: status 0
                co_return false;
            }
        }
        std::optional<std::uint64_t> length_out;
        bool chunked_out = false;
        if (body.complete) {
            if (!body.buffered.empty() || body.length || body.chunked)
                length_out = body.buffered.size();
        } else if (body.chunked) {
            chunked_out = true;
        } else {
            length_out = *body.length;
        }
        append_upstream_request_framing(wire_, length_out, chunked_out);
        if (body.complete)
            wire_ += body.buffered;

        bool keep = co_await forward(rs, idempotency_key);
        finish(x);
        co_return keep&& x.client_keep_alive;
    }

    // Asks for an attempt of `rs`'s request at once (DESIGN §3.3, §3.4): true with the verdict
    // in rs.admitted, false when the bucket queued the request (wait_admission() decides then).
    bool admit_now(request_state& rs) {
        const auto& u = *rs.x.upstream;
        auto now = upstream::try_admit(*u.state, client_.get_executor(), *u.metrics, rs.queued);
        if (now)
            rs.admitted = *now;
        return now.has_value();
    }

    // Waits for the verdict of a queued attempt, into rs.admitted.
    net::awaitable<void> wait_admission(request_state& rs) {
        const auto& u = *rs.x.upstream;
        rs.admitted =
            co_await upstream::wait_admission(*u.state, client_.socket(), rs.queued,
                                              rs.x.total_deadline, *u.metrics, worker_.draining);
    }

    // Takes the verdict in rs.admitted: false when the client went away while queued; else
    // rs.reply is the response when admission refused.
    static bool take_admission(request_state& rs) {
        note_admission(rs.x, rs.admitted);
        if (rs.admitted.what == upstream::admission_result::kind::client_gone)
            return false;
        if (rs.admitted.what != upstream::admission_result::kind::go)
            rs.reply = admission_refusal(rs.admitted);
        return true;
    }

    // Reads from `stream` into `buffer` until `parser` has parsed a whole message head, then
    // consumes it; returns the head's size. Two things Beast does not do are done here:
    // `max_bytes` bounds the whole head (Beast's header_limit counts from where each put()
    // starts, and Beast consumes a head line by line), and obsolete line folding is refused
    // (RFC 9112 §5.2 allows it; issue 6 requires it): Beast would join the lines. Beast itself
    // refuses bare CR and LF, control bytes, NUL and whitespace before the colon. Errors:
    // end_of_stream (closed before a byte), partial_message (closed mid-head), header_limit,
    // bad_obs_fold, Beast's parse errors, the stream's errors. A head already whole in `buffer`
    // is parsed without a coroutine (parse_buffered_head); `total` is what was parsed before.
    template <class Stream, class Parser>
    static net::awaitable<std::tuple<beast::error_code, std::size_t>> read_head_bytes(
        Stream& stream, beast::flat_buffer& buffer, Parser& parser, std::uint64_t max_bytes,
        std::size_t total = 0) {
        for (;;) {
            if (auto done = parse_buffered_head(buffer, parser, max_bytes, total))
                co_return std::tuple{*done, total};
            auto [rec, n] = co_await stream.async_read_some(
                buffer.prepare(std::max<std::size_t>(4096, buffer.capacity() - buffer.size())),
                use_tuple);
            if (rec == net::error::eof) {
                co_return std::tuple{beast::error_code{buffer.size() == 0 && total == 0
                                                           ? bhttp::error::end_of_stream
                                                           : bhttp::error::partial_message},
                                     total};
            }
            if (rec)
                co_return std::tuple{rec, total};
            buffer.commit(n);
        }
    }

    // One step of read_head_bytes: parses what `buffer` holds into `parser`, adding the bytes
    // consumed to `total`. Returns nothing when more bytes are needed, else the outcome (no
    // error: the head is done).
    template <class Parser>
    static std::optional<beast::error_code> parse_buffered_head(beast::flat_buffer& buffer,
                                                                Parser& parser,
                                                                std::uint64_t max_bytes,
                                                                std::size_t& total) {
        beast::error_code ec;
        std::size_t used = 0;
        if constexpr (Parser::is_request::value) {
            // Empty lines before a request-line are ignored (RFC 9112 §2.2), as nginx does:
            // the CRLF some clients send after a POST body, or a bare LF. They count toward no
            // limit; the head's deadline bounds how long a client may send them.
            if (!parser.got_some()) {
                const auto* p = static_cast<const char*>(buffer.data().data());
                std::size_t blank = 0;
                while (blank < buffer.size() && (p[blank] == '\r' || p[blank] == '\n'))
                    ++blank;
                buffer.consume(blank);
            }
        }
        if (buffer.size() > 0) {
            parser.header_limit(
                static_cast<std::uint32_t>(std::min<std::uint64_t>(max_bytes - total, UINT32_MAX)));
            used = parser.put(buffer.data(), ec);
        }
        // A field line is consumed once the next line's first byte shows it is not folded:
        // what Beast took is checked before it is gone.
        const std::string_view raw(static_cast<const char*>(buffer.data().data()), used);
        if (has_obs_fold(raw))
            return beast::error_code{bhttp::error::bad_obs_fold};
        buffer.consume(used);
        total += used;
        if (!ec && parser.is_header_done())
            return ec;
        if (ec && ec != bhttp::error::need_more)
            return ec;
        if (total >= max_bytes)
            return beast::error_code{bhttp::error::header_limit};
        return std::nullopt;
    }

    // Whether a head that hit header_limit after `head_bytes` consumed bytes did so in its
    // request line: Beast consumed nothing, and no line end lies within max_header_bytes.
    bool request_line_too_long(std::size_t head_bytes) const {
        if (head_bytes != 0)
            return false;
        const std::string_view unparsed(
            static_cast<const char*>(buffer_.data().data()),
            std::min<std::uint64_t>(buffer_.size(), cfg_.limits.max_header_bytes));
        return unparsed.find('\n') == std::string_view::npos;
    }

    // Whether the unparsed request line in buffer_ names HTTP/2 or later ("HTTP/2.0"): a
    // well-formed request of a version we do not speak (RFC 9110 §15.6.6: 505), which Beast
    // reports as bad_version like any garbage.
    bool major_version_too_high() const {
        std::string_view line(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        line = line.substr(0, line.find("\r\n"));
        if (line.size() < 9)
            return false;
        std::string_view v = line.substr(line.size() - 8);  // "HTTP/d.d"
        return v.starts_with("HTTP/") && v[5] >= '2' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' &&
               v[7] <= '9' && line[line.size() - 9] == ' ';
    }

    // Whether a raw request head folds a field line onto the next (CRLF then SP or HTAB).
    static bool has_obs_fold(std::string_view raw) {
        for (auto at = raw.find("\r\n"); at != std::string_view::npos;
             at = raw.find("\r\n", at + 2)) {
            if (at + 2 < raw.size() && (raw[at + 2] == ' ' || raw[at + 2] == '\t'))
                return true;
        }
        return false;
    }

    // The response for a request head Beast could not read.
    local_response read_error_response(const beast::error_code& ec, std::size_t head_bytes) const {
        if (is_timeout(ec)) {
            return {proxy_errc::http_request_error, "request head not received in time", 408, true};
        }
        if (ec == bhttp::error::header_limit) {
            // Not even the request line ended within max_header_bytes: it is the target that
            // is too long (RFC 9112 §3: 414), not the header section (431).
            if (request_line_too_long(head_bytes))
                return {proxy_errc::http_request_error, "request line too long", 414, true};
            return {proxy_errc::http_request_error, "request header section too large", 431, true};
        }
        if (ec == bhttp::error::body_limit) {
            return {proxy_errc::http_request_error, "request body too large", 413, true};
        }
        if (ec == bhttp::error::bad_version && major_version_too_high()) {
            return {proxy_errc::http_request_error, "HTTP version not supported", 505, true};
        }
        if (ec == bhttp::error::bad_obs_fold) {
            return {proxy_errc::http_request_error,
                    "obsolete line folding in the request head (RFC 9112 §5.2)", 400, true};
        }
        if (ec == bhttp::error::bad_transfer_encoding) {
            return {proxy_errc::http_request_error, "invalid Transfer-Encoding", 400, true};
        }
        return {proxy_errc::http_request_error, "malformed request: " + ec.message(), 400, true};
    }

    // Whether this client's Proxy-Authorization credentials are valid (RFC 9110 §11.7), when
    // proxy_auth is configured; client_cidrs is checked before. Runs once the head is known to
    // be well-framed, so that what is refused is still answered. On false, `reply` is the 407.
    net::awaitable<bool> authenticate_client(const bhttp::request<bhttp::empty_body>& req,
                                             std::optional<local_response>& reply) {
        auto credentials = find_field(req, bhttp::field::proxy_authorization);
        if (credentials != req.end()) {
            std::string value(credentials->value());
            // Checked on every request (credentials are per request, RFC 9110 §11.7.2);
            // the authenticator remembers those that passed, so a repeat costs a digest.
            if (co_await rt_->auth->check(value))
                co_return true;
        }
        reply = local_response{proxy_errc::http_request_denied,
                               credentials == req.end() ? "proxy authentication required"
                                                        : "proxy credentials rejected",
                               407};
        reply->proxy_authenticate = rt_->auth->challenge();
        co_return false;
    }

    // Checks a parsed request head in DESIGN §3.1 order (framing, loop, Host, target, route,
    // limits, Expect) and picks its upstream into `x`. Returns the rejection, if any.
    std::optional<local_response> admit_request(
        exchange& x, const bhttp::request_parser<bhttp::empty_body>& head, bool body_pending,
        bool& expects_continue) {
        const auto& req = head.get();
        if (x.version != 10 && x.version != 11) {
            return local_response{proxy_errc::http_request_error, "unsupported HTTP version", 505,
                                  true};
        }
        if (auto bad = check_request_framing(req, x.version)) {
            return local_response{proxy_errc::http_request_error, bad->reason, bad->status, true};
        }
        // A Via carrying our own pseudonym: this request has been here before (DESIGN §3.1).
        if (cfg_.via && via_contains(req, rt_->via_pseudonym)) {
            return local_response{proxy_errc::proxy_loop_detected, "request came back to sluice"};
        }
        // Fields of one name are kept together (find_field): a second Host follows the first.
        const auto host_it = find_field(req, bhttp::field::host);
        if (host_it != req.end() && std::next(host_it) != req.end() &&
            std::next(host_it)->name() == bhttp::field::host) {
            return local_response{proxy_errc::http_request_error, "more than one Host", 400, true};
        }
        if (x.version == 11 && host_it == req.end()) {
            // RFC 9112 §3.2: an HTTP/1.1 request without Host is invalid, whatever its form.
            return local_response{proxy_errc::http_request_error, "missing Host header", 400, true};
        }
        std::string_view host_value =
            host_it == req.end() ? std::string_view{} : std::string_view(host_it->value());
        auto parsed = parse_request_target(req.method_string(), req.target(), host_value);
        if (auto* err = std::get_if<target_error>(&parsed)) {
            return local_response{proxy_errc::http_request_error, err->reason, 400, true};
        }
        x.target = std::get<request_target>(std::move(parsed));
        if (x.target.kind == request_target::form::authority) {
            // CONNECT only to connect_ports (DESIGN §3.8); a refused CONNECT closes, since the
            // client may already be sending tunnel bytes.
            const auto& ports = cfg_.connect_ports;
            if (std::find(ports.begin(), ports.end(), x.target.port) == ports.end()) {
                return local_response{
                    proxy_errc::http_request_denied,
                    "CONNECT to port " + std::to_string(x.target.port) + " is not in connect_ports",
                    403, true};
            }
        }
        x.upstream = rt_->router->route(x.target.scheme, x.target.host, x.target.port);
        if (!x.upstream) {
            return local_response{proxy_errc::http_request_denied,
                                  "no upstream for host " + x.target.host};
        }
        x.total_deadline = x.start + x.upstream->policy.timeouts.total;
        if (head.content_length() && *head.content_length() > cfg_.limits.max_request_body) {
            return local_response{proxy_errc::http_request_error, "request body too large", 413,
                                  true};
        }
        // Expect: 100-continue is answered by sluice once admitted; never forwarded, and no
        // 1xx ever goes to an HTTP/1.0 client (DESIGN §3.1).
        if (auto e = find_field(req, bhttp::field::expect); e != req.end()) {
            if (!beast::iequals(e->value(), "100-continue")) {
                return local_response{proxy_errc::http_request_error, "unsupported Expect", 417};
            }
            expects_continue = body_pending && x.version == 11;
        }
        return std::nullopt;
    }

    // Appends to wire_ the head of the request as sent upstream, up to its framing:
    // origin-form target, HTTP/1.1, hop-by-hop fields removed, Host regenerated, Via appended,
    // the upstream's set_headers applied (DESIGN §3.1, §3.7). Returns whether that request
    // carries an Idempotency-Key (the retry policy's question, DESIGN §3.5): one the client sent
    // but named in Connection does not count, one set_headers adds does.
    bool write_upstream_head(const exchange& x, const bhttp::request_header<>& req) {
        const auto& u = *x.upstream;
        upstream_request_edits e;
        e.target = x.target.path_and_query;
        const std::string dynamic_host = u.dynamic ? x.target.authority() : std::string();
        e.host = u.dynamic ? std::string_view(dynamic_host) : u.origin_authority;
        e.client_version = x.version;
        if (cfg_.via)
            e.via_pseudonym = rt_->via_pseudonym;
        e.set_headers = &u.set_headers;
        append_upstream_request_head(wire_, req, e);
        return sends_upstream(req, "Idempotency-Key", e);
    }

    // Reads the request body into `body.buffered` until it is complete or exceeds `limit`
    // bytes; the rest is streamed later. When reading fails, `failure` is the response to send
    // (status 0: the client went away, nothing to answer).
    net::awaitable<void> read_body_prefix(bhttp::request_parser<bhttp::buffer_body>& p,
                                          request_body& body, std::uint64_t limit,
                                          std::optional<local_response>& failure) {
        while (!p.is_done()) {
            if (body.buffered.size() > limit) {
                body.complete = false;
                co_return;
            }
            auto got = co_await read_body_piece(p);
            if (!got) {
                failure = got.error();
                co_return;
            }
            body.buffered.append(relay_.get(), *got);
            body.bytes_read += *got;
        }
        // A body over the limit is not kept for re-sending, however it arrived (in one read
        // with the head, say): it is sent as streamed, and never retried (DESIGN §3.5).
        if (body.buffered.size() > limit)
            body.complete = false;
    }

    // Reads one piece of request body into relay_; its size, or the response for the failure
    // (status 0: the client went away, nothing to answer).
    struct piece_result {
        std::optional<std::size_t> size;
        local_response failure{proxy_errc::http_request_error, ""};
        explicit operator bool() const { return size.has_value(); }
        std::size_t operator*() const { return *size; }
        const local_response& error() const { return failure; }
    };
    net::awaitable<piece_result> read_body_piece(bhttp::request_parser<bhttp::buffer_body>& p) {
        p.get().body().data = relay_.get();
        p.get().body().size = relay_buffer_size;
        reserve_for_body(buffer_);
        client_.expires_after(cfg_.limits.client_idle_timeout);
        auto [ec, n] = co_await bhttp::async_read_some(client_, buffer_, p, use_tuple);
        if (ec == bhttp::error::need_buffer)
            ec = {};
        if (ec == bhttp::error::body_limit) {
            co_return piece_result{
                std::nullopt,
                {proxy_errc::http_request_error, "request body too large", 413, true}};
        }
        if (ec == bhttp::error::partial_message || ec == bhttp::error::end_of_stream ||
            ec == net::error::eof || ec == net::error::connection_reset || is_timeout(ec)) {
            co_return piece_result{std::nullopt, {proxy_errc::http_request_error, "", 0, true}};
        }
        if (ec) {
            co_return piece_result{std::nullopt,
                                   {proxy_errc::http_request_error,
                                    "malformed request body: " + ec.message(), 400, true}};
        }
        co_return piece_result{relay_buffer_size - p.get().body().size};
    }

    bool draining() const { return worker_.draining && worker_.draining->load(); }

    // Keeps what admission saw for the access log: total queue wait, breaker state.
    static void note_admission(exchange& x, const upstream::admission_result& a) {
        x.queue_wait += a.waited;
        if (a.what == upstream::admission_result::kind::circuit_open) {
            x.breaker = "open";
        } else if (a.what == upstream::admission_result::kind::go) {
            x.breaker = a.permit.probe ? "half_open" : "closed";
        }
    }

    // The response for an attempt admission refused (DESIGN §5).
    static local_response admission_refusal(const upstream::admission_result& a) {
        using kind = upstream::admission_result::kind;
        switch (a.what) {
            case kind::rate_limited:
                return {proxy_errc::proxy_internal_response, "rate limited", 429, false,
                        a.retry_after};
            case kind::circuit_open:
                return {proxy_errc::destination_unavailable, "circuit open", 503, false,
                        a.retry_after};
            case kind::draining:
                return {proxy_errc::proxy_internal_response, "draining", 503, true};
            case kind::deadline:
                return {proxy_errc::connection_read_timeout,
                        "timeouts.total ran out waiting for a token", 504};
            default:
                return {proxy_errc::proxy_internal_error, "admission", 500, true};
        }
    }

    // Reports an attempt's outcome to the breaker (DESIGN §3.4).
    static void record(const upstream::upstream_bundle& u, const policy::circuit_permit& permit,
                       bool failure, bool neutral) {
        std::optional<policy::circuit_state> transition;
        {
            std::lock_guard lock(u.state->mutex);
            if (neutral) {
                u.state->breaker.record_neutral(permit);
            } else if (failure) {
                transition = u.state->breaker.record_failure(permit);
            } else {
                transition = u.state->breaker.record_success(permit);
            }
        }
        upstream::count_transition(*u.metrics, transition);
    }

    // Attempts the request upstream, retrying per the upstream's retry policy, and relays the
    // final response. rs.admitted is the first attempt's admission (a go). Returns whether the
    // client connection is still usable.
    net::awaitable<bool> forward(request_state& rs, bool idempotency_key) {
        exchange& x = rs.x;
        request_body& body = rs.body;
        auto& body_parser = *rs.body_parser;
        auto& rp = rs.response;
        const auto& u = *x.upstream;
        auto pool = worker_.pools.get(u);
        policy::retry_decision retry(u.policy.retry, real_random(), x.method, idempotency_key,
                                     body.complete);
        bool fresh_only = false;
        for (;;) {
            const auto attempt_start = steady_clock::now();
            auto attempt_deadline =
                std::min(attempt_start + u.policy.timeouts.request, x.total_deadline);
            // An idle pooled connection is taken without a coroutine.
            upstream::acquire_result acquired{pool->take_idle(u, fresh_only, attempt_start),
                                              std::nullopt};
            if (!acquired.conn)
                acquired = co_await pool->acquire(u, fresh_only, attempt_deadline);
            ++x.attempts;
            std::optional<attempt_failure> failure;
            std::unique_ptr<upstream::connection> conn;
            bool reused = false;
            if (!acquired.conn) {
                failure = attempt_failure{acquired.error->code, acquired.error->details, false};
            } else {
                conn = std::move(acquired.conn);
                reused = conn->uses > 0;
                failure = co_await with_stream(*conn, [&](auto& up) {
                    return send_and_read_head(x, up, *conn, body, body_parser, rp,
                                              attempt_deadline);
                });
            }

            const auto attempt_end = steady_clock::now();
            const double attempt_seconds =
                std::chrono::duration<double>(attempt_end - attempt_start).count();
            u.metrics->attempt(
                failure ? attempt_label(failure->error) : response_label(rp->get().result_int()),
                attempt_seconds);
            policy::attempt_report report;
            if (failure) {
                if (conn)
                    pool->release(std::move(conn), false, u, std::nullopt);
                // The stale keep-alive race: a reused connection died before any byte of a
                // response. Send once more on a fresh one: not a retry, no token, not a breaker
                // failure (DESIGN §3.5).
                if (reused && failure->before_response_byte && body.complete && !fresh_only) {
                    spdlog::debug("upstream {}: stale pooled connection, replaying on a fresh one",
                                  u.name);
                    fresh_only = true;
                    continue;
                }
                const bool upstream_failed = breaker_failure(failure->error);
                record(u, rs.admitted.permit, upstream_failed, !upstream_failed);
                if (failure->client_gone) {
                    finish(x);  // status 0: nothing was sent
                    co_return false;
                }
                auto outcome = retry_outcome(failure->error);
                if (!outcome) {
                    rs.reply = local_response{failure->error, failure->details, 0, !body.complete};
                    co_return co_await respond(x, *rs.reply);
                }
                report.outcome = *outcome;
            } else {
                const unsigned status = rp->get().result_int();
                const bool is_4xx = status >= 400 && status < 500;
                record(u, rs.admitted.permit, u.state->breaker.is_failure_status(status), is_4xx);
                report.outcome = policy::attempt_outcome::response;
                report.status = status;
                if (auto ra = find_field(rp->get(), bhttp::field::retry_after);
                    ra != rp->get().end()) {
                    report.retry_after =
                        policy::parse_retry_after(ra->value(), std::chrono::system_clock::now());
                }
            }
            fresh_only = false;
            report.time_left = x.total_deadline - attempt_end;
            auto verdict = retry.decide(report);
            if (draining())
                verdict.retry = false;  // no new retries once draining (§3.9)

            if (!verdict.retry) {
                if (failure) {
                    rs.reply = local_response{failure->error, failure->details, 0, !body.complete};
                    co_return co_await respond(x, *rs.reply);
                }
                // The upstream's own response is returned; after retries it says so
                // (RFC 9209 received-status, DESIGN §3.5).
                if (retry.retries() > 0) {
                    rp->get().set("Proxy-Status", proxy_status_received(rp->get().result_int()));
                }
                // The upstream answered before taking the whole body (e.g. an early 413): the
                // rest of the body is still on the client connection, so it must close, or those
                // bytes would be read as the next request (RFC 9112 §9.3). The upstream may
                // still expect that rest on its connection, which must not be reused either: the
                // next request sent on it would be read as body.
                const bool body_sent = body_parser.is_done();
                if (!body_sent)
                    x.client_keep_alive = false;
                auto keep_alive = keep_alive_timeout(rp->get());
                auto relayed = co_await with_stream(
                    *conn, [&](auto& up) { return relay_response(x, up, *conn, *rp); });
                pool->release(std::move(conn), relayed.upstream_reusable && body_sent, u,
                              keep_alive);
                co_return relayed.client_ok;
            }

            // Retry: drop this response (keeping its connection when the body is small), wait
            // the backoff, and be admitted again: every attempt takes a token (DESIGN §3.3).
            u.metrics->retries[static_cast<std::size_t>(verdict.reason)]->Increment();
            spdlog::debug("upstream {}: retry {} in {} ms ({})", u.name, retry.retries(),
                          verdict.delay.count(), policy::to_string(verdict.reason));
            if (conn) {
                bool reusable = co_await with_stream(
                    *conn, [&](auto& up) { return discard_response(up, *conn, *rp); });
                reusable = reusable && body_parser.is_done();  // as above: the body was all sent
                auto keep_alive = keep_alive_timeout(rp->get());
                pool->release(std::move(conn), reusable, u, keep_alive);
            }
            if (!co_await wait_backoff(verdict.delay))
                co_return false;
            if (!admit_now(rs))
                co_await wait_admission(rs);
            if (!take_admission(rs))
                co_return false;
            if (rs.reply)
                co_return co_await respond(x, *rs.reply);
        }
    }

    // A CONNECT tunnel (DESIGN §3.8): connects to the host:port asked for under the matched
    // upstream's policy (its token is already taken, `permit` is its breaker's answer; a failed
    // connect is a breaker failure), answers 200, forwards what the client sent after the head,
    // then copies bytes both ways, passing a half-close on, until both directions end.
    net::awaitable<void> tunnel(exchange& x, policy::circuit_permit permit) {
        const auto& u = *x.upstream;
        ++x.attempts;
        auto connected = co_await upstream::connect_tcp(
            client_.get_executor(), x.target.host, x.target.port,
            std::min(steady_clock::now() + u.policy.timeouts.connect, x.total_deadline),
            u.allow_cidrs.get(), worker_.pools.self());
        if (auto* e = std::get_if<upstream::connect_error>(&connected)) {
            const bool upstream_failed = e->code != proxy_errc::destination_ip_prohibited;
            record(u, permit, upstream_failed, !upstream_failed);
            u.metrics->attempt(attempt_label(e->code), 0);
            local_response r{e->code, e->details, 0, true};
            co_await respond(x, r);
            co_return;
        }
        record(u, permit, false, false);
        u.metrics->attempt(admin::attempt_outcome::success, 0);
        auto up = std::move(std::get<std::unique_ptr<deadline_stream>>(connected));
        up->socket().set_option(tcp::no_delay(true));

        static constexpr std::string_view established =
            "HTTP/1.1 200 Connection established\r\n\r\n";
        client_.expires_after(cfg_.limits.client_idle_timeout);
        auto [wec, wn] = co_await net::async_write(client_, net::buffer(established), use_tuple);
        if (wec) {
            finish(x);  // the client went away: status 0, nothing was sent
            co_return;
        }
        x.status = 200;
        // Bytes that came with the CONNECT head (e.g. a TLS ClientHello) go first.
        if (buffer_.size() > 0) {
            up->expires_after(cfg_.limits.client_idle_timeout);
            auto [ec, n] = co_await net::async_write(*up, buffer_.data(), use_tuple);
            x.bytes_in += n;
            if (ec) {
                finish(x);
                co_return;
            }
            buffer_.consume(buffer_.size());
        }
        u.metrics->tunnels_active->Increment();
        auto back = std::make_unique_for_overwrite<char[]>(relay_buffer_size);
        auto [to_up, to_client] =
            co_await (pipe(client_, *up, relay_.get()) && pipe(*up, client_, back.get()));
        u.metrics->tunnels_active->Decrement();
        x.bytes_out = to_client;
        x.bytes_in += to_up;
        beast::error_code ignored;
        up->socket().close(ignored);
        finish(x);
    }

    // Copies `from` to `to` until `from` ends, then half-closes `to` (FIN carries the end
    // through). On an error other than the peer's FIN both sockets close, ending the other
    // direction too. Returns the bytes copied.
    net::awaitable<std::uint64_t> pipe(deadline_stream& from, deadline_stream& to, char* buf) {
        std::uint64_t total = 0;
        beast::error_code ec;
        for (;;) {
            from.expires_after(cfg_.limits.client_idle_timeout);
            auto [rec, n] =
                co_await from.async_read_some(net::buffer(buf, relay_buffer_size), use_tuple);
            if (n > 0) {
                to.expires_after(cfg_.limits.client_idle_timeout);
                auto [wec, wn] = co_await net::async_write(to, net::buffer(buf, n), use_tuple);
                if (wec) {
                    ec = wec;
                    break;
                }
                total += n;
            }
            if (rec) {
                ec = rec;
                break;
            }
        }
        beast::error_code ignored;
        if (ec == net::error::eof) {
            to.socket().shutdown(tcp::socket::shutdown_send, ignored);
        } else {
            from.socket().close(ignored);
            to.socket().close(ignored);
        }
        co_return total;
    }

    // Sleeps a retry backoff; false when the client went away meanwhile (nothing to answer).
    net::awaitable<bool> wait_backoff(std::chrono::milliseconds delay) {
        net::steady_timer timer(client_.get_executor(), delay);
        auto& sock = client_.socket();
        auto r = co_await (timer.async_wait(awaitable_tuple) ||
                           sock.async_wait(net::socket_base::wait_read, awaitable_tuple));
        if (r.index() == 0)
            co_return true;
        char byte;
        ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            co_return false;
        // Pipelined bytes: the client is still there; just wait out the delay.
        co_await timer.async_wait(use_tuple);
        co_return true;
    }

    // Reads and drops a response that will be retried; returns whether its connection can be
    // reused (only when its body is small and arrives whole).
    template <class Stream>
    net::awaitable<bool> discard_response(Stream& up, upstream::connection& conn,
                                          bhttp::response_parser<bhttp::buffer_body>& rp) {
        if (rp.need_eof() || !rp.keep_alive())
            co_return false;
        if (!rp.is_done() && (!rp.content_length() || *rp.content_length() > 64 * 1024)) {
            co_return false;
        }
        while (!rp.is_done()) {
            rp.get().body().data = relay_.get();
            rp.get().body().size = relay_buffer_size;
            conn.lowest().expires_after(std::chrono::seconds{5});
            auto [ec, n] = co_await bhttp::async_read_some(up, conn.buffer(), rp, use_tuple);
            if (ec == bhttp::error::need_buffer)
                ec = {};
            if (ec)
                co_return false;
        }
        co_return conn.buffer().size() == 0;
    }

    // Writes the request in wire_ (streaming what is left of the body) and reads the final
    // response head, relaying informational responses to HTTP/1.1 clients. Returns a failure,
    // or nothing with `rp` holding the final head.
    template <class Stream>
    net::awaitable<std::optional<attempt_failure>> send_and_read_head(
        exchange& x, Stream& up, upstream::connection& conn, request_body& body,
        bhttp::request_parser<bhttp::buffer_body>& body_parser,
        std::optional<bhttp::response_parser<bhttp::buffer_body>>& rp,
        steady_clock::time_point deadline) {
        conn.lowest().expires_at(deadline);
        beast::error_code wec;
        if (body.complete) {
            // Head and body in one buffer: one write (one TLS record) for a small request.
            auto [ec, n] = co_await net::async_write(up, net::buffer(wire_), use_tuple);
            wec = ec;
        } else {
            wec = co_await stream_request(up, conn, body, body_parser,
                                          x.upstream->policy.timeouts.request);
            if (wec == bhttp::error::body_limit || wec == bhttp::error::partial_message) {
                // The client's side failed; whatever the upstream got is incomplete.
                co_return attempt_failure{proxy_errc::http_request_error,
                                          "request body could not be read", false};
            }
            if (wec == net::error::connection_aborted) {
                co_return attempt_failure{proxy_errc::http_request_error,
                                          "the client left during its request body", false, true};
            }
        }
        // timeouts.request runs from the end of the request: a slow upload is not a slow
        // upstream. An upstream that stopped taking the request (the write timed out) gets no
        // new wait: only an answer it has already sent (an early 413, say) is read.
        const bool write_timed_out = is_timeout(wec);
        deadline = write_timed_out
                       ? steady_clock::now()
                       : std::min(coarse_clock::deadline_after(x.upstream->policy.timeouts.request),
                                  x.total_deadline);
        // On a write error still read: the upstream may have answered early (e.g. 413) and
        // closed; its response is worth more than our error.
        bool interim_seen = false;  // a 1xx arrived: no longer "nothing of a response"
        for (unsigned interim = 0;; ++interim) {
            rp.emplace();
            rp->body_limit(boost::none);
            if (x.method == "HEAD")
                rp->skip(true);
            conn.lowest().expires_at(deadline);
            auto [ec, n] =
                co_await read_head_bytes(up, conn.buffer(), *rp, cfg_.limits.max_header_bytes);
            if (ec) {
                bool nothing = !interim_seen && !rp->got_some() && conn.buffer().size() == 0;
                if (is_timeout(ec) && write_timed_out && nothing) {
                    co_return attempt_failure{
                        proxy_errc::connection_write_timeout,
                        "the upstream stopped reading the request for timeouts.request", false};
                }
                if (is_timeout(ec)) {
                    co_return attempt_failure{proxy_errc::connection_read_timeout,
                                              "no response head within timeouts.request", false};
                }
                if (ec == bhttp::error::header_limit) {
                    co_return attempt_failure{proxy_errc::http_response_header_section_size,
                                              "response header section too large", false};
                }
                if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
                    ec == net::error::connection_reset || ec == net::error::broken_pipe ||
                    ec == net::ssl::error::stream_truncated ||
                    ec == bhttp::error::partial_message) {
                    co_return attempt_failure{proxy_errc::connection_terminated,
                                              nothing ? "upstream closed the connection"
                                                      : "upstream closed mid-response head",
                                              nothing};
                }
                if (ec.category() == net::error::get_ssl_category()) {
                    // E.g. TLS 1.3 "certificate required": the server's verdict on our client
                    // certificate arrives as an alert after our side of the handshake.
                    co_return attempt_failure{proxy_errc::tls_protocol_error, ec.message(),
                                              nothing};
                }
                if (wec && nothing) {
                    co_return attempt_failure{proxy_errc::connection_terminated,
                                              "write failed: " + wec.message(), true};
                }
                co_return attempt_failure{proxy_errc::http_protocol_error,
                                          "malformed response: " + ec.message(), false};
            }
            unsigned status = rp->get().result_int();
            if (status < 100 || status > 599) {
                co_return attempt_failure{proxy_errc::http_protocol_error,
                                          "invalid status code " + std::to_string(status), false};
            }
            if (status >= 200) {
                // Transfer codings other than chunked are not decoded: relaying their bytes as
                // an identity body would corrupt it.
                for (auto it = find_field(rp->get(), bhttp::field::transfer_encoding);
                     it != rp->get().end() && it->name() == bhttp::field::transfer_encoding; ++it) {
                    for (auto coding : split_list(it->value())) {
                        if (!beast::iequals(coding, "chunked")) {
                            co_return attempt_failure{proxy_errc::http_protocol_error,
                                                      "unsupported response transfer coding",
                                                      false};
                        }
                    }
                }
                co_return std::nullopt;
            }
            interim_seen = true;
            if (interim >= 100) {
                co_return attempt_failure{proxy_errc::http_protocol_error,
                                          "more than 100 informational responses", false};
            }
            if (status == 101) {
                co_return attempt_failure{proxy_errc::http_protocol_error,
                                          "unexpected 101 Switching Protocols", false};
            }
            // 100 was ours to send; other 1xx go to HTTP/1.1 clients only.
            if (status != 100 && x.version == 11) {
                // Written by the same writer as the final head, into a string of its own:
                // wire_ still holds the request, which a retry sends again.
                client_response_edits e;
                if (cfg_.via)
                    e.via_pseudonym = rt_->via_pseudonym;
                std::string info;
                append_client_response_head(info, rp->get(), e);
                client_.expires_after(cfg_.limits.client_idle_timeout);
                co_await net::async_write(client_, net::buffer(info), use_tuple);
            }
        }
    }

    // Streams the request head (wire_), the buffered prefix and the rest of the body from the
    // client.
    template <class Stream>
    net::awaitable<beast::error_code> stream_request(
        Stream& up, upstream::connection& conn, request_body& body,
        bhttp::request_parser<bhttp::buffer_body>& body_parser, config::duration io_timeout) {
        // While the body streams, timeouts.request bounds each step (an upload may be slow);
        // the wait for the response head gets it whole once the body is sent.
        conn.lowest().expires_after(io_timeout);
        auto [hec, hn] = co_await net::async_write(up, net::buffer(wire_), use_tuple);
        if (hec)
            co_return hec;
        auto send = [&](const char* data, std::size_t size) -> net::awaitable<beast::error_code> {
            conn.lowest().expires_after(io_timeout);
            if (body.chunked) {
                auto [ec, n] = co_await net::async_write(
                    up, bhttp::make_chunk(net::const_buffer(data, size)), use_tuple);
                co_return ec;
            }
            auto [ec, n] = co_await net::async_write(up, net::const_buffer(data, size), use_tuple);
            co_return ec;
        };
        if (auto ec = co_await send(body.buffered.data(), body.buffered.size()))
            co_return ec;
        // Full duplex: the upstream may answer before taking the whole body (an early 413, or a
        // server that will not read it). Each wait for the next piece of body races a read on
        // the upstream; when the upstream speaks first (application data: a TLS 1.3 session
        // ticket completes no read), stop sending and read its response, instead of waiting on
        // a client that may be waiting for that response. The read is cancelled otherwise,
        // before the next write, so reads and writes on the upstream never overlap.
        auto upstream_spoke = [&]() -> net::awaitable<beast::error_code> {
            auto [ec, n] = co_await up.async_read_some(conn.buffer().prepare(16 * 1024), use_tuple);
            conn.buffer().commit(n);
            co_return ec;
        };
        while (!body_parser.is_done()) {
            conn.lowest().expires_after(io_timeout);
            auto raced = co_await (read_body_piece(body_parser) || upstream_spoke());
            // The upstream spoke, even when a piece of the body won the race: a read that had
            // already received its answer commits it to the buffer before it ends.
            if (raced.index() == 1 || conn.buffer().size() != 0)
                co_return beast::error_code(net::error::operation_aborted);
            auto got = std::get<0>(std::move(raced));
            if (!got) {
                if (got.error().status == 0)  // the client went away
                    co_return beast::error_code(net::error::connection_aborted);
                co_return got.error().status == 413
                    ? beast::error_code(bhttp::error::body_limit)
                    : beast::error_code(bhttp::error::partial_message);
            }
            body.bytes_read += *got;
            if (*got == 0)
                continue;
            if (auto ec = co_await send(relay_.get(), *got))
                co_return ec;
        }
        if (body.chunked) {
            auto [ec, n] = co_await net::async_write(up, bhttp::make_chunk_last(), use_tuple);
            co_return ec;
        }
        co_return beast::error_code{};
    }

    struct relay_result {
        bool client_ok = false;          // the client connection can serve another request
        bool upstream_reusable = false;  // the upstream connection can go back to the pool
    };

    // Sends the response head to the client with framing re-chosen for it, then streams the
    // body. Close-delimited upstream bodies become chunked for HTTP/1.1 clients and
    // close-delimited for HTTP/1.0 ones; an upstream that breaks off mid-body aborts the client
    // connection (no terminating chunk), so a cut response never looks complete.
    template <class Stream>
    net::awaitable<relay_result> relay_response(exchange& x, Stream& up, upstream::connection& conn,
                                                bhttp::response_parser<bhttp::buffer_body>& rp) {
        const unsigned status = rp.get().result_int();
        const bool no_body = x.method == "HEAD" || status == 204 || status == 304;
        const bool upstream_close = rp.need_eof() || !rp.keep_alive();
        // A 204 or 1xx that claims a body has broken framing: never reuse its connection.
        bool framing_suspect =
            status == 204 &&
            (find_field(rp.get(), bhttp::field::transfer_encoding) != rp.get().end() ||
             (rp.content_length() && *rp.content_length() > 0));
        const auto length = rp.content_length();
        const unsigned upstream_version = rp.get().version();

        using length_field = client_response_edits::length_field;
        client_response_edits e;
        e.upstream_version = upstream_version;
        if (cfg_.via)
            e.via_pseudonym = rt_->via_pseudonym;
        bool chunked_out = false;
        if (status == 204) {
            e.length = length_field::remove;
        } else if (!no_body) {
            if (length) {
                e.length = length_field::set;
                e.content_length = *length;
            } else {
                e.length = length_field::remove;
                if (x.version == 11) {
                    e.chunked = chunked_out = true;
                } else {
                    x.client_keep_alive = false;  // HTTP/1.0: the close delimits the body
                }
            }
        }
        // A response that finishes while draining is the connection's last: it says so.
        if (draining())
            x.client_keep_alive = false;
        if (!x.client_keep_alive) {
            e.connection = "close";
        } else if (x.version == 10) {
            e.connection = "keep-alive";
        }
        x.status = status;

        wire_.clear();
        append_client_response_head(wire_, rp.get(), e);
        client_.expires_after(cfg_.limits.client_idle_timeout);
        if (length && !no_body && status != 204 && *length <= conn.buffer().size()) {
            // The whole body came with the head (a small response): head and body go to the
            // client in one write, the body straight from the upstream connection's buffer.
            const std::array<net::const_buffer, 2> head_and_body{
                net::buffer(wire_), net::const_buffer(conn.buffer().data().data(), *length)};
            auto [wec, wn] = co_await net::async_write(client_, head_and_body, use_tuple);
            if (wec)
                co_return relay_result{false, false};
            conn.buffer().consume(*length);
            x.bytes_out += *length;
            const bool reusable = !upstream_close && !framing_suspect && conn.buffer().size() == 0;
            co_return relay_result{x.client_keep_alive, reusable};
        }
        auto [hec, hn] = co_await net::async_write(client_, net::buffer(wire_), use_tuple);
        if (hec)
            co_return relay_result{false, false};
        if (!co_await relay_body(x, up, conn, rp, chunked_out))
            co_return relay_result{false, false};
        const bool reusable = !upstream_close && !framing_suspect && conn.buffer().size() == 0;
        co_return relay_result{x.client_keep_alive, reusable};
    }

    // The body of a response whose head was written: read from the upstream and written to the
    // client piece by piece (chunked when `chunked_out`). False when either side failed; a
    // truncated upstream body aborts the client connection. A coroutine of its own, so that
    // relay_response's frame, which every request allocates, stays within the 1,020 bytes Asio
    // recycles (BENCHMARKS.md, "Profile").
    template <class Stream>
    net::awaitable<bool> relay_body(exchange& x, Stream& up, upstream::connection& conn,
                                    bhttp::response_parser<bhttp::buffer_body>& rp,
                                    bool chunked_out) {
        bool upstream_ok = true;
        while (!rp.is_done()) {
            rp.get().body().data = relay_.get();
            rp.get().body().size = relay_buffer_size;
            reserve_for_body(conn.buffer());
            conn.lowest().expires_after(x.upstream->policy.timeouts.request);
            auto [ec, n] = co_await bhttp::async_read_some(up, conn.buffer(), rp, use_tuple);
            if (ec == bhttp::error::need_buffer)
                ec = {};
            const std::size_t got = relay_buffer_size - rp.get().body().size;
            if (got > 0) {
                client_.expires_after(cfg_.limits.client_idle_timeout);
                beast::error_code wec;
                if (chunked_out) {
                    auto [e, w] = co_await net::async_write(
                        client_, bhttp::make_chunk(net::const_buffer(relay_.get(), got)),
                        use_tuple);
                    wec = e;
                } else {
                    auto [e, w] = co_await net::async_write(
                        client_, net::const_buffer(relay_.get(), got), use_tuple);
                    wec = e;
                }
                if (wec)
                    co_return false;
                x.bytes_out += got;
            }
            if (ec) {
                upstream_ok = false;
                break;
            }
        }
        if (!upstream_ok) {
            // Truncated upstream body (no close_notify, reset, timeout): abort the client
            // connection so the client sees an error, not a clean short response.
            spdlog::warn("upstream {}: response body cut short after {} bytes", x.upstream->name,
                         x.bytes_out);
            x.error = type_name(proxy_errc::http_response_incomplete);
            // RST, not FIN: an HTTP/1.0 client would take a FIN for the end of a
            // close-delimited body.
            beast::error_code ignored;
            client_.socket().set_option(net::socket_base::linger(true, 0), ignored);
            client_.socket().close(ignored);
            co_return false;
        }
        if (chunked_out) {
            client_.expires_after(cfg_.limits.client_idle_timeout);
            auto [e, w] = co_await net::async_write(client_, bhttp::make_chunk_last(), use_tuple);
            if (e)
                co_return false;
        }
        co_return true;
    }

    // ---- responses sluice makes itself, and the end of a request ----------------------------

    // Sends a DESIGN §5 error response. Returns whether the connection can serve another
    // request.
    net::awaitable<bool> respond(exchange& x, const local_response& r) {
        unsigned status = r.status ? r.status : default_status(r.error);
        bool close = r.close || !x.client_keep_alive || draining();
        bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
        res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
        res.set("Proxy-Status", proxy_status_error(r.error, r.details));
        if (r.retry_after) {
            res.set(bhttp::field::retry_after, std::to_string(r.retry_after->count()));
        }
        if (!r.proxy_authenticate.empty())
            res.set(bhttp::field::proxy_authenticate, r.proxy_authenticate);
        std::string text = std::to_string(status) + " " + std::string(res.reason());
        if (!r.details.empty())
            text += ": " + r.details;
        res.body() = text + "\n";
        if (close) {
            res.set(bhttp::field::connection, "close");
        } else if (x.version == 10) {
            res.set(bhttp::field::connection, "keep-alive");
        }
        res.prepare_payload();
        x.status = status;
        x.error = type_name(r.error);
        x.client_keep_alive = !close;
        client_.expires_after(cfg_.limits.client_idle_timeout);
        auto [ec, n] = co_await bhttp::async_write(client_, res, use_tuple);
        finish(x);
        co_return !ec && !close;
    }

    // Counts and logs a finished request, once.
    void finish(exchange& x) {
        if (x.logged)
            return;
        x.logged = true;
        const double seconds = std::chrono::duration<double>(steady_clock::now() - x.start).count();
        if (x.status != 0) {
            auto& m = x.upstream ? *x.upstream->metrics : *rt_->unrouted_metrics;
            m.request(x.method, x.status, seconds);
        }
        if (!logging::access_enabled())
            return;
        logging::access_entry e;
        e.client = client_addr_;
        e.upstream = x.upstream ? std::string_view(x.upstream->label) : "unrouted";
        e.method = x.method.empty() ? std::string_view("-") : std::string_view(x.method);
        e.host = x.target.host;
        e.path = x.target.path();
        e.status = x.status;
        e.bytes_in = x.bytes_in + (x.body ? x.body->bytes_read : 0);
        e.bytes_out = x.bytes_out;
        e.duration_seconds = seconds;
        e.attempts = x.attempts;
        e.queue_wait_seconds = std::chrono::duration<double>(x.queue_wait).count();
        e.breaker = x.breaker;
        e.error = x.error;
        logging::access(e);
    }

    // Half-close, then read what the client still sends for a short while, so that our
    // response is not destroyed by a RST from unread data (the "lingering close" of nginx).
    net::awaitable<void> close_gracefully() {
        beast::error_code ec;
        client_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec)
            co_return;
        client_.expires_after(std::chrono::seconds{2});
        std::size_t drained = 0;
        while (drained < 1024 * 1024) {
            auto [rec, n] = co_await client_.async_read_some(
                net::buffer(relay_.get(), relay_buffer_size), use_tuple);
            if (rec)
                break;
            drained += n;
        }
        client_.socket().close(ec);
    }

    deadline_stream client_;
    idle_client idle_entry_{client_};
    beast::flat_buffer buffer_;
    const steady_clock::time_point accepted_at_ = steady_clock::now();
    bool first_request_ = true;
    std::shared_ptr<const runtime> rt_;
    const config::config& cfg_;
    worker_state& worker_;
    // The relay buffer, allocated on first use and never zero-filled: an idle connection
    // costs no 64 KiB of resident memory.
    struct lazy_buffer {
        std::unique_ptr<char[]> data;
        char* get() {
            if (!data)
                data = std::make_unique_for_overwrite<char[]>(relay_buffer_size);
            return data.get();
        }
        void release() noexcept { data.reset(); }
    };
    lazy_buffer relay_;
    // The bytes of the request going upstream, then of the response head going to the client.
    // Kept between requests: a few hundred bytes, allocated once per connection.
    std::string wire_;
    std::string client_addr_;
    bool client_allowed_ = false;  // the client's address is in client_cidrs
    bool client_gone_ = false;     // reset before it was served (no peer address)
};

}  // namespace

net::awaitable<void> serve_client(tcp::socket socket, std::shared_ptr<const runtime> rt,
                                  worker_state& worker) {
    session s(std::move(socket), std::move(rt), worker);
    co_await s.run();
}

}  // namespace sluice::http
