// connection::idle_looks_alive and trim (daemon/upstream/pool.hpp): what the pool checks before
// it writes a request into an idle connection, and when it frees an idle one's buffers, on real
// loopback sockets.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "admin/metrics.hpp"
#include "upstream/pool.hpp"

namespace sluice::upstream {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// An idle plain connection released at `released`, and the upstream's end of it.
struct idle_pair {
    net::io_context ioc;
    tcp::socket peer{ioc};
    std::unique_ptr<connection> conn;

    idle_pair() {
        tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
        tcp::socket ours(ioc);
        ours.connect(acceptor.local_endpoint());
        acceptor.accept(peer);
        conn = std::make_unique<connection>(std::make_unique<deadline_stream>(std::move(ours)),
                                            nullptr);
        conn->released = steady_clock::now();
    }

    // Waits until our socket has something to read (the peer's FIN or bytes), so the check
    // below sees what the kernel sees.
    void wait_readable() { conn->lowest().socket().wait(tcp::socket::wait_read); }
};

TEST(IdleConnection, SilentPeerIsAlive) {
    idle_pair p;
    EXPECT_TRUE(p.conn->idle_looks_alive());
}

TEST(IdleConnection, ClosedByPeerIsNotReusedOnceCheckable) {
    idle_pair p;
    p.peer.close();
    p.wait_readable();
    EXPECT_FALSE(p.conn->idle_looks_alive());
}

TEST(IdleConnection, UnsolicitedBytesAreNotTakenForAResponse) {
    idle_pair p;
    net::write(p.peer, net::buffer(std::string_view("HTTP/1.1 408 Request Timeout\r\n\r\n")));
    p.wait_readable();
    EXPECT_FALSE(p.conn->idle_looks_alive());
}

// Right after its release too: an upstream that closes, or speaks, just after its response must
// not get the next request (a streamed upload could not be replayed; stray bytes would be taken
// for the next request's response, perhaps another client's). Skipping the check for a
// connection released under 1 ms ago failed both.
TEST(IdleConnection, JustReleasedAndClosedIsNotReused) {
    idle_pair p;
    p.peer.close();
    p.wait_readable();
    p.conn->released = steady_clock::now();
    EXPECT_FALSE(p.conn->idle_looks_alive());
}

TEST(IdleConnection, JustReleasedWithUnsolicitedBytesIsNotReused) {
    idle_pair p;
    net::write(p.peer,
               net::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")));
    p.wait_readable();
    p.conn->released = steady_clock::now();
    EXPECT_FALSE(p.conn->idle_looks_alive());
}

TEST(IdleConnection, BytesLeftInOurBufferAreNeverReused) {
    idle_pair p;
    auto b = p.conn->buffer().prepare(1);
    static_cast<char*>(b.data())[0] = 'x';
    p.conn->buffer().commit(1);
    EXPECT_FALSE(p.conn->idle_looks_alive());
}

TEST(IdleConnection, TrimFreesTheReadBufferAndKeepsTheConnection) {
    idle_pair p;
    p.conn->buffer().reserve(32 * 1024);
    ASSERT_GE(p.conn->buffer().capacity(), 32u * 1024);
    p.conn->trim();
    EXPECT_TRUE(p.conn->trimmed);
    EXPECT_EQ(p.conn->buffer().capacity(), 0u);
    EXPECT_TRUE(p.conn->idle_looks_alive());
}

// Each idle period of a pooled connection ends with its buffers freed about buffers_kept after
// its release, not only the first: a sweep sleeping toward a later idle deadline is woken for
// the new trim.
TEST(PoolTrim, EveryIdlePeriodTrimsTheConnection) {
    idle_pair p;
    admin::registry registry("test");
    auto pool = std::make_shared<upstream::pool>(p.ioc.get_executor(), registry.upstream("u"));
    upstream_bundle b;
    b.policy.pool.idle_timeout = std::chrono::seconds{60};
    b.policy.pool.max_connection_age = std::chrono::hours{1};
    connection* const raw = p.conn.get();
    auto conn = std::move(p.conn);
    for (int period = 0; period < 3; ++period) {
        SCOPED_TRACE("idle period " + std::to_string(period));
        conn->buffer().reserve(32 * 1024);
        const auto released = steady_clock::now();
        pool->release(std::move(conn), true, b, std::nullopt);
        while (!raw->trimmed && steady_clock::now() - released < 10s)
            p.ioc.run_one_for(100ms);
        const auto waited = steady_clock::now() - released;
        EXPECT_TRUE(raw->trimmed);
        // The release is stamped by the coarse clock, which lags by a few milliseconds
        // (core/coarse_clock.hpp): the trim may come that much early, never much later.
        EXPECT_GE(waited, connection::buffers_kept - 20ms);
        EXPECT_LT(waited, connection::buffers_kept + 5s);  // not at the 60 s idle deadline
        EXPECT_EQ(raw->buffer().capacity(), 0u);
        conn = pool->take_idle(b, false);
        ASSERT_EQ(conn.get(), raw);
        EXPECT_FALSE(conn->trimmed);
    }
}

TEST(IdleConnection, ClosedSocketIsNeverReused) {
    idle_pair p;
    p.conn->close();
    EXPECT_FALSE(p.conn->idle_looks_alive());
}

}  // namespace
}  // namespace sluice::upstream
