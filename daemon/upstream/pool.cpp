// Opening verified connections, keeping them alive, and retiring them.
#include "upstream/pool.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

#include "core/coarse_clock.hpp"
#include "upstream/destination.hpp"
#include "upstream/tls_context.hpp"

namespace sluice::upstream {

using net::ip::tcp;
using namespace net::experimental::awaitable_operators;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

connection::connection(std::unique_ptr<deadline_stream> tcp, std::unique_ptr<tls_stream> tls)
    : created(steady_clock::now()), tcp_(std::move(tcp)), tls_(std::move(tls)) {}

connection::~connection() {
    close();
}

void connection::close() noexcept {
    // Marked as shut down, OpenSSL keeps the session resumable; a session of a connection freed
    // without it is flagged bad and every later handshake would be a full one.
    if (tls_)
        SSL_set_shutdown(tls_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    beast::error_code ec;
    lowest().socket().close(ec);
}

bool connection::idle_looks_alive() {
    if (buffer_.size() != 0)
        return false;
    if (tls_ && tls_->has_buffered())
        return false;
    auto& sock = lowest().socket();
    if (!sock.is_open())
        return false;
    char byte;
    ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    // 0: the peer closed; > 0: it sent something we did not ask for (e.g. close_notify).
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void connection::trim() noexcept {
    // Kept only while they hold unread bytes, which an idle connection never does.
    if (tls_)
        (void)tls_->release_buffers();
    buffer_.shrink_to_fit();
    trimmed = true;
}

pool::pool(net::any_io_executor ex, std::shared_ptr<admin::upstream_metrics> metrics,
           std::shared_ptr<const own_listeners> self)
    : ex_(ex), sweep_timer_(ex), metrics_(std::move(metrics)), self_(std::move(self)) {}

pool::~pool() {
    if (session_)
        SSL_SESSION_free(session_);
    metrics_->connections_changed(-reported_active_, -reported_idle_);
}

void pool::report() {
    const auto idle = static_cast<std::int64_t>(idle_.size());
    const auto active = static_cast<std::int64_t>(open_) - idle;
    if (active != reported_active_ || idle != reported_idle_)
        metrics_->connections_changed(active - reported_active_, idle - reported_idle_);
    reported_active_ = active;
    reported_idle_ = idle;
}

namespace {

bool is_ip_literal(const std::string& host) {
    beast::error_code ec;
    net::ip::make_address(host, ec);
    return !ec;
}

connect_error classify_connect(const beast::error_code& ec) {
    if (ec == beast::error::timeout)
        return {proxy_errc::connection_timeout, "connect timed out"};
    if (ec == net::error::connection_refused) {
        return {proxy_errc::connection_refused, "connection refused"};
    }
    if (ec == net::error::network_unreachable || ec == net::error::host_unreachable) {
        return {proxy_errc::destination_ip_unroutable, ec.message()};
    }
    return {proxy_errc::connection_refused, ec.message()};
}

}  // namespace

std::unique_ptr<connection> pool::take_idle(const upstream_bundle& b, bool fresh,
                                            steady_clock::time_point now) {
    if (fresh)
        return nullptr;
    const auto max_age = b.policy.pool.max_connection_age;
    while (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        if (now < c->idle_deadline && now - c->created < max_age && c->idle_looks_alive()) {
            c->trimmed = false;
            report();
            return c;
        }
        c->close();
        --open_;
        report();
    }
    return nullptr;
}

net::awaitable<acquire_result> pool::acquire(const upstream_bundle& b, bool fresh,
                                             steady_clock::time_point deadline) {
    auto self = shared_from_this();  // the pool outlives every coroutine in it
    for (;;) {
        if (auto c = take_idle(b, fresh))
            co_return acquire_result{std::move(c), std::nullopt};
        if (open_ < b.policy.pool.max_connections) {
            ++open_;
            report();
            auto r = co_await open_connection(b, deadline);
            if (!r.conn) {
                --open_;
                wake_one();
            }
            report();
            co_return r;
        }
        if (steady_clock::now() >= deadline) {
            co_return acquire_result{
                nullptr,
                connect_error{proxy_errc::connection_timeout,
                              "no upstream connection became free (pool.max_connections)"}};
        }
        auto timer = std::make_shared<net::steady_timer>(ex_, deadline);
        waiters_.push_back(timer);
        co_await timer->async_wait(use_tuple);
        std::erase(waiters_, timer);
    }
}

net::awaitable<std::variant<std::unique_ptr<deadline_stream>, connect_error>> connect_tcp(
    net::any_io_executor ex, const std::string& host, std::uint16_t port,
    steady_clock::time_point deadline, const std::vector<config::cidr>* allow_cidrs,
    const own_listeners* self) {
    // getaddrinfo cannot be cancelled, but the wait for it can.
    tcp::resolver resolver(ex);
    net::steady_timer timer(ex, deadline);
    auto resolved = co_await (resolver.async_resolve(host, std::to_string(port), use_tuple) ||
                              timer.async_wait(use_tuple));
    if (resolved.index() == 1) {
        resolver.cancel();
        co_return connect_error{proxy_errc::connection_timeout, "DNS timed out"};
    }
    auto [rec, endpoints] = std::get<0>(resolved);
    if (rec)
        co_return connect_error{proxy_errc::dns_error, host + ": " + rec.message()};

    // Passthrough may not reach internal addresses (DESIGN §3.2). The check is on the resolved
    // addresses, and only those checked are connected to: DNS rebinding cannot slip past it.
    // Nor does any upstream reach sluice's own listeners.
    std::vector<tcp::endpoint> targets;
    bool own = false;
    for (const auto& entry : endpoints) {
        if (self && self->reaches(entry.endpoint())) {
            own = true;
        } else if (!allow_cidrs ||
                   passthrough_may_connect(entry.endpoint().address(), *allow_cidrs)) {
            targets.push_back(entry.endpoint());
        }
    }
    if (targets.empty()) {
        co_return connect_error{
            proxy_errc::destination_ip_prohibited,
            own ? host + ":" + std::to_string(port) + " is sluice's own listener"
                : host + " resolves to an internal address not in allow_cidrs"};
    }
    auto stream = std::make_unique<deadline_stream>(ex);
    stream->expires_at(deadline);
    auto [cec, ep] = co_await stream->async_connect(targets, use_tuple);
    if (cec)
        co_return classify_connect(cec);
    stream->expires_never();
    co_return std::move(stream);
}

net::awaitable<acquire_result> pool::open_connection(const upstream_bundle& b,
                                                     steady_clock::time_point deadline) {
    const auto& o = b.origin;
    auto connect_deadline = std::min(deadline, steady_clock::now() + b.policy.timeouts.connect);

    auto connected = co_await connect_tcp(ex_, o.host, o.port, connect_deadline,
                                          b.allow_cidrs.get(), self_.get());
    if (auto* e = std::get_if<connect_error>(&connected))
        co_return acquire_result{nullptr, *e};
    auto tcp_layer = std::move(std::get<std::unique_ptr<deadline_stream>>(connected));
    tcp_layer->socket().set_option(tcp::no_delay(true));
    ++opened;
    metrics_->connections_opened->Increment();

    if (!o.tls()) {
        auto c = std::make_unique<connection>(std::move(tcp_layer), nullptr);
        co_return acquire_result{std::move(c), std::nullopt};
    }

    auto tls = std::make_unique<tls_stream>(std::move(*tcp_layer), b.tls->native());
    SSL* ssl = tls->native_handle();
    bool ip = is_ip_literal(o.host);
    if (!ip)
        SSL_set_tlsext_host_name(ssl, o.host.c_str());  // no SNI for IP literals (RFC 6066)
    if (b.tls->verify()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ip) {
            X509_VERIFY_PARAM_set1_ip_asc(param, o.host.c_str());
        } else {
            X509_VERIFY_PARAM_set1_host(param, o.host.c_str(), 0);
        }
    }
    if (session_)
        SSL_set_session(ssl, session_);
    tls->next_layer().expires_at(connect_deadline);
    auto [hec] = co_await tls->async_handshake(net::ssl::stream_base::client, use_tuple);
    if (hec) {
        long verify = SSL_get_verify_result(ssl);
        if (b.tls->verify() && verify != X509_V_OK) {
            co_return acquire_result{nullptr, connect_error{proxy_errc::tls_certificate_error,
                                                            X509_verify_cert_error_string(verify)}};
        }
        if (hec == beast::error::timeout) {
            co_return acquire_result{
                nullptr, connect_error{proxy_errc::connection_timeout, "TLS handshake timed out"}};
        }
        std::string why = hec.category() == net::error::get_ssl_category()
                              ? hec.message()
                              : "handshake: " + hec.message();
        co_return acquire_result{nullptr, connect_error{proxy_errc::tls_protocol_error, why}};
    }
    ++handshakes;
    auto c = std::make_unique<connection>(nullptr, std::move(tls));
    c->resumed = SSL_session_reused(ssl) == 1;
    if (c->resumed)
        ++resumed_handshakes;
    (c->resumed ? metrics_->handshakes_resumed : metrics_->handshakes_full)->Increment();
    co_return acquire_result{std::move(c), std::nullopt};
}

void pool::release(std::unique_ptr<connection> c, bool reusable, const upstream_bundle& b,
                   std::optional<std::chrono::seconds> keep_alive) {
    // A lower bound of the time: the idle deadline and the trim err early, never late.
    const auto now = coarse_clock::earliest_now();
    if (reusable && now - c->created >= b.policy.pool.max_connection_age)
        reusable = false;
    if (reusable) {
        auto idle_for = b.policy.pool.idle_timeout;
        if (keep_alive) {
            // Close before the upstream does (case 1): a quarter of its timeout, at most 1 s,
            // earlier, so a request is never written into a connection it is closing.
            auto announced = std::chrono::duration_cast<config::duration>(*keep_alive);
            auto margin = std::min<config::duration>(announced / 4, std::chrono::seconds{1});
            idle_for = std::min(idle_for, announced - margin);
        }
        if (idle_for <= config::duration::zero())
            reusable = false;
        c->idle_deadline = now + idle_for;
    }
    if (c->tls()) {
        // Keep the newest resumable session (TLS 1.3 tickets arrive after the handshake and
        // replace the connection's session). A connection offers each session it holds once:
        // in steady use a release costs a pointer comparison, not a lock and a reference count.
        SSL* ssl = c->tls()->native_handle();
        const SSL_SESSION* current = SSL_get0_session(ssl);
        SSL_SESSION* s = nullptr;
        if (current != c->offered_session && current != session_)
            s = SSL_get1_session(ssl);
        c->offered_session = current;
        if (s && SSL_SESSION_is_resumable(s)) {
            if (session_)
                SSL_SESSION_free(session_);
            session_ = s;
        } else if (s) {
            SSL_SESSION_free(s);
        }
    }
    if (reusable) {
        ++c->uses;
        c->released = now;
        const auto trim_at = now + connection::buffers_kept;
        idle_.push_back(std::move(c));
        if (!sweeping_) {
            arm_sweep();
        } else if (trim_at < sweep_timer_.expiry()) {
            // The sweep sleeps toward a later idle deadline: wake it for this trim. (Under
            // steady use the sweep already waits for an earlier trim, and this costs nothing.)
            sweep_timer_.expires_at(trim_at);
        }
    } else {
        c->close();
        --open_;
    }
    report();
    wake_one();
}

void pool::wake_one() {
    if (!waiters_.empty()) {
        waiters_.front()->cancel();
        waiters_.pop_front();
    }
}

void pool::close_idle() {
    open_ -= idle_.size();
    idle_.clear();
    report();
}

void pool::arm_sweep() {
    if (sweeping_)
        return;
    sweeping_ = true;
    net::co_spawn(
        ex_, [self = shared_from_this()]() { return self->sweep(); }, net::detached);
}

// While connections are idle: closes each at its idle_deadline and trims each idle for
// connection::buffers_kept, waking at the earlier of the two.
net::awaitable<void> pool::sweep() {
    auto self = shared_from_this();
    while (!idle_.empty()) {
        auto next = steady_clock::time_point::max();
        for (const auto& c : idle_) {
            next = std::min(next, c->idle_deadline);
            if (!c->trimmed)
                next = std::min(next, c->released + connection::buffers_kept);
        }
        sweep_timer_.expires_at(next);
        // Cancelled (operation_aborted) when release() moves the wake earlier: sweep again.
        co_await sweep_timer_.async_wait(use_tuple);
        auto now = steady_clock::now();
        auto before = idle_.size();
        std::erase_if(idle_, [now](const auto& c) { return c->idle_deadline <= now; });
        open_ -= before - idle_.size();
        for (const auto& c : idle_) {
            if (!c->trimmed && now - c->released >= connection::buffers_kept)
                c->trim();
        }
        report();
    }
    sweeping_ = false;
}

std::shared_ptr<pool> pool_set::get(const upstream_bundle& b) {
    auto it = pools_.find(b.pool_key);
    if (it != pools_.end())
        return it->second;
    if (pools_.size() >= 64) {
        std::erase_if(pools_, [](const auto& kv) {
            return kv.second->open() == 0 && kv.second->waiting() == 0 &&
                   kv.second.use_count() == 1;
        });
    }
    auto p = std::make_shared<pool>(ex_, b.metrics, self_);
    pools_.emplace(b.pool_key, p);
    return p;
}

void pool_set::close_idle() {
    for (auto& [k, p] : pools_)
        p->close_idle();
}

}  // namespace sluice::upstream
