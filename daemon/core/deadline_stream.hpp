// A TCP stream whose reads and writes share one deadline, kept by one lazily re-armed timer: the
// hot-path replacement of beast::tcp_stream (BENCHMARKS.md, "What is left").
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include "core/coarse_clock.hpp"
#include "core/slice_checkpoint.hpp"

namespace sluice {

namespace detail {
template <class Handler>
struct deadline_io_done;
}

/// A TCP socket with one deadline for the I/O started on it, the interface of
/// `boost::beast::tcp_stream` that sluice uses (AsyncReadStream, AsyncWriteStream, `socket()`,
/// `expires_at/after/never`, `close()`), at a fraction of its cost per operation.
///
/// beast::tcp_stream arms a timer when each read or write starts and cancels it when it ends:
/// two timer-queue operations and one extra completion per I/O. Here the deadline is a stored
/// time point; setting it costs a store. One timer per stream waits for the earliest deadline
/// it has been given and, when it fires early because the deadline has moved on, waits again
/// for the new one, so a keep-alive connection touches the timer queue about once per timeout
/// period instead of twice per I/O. This is the "one deadline per connection" of nginx and
/// HAProxy.
///
/// Semantics (as tcp_stream's, except the third):
/// - The deadline applies to operations pending when it passes; an operation started after it
///   passed fails at once. An operation then completes with `beast::error::timeout`.
/// - Reads and writes share the deadline (a tunnel's idle timeout counts traffic both ways).
/// - On a timeout the pending operations are cancelled, but the socket stays open (a connect is
///   the exception: its socket is closed), so that an answer such as a 408 can still be written
///   after a new deadline is set. Callers that give up close it (`close()` or the destructor).
/// Not thread-safe: like any Asio I/O object, use it from its executor's thread.
class deadline_stream {
  public:
    using socket_type = boost::asio::ip::tcp::socket;
    using executor_type = socket_type::executor_type;
    using clock = std::chrono::steady_clock;
    /// The bottom of a layered stream (what boost::asio::ssl::stream asks of its next layer).
    using lowest_layer_type = deadline_stream;

    /// A closed socket on `ex`.
    explicit deadline_stream(const executor_type& ex) : s_(std::make_shared<state>(ex)) {}
    /// Takes over an open (accepted or connected) socket.
    explicit deadline_stream(socket_type socket) : s_(std::make_shared<state>(std::move(socket))) {}
    deadline_stream(deadline_stream&&) noexcept = default;
    deadline_stream& operator=(deadline_stream&&) = delete;
    /// Closes the socket; pending operations complete with operation_aborted.
    ~deadline_stream() { close(); }

    executor_type get_executor() noexcept { return s_->socket.get_executor(); }
    socket_type& socket() noexcept { return s_->socket; }
    lowest_layer_type& lowest_layer() noexcept { return *this; }
    const lowest_layer_type& lowest_layer() const noexcept { return *this; }
    const socket_type& socket() const noexcept { return s_->socket; }

    /// Operations pending at `t`, or started after it, fail with beast::error::timeout.
    void expires_at(clock::time_point t) { s_->set_deadline(t); }
    /// expires_at(now + d); for a `d` of a second or more, now is read at the kernel tick's
    /// resolution (coarse_clock::deadline_after: within a few milliseconds of `d`).
    void expires_after(clock::duration d) { s_->set_deadline(coarse_clock::deadline_after(d)); }
    /// No deadline.
    void expires_never() { s_->set_deadline(clock::time_point::max()); }

    /// Cancels the pending operations (operation_aborted); the socket stays open.
    void cancel() noexcept {
        boost::system::error_code ignored;
        s_->socket.cancel(ignored);
    }

    /// Closes the socket (errors ignored) and stops the timer.
    void close() noexcept {
        if (!s_)
            return;
        boost::system::error_code ignored;
        s_->socket.close(ignored);
        s_->timer.cancel();
    }

    /// Reads some bytes. Completion: void(error_code, std::size_t).
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<state> s, const MutableBufferSequence& b) {
                auto& sock = s->socket;
                sock.async_read_some(b, timed(std::move(s), std::move(handler)));
            },
            token, s_, buffers);
    }

    /// Writes some bytes. Completion: void(error_code, std::size_t).
    ///
    /// A write the socket takes at once (a response into an idle client's socket buffer, the
    /// usual case) completes inside this call: Asio would post its completion, a trip through
    /// the scheduler per write. A caller that reads the answer next should yield first: Asio
    /// tries a read at once (speculatively) and, right after the write, it fails with EAGAIN
    /// (session::wait_for_request posts itself once before its read). Nested inline completions are
    /// bounded (max_inline_depth): past that the write goes through Asio, so a writer whose socket
    /// always has room cannot grow the stack. Every caller is an awaitable or an Asio/Beast
    /// composed operation; those accept a completion inside their initiation (Beast's own
    /// operations post it themselves).
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<state> s, const ConstBufferSequence& b) {
                std::size_t n = 0;
                boost::system::error_code ec;
                if (inline_depth < max_inline_depth && try_write(*s, b, n, ec)) {
                    ++inline_depth;
                    std::move(handler)(ec, n);
                    --inline_depth;
                    slice_checkpoint::after_completion();
                    return;
                }
                auto& sock = s->socket;
                sock.async_write_some(b, timed(std::move(s), std::move(handler)));
            },
            token, s_, buffers);
    }

    /// Waits until the socket is readable or writable (`wait_read`, `wait_write`), under the
    /// deadline: what a TLS stream that drives OpenSSL on the socket waits with. Completion:
    /// void(error_code).
    template <class Token>
    auto async_wait(socket_type::wait_type what, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [](auto handler, std::shared_ptr<state> s, socket_type::wait_type w) {
                auto& sock = s->socket;
                sock.async_wait(w, timed(std::move(s), std::move(handler)));
            },
            token, s_, what);
    }

    /// Connects to the first endpoint of `endpoints` that accepts (boost::asio::async_connect).
    /// Completion: void(error_code, tcp::endpoint); timeout closes the socket.
    template <class EndpointSequence, class Token>
    auto async_connect(const EndpointSequence& endpoints, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code,
                                                       boost::asio::ip::tcp::endpoint)>(
            [](auto handler, std::shared_ptr<state> s, const EndpointSequence& e) {
                s->connecting = true;
                auto& sock = s->socket;
                boost::asio::async_connect(sock, e, timed(std::move(s), std::move(handler)));
            },
            token, s_, endpoints);
    }

    /// Shared with the completions and the timer's wait, which may outlive the stream.
    struct state : std::enable_shared_from_this<state> {
        explicit state(const executor_type& ex) : socket(ex), timer(ex) {}
        explicit state(socket_type s) : socket(std::move(s)), timer(socket.get_executor()) {}

        socket_type socket;
        boost::asio::steady_timer timer;
        clock::time_point deadline = clock::time_point::max();
        clock::time_point armed = clock::time_point::max();  // the timer's wait; max: none
        std::uint64_t generation = 0;                        // of the timer's wait
        unsigned pending = 0;                                // operations in flight
        bool timed_out = false;  // the pending operations were cancelled by the deadline
        bool connecting = false;

        void set_deadline(clock::time_point t) {
            deadline = t;
            if (pending != 0 && deadline < armed)
                arm();
        }
        void start() {
            ++pending;
            if (deadline < armed)
                arm();
        }
        void finish(boost::system::error_code& ec) {
            if (ec && timed_out)
                ec = boost::beast::error::timeout;
            connecting = false;
            if (--pending == 0)
                timed_out = false;
        }
        void arm();
        void on_timer(const boost::system::error_code& ec, std::uint64_t gen);
    };

  private:
    // How many write completions run inside their initiating call on this thread, nested.
    static inline thread_local int inline_depth = 0;
    static constexpr int max_inline_depth = 4;

    /// One non-blocking sendmsg(2) of (up to 16 of) `buffers`: true when it is over, with the
    /// bytes written or the error; false when the socket has no room or there is nothing to
    /// write, so that the write goes through Asio (which waits under the deadline, or completes
    /// it). The deadline bounds waiting: a write that needs none is done even after it passed,
    /// as Asio's own first (speculative) attempt does.
    template <class ConstBufferSequence>
    static bool try_write(state& s, const ConstBufferSequence& buffers, std::size_t& n,
                          boost::system::error_code& ec) {
        if (!s.socket.is_open() || s.timed_out)
            return false;
        std::array<iovec, 16> iov;
        std::size_t count = 0;
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
            const boost::asio::const_buffer b(*it);
            if (b.size() != 0)
                iov[count++] = {const_cast<void*>(b.data()), b.size()};
        }
        if (count == 0)
            return false;
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = count;
        const ssize_t r = ::sendmsg(s.socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return false;
            ec.assign(errno, boost::asio::error::get_system_category());
            return true;
        }
        n = static_cast<std::size_t>(r);
        return true;
    }

    /// Starts an operation under the deadline and returns `handler` wrapped to finish it.
    template <class Handler>
    static detail::deadline_io_done<Handler> timed(std::shared_ptr<state> s, Handler handler) {
        s->start();
        return {std::move(s), std::move(handler)};
    }

    std::shared_ptr<state> s_;
};

inline void deadline_stream::state::arm() {
    armed = deadline;
    const auto gen = ++generation;
    timer.expires_at(deadline);
    timer.async_wait([self = shared_from_this(), gen](const boost::system::error_code& ec) {
        self->on_timer(ec, gen);
    });
}

inline void deadline_stream::state::on_timer(const boost::system::error_code& ec,
                                             std::uint64_t gen) {
    if (gen != generation)
        return;  // replaced by a wait for an earlier deadline
    armed = clock::time_point::max();
    if (ec || pending == 0 || deadline == clock::time_point::max())
        return;  // stopped, or nothing to time out: the next operation arms again
    if (clock::now() < deadline) {
        arm();  // the deadline moved on since this wait began
        return;
    }
    timed_out = true;
    boost::system::error_code ignored;
    if (connecting)
        socket.close(ignored);  // async_connect would go on to the next endpoint otherwise
    else
        socket.cancel(ignored);
}

namespace detail {

/// Completion of one deadline_stream operation: accounts for it, turns a cancellation by the
/// deadline into beast::error::timeout, calls the caller's handler, then counts the completion
/// for the thread's slice checkpoint (slice_checkpoint::after_completion). Its executor,
/// allocator and cancellation slot are the handler's (the associator below).
template <class Handler>
struct deadline_io_done {
    std::shared_ptr<deadline_stream::state> s;
    Handler handler;

    template <class... Args>
    void operator()(boost::system::error_code ec, Args&&... args) {
        s->finish(ec);
        s.reset();
        std::move(handler)(ec, std::forward<Args>(args)...);
        slice_checkpoint::after_completion();
    }
};

}  // namespace detail

}  // namespace sluice

template <template <typename, typename> class Associator, typename Handler,
          typename DefaultCandidate>
struct boost::asio::associator<Associator, sluice::detail::deadline_io_done<Handler>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type get(
        const sluice::detail::deadline_io_done<Handler>& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler);
    }
    static auto get(const sluice::detail::deadline_io_done<Handler>& h,
                    const DefaultCandidate& c) noexcept
        -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};
