// The admin port's HTTP server.
#include "admin/admin_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace sluice::admin {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using net::ip::tcp;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

admin_server::admin_server(net::io_context& ioc, const config::endpoint& where,
                           std::shared_ptr<registry> metrics, admin_sources sources)
    : ioc_(ioc), acceptor_(ioc), metrics_(std::move(metrics)), sources_(std::move(sources)) {
    auto address = net::ip::make_address(where.host);
    tcp::endpoint ep(address, where.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    if (address.is_v6())
        acceptor_.set_option(net::ip::v6_only(true));
    acceptor_.bind(ep);
    acceptor_.listen();
}

tcp::endpoint admin_server::local_endpoint() const {
    return acceptor_.local_endpoint();
}

void admin_server::start() {
    net::co_spawn(ioc_, accept_loop(), net::detached);
}

void admin_server::stop() {
    beast::error_code ec;
    acceptor_.close(ec);
}

net::awaitable<void> admin_server::accept_loop() {
    net::steady_timer backoff(ioc_);
    while (acceptor_.is_open()) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec == net::error::operation_aborted || !acceptor_.is_open())
            break;
        if (ec) {
            // Out of descriptors (EMFILE): the listener stays readable, so retrying at once
            // would spin. Pause, as the proxy listener does.
            backoff.expires_after(std::chrono::milliseconds{100});
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        net::co_spawn(ioc_, serve(std::move(socket)), net::detached);
    }
}

net::awaitable<void> admin_server::serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        bhttp::request_parser<bhttp::empty_body> parser;
        parser.header_limit(8 * 1024);
        stream.expires_after(std::chrono::seconds{30});
        auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        if (ec)
            break;
        const auto& req = parser.get();
        bhttp::response<bhttp::string_body> res{bhttp::status::ok, req.version()};
        res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
        const auto path = req.target().substr(0, req.target().find('?'));
        if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
            res.result(bhttp::status::method_not_allowed);
            res.set(bhttp::field::allow, "GET, HEAD");
            res.body() = "only GET and HEAD\n";
        } else if (path == "/metrics") {
            if (sources_.refresh_gauges)
                sources_.refresh_gauges();
            res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            res.body() = metrics_->serialize();
        } else if (path == "/healthz") {
            res.body() = "ok\n";
        } else if (path == "/readyz") {
            bool ready = sources_.ready && sources_.ready();
            if (!ready)
                res.result(bhttp::status::service_unavailable);
            res.body() = ready ? "ready\n" : "draining\n";
        } else if (path == "/status") {
            if (sources_.refresh_gauges)
                sources_.refresh_gauges();
            res.set(bhttp::field::content_type, "application/json");
            res.body() = sources_.status_json ? sources_.status_json() : "{}";
        } else {
            res.result(bhttp::status::not_found);
            res.body() = "not found: try /metrics, /healthz, /readyz, /status\n";
        }
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        if (req.method() == bhttp::verb::head) {
            // HEAD: the same head, Content-Length included, without the body.
            bhttp::response_serializer<bhttp::string_body> sr{res};
            auto [wec, wn] = co_await bhttp::async_write_header(stream, sr, use_tuple);
            if (wec)
                break;
        } else {
            auto [wec, wn] = co_await bhttp::async_write(stream, res, use_tuple);
            if (wec)
                break;
        }
        if (!req.keep_alive())
            break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace sluice::admin
