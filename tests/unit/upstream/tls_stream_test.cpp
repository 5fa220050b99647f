// tls_stream against Asio's own TLS server stream on loopback, with the test PKI: the
// handshake and its verification, data both ways, the ways a connection ends, the deadline.
#include "upstream/tls_stream.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

#include "support/test_ca.hpp"

namespace sluice::upstream {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
using net::ip::tcp;
using namespace std::chrono_literals;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

struct tls_pair : ::testing::Test {
    net::io_context ioc;
    ssl::context server_ctx{ssl::context::tls_server};
    ssl::context client_ctx{ssl::context::tls_client};
    std::optional<ssl::stream<tcp::socket>> server;
    std::optional<tls_stream> client;

    // A connected pair, no handshake yet; the server presents `leaf`, the client verifies
    // against the test root and checks the name `host`. The server's socket is on
    // `server_ioc` when given, else on `ioc` with the client's.
    void connect(const test::leaf_cert& leaf, const std::string& host = "localhost",
                 net::io_context* server_ioc = nullptr) {
        server_ctx.use_certificate_chain_file(leaf.cert_chain_file.string());
        server_ctx.use_private_key_file(leaf.key_file.string(), ssl::context::pem);
        client_ctx.load_verify_file(test::test_ca::instance().root_ca_file().string());
        client_ctx.set_verify_mode(ssl::verify_peer);
        tcp::acceptor acceptor(server_ioc ? *server_ioc : ioc,
                               tcp::endpoint(net::ip::address_v4::loopback(), 0));
        tcp::socket s(ioc);
        s.connect(acceptor.local_endpoint());
        server.emplace(acceptor.accept(), server_ctx);
        client.emplace(deadline_stream(std::move(s)), client_ctx);
        SSL_set_tlsext_host_name(client->native_handle(), host.c_str());
        X509_VERIFY_PARAM_set1_host(SSL_get0_param(client->native_handle()), host.c_str(), 0);
    }

    // Runs both sides to their ends.
    template <class C, class S>
    void run(C client_side, S server_side) {
        int done = 0;
        auto rethrow = [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        };
        net::co_spawn(
            ioc,
            [&]() -> net::awaitable<void> {
                co_await client_side();
                ++done;
            },
            rethrow);
        net::co_spawn(
            ioc,
            [&]() -> net::awaitable<void> {
                co_await server_side();
                ++done;
            },
            rethrow);
        ioc.run_for(20s);
        EXPECT_EQ(done, 2);
    }

    net::awaitable<void> server_handshake() {
        auto [ec] = co_await server->async_handshake(ssl::stream_base::server, use_tuple);
        EXPECT_FALSE(ec) << ec.message();
    }
    net::awaitable<void> client_handshake() {
        auto [ec] = co_await client->async_handshake(ssl::stream_base::client, use_tuple);
        EXPECT_FALSE(ec) << ec.message();
    }
};

TEST_F(tls_pair, VerifiedHandshakeThenDataBothWaysIncludingAWriteThatFillsTheSocket) {
    connect(test::test_ca::instance().api_leaf());
    const std::string big(4 * 1024 * 1024, 'b');  // far more than a socket buffer holds
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            EXPECT_EQ(SSL_get_verify_result(client->native_handle()), X509_V_OK);
            // Several buffers: one record, bytes in order.
            std::array<net::const_buffer, 3> parts{net::buffer("GET ", 4), net::buffer("/ ", 2),
                                                   net::buffer("HTTP/1.1\r\n", 10)};
            auto [wec, wn] = co_await net::async_write(*client, parts, use_tuple);
            EXPECT_FALSE(wec) << wec.message();
            EXPECT_EQ(wn, 16u);
            auto [bec, bn] = co_await net::async_write(*client, net::buffer(big), use_tuple);
            EXPECT_FALSE(bec) << bec.message();
            EXPECT_EQ(bn, big.size());
            std::string answer(5, '\0');
            auto [rec, rn] = co_await net::async_read(*client, net::buffer(answer), use_tuple);
            EXPECT_FALSE(rec) << rec.message();
            EXPECT_EQ(answer, "hello");
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            std::string head(16, '\0');
            auto [ec, n] = co_await net::async_read(*server, net::buffer(head), use_tuple);
            EXPECT_FALSE(ec);
            EXPECT_EQ(head, "GET / HTTP/1.1\r\n");
            std::string body(big.size(), '\0');
            auto [bec, bn] = co_await net::async_read(*server, net::buffer(body), use_tuple);
            EXPECT_FALSE(bec);
            EXPECT_TRUE(body == big);
            co_await net::async_write(*server, net::buffer("hello", 5), use_tuple);
        });
}

// What connection::trim() relies on: with no unread bytes OpenSSL frees both record buffers of
// an idle connection, and allocates them again for the next exchange, both ways.
TEST_F(tls_pair, RecordBuffersFreedWhileIdleComeBackForTheNextExchange) {
    connect(test::test_ca::instance().api_leaf());
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            for (std::string_view ask : {"one?", "two?"}) {
                auto [wec, wn] = co_await net::async_write(*client, net::buffer(ask), use_tuple);
                EXPECT_FALSE(wec) << wec.message();
                std::string answer(4, '\0');
                auto [rec, rn] = co_await net::async_read(*client, net::buffer(answer), use_tuple);
                EXPECT_FALSE(rec) << rec.message();
                EXPECT_EQ(answer, std::string(ask.substr(0, 3)) + "!");
                EXPECT_FALSE(client->has_buffered());
                EXPECT_TRUE(client->release_buffers());  // idle: nothing held
            }
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            for (int i = 0; i < 2; ++i) {
                std::string ask(4, '\0');
                auto [ec, n] = co_await net::async_read(*server, net::buffer(ask), use_tuple);
                EXPECT_FALSE(ec);
                ask.back() = '!';
                co_await net::async_write(*server, net::buffer(ask), use_tuple);
            }
        });
}

TEST_F(tls_pair, BytesAlreadyDecryptedAreReadWithoutWaitingOnTheSocket) {
    connect(test::test_ca::instance().api_leaf());
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            std::string got;
            char piece[3];
            while (got.size() < 12) {  // a read smaller than the record that came
                auto [ec, n] =
                    co_await client->async_read_some(net::buffer(piece, sizeof piece), use_tuple);
                EXPECT_FALSE(ec) << ec.message();
                if (ec)
                    break;
                got.append(piece, n);
            }
            EXPECT_EQ(got, "abcdefghijkl");
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            co_await net::async_write(*server, net::buffer("abcdefghijkl", 12), use_tuple);
        });
}

// What connection::idle_looks_alive() relies on: bytes received but not yet read, here a second
// record that came in the same recv(2) as the first, count as buffered until they are read.
TEST_F(tls_pair, ARecordReceivedButNotYetReadCountsAsBuffered) {
    connect(test::test_ca::instance().api_leaf());
    net::steady_timer both_sent(ioc, std::chrono::steady_clock::time_point::max());
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            co_await both_sent.async_wait(use_tuple);  // cancelled by the server
            EXPECT_FALSE(client->has_buffered());      // nothing received yet
            for (std::string_view want : {"one", "two"}) {
                char piece[16];
                auto [ec, n] = co_await client->async_read_some(net::buffer(piece), use_tuple);
                EXPECT_FALSE(ec) << ec.message();
                EXPECT_EQ(std::string_view(piece, n), want);  // one record per read
                EXPECT_EQ(client->has_buffered(), want == "one");
            }
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            co_await net::async_write(*server, net::buffer("one", 3), use_tuple);
            co_await net::async_write(*server, net::buffer("two", 3), use_tuple);
            both_sent.cancel();
        });
}

// Each answer is written only after its read has started, so every read finds the socket empty
// at first: the reads soon stop trying recv(2) at once and go through Asio (receive_odds), and
// every answer still arrives, in order.
TEST_F(tls_pair, AnswersThatComeAfterTheReadStartedAllArrive) {
    connect(test::test_ca::instance().api_leaf());
    constexpr int exchanges = 100;
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            for (int i = 0; i < exchanges; ++i) {
                const std::string ask = std::to_string(i % 10);
                auto [wec, wn] = co_await net::async_write(*client, net::buffer(ask), use_tuple);
                EXPECT_FALSE(wec) << wec.message();
                char answer;
                auto [rec, rn] =
                    co_await client->async_read_some(net::buffer(&answer, 1), use_tuple);
                EXPECT_FALSE(rec) << rec.message();
                EXPECT_EQ(std::string(1, answer), ask);
            }
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            for (int i = 0; i < exchanges; ++i) {
                char ask;
                auto [ec, n] = co_await net::async_read(*server, net::buffer(&ask, 1), use_tuple);
                EXPECT_FALSE(ec);
                co_await net::async_write(*server, net::buffer(&ask, 1), use_tuple);
            }
        });
}

// An error that other code left on the thread's OpenSSL error queue must not turn a read that
// stops to wait for more bytes into a failure: SSL_get_error() would take it for this call's
// (tls_stream::attempt empties the queue first). The server runs on a thread of its own
// (Asio's TLS stream empties the queue of the thread it runs on) and answers with full-size
// records, each larger than the receive buffer: every record is decrypted by a read that first
// stopped for its end, with stale errors queued.
TEST_F(tls_pair, ErrorsLeftOnTheThreadsQueueDoNotFailReadsAndWrites) {
    net::io_context server_ioc;
    connect(test::test_ca::instance().api_leaf(), "localhost", &server_ioc);
    auto& server = *this->server;
    auto& client = *this->client;

    const std::string answer(256 * 1024, 'a');
    std::thread server_thread([&] {
        net::co_spawn(
            server_ioc,
            [&]() -> net::awaitable<void> {
                auto [hec] = co_await server.async_handshake(ssl::stream_base::server, use_tuple);
                EXPECT_FALSE(hec) << hec.message();
                char ask;
                auto [ec, n] = co_await net::async_read(server, net::buffer(&ask, 1), use_tuple);
                if (!ec)
                    co_await net::async_write(server, net::buffer(answer), use_tuple);
            },
            net::detached);
        server_ioc.run_for(20s);
    });
    std::string got;
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
            auto [hec] = co_await client.async_handshake(ssl::stream_base::client, use_tuple);
            EXPECT_FALSE(hec) << hec.message();
            ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
            auto [wec, wn] = co_await net::async_write(client, net::buffer("?", 1), use_tuple);
            EXPECT_FALSE(wec) << wec.message();
            std::vector<char> chunk(64 * 1024);
            while (got.size() < answer.size()) {
                ERR_raise(ERR_LIB_SYS, EPIPE);
                auto [rec, rn] = co_await client.async_read_some(net::buffer(chunk), use_tuple);
                EXPECT_FALSE(rec) << rec.message() << " after " << got.size() << " bytes";
                if (rec)
                    break;
                got.append(chunk.data(), rn);
            }
        },
        [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    ioc.run_for(20s);
    ERR_clear_error();
    client.next_layer().close();
    server_thread.join();
    this->server.reset();  // on server_ioc, which goes before the fixture
    EXPECT_EQ(got, answer);
}

TEST(ReceiveOdds, TriesAtOnceWhileThreeReadsInFourFindTheirBytes) {
    receive_odds odds;
    // Fresh: at once. Three hits for each miss hold the score where it is (back at 64).
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(odds.receive_now());
        if (i % 4 == 0)
            odds.missed();
        else
            odds.found();
    }
    // From the ceiling (64), 11 misses in a row reach 31, below the threshold (32).
    for (int i = 0; i < 11; ++i) {
        ASSERT_TRUE(odds.receive_now()) << i;
        odds.missed();
    }
    // Then one read in 8 still tries at once: a probe.
    std::string pattern;
    for (int i = 0; i < 16; ++i)
        pattern += odds.receive_now() ? 'T' : '-';
    EXPECT_EQ(pattern, "-------T-------T");
    // A probe that finds bytes: 32, at the threshold: every read tries at once again.
    ASSERT_FALSE(odds.receive_now());
    odds.found();
    EXPECT_TRUE(odds.receive_now());
    EXPECT_TRUE(odds.receive_now());
}

TEST_F(tls_pair, ReadsThatCompleteAtOnceNestOnlyBoundedlyOnTheStack) {
    // 512 Ki one-byte reads of data that is always there: each completes inside its initiating
    // call, and if each such completion nested inside the one before, the stack would hold half
    // a million resumed coroutines. Past a small depth they are posted, so this ends.
    connect(test::test_ca::instance().api_leaf());
    const std::string payload(512 * 1024, 'p');
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            std::size_t got = 0;
            char byte;
            while (got < payload.size()) {
                auto [ec, n] = co_await client->async_read_some(net::buffer(&byte, 1), use_tuple);
                EXPECT_FALSE(ec) << ec.message();
                if (ec)
                    break;
                got += n;
            }
            EXPECT_EQ(got, payload.size());
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            co_await net::async_write(*server, net::buffer(payload), use_tuple);
        });
}

TEST_F(tls_pair, CloseNotifyIsEndOfStream) {
    connect(test::test_ca::instance().api_leaf());
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            char byte;
            auto [ec, n] = co_await client->async_read_some(net::buffer(&byte, 1), use_tuple);
            EXPECT_EQ(ec, net::error::eof) << ec.message();
            client->next_layer().close();  // the server's shutdown waits for our answer
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            co_await server->async_shutdown(use_tuple);
        });
}

TEST_F(tls_pair, ConnectionClosedWithoutCloseNotifyIsTruncation) {
    connect(test::test_ca::instance().api_leaf());
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            char byte;
            auto [ec, n] = co_await client->async_read_some(net::buffer(&byte, 1), use_tuple);
            EXPECT_EQ(ec, ssl::error::stream_truncated) << ec.message();
        },
        [&]() -> net::awaitable<void> {
            co_await server_handshake();
            server->next_layer().close();
        });
}

TEST_F(tls_pair, SilentPeerHitsTheDeadline) {
    connect(test::test_ca::instance().api_leaf());
    run(
        [&]() -> net::awaitable<void> {
            co_await client_handshake();
            client->next_layer().expires_after(50ms);
            char byte;
            auto [ec, n] = co_await client->async_read_some(net::buffer(&byte, 1), use_tuple);
            EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
            server->next_layer().close();
        },
        [&]() -> net::awaitable<void> { co_await server_handshake(); });
}

TEST_F(tls_pair, CertificateForAnotherHostFailsTheHandshakeWithAnSslError) {
    connect(test::test_ca::instance().wrong_host_leaf());
    run(
        [&]() -> net::awaitable<void> {
            auto [ec] = co_await client->async_handshake(ssl::stream_base::client, use_tuple);
            EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
            EXPECT_EQ(SSL_get_verify_result(client->native_handle()), X509_V_ERR_HOSTNAME_MISMATCH);
            client->next_layer().close();
        },
        [&]() -> net::awaitable<void> {
            auto [ec] = co_await server->async_handshake(ssl::stream_base::server, use_tuple);
            EXPECT_TRUE(ec);  // the client aborted it
        });
}

}  // namespace
}  // namespace sluice::upstream
