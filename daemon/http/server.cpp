// Listener, workers and drain. The thread model is documented on `server` in server.hpp.
#include "http/server.hpp"

#include <cstdio>
#include <future>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "core/logging.hpp"
#include "http/proxy_auth.hpp"

namespace sluice::http {

namespace net = boost::asio;
using net::ip::tcp;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

std::shared_ptr<const runtime> make_runtime(std::shared_ptr<const config::config> cfg,
                                            const std::string& random_via,
                                            std::vector<std::string>& errors,
                                            const runtime* previous,
                                            std::shared_ptr<admin::registry> metrics) {
    auto rt = std::make_shared<runtime>();
    if (!metrics)
        metrics = std::make_shared<admin::registry>("unversioned");
    rt->router = upstream::router::create(*cfg, errors, previous ? previous->router.get() : nullptr,
                                          metrics);
    if (!rt->router)
        return nullptr;
    rt->client_cidrs = effective_client_cidrs(*cfg);
    if (!cfg->proxy_auth.users_file.empty()) {
        // Read anew on every load, so that SIGHUP picks up an edited users file.
        auto users = load_users_file(cfg->proxy_auth.users_file, errors);
        if (!users)
            return nullptr;
        rt->auth = std::make_shared<basic_authenticator>(std::move(*users), cfg->proxy_auth.realm);
    }
    rt->metrics = metrics;
    rt->unrouted_metrics = metrics->upstream("unrouted");
    rt->via_pseudonym = cfg->via_id.empty() ? random_via : cfg->via_id;
    rt->cfg = std::move(cfg);
    return rt;
}

std::string random_via_pseudonym() {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    return std::string("sluice-") + buf;
}

struct server::worker {
    explicit worker(std::shared_ptr<const upstream::own_listeners> self)
        : state{upstream::pool_set(ioc.get_executor(), std::move(self))} {}
    net::io_context ioc{1};
    net::executor_work_guard<net::io_context::executor_type> guard{ioc.get_executor()};
    worker_state state;
    std::thread thread;

    // Runs the loop. Access lines are written in batches rather than once per request: the
    // first line of a batch arms the flush timer (log.access_log_flush_interval), or with an
    // interval of 0 posts the flush behind the handlers already queued. What is batched when
    // the loop stops is written before the thread ends.
    void run() {
        net::steady_timer flush_timer{ioc};
        logging::batch_access_on_this_thread([this, &flush_timer] {
            const auto interval = logging::access_flush_interval();
            if (interval.count() == 0) {
                net::post(ioc, logging::flush_access);
                return;
            }
            flush_timer.expires_after(interval);
            flush_timer.async_wait([](boost::system::error_code ec) {
                if (!ec)
                    logging::flush_access();
            });
        });
        ioc.run();
        logging::flush_access();
        logging::batch_access_on_this_thread(nullptr);
    }
};

server::server(std::shared_ptr<const runtime> rt) : rt_(std::move(rt)) {
    const auto& cfg = *rt_->cfg;
    unsigned n = cfg.threads ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i)
        workers_.push_back(std::make_unique<worker>(own_));

    for (auto& w : workers_)
        w->state.draining = &draining_;
    acceptor_ = bind_listener(cfg.listen);
    admin_ = make_admin(cfg.admin_listen);
    own_->set({acceptor_->local_endpoint(), admin_->local_endpoint()});
}

std::shared_ptr<tcp::acceptor> server::bind_listener(const config::endpoint& where) {
    auto address = net::ip::make_address(where.host);
    tcp::endpoint ep(address, where.port);
    auto a = std::make_shared<tcp::acceptor>(workers_[0]->ioc);
    a->open(ep.protocol());
    a->set_option(tcp::acceptor::reuse_address(true));
    if (address.is_v6())
        a->set_option(net::ip::v6_only(true));
    a->bind(ep);
    a->listen(net::socket_base::max_listen_connections);
    return a;
}

std::shared_ptr<admin::admin_server> server::make_admin(const config::endpoint& where) {
    admin::admin_sources sources;
    sources.ready = [this] { return ready(); };
    sources.refresh_gauges = [this] { refresh_gauges(); };
    sources.status_json = [this] { return status_json(); };
    return std::make_shared<admin::admin_server>(workers_[0]->ioc, where, rt_->metrics,
                                                 std::move(sources));
}

bool server::rebind(const config::endpoint& listen, const config::endpoint& admin_listen) {
    std::promise<bool> done;
    auto result = done.get_future();
    net::post(workers_[0]->ioc, [&] {
        const auto& cfg = *current()->cfg;
        std::shared_ptr<tcp::acceptor> next_acceptor;
        std::shared_ptr<admin::admin_server> next_admin;
        try {
            if (!(cfg.listen == listen))
                next_acceptor = bind_listener(listen);
            if (!(cfg.admin_listen == admin_listen))
                next_admin = make_admin(admin_listen);
        } catch (const std::exception& e) {
            // Keep serving on the old addresses; the reload as a whole is rejected.
            spdlog::error("reload rejected: cannot listen on the new address: {}", e.what());
            done.set_value(false);
            return;
        }
        std::lock_guard lock(listeners_);
        if (next_acceptor) {
            boost::system::error_code ec;
            acceptor_->close(ec);
            acceptor_ = next_acceptor;
            if (!draining_.load())
                net::co_spawn(workers_[0]->ioc, accept_loop(acceptor_), net::detached);
            spdlog::info("proxy listening on {}:{}", listen.host,
                         acceptor_->local_endpoint().port());
        }
        if (next_admin) {
            admin_->stop();
            retired_admins_.push_back(admin_);  // its accept loop may still be unwinding
            admin_ = next_admin;
            admin_->start();
            spdlog::info("admin listening on {}:{}", admin_listen.host,
                         admin_->local_endpoint().port());
        }
        own_->set({acceptor_->local_endpoint(), admin_->local_endpoint()});
        done.set_value(true);
    });
    return result.get();
}

void server::refresh_gauges() const {
    auto rt = current();
    for (const auto& b : rt->router->configured()) {
        auto s = b->state->read();
        b->metrics->tokens->Set(s.tokens);
        b->metrics->queue_depth->Set(static_cast<double>(s.queue_depth));
        b->metrics->circuit_state->Set(static_cast<double>(s.circuit));
    }
    // Passthrough upstreams share one label: tokens and queue depth are summed, the circuit
    // state is the worst of them (open > half-open > closed).
    double tokens = 0, depth = 0, circuit = 0;
    for (const auto& b : rt->router->dynamic_upstreams()) {
        auto s = b->state->read();
        tokens += s.tokens;
        depth += static_cast<double>(s.queue_depth);
        double c = s.circuit == policy::circuit_state::open        ? 2
                   : s.circuit == policy::circuit_state::half_open ? 1
                                                                   : 0;
        circuit = std::max(circuit, c);
    }
    auto pass = rt->metrics->upstream("passthrough");
    pass->tokens->Set(tokens);
    pass->queue_depth->Set(depth);
    pass->circuit_state->Set(circuit == 2 ? 1 : circuit == 1 ? 2 : 0);
    rt->metrics->sync();  // the per-thread request counts and connection gauges
}

std::string server::status_json() const {
    auto rt = current();
    boost::json::array upstreams;
    auto describe = [](const upstream::upstream_bundle& b) {
        auto s = b.state->read();
        boost::json::object o;
        o["name"] = b.name;
        o["label"] = b.label;
        o["dynamic"] = b.dynamic;
        o["origin"] = b.origin.scheme + "://" + b.origin.authority();
        o["tokens"] = s.tokens;
        o["queue_depth"] = s.queue_depth;
        o["circuit_state"] = policy::to_string(s.circuit);
        o["open_remaining_s"] = std::chrono::duration<double>(s.open_remaining).count();
        // Pool gauges are per label (summed over I/O threads and passthrough hosts).
        o["connections"] = {{"active", b.metrics->connections_active->Value()},
                            {"idle", b.metrics->connections_idle->Value()}};
        return o;
    };
    for (const auto& b : rt->router->configured())
        upstreams.push_back(describe(*b));
    for (const auto& b : rt->router->dynamic_upstreams())
        upstreams.push_back(describe(*b));
    boost::json::object doc;
    doc["upstreams"] = std::move(upstreams);
    doc["client_connections"] = clients_.load();
    doc["dynamic_upstreams"] = rt->router->dynamic_count();
    doc["draining"] = draining_.load();
    return boost::json::serialize(doc);
}

server::~server() {
    stop_all();
    for (auto& w : workers_) {
        if (w->thread.joinable())
            w->thread.join();
    }
}

tcp::endpoint server::local_endpoint() const {
    std::lock_guard lock(listeners_);
    return acceptor_->local_endpoint();
}

tcp::endpoint server::admin_endpoint() const {
    std::lock_guard lock(listeners_);
    return admin_->local_endpoint();
}

std::shared_ptr<const runtime> server::current() const {
    return std::atomic_load(&rt_);
}

void server::swap_runtime(std::shared_ptr<const runtime> rt) {
    std::atomic_store(&rt_, rt);
    // The reload may have shortened log.access_log_flush_interval: lines already waiting on
    // an I/O thread that logs nothing more would otherwise keep the old interval.
    for (auto& w : workers_)
        net::post(w->ioc, logging::reschedule_access);
}

void server::run() {
    admin_->start();
    net::co_spawn(workers_[0]->ioc, accept_loop(acceptor_), net::detached);
    for (std::size_t i = 1; i < workers_.size(); ++i) {
        workers_[i]->thread = std::thread([w = workers_[i].get()] { w->run(); });
    }
    workers_[0]->run();
    for (auto& w : workers_) {
        if (w->thread.joinable())
            w->thread.join();
    }
}

net::awaitable<void> server::accept_loop(std::shared_ptr<tcp::acceptor> acceptor) {
    net::steady_timer backoff(workers_[0]->ioc);
    while (acceptor->is_open()) {
        auto& w = *workers_[next_worker_];
        next_worker_ = (next_worker_ + 1) % workers_.size();
        auto [ec, socket] = co_await acceptor->async_accept(w.ioc, use_tuple);
        if (ec == net::error::operation_aborted || !acceptor->is_open())
            break;
        if (ec) {
            // EMFILE and friends: pause instead of spinning on a listener that stays readable
            // (the pending connection waits in the backlog until descriptors free up).
            const bool fd_exhausted = ec == net::error::no_descriptors ||
                                      ec == net::error::no_buffer_space ||
                                      ec == net::error::no_memory ||
                                      ec == boost::system::errc::too_many_files_open_in_system;
            current()->metrics->accept_error(fd_exhausted);
            if (!accept_paused_) {
                spdlog::warn("accept failed: {}; pausing accepts, retrying every 100 ms",
                             ec.message());
            }
            accept_paused_ = true;
            backoff.expires_after(std::chrono::milliseconds{100});
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        if (accept_paused_) {
            spdlog::info("accepting again");
            accept_paused_ = false;
        }
        const auto max_clients = current()->cfg->limits.max_client_connections;
        if (clients_.load() >= max_clients) {
            current()->metrics->client_rejected();
            spdlog::warn("max_client_connections ({}) reached; closing new connection",
                         max_clients);
            continue;  // the socket closes as it goes out of scope
        }
        socket.set_option(tcp::no_delay(true));
        ++clients_;
        current()->metrics->client_connections().Increment();
        // Named first: GCC 12 can destroy a temporary passed to a coroutine parameter twice.
        auto rt = current();
        net::co_spawn(w.ioc, serve_client(std::move(socket), std::move(rt), w.state),
                      [this](std::exception_ptr e) {
                          if (e) {
                              try {
                                  std::rethrow_exception(e);
                              } catch (const std::exception& ex) {
                                  spdlog::error("session ended by exception: {}", ex.what());
                              }
                          }
                          session_ended();
                      });
    }
}

void server::session_ended() {
    current()->metrics->client_connections().Decrement();
    if (--clients_ == 0 && draining_.load())
        stop_all();
}

void server::drain() {
    if (draining_.exchange(true))
        return;
    net::post(workers_[0]->ioc, [this] {
        boost::system::error_code ec;
        {
            std::lock_guard lock(listeners_);
            acceptor_->close(ec);
        }
        spdlog::info("draining: listener closed, {} client connections open", clients_.load());
        // Idle keep-alive clients are closed now; requests in flight finish (with
        // Connection: close), queued ones get 503, and no retry starts (DESIGN §3.9).
        for (auto& w : workers_) {
            net::post(w->ioc, [w = w.get()] {
                w->state.pools.close_idle();
                for (auto& idle : w->state.idle_clients)
                    idle.stream->cancel();
            });
        }
        auto rt = current();
        for (const auto& b : rt->router->configured())
            b->state->wake_all();
        for (const auto& b : rt->router->dynamic_upstreams())
            b->state->wake_all();
        if (clients_.load() == 0) {
            stop_all();
            return;
        }
        auto timer =
            std::make_shared<net::steady_timer>(workers_[0]->ioc, current()->cfg->drain_timeout);
        timer->async_wait([this, timer](boost::system::error_code) {
            spdlog::warn("drain_timeout reached with {} client connections open", clients_.load());
            stop_all();
        });
    });
}

void server::stop_all() {
    for (auto& w : workers_) {
        w->guard.reset();
        w->ioc.stop();
    }
}

}  // namespace sluice::http
