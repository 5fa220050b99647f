// TLS to an upstream: OpenSSL driven on the socket itself, waiting for readiness with the
// connection's deadline_stream (the hot path; BENCHMARKS.md, "Profile").
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <iterator>
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

/// A TLS client stream over a connected deadline_stream: AsyncReadStream and AsyncWriteStream
/// (what Beast's HTTP operations and boost::asio::async_write need), plus the handshake.
///
/// Why not boost::asio::ssl::stream: Asio runs OpenSSL on a memory BIO pair and moves every
/// record between it and the socket in a composed operation of its own (copies, BIO_ctrl
/// calls, one more layer of handlers per read and write). Here OpenSSL reads and writes the
/// socket itself, non-blocking, as nginx and HAProxy drive it; when it wants the socket
/// readable or writable the operation waits for that on the deadline_stream, so the
/// connection's deadline and per-operation cancellation apply as before. OpenSSL does all of
/// TLS, verification included (tls_context.cpp).
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

    /// Takes over the connected `next` and makes a client SSL from `ctx` on its socket
    /// (partial writes, read-ahead, buffers released while idle), and makes the socket
    /// non-blocking. Throws boost::system::system_error when OpenSSL cannot make one.
    tls_stream(deadline_stream next, boost::asio::ssl::context& ctx);
    ~tls_stream();
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;

    /// The OpenSSL connection, for SNI, verification parameters and sessions.
    SSL* native_handle() noexcept { return ssl_; }
    deadline_stream& next_layer() noexcept { return next_; }
    deadline_stream& lowest_layer() noexcept { return next_; }
    executor_type get_executor() noexcept { return next_.get_executor(); }

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

    /// One OpenSSL call. True when the operation is over (`ec`, `n` set); false when OpenSSL
    /// waits for the socket (`wait` says for what).
    bool attempt(kind k, boost::asio::mutable_buffer b, boost::system::error_code& ec,
                 std::size_t& n, deadline_stream::socket_type::wait_type& wait);

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

    // The composed operation: attempt, wait for the socket while OpenSSL asks, attempt again.
    // A read whose first attempt finds its bytes completes inside the initiating call (a post
    // costs a trip through the scheduler), unless max_inline_depth such completions are already
    // nested on this thread: then it is posted, so a stream whose data is always ready cannot
    // grow the stack without bound. Every caller is an awaitable or an Asio/Beast composed
    // operation, which all accept a completion inside their initiation. A write that finishes
    // at once is always posted: its caller's next step is to read the answer, and read at once
    // it is not there yet (OpenSSL's read(2) fails with EAGAIN: a syscall per request that
    // bench/compare measured as a net loss); behind the handlers already queued, it often is.
    // Waiting for readiness first instead is not safe: Asio's edge-triggered reactor would
    // miss data that arrived before the wait.
    template <kind K>
    struct op {
        tls_stream& s;
        boost::asio::mutable_buffer buffer;
        enum class stage { starting, waiting, done } at = stage::starting;
        boost::system::error_code ec{};
        std::size_t n = 0;

        template <class Self>
        void operator()(Self& self, boost::system::error_code wait_ec = {}) {
            if (at == stage::waiting && wait_ec)
                return finish(self, wait_ec, 0);
            if (at != stage::done) {
                const bool first = at == stage::starting;
                deadline_stream::socket_type::wait_type wait{};
                if (!s.attempt(K, buffer, ec, n, wait)) {
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
};

}  // namespace sluice::upstream
