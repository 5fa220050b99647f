// deadline_stream: the one lazily re-armed deadline of a client or upstream connection, on real
// loopback sockets. Orders of events come from one io_context's timer queue, never from sleeps.
#include "core/deadline_stream.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace sluice {
namespace {

namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;
using namespace net::experimental::awaitable_operators;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// A connected pair on 127.0.0.1: `stream` under test, `peer` a plain socket.
struct pair_fixture : ::testing::Test {
    net::io_context ioc;
    std::optional<deadline_stream> stream;
    tcp::socket peer{ioc};

    void SetUp() override {
        tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        tcp::socket client(ioc);
        client.connect(acceptor.local_endpoint());
        peer = acceptor.accept();
        stream.emplace(std::move(client));
    }

    // Runs `body` as a coroutine to its end; fails the test if it threw.
    template <class F>
    void run(F body) {
        bool done = false;
        net::co_spawn(
            ioc,
            [&]() -> net::awaitable<void> {
                co_await body();
                done = true;
                ioc.stop();  // the stream's timer may still wait for a far deadline
            },
            [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
        ioc.run();
        EXPECT_TRUE(done);
    }

    // Completes after `d` on the io_context's timer queue.
    net::awaitable<void> after(std::chrono::steady_clock::duration d) {
        net::steady_timer t(ioc, d);
        co_await t.async_wait(use_tuple);
    }
};

TEST_F(pair_fixture, PendingReadFailsWithTimeoutAndTheSocketStaysUsable) {
    run([&]() -> net::awaitable<void> {
        char byte;
        stream->expires_after(50ms);
        auto [ec, n] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_EQ(ec, boost::beast::error::timeout);
        EXPECT_EQ(n, 0u);
        EXPECT_TRUE(stream->socket().is_open());
        // With a new deadline the same socket still carries an answer (a 408, say).
        stream->expires_after(10s);
        std::string answer = "late";
        auto [wec, wn] = co_await net::async_write(*stream, net::buffer(answer), use_tuple);
        EXPECT_FALSE(wec);
        char got[4];
        auto [rec, rn] = co_await net::async_read(peer, net::buffer(got), use_tuple);
        EXPECT_FALSE(rec);
        EXPECT_EQ(std::string(got, rn), "late");
    });
}

TEST_F(pair_fixture, DeadlineMovedLaterWhileReadIsPendingDoesNotFireAtTheOldOne) {
    run([&]() -> net::awaitable<void> {
        char byte = 0;
        stream->expires_after(100ms);
        // Runs once the read below is pending: the deadline moves on before the first one, and
        // the byte comes after the first one has passed.
        net::post(ioc, [&] { stream->expires_after(10s); });
        net::co_spawn(
            ioc,
            [&]() -> net::awaitable<void> {
                co_await after(300ms);
                co_await net::async_write(peer, net::buffer("x", 1), use_tuple);
            },
            net::detached);
        auto [ec, n] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(n, 1u);
        EXPECT_EQ(byte, 'x');
    });
}

TEST_F(pair_fixture, DeadlineMovedEarlierWhileReadIsPendingFiresAtTheNewOne) {
    run([&]() -> net::awaitable<void> {
        char byte;
        stream->expires_after(1h);
        net::post(ioc, [&] { stream->expires_after(20ms); });  // once the read is pending
        auto [ec, n] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_EQ(ec, boost::beast::error::timeout);
    });
}

TEST_F(pair_fixture, OperationStartedAfterTheDeadlinePassedFailsAtOnce) {
    run([&]() -> net::awaitable<void> {
        char byte;
        stream->expires_at(std::chrono::steady_clock::now() - 1ms);
        auto [ec, n] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_EQ(ec, boost::beast::error::timeout);
    });
}

// A write the socket takes at once completes inside async_write_some (no trip through the
// scheduler); one it cannot take waits for room, under the deadline, as before.
TEST_F(pair_fixture, WriteWithRoomCompletesInsideItsCallAndAFullSocketWaits) {
    bool completed = false;
    std::size_t written = 0;
    stream->expires_after(10s);
    stream->async_write_some(net::buffer("hello", 5),
                             [&](boost::system::error_code ec, std::size_t n) {
                                 EXPECT_FALSE(ec) << ec.message();
                                 written = n;
                                 completed = true;
                             });
    EXPECT_TRUE(completed);  // before any handler of the io_context ran
    EXPECT_EQ(written, 5u);

    // Fill the socket until a write has to wait: nobody reads, so the deadline ends that write
    // (with the socket left open); the peer reading everything afterwards gets it all. A full
    // socket is recognised by the wait itself, not by a short write: the kernel may take whole
    // chunks up to the last one and then refuse the next outright, and it may find a little
    // room again later (loopback collapses queued segments), so neither a partial write nor a
    // second write after the first wait is a sure sign.
    const std::string chunk(64 * 1024, 'x');
    run([&]() -> net::awaitable<void> {
        std::size_t sent = 5;
        boost::system::error_code ec;
        for (int i = 0; i < 4096 && !ec; ++i) {
            stream->expires_after(200ms);
            auto [wec, n] = co_await stream->async_write_some(net::buffer(chunk), use_tuple);
            ec = wec;
            sent += n;
        }
        EXPECT_EQ(ec, boost::beast::error::timeout);  // a write waited; the deadline ended it
        EXPECT_TRUE(stream->socket().is_open());
        std::string drained(sent, '\0');
        stream->expires_after(10s);
        auto [rec, rn] = co_await net::async_read(peer, net::buffer(drained), use_tuple);
        EXPECT_FALSE(rec);
        EXPECT_EQ(drained.substr(0, 5), "hello");
    });
}

// The deadline bounds waiting: a write the socket takes at once is done even after it passed
// (as Asio's own first, speculative, attempt always did); one that must wait fails at once.
TEST_F(pair_fixture, PassedDeadlineFailsOnlyAWriteThatWouldWait) {
    stream->expires_at(std::chrono::steady_clock::now() - 1ms);
    bool completed = false;
    stream->async_write_some(net::buffer("a", 1), [&](boost::system::error_code ec, std::size_t n) {
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(n, 1u);
        completed = true;
    });
    EXPECT_TRUE(completed);
    const std::string chunk(64 * 1024, 'x');
    run([&]() -> net::awaitable<void> {
        for (;;) {
            auto [ec, n] = co_await stream->async_write_some(net::buffer(chunk), use_tuple);
            if (ec) {
                EXPECT_EQ(ec, boost::beast::error::timeout);
                break;
            }
        }
    });
}

TEST_F(pair_fixture, WriteToAResetPeerFailsInlineWithTheSocketError) {
    peer.set_option(net::socket_base::linger(true, 0));
    peer.close();  // RST
    run([&]() -> net::awaitable<void> {
        stream->expires_after(10s);
        co_await after(20ms);  // let the RST arrive
        boost::system::error_code ec;
        for (int i = 0; i < 3 && !ec; ++i) {
            auto [wec, n] = co_await stream->async_write_some(net::buffer("a", 1), use_tuple);
            ec = wec;
        }
        EXPECT_TRUE(ec == net::error::connection_reset || ec == net::error::broken_pipe)
            << ec.message();
    });
}

// Writes that find room complete inline only a few levels deep. A composed write of 100 000
// one-byte writes re-enters itself from each completion: inline all the way down, that is
// 100 000 nested frames (a stack overflow); bounded, every few levels one goes through Asio.
TEST_F(pair_fixture, WritesThatCompleteAtOnceNestOnlyBoundedly) {
    int room = 1 << 20;
    ASSERT_EQ(
        ::setsockopt(stream->socket().native_handle(), SOL_SOCKET, SO_SNDBUF, &room, sizeof room),
        0);
    const std::string data(100000, 'w');
    run([&]() -> net::awaitable<void> {
        stream->expires_after(30s);
        auto one_byte_at_a_time = [&](const boost::system::error_code& ec,
                                      std::size_t done) -> std::size_t {
            return ec || done == data.size() ? 0 : 1;
        };
        auto [ec, n] =
            co_await net::async_write(*stream, net::buffer(data), one_byte_at_a_time, use_tuple);
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(n, data.size());
        std::string sink(data.size(), '\0');
        auto [rec, rn] = co_await net::async_read(peer, net::buffer(sink), use_tuple);
        EXPECT_FALSE(rec);
        EXPECT_EQ(sink, data);
    });
}

TEST_F(pair_fixture, DeadlinePassingWithNothingPendingHarmsNoLaterOperation) {
    run([&]() -> net::awaitable<void> {
        char byte = 0;
        // A read arms the timer for 20 ms, completes at once, and nothing is pending when the
        // deadline passes (a connection between requests, waiting for an admission slot).
        stream->expires_after(20ms);
        co_await net::async_write(peer, net::buffer("a", 1), use_tuple);
        auto [ec1, n1] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_FALSE(ec1);
        co_await after(60ms);
        EXPECT_TRUE(stream->socket().is_open());
        stream->expires_after(10s);
        co_await net::async_write(peer, net::buffer("b", 1), use_tuple);
        auto [ec2, n2] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_FALSE(ec2) << ec2.message();
        EXPECT_EQ(byte, 'b');
    });
}

TEST_F(pair_fixture, PerOperationCancellationReachesTheSocket) {
    // `||` cancels the losing read through its cancellation slot: the associator forwards it.
    run([&]() -> net::awaitable<void> {
        char byte;
        stream->expires_never();
        auto start = std::chrono::steady_clock::now();
        auto raced =
            co_await (stream->async_read_some(net::buffer(&byte, 1), use_tuple) || after(20ms));
        EXPECT_EQ(raced.index(), 1u);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
        // The cancelled read left nothing behind: the next one gets the next byte.
        co_await net::async_write(peer, net::buffer("z", 1), use_tuple);
        auto [ec, n] = co_await stream->async_read_some(net::buffer(&byte, 1), use_tuple);
        EXPECT_FALSE(ec);
        EXPECT_EQ(byte, 'z');
    });
}

TEST_F(pair_fixture, DestroyedWithAReadPendingCompletesItAborted) {
    std::optional<boost::system::error_code> result;
    char byte;
    stream->expires_after(10s);
    stream->async_read_some(net::buffer(&byte, 1),
                            [&](boost::system::error_code ec, std::size_t) { result = ec; });
    stream.reset();  // the completion and the timer's wait outlive the stream (ASan checks)
    ioc.run();
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, net::error::operation_aborted);
}

TEST(deadline_stream, ConnectFailsWithTimeoutAtTheDeadline) {
    // A listener whose backlog is full leaves further SYNs unanswered: the connect hangs until
    // the deadline, which must close the socket rather than try the next endpoint.
    net::io_context ioc;
    tcp::acceptor acceptor(ioc);
    acceptor.open(tcp::v4());
    acceptor.bind(tcp::endpoint(net::ip::address_v4::loopback(), 0));
    acceptor.listen(0);
    std::vector<tcp::socket> fillers;
    std::optional<boost::system::error_code> result;
    deadline_stream stream(ioc.get_executor());
    // Fill the backlog (Linux queues backlog + 1 connections), then connect once more.
    for (int i = 0; i < 4; ++i) {
        fillers.emplace_back(ioc);
        fillers.back().open(tcp::v4());
        fillers.back().non_blocking(true);
        // ::connect, not socket::connect: Asio's synchronous connect waits for the handshake.
        auto ep = acceptor.local_endpoint();
        (void)::connect(fillers.back().native_handle(), ep.data(), ep.size());
    }
    std::vector<tcp::endpoint> targets{acceptor.local_endpoint()};
    stream.expires_after(200ms);
    stream.async_connect(targets,
                         [&](boost::system::error_code ec, const tcp::endpoint&) { result = ec; });
    ioc.run_for(20s);
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, boost::beast::error::timeout) << result->message();
    EXPECT_FALSE(stream.socket().is_open());
}

}  // namespace
}  // namespace sluice
