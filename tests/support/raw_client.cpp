// raw_client: each blocking call runs one async operation on a private io_context with a
// deadline (run_for), and cancels it when the deadline passes.
#include "support/raw_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <system_error>

namespace sluice::test {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

bool is_ip_address(const std::string& s) {
    error_code ec;
    net::ip::make_address(s, ec);
    return !ec;
}

milliseconds remaining(clock_type::time_point deadline) {
    return std::max(milliseconds{0},
                    std::chrono::duration_cast<milliseconds>(deadline - clock_type::now()));
}

[[noreturn]] void throw_error(const error_code& ec, const std::string& what) {
    throw std::system_error(ec, "raw_client: " + what);
}

}  // namespace

std::string http_response::header(std::string_view name) const {
    for (const auto& [n, v] : headers)
        if (beast::iequals(n, name))
            return v;
    return {};
}

std::size_t http_response::header_count(std::string_view name) const {
    return static_cast<std::size_t>(
        std::count_if(headers.begin(), headers.end(),
                      [&](const auto& h) { return beast::iequals(h.first, name); }));
}

struct raw_client::impl {
    net::io_context ioc{1};
    tcp::socket socket{ioc};
    std::optional<ssl::context> tls_ctx;
    std::optional<ssl::stream<tcp::socket&>> tls;
    std::string pending;

    /// Runs the io_context until the operation started before the call has set `done`, or
    /// until `timeout`; then cancels it and reports timed_out.
    error_code finish(const std::optional<error_code>& done, milliseconds timeout) {
        ioc.run_for(timeout);
        if (!done) {
            error_code ignored;
            socket.cancel(ignored);
            ioc.restart();
            ioc.run();  // completes the cancelled operation
            return net::error::timed_out;
        }
        return *done;
    }

    template <class F>
    void with_stream(F&& f) {
        if (tls)
            f(*tls);
        else
            f(socket);
    }

    error_code connect(const tcp::endpoint& ep, milliseconds timeout) {
        ioc.restart();
        std::optional<error_code> done;
        socket.async_connect(ep, [&](error_code ec) { done = ec; });
        return finish(done, timeout);
    }

    error_code write(std::string_view bytes, milliseconds timeout) {
        ioc.restart();
        std::optional<error_code> done;
        with_stream([&](auto& s) {
            net::async_write(s, net::buffer(bytes.data(), bytes.size()),
                             [&](error_code ec, std::size_t) { done = ec; });
        });
        return finish(done, timeout);
    }

    /// Appends at least one received byte to `pending`, or returns why not.
    error_code read_more(milliseconds timeout) {
        ioc.restart();
        std::optional<error_code> done;
        char scratch[64 * 1024];
        std::size_t got = 0;
        with_stream([&](auto& s) {
            s.async_read_some(net::buffer(scratch), [&](error_code ec, std::size_t n) {
                got = n;
                done = ec;
            });
        });
        error_code ec = finish(done, timeout);
        pending.append(scratch, got);
        return got > 0 ? error_code() : ec;
    }

    read_response_result read_response(milliseconds timeout, bool to_head_request) {
        const auto deadline = clock_type::now() + timeout;
        http::response_parser<http::string_body> parser;
        parser.header_limit(1024 * 1024);
        parser.body_limit(1024ull * 1024 * 1024);
        parser.eager(true);
        if (to_head_request)
            parser.skip(true);
        read_response_result result;
        std::string raw;
        for (;;) {
            if (!pending.empty()) {
                error_code ec;
                const std::size_t used = parser.put(net::buffer(pending), ec);
                raw.append(pending, 0, used);
                pending.erase(0, used);
                if (parser.is_done())
                    break;
                if (ec && ec != http::error::need_more) {
                    result.error = ec;
                    result.partial_raw = std::move(raw);
                    return result;
                }
                if (!ec && used > 0)
                    continue;
            }
            error_code ec = read_more(remaining(deadline));
            if (ec == net::error::eof || ec == ssl::error::stream_truncated) {
                if (parser.got_some()) {
                    error_code eof_ec;
                    parser.put_eof(eof_ec);
                    if (!eof_ec && parser.is_done())
                        break;
                }
                result.error = ec;
                result.partial_raw = std::move(raw);
                return result;
            }
            if (ec) {
                result.error = ec;
                result.partial_raw = std::move(raw);
                return result;
            }
        }
        const auto& msg = parser.get();
        http_response r;
        r.status = static_cast<int>(msg.result_int());
        r.reason = std::string(msg.reason());
        r.version =
            "HTTP/" + std::to_string(msg.version() / 10) + "." + std::to_string(msg.version() % 10);
        for (const auto& field : msg)
            r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        r.body = msg.body();
        r.raw = std::move(raw);
        r.chunked = parser.chunked();
        r.keep_alive = parser.keep_alive();
        r.close_delimited = !parser.chunked() && !parser.content_length() && !to_head_request &&
                            r.status >= 200 && r.status != 204 && r.status != 304;
        result.response = std::move(r);
        return result;
    }

    close_result read_until_close(milliseconds timeout) {
        const auto deadline = clock_type::now() + timeout;
        for (;;) {
            error_code ec = read_more(remaining(deadline));
            if (ec) {
                close_result r{ec, std::move(pending)};
                pending.clear();
                return r;
            }
        }
    }
};

raw_client::raw_client(std::uint16_t port, milliseconds timeout)
    : raw_client("127.0.0.1", port, timeout) {}

raw_client::raw_client(const std::string& host, std::uint16_t port, milliseconds timeout)
    : impl_(std::make_unique<impl>()) {
    error_code ec;
    auto address = net::ip::make_address(host, ec);
    if (ec)
        throw_error(ec, "not an IP address: " + host);
    ec = impl_->connect(tcp::endpoint(address, port), timeout);
    if (ec)
        throw_error(ec, "connect to " + host + ":" + std::to_string(port));
    impl_->socket.set_option(tcp::no_delay(true), ec);
}

raw_client::~raw_client() = default;

void raw_client::send(std::string_view bytes, milliseconds timeout) {
    if (auto ec = try_send(bytes, timeout))
        throw_error(ec, "send");
}

error_code raw_client::try_send(std::string_view bytes, milliseconds timeout) {
    return impl_->write(bytes, timeout);
}

http_response raw_client::read_response(milliseconds timeout, bool to_head_request) {
    auto r = impl_->read_response(timeout, to_head_request);
    if (!r.response)
        throw_error(r.error, "read_response (received so far: " +
                                 std::to_string(r.partial_raw.size()) + " bytes)");
    return std::move(*r.response);
}

read_response_result raw_client::try_read_response(milliseconds timeout, bool to_head_request) {
    return impl_->read_response(timeout, to_head_request);
}

std::string raw_client::read_some(milliseconds timeout) {
    if (impl_->pending.empty())
        impl_->read_more(timeout);
    return std::exchange(impl_->pending, std::string());
}

close_result raw_client::read_until_close(milliseconds timeout) {
    return impl_->read_until_close(timeout);
}

std::string raw_client::read_all_until_close(milliseconds timeout) {
    return read_until_close(timeout).data;
}

bool raw_client::closed_by_peer(milliseconds timeout) {
    return read_until_close(timeout).how != net::error::timed_out;
}

error_code raw_client::start_tls(const tls_client_options& options, milliseconds timeout) {
    auto& ctx = impl_->tls_ctx.emplace(ssl::context::tls_client);
    try {
        if (options.verify_peer) {
            const auto ca =
                options.ca_file.empty() ? test_ca::instance().root_ca_file() : options.ca_file;
            ctx.load_verify_file(ca.string());
            ctx.set_verify_mode(ssl::verify_peer);
        } else {
            ctx.set_verify_mode(ssl::verify_none);
        }
        if (options.client_cert) {
            ctx.use_certificate_chain_file(options.client_cert->cert_chain_file.string());
            ctx.use_private_key_file(options.client_cert->key_file.string(), ssl::context::pem);
        }
    } catch (const boost::system::system_error& e) {
        return e.code();
    }
    auto& stream = impl_->tls.emplace(impl_->socket, ctx);
    SSL* ssl = stream.native_handle();
    if (!options.sni.empty() && !is_ip_address(options.sni))
        SSL_set_tlsext_host_name(ssl, options.sni.c_str());
    const std::string& host = options.verify_host.empty() ? options.sni : options.verify_host;
    if (options.verify_peer && !host.empty()) {
        if (is_ip_address(host))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
        else
            SSL_set1_host(ssl, host.c_str());
    }
    impl_->ioc.restart();
    std::optional<error_code> done;
    stream.async_handshake(ssl::stream_base::client, [&](error_code ec) { done = ec; });
    return impl_->finish(done, timeout);
}

long raw_client::tls_verify_result() const {
    return impl_->tls ? SSL_get_verify_result(impl_->tls->native_handle()) : X509_V_OK;
}

std::string raw_client::tls_version() const {
    return impl_->tls ? SSL_get_version(impl_->tls->native_handle()) : "";
}

void raw_client::shutdown_send() {
    error_code ignored;
    impl_->socket.shutdown(tcp::socket::shutdown_send, ignored);
}

void raw_client::reset() {
    error_code ignored;
    impl_->socket.set_option(net::socket_base::linger(true, 0), ignored);
    impl_->socket.close(ignored);
}

void raw_client::close() {
    error_code ignored;
    impl_->socket.close(ignored);
}

const std::string& raw_client::pending() const {
    return impl_->pending;
}

std::uint16_t raw_client::local_port() const {
    error_code ec;
    return impl_->socket.local_endpoint(ec).port();
}

}  // namespace sluice::test
