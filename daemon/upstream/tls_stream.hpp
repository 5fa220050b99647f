// TLS to an upstream: OpenSSL writes the socket itself and reads what the connection's
// deadline_stream received (the hot path; BENCHMARKS.md, "Profile").
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <iterator>
#include <memory>
#include <string>
#include <type_traits>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include "core/deadline_stream.hpp"

namespace sluice::upstream {

/// Which way a read that finds nothing to decrypt gets its bytes, learnt from how often one
/// found them already in the socket (BENCHMARKS.md, "What is left"):
/// - a recv(2) at once, which completes the read inside its initiation when the bytes are there
///   (the cheapest path) but costs a failed system call when they are not, after which Asio's
///   read tries again (a second failure) before it waits;
/// - Asio's read alone: one failed recv(2) at most, but even bytes already there complete
///   through a trip through the scheduler.
/// The first pays while at least 3 reads in 4 find their bytes: `score` gains 1 for each that
/// does and loses 3 for each that does not. Below, one read in 8 still tries at once, to notice
/// when that changes. Not thread-safe: one per thread.
class receive_odds {
  public:
    /// Whether this read should try recv(2) at once (then report found() or missed()).
    bool receive_now() noexcept { return score_ >= threshold || (++skipped_ % probe_every) == 0; }
    /// The recv(2) at once found bytes (or the end of the stream).
    void found() noexcept { score_ = std::min(score_ + 1, ceiling); }
    /// The recv(2) at once found nothing yet.
    void missed() noexcept { score_ = std::max(score_ - 3, 0); }

    static constexpr int ceiling = 64;
    static constexpr int threshold = ceiling / 2;
    static constexpr unsigned probe_every = 8;

  private:
    int score_ = ceiling;
    unsigned skipped_ = 0;
};

/// A TLS client stream over a connected deadline_stream: AsyncReadStream and AsyncWriteStream
/// (what Beast's HTTP operations and boost::asio::async_write need), plus the handshake.
///
/// Why not boost::asio::ssl::stream: Asio runs OpenSSL on a memory BIO pair and moves every
/// record between it and the socket in a composed operation of its own (copies, BIO_ctrl
/// calls, one more layer of handlers per read and write). Here OpenSSL writes the socket
/// itself, non-blocking, as nginx and HAProxy drive it, and waits on the deadline_stream when
/// the socket is full. It reads from a receive buffer of the stream's own (through
/// `staged_bio`), filled whenever OpenSSL has used it up by a recv(2) at once or by an
/// `async_read_some` on the deadline_stream, as receive_odds says. Asio tries that read at
/// once and, when nothing has arrived yet, leaves it queued on the descriptor that epoll
/// already watches; waiting for readability instead (`async_wait`) re-arms the descriptor with
/// an epoll_ctl(2) each time (BENCHMARKS.md, "What is left"). The connection's deadline and
/// per-operation cancellation apply to both waits. OpenSSL does all of TLS, verification
/// included (tls_context.cpp).
///
/// Errors are those of boost::asio::ssl::stream: `error::eof` after the peer's close_notify,
/// `ssl::error::stream_truncated` when the connection ends without one, an OpenSSL error in
/// the SSL category (`boost::asio::error::get_ssl_category()`), a socket error in the system
/// category, and `beast::error::timeout` from the deadline. Reads take the first non-empty
/// buffer of a sequence; a write of several buffers is coalesced into one TLS record (up to
/// 16 KiB) rather than one record each. One read and one write may be pending at a time, from
/// the stream's executor.
class tls_stream {
  public:
    using executor_type = deadline_stream::executor_type;
    using next_layer_type = deadline_stream;
    using lowest_layer_type = deadline_stream;

    /// Takes over the connected `next` and makes a client SSL from `ctx` that writes its socket
    /// (partial writes) and reads the receive buffer, and makes the socket non-blocking.
    /// Throws boost::system::system_error when OpenSSL cannot make one.
    tls_stream(deadline_stream next, boost::asio::ssl::context& ctx);
    ~tls_stream();
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;

    /// The OpenSSL connection, for SNI, verification parameters and sessions.
    SSL* native_handle() noexcept { return ssl_; }
    deadline_stream& next_layer() noexcept { return next_; }
    deadline_stream& lowest_layer() noexcept { return next_; }
    executor_type get_executor() noexcept { return next_.get_executor(); }

    /// Whether received bytes wait unread, in the receive buffer or in OpenSSL (decrypted or
    /// not): an idle connection with any has been sent something nobody asked for.
    bool has_buffered() const noexcept;
    /// Frees the buffers of an idle connection: OpenSSL's two record buffers and the receive
    /// buffer (16 KiB each), as long as they hold no unread bytes; the next exchange allocates
    /// them again (pool::connection::trim()). Returns whether OpenSSL freed its record buffers.
    bool release_buffers() noexcept;

    /// Runs the client handshake. Completion: void(error_code).
    template <class Token>
    auto async_handshake(boost::asio::ssl::stream_base::handshake_type, Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code)>(
            op<kind::handshake>{*this, {}}, token);
    }

    /// Reads decrypted bytes into the first non-empty buffer. Completion:
    /// void(error_code, std::size_t).
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        boost::asio::mutable_buffer first;
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers); ++it) {
            if (boost::asio::mutable_buffer b(*it); b.size() != 0) {
                first = b;
                break;
            }
        }
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            op<kind::read>{*this, first}, token);
    }

    /// Writes some of `buffers` as TLS records. Completion: void(error_code, std::size_t).
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            op<kind::write>{*this, gather(buffers)}, token);
    }

  private:
    enum class kind { handshake, read, write };
    friend struct staged_bio;

    /// One OpenSSL call. True when the operation is over (`ec`, `n` set); false when OpenSSL
    /// waits for the socket (`wait` says for what: wait_read means more received bytes).
    bool attempt(kind k, boost::asio::mutable_buffer b, boost::system::error_code& ec,
                 std::size_t& n, deadline_stream::socket_type::wait_type& wait);

    /// The free end of the receive buffer (allocated if need be, its unread bytes moved to the
    /// front), for the next read from the socket.
    boost::asio::mutable_buffer fill_space();

    /// Whether a read has to receive from the socket before OpenSSL can give it anything.
    bool nothing_to_read() const noexcept;

    enum class received { bytes, nothing, error };
    /// One non-blocking recv(2) into the receive buffer: `bytes` (or the end of the stream),
    /// `nothing` yet (EAGAIN), or an `error` (set in `ec`, system category).
    received receive_now(boost::system::error_code& ec);

    // Per thread, because that is where the answers land: is a response in the socket by the
    // time its read starts? bench/compare at 1 thread: almost always; at 2: about half the
    // time (BENCHMARKS.md, "What is left").
    static inline thread_local receive_odds odds;

    /// The first buffer alone, or the leading buffers copied into one (up to 16 KiB).
    template <class ConstBufferSequence>
    boost::asio::mutable_buffer gather(const ConstBufferSequence& buffers) {
        auto it = boost::asio::buffer_sequence_begin(buffers);
        const auto end = boost::asio::buffer_sequence_end(buffers);
        while (it != end && boost::asio::const_buffer(*it).size() == 0)
            ++it;
        if (it == end)
            return {};
        boost::asio::const_buffer first(*it);
        if (std::next(it) == end || first.size() >= record_size)
            return {const_cast<void*>(first.data()), first.size()};
        scratch_.clear();
        for (; it != end && scratch_.size() < record_size; ++it) {
            boost::asio::const_buffer b(*it);
            const std::size_t take = std::min(b.size(), record_size - scratch_.size());
            scratch_.append(static_cast<const char*>(b.data()), take);
        }
        return {scratch_.data(), scratch_.size()};
    }

    // How many completions run inside the initiating call on this thread, nested: each one
    // resumes a coroutine that may start the next operation, which may complete at once too.
    static inline thread_local int inline_depth = 0;
    static constexpr int max_inline_depth = 4;

    // The composed operation: attempt; while OpenSSL asks, receive more bytes (wait_read) or
    // wait for room in the socket (wait_write), and attempt again. A read with nothing to
    // decrypt receives first, by itself or through Asio as receive_odds says. A read that
    // finds its bytes at once completes inside the initiating call (a post costs a trip
    // through the scheduler), unless max_inline_depth such completions are already nested on
    // this thread: then it is posted, so a stream whose data is always ready cannot grow the
    // stack without bound. Every caller is an awaitable or an Asio/Beast composed operation,
    // which all accept a completion inside their initiation. A write that finishes at once is
    // always posted: its caller's next step is to read the answer, and at once it is not there
    // yet (a recv(2) that fails with EAGAIN: a syscall per request that bench/compare measured
    // as a net loss); behind the handlers already queued, it often is.
    template <kind K>
    struct op {
        tls_stream& s;
        boost::asio::mutable_buffer buffer;
        enum class stage { starting, receiving, waiting, done } at = stage::starting;
        boost::system::error_code ec{};
        std::size_t n = 0;

        template <class Self>
        void operator()(Self& self, boost::system::error_code io_ec = {}, std::size_t got = 0) {
            if (at == stage::receiving) {
                if (io_ec == boost::asio::error::eof) {
                    s.in_eof_ = true;  // OpenSSL tells a close_notify from a truncation
                } else if (io_ec) {
                    return finish(self, io_ec, 0);
                }
                s.in_end_ += got;
            } else if (at == stage::waiting && io_ec) {
                return finish(self, io_ec, 0);
            }
            if (at != stage::done) {
                const bool first = at == stage::starting;
                if (K == kind::read && first && s.nothing_to_read()) {
                    if (!odds.receive_now())
                        return receive(self);
                    switch (s.receive_now(io_ec)) {
                        case received::nothing:
                            odds.missed();
                            return receive(self);
                        case received::error:
                            return finish(self, io_ec, 0);
                        case received::bytes:
                            odds.found();
                            break;
                    }
                }
                deadline_stream::socket_type::wait_type wait{};
                if (!s.attempt(K, buffer, ec, n, wait)) {
                    if (wait == deadline_stream::socket_type::wait_read)
                        return receive(self);
                    at = stage::waiting;
                    s.next_.async_wait(wait, std::move(self));
                    return;
                }
                at = stage::done;
                if (first && (K != kind::read || inline_depth >= max_inline_depth)) {
                    boost::asio::post(std::move(self));
                    return;
                }
            }
            ++inline_depth;
            finish(self, ec, n);
            --inline_depth;
        }

        template <class Self>
        void receive(Self& self) {
            if (s.in_eof_)  // OpenSSL asked for more after the end: cannot happen, but not a hang
                return finish(self, boost::asio::ssl::error::stream_truncated, 0);
            at = stage::receiving;
            s.next_.async_read_some(s.fill_space(), std::move(self));
        }

        template <class Self>
        static void finish(Self& self, boost::system::error_code e, std::size_t bytes) {
            if constexpr (K == kind::handshake)
                self.complete(e);
            else
                self.complete(e, bytes);
        }
    };

    static constexpr std::size_t record_size = 16 * 1024;
    deadline_stream next_;
    SSL* ssl_ = nullptr;
    std::string scratch_;  // a coalesced write
    // The receive buffer: bytes [in_begin_, in_end_) are received and not yet read by OpenSSL.
    static constexpr std::size_t in_capacity = 16 * 1024;
    std::unique_ptr<char[]> in_;
    std::size_t in_begin_ = 0;
    std::size_t in_end_ = 0;
    bool in_eof_ = false;  // the peer closed its side: no byte will follow those received
};

}  // namespace sluice::upstream
