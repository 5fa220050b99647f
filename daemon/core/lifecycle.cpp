// sd_notify messages and the healthcheck client.
#include "core/lifecycle.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <chrono>
#include <iostream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>

namespace sluice::lifecycle {

void notify_ready() {
    sd_notify(0, "READY=1");
}

void notify_reloading() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const unsigned long long usec =
        static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + ts.tv_nsec / 1000;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void notify_stopping() {
    sd_notify(0, "STOPPING=1");
}

int healthcheck(const std::string& url) {
    namespace net = boost::asio;
    namespace beast = boost::beast;
    namespace bhttp = beast::http;
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed || parsed->scheme() != "http" || !parsed->has_authority()) {
        std::cerr << "sluice healthcheck: need an http:// URL, got '" << url << "'\n";
        return 1;
    }
    try {
        net::io_context ioc;
        net::ip::tcp::resolver resolver(ioc);
        std::string host(parsed->host_address());
        std::string port = parsed->has_port() ? std::string(parsed->port()) : "80";
        beast::tcp_stream stream(ioc);
        stream.expires_after(std::chrono::seconds{3});
        stream.connect(resolver.resolve(host, port));
        std::string target(parsed->encoded_target().empty() ? "/" : parsed->encoded_target());
        bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
        req.set(bhttp::field::host, parsed->encoded_authority());
        req.set(bhttp::field::connection, "close");
        bhttp::write(stream, req);
        beast::flat_buffer buffer;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(stream, buffer, res);
        if (res.result_int() / 100 == 2)
            return 0;
        std::cerr << "sluice healthcheck: " << url << " answered " << res.result_int() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "sluice healthcheck: " << url << ": " << e.what() << "\n";
    }
    return 1;
}

}  // namespace sluice::lifecycle
