// connection::idle_looks_alive (daemon/upstream/pool.hpp): what the pool checks before it writes
// a request into an idle connection, on real loopback sockets.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

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
    EXPECT_TRUE(p.conn->idle_looks_alive(p.conn->released + connection::unchecked_reuse));
    EXPECT_TRUE(p.conn->idle_looks_alive(p.conn->released + 1h));
}

TEST(IdleConnection, ClosedByPeerIsNotReusedOnceCheckable) {
    idle_pair p;
    p.peer.close();
    p.wait_readable();
    EXPECT_FALSE(p.conn->idle_looks_alive(p.conn->released + connection::unchecked_reuse));
    EXPECT_FALSE(p.conn->idle_looks_alive(p.conn->released + 10s));
}

TEST(IdleConnection, UnsolicitedBytesAreNotTakenForAResponse) {
    idle_pair p;
    net::write(p.peer, net::buffer(std::string_view("HTTP/1.1 408 Request Timeout\r\n\r\n")));
    p.wait_readable();
    EXPECT_FALSE(p.conn->idle_looks_alive(p.conn->released + 2 * connection::unchecked_reuse));
}

// Within unchecked_reuse of its release the kernel is not asked: a close that soon is the stale
// keep-alive race, answered by the replay on a fresh connection (DESIGN §3.5).
TEST(IdleConnection, JustReleasedIsTakenWithoutASystemCall) {
    idle_pair p;
    p.peer.close();
    p.wait_readable();
    EXPECT_TRUE(p.conn->idle_looks_alive(p.conn->released + connection::unchecked_reuse / 2));
}

TEST(IdleConnection, BytesLeftInOurBufferAreNeverReused) {
    idle_pair p;
    auto b = p.conn->buffer().prepare(1);
    static_cast<char*>(b.data())[0] = 'x';
    p.conn->buffer().commit(1);
    EXPECT_FALSE(p.conn->idle_looks_alive(p.conn->released));
    EXPECT_FALSE(p.conn->idle_looks_alive(p.conn->released + 1h));
}

TEST(IdleConnection, TrimFreesTheReadBufferAndKeepsTheConnection) {
    idle_pair p;
    p.conn->buffer().reserve(32 * 1024);
    ASSERT_GE(p.conn->buffer().capacity(), 32u * 1024);
    p.conn->trim();
    EXPECT_TRUE(p.conn->trimmed);
    EXPECT_EQ(p.conn->buffer().capacity(), 0u);
    EXPECT_TRUE(p.conn->idle_looks_alive(p.conn->released + 1h));
}

TEST(IdleConnection, ClosedSocketIsNeverReused) {
    idle_pair p;
    p.conn->close();
    EXPECT_FALSE(p.conn->idle_looks_alive(p.conn->released));
}

}  // namespace
}  // namespace sluice::upstream
