// TLS to an upstream, OpenSSL on the socket: see tls_stream.hpp.
#include "upstream/tls_stream.hpp"

#include <csignal>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

namespace sluice::upstream {

namespace net = boost::asio;

tls_stream::tls_stream(deadline_stream next, net::ssl::context& ctx) : next_(std::move(next)) {
    // OpenSSL writes the socket with write(2): a peer that has gone must be an EPIPE error, not
    // a signal that ends the process (sluice's main ignores SIGPIPE too; this covers embedders
    // such as the integration tests).
    static const bool sigpipe_ignored = (::signal(SIGPIPE, SIG_IGN), true);
    (void)sigpipe_ignored;
    // OpenSSL must get EAGAIN, never block the thread: Asio makes a socket non-blocking only
    // once an asynchronous operation has run on it.
    next_.socket().non_blocking(true);
    ssl_ = ::SSL_new(ctx.native_handle());
    if (!ssl_ || ::SSL_set_fd(ssl_, static_cast<int>(next_.socket().native_handle())) != 1) {
        const auto e = static_cast<int>(::ERR_get_error());
        if (ssl_)
            ::SSL_free(ssl_);
        throw boost::system::system_error(e, net::error::get_ssl_category(), "SSL_new");
    }
    ::SSL_set_connect_state(ssl_);
    // No SSL_MODE_RELEASE_BUFFERS: it frees and allocates both 16 KiB record buffers on every
    // request; the pool frees them once a connection has been idle a while instead
    // (connection::trim()).
    ::SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Whole records (and what follows them) in one read(2), not a header then a body.
    ::SSL_set_read_ahead(ssl_, 1);
}

tls_stream::~tls_stream() {
    ::SSL_free(ssl_);  // the socket BIO does not own the descriptor: next_ closes it
}

bool tls_stream::attempt(kind k, net::mutable_buffer b, boost::system::error_code& ec,
                         std::size_t& n, deadline_stream::socket_type::wait_type& wait) {
    n = 0;
    ec = {};
    if (k != kind::handshake && b.size() == 0)
        return true;
    // SSL_get_error() needs an empty error queue before the call. Clearing an empty queue
    // walks all its slots; looking at its head is a fraction of that.
    if (::ERR_peek_error() != 0)
        ::ERR_clear_error();
    errno = 0;
    int r = 0;
    switch (k) {
        case kind::handshake:
            r = ::SSL_do_handshake(ssl_);
            break;
        case kind::read:
            r = ::SSL_read_ex(ssl_, b.data(), b.size(), &n);
            break;
        case kind::write:
            r = ::SSL_write_ex(ssl_, b.data(), b.size(), &n);
            break;
    }
    if (r == 1)
        return true;
    const int sys_errno = errno;
    n = 0;
    switch (::SSL_get_error(ssl_, r)) {
        case SSL_ERROR_WANT_READ:
            wait = deadline_stream::socket_type::wait_read;
            return false;
        case SSL_ERROR_WANT_WRITE:
            wait = deadline_stream::socket_type::wait_write;
            return false;
        case SSL_ERROR_ZERO_RETURN:  // close_notify
            ec = net::error::eof;
            return true;
        case SSL_ERROR_SYSCALL:
            if (const auto e = ::ERR_get_error()) {
                ec = {static_cast<int>(e), net::error::get_ssl_category()};
            } else if (sys_errno != 0) {
                ec = {sys_errno, boost::system::system_category()};
            } else {
                ec = net::ssl::error::stream_truncated;  // EOF without close_notify
            }
            return true;
        case SSL_ERROR_SSL: {
            const auto e = ::ERR_get_error();
            if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ec = net::ssl::error::stream_truncated;
            } else {
                ec = {static_cast<int>(e), net::error::get_ssl_category()};
            }
            return true;
        }
        default:
            ec = net::ssl::error::unexpected_result;
            return true;
    }
}

}  // namespace sluice::upstream
