// TLS to an upstream, OpenSSL writing the socket and reading a receive buffer: see
// tls_stream.hpp.
#include "upstream/tls_stream.hpp"

#include <csignal>
#include <cstring>

#include <sys/socket.h>

#include <openssl/bio.h>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

namespace sluice::upstream {

namespace net = boost::asio;

/// The BIO that OpenSSL reads: it hands out the stream's received bytes and, when there are
/// none, asks to be retried (SSL_ERROR_WANT_READ), or reports the end once the peer closed.
struct staged_bio {
    static BIO_METHOD* method() {
        static BIO_METHOD* const m = [] {
            BIO_METHOD* made =
                ::BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice receive buffer");
            if (!made || ::BIO_meth_set_read(made, &read) != 1 ||
                ::BIO_meth_set_ctrl(made, &ctrl) != 1 || ::BIO_meth_set_create(made, &create) != 1)
                throw boost::system::system_error(static_cast<int>(::ERR_get_error()),
                                                  net::error::get_ssl_category(), "BIO_meth_new");
            return made;
        }();
        return m;
    }

    static int create(BIO* b) {
        ::BIO_set_init(b, 1);
        return 1;
    }

    static int read(BIO* b, char* out, int size) {
        auto& s = *static_cast<tls_stream*>(::BIO_get_data(b));
        ::BIO_clear_retry_flags(b);
        const std::size_t have = s.in_end_ - s.in_begin_;
        if (have == 0) {
            if (s.in_eof_)
                return 0;
            ::BIO_set_retry_read(b);
            return -1;
        }
        const std::size_t n = std::min(have, static_cast<std::size_t>(std::max(size, 0)));
        std::memcpy(out, s.in_.get() + s.in_begin_, n);
        s.in_begin_ += n;
        return static_cast<int>(n);
    }

    static long ctrl(BIO* b, int cmd, long, void*) {
        auto& s = *static_cast<tls_stream*>(::BIO_get_data(b));
        switch (cmd) {
            case BIO_CTRL_FLUSH:
                return 1;
            case BIO_CTRL_EOF:  // what OpenSSL asks to tell an end of stream from an error
                return s.in_eof_ && s.in_begin_ == s.in_end_ ? 1 : 0;
            case BIO_CTRL_PENDING:
                return static_cast<long>(s.in_end_ - s.in_begin_);
            default:
                return 0;
        }
    }
};

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
    BIO* in = ssl_ ? ::BIO_new(staged_bio::method()) : nullptr;
    BIO* out = in ? ::BIO_new_socket(static_cast<int>(next_.socket().native_handle()), BIO_NOCLOSE)
                  : nullptr;
    if (!out) {
        const auto e = static_cast<int>(::ERR_get_error());
        ::BIO_free(in);
        ::SSL_free(ssl_);
        throw boost::system::system_error(e, net::error::get_ssl_category(), "SSL_new");
    }
    ::BIO_set_data(in, this);
    ::SSL_set_bio(ssl_, in, out);  // the SSL owns both
    ::SSL_set_connect_state(ssl_);
    // No SSL_MODE_RELEASE_BUFFERS: it frees and allocates both 16 KiB record buffers on every
    // request; the pool frees them once a connection has been idle a while instead
    // (connection::trim()).
    // No read-ahead: the receive buffer already takes what the socket has in one recv(2), and
    // OpenSSL's header-then-body reads from it cost no system call.
    ::SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

tls_stream::~tls_stream() {
    ::SSL_free(ssl_);  // the socket BIO does not own the descriptor: next_ closes it
}

bool tls_stream::has_buffered() const noexcept {
    return in_end_ != in_begin_ || ::SSL_has_pending(ssl_) == 1;
}

bool tls_stream::release_buffers() noexcept {
    if (in_begin_ == in_end_) {
        in_.reset();
        in_begin_ = in_end_ = 0;
    }
    // Refused (0) only while OpenSSL holds unread bytes.
    return ::SSL_free_buffers(ssl_) == 1;
}

bool tls_stream::nothing_to_read() const noexcept {
    return in_begin_ == in_end_ && !in_eof_ && ::SSL_has_pending(ssl_) != 1;
}

tls_stream::received tls_stream::receive_now(boost::system::error_code& ec) {
    const auto space = fill_space();
    const ssize_t r =
        ::recv(next_.socket().native_handle(), space.data(), space.size(), MSG_DONTWAIT);
    if (r > 0) {
        in_end_ += static_cast<std::size_t>(r);
        return received::bytes;
    }
    if (r == 0) {
        in_eof_ = true;
        return received::bytes;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return received::nothing;
    ec.assign(errno, boost::system::system_category());
    return received::error;
}

net::mutable_buffer tls_stream::fill_space() {
    if (!in_)
        in_ = std::make_unique_for_overwrite<char[]>(in_capacity);
    if (in_begin_ == in_end_) {
        in_begin_ = in_end_ = 0;
    } else if (in_begin_ != 0) {
        std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
        in_end_ -= in_begin_;
        in_begin_ = 0;
    }
    return {in_.get() + in_end_, in_capacity - in_end_};
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
