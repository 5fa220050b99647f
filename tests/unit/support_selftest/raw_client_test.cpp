// Self-tests of raw_client's response framing and deadlines.
#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <chrono>
#include <string>

#include "support/raw_client.hpp"
#include "support/scripted_upstream.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;

TEST(RawClient, ReadsCloseDelimitedResponse) {
    scripted_upstream up({}, [](const received_request&) {
        action a = write_raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc");
        a.writes.push_back({"def", 20ms});
        a.close = true;
        return a;
    });
    raw_client c(up.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.body, "abcdef");
    EXPECT_TRUE(r.close_delimited);
    EXPECT_FALSE(r.keep_alive);
}

TEST(RawClient, ReadsChunkedResponseAndKeepsRawFraming) {
    scripted_upstream up({}, [](const received_request&) {
        return respond_chunked(200, {"hello", " ", "world"});
    });
    raw_client c(up.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.read_response();
    EXPECT_TRUE(r.chunked);
    EXPECT_EQ(r.body, "hello world");
    EXPECT_NE(r.raw.find("5\r\nhello\r\n"), std::string::npos);
    EXPECT_TRUE(r.raw.ends_with("0\r\n\r\n"));
}

TEST(RawClient, HeadResponseHasNoBodyAndNextResponseFollows) {
    scripted_upstream up({}, [](const received_request& r) {
        if (r.method == "HEAD")
            return write_raw(response_bytes(200, "", {{"Content-Length", "1048576"}}));
        return respond(200, "ok");
    });
    raw_client c(up.port());
    c.send("HEAD /big HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    auto head = c.read_response(5s, /*to_head_request=*/true);
    EXPECT_EQ(head.header("Content-Length"), "1048576");
    EXPECT_TRUE(head.body.empty());
    EXPECT_EQ(c.read_response().body, "ok");
    EXPECT_EQ(up.connections_accepted(), 1u);
}

TEST(RawClient, ReadTimeoutIsEnforced) {
    scripted_upstream up({}, [](const received_request&) { return hang(); });
    raw_client c(up.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(c.read_response(100ms), std::system_error);
    EXPECT_FALSE(c.closed_by_peer(100ms));
    EXPECT_TRUE(c.read_some(100ms).empty());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(RawClient, TruncatedResponseIsAnError) {
    scripted_upstream up({}, [](const received_request&) {
        action a = write_raw("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        a.close = true;
        return a;
    });
    raw_client c(up.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.try_read_response();
    EXPECT_FALSE(r.response);
    EXPECT_EQ(r.error, net::error::eof);
    EXPECT_TRUE(r.partial_raw.ends_with("abc"));
}

TEST(RawClient, ConnectFailuresThrow) {
    // The upstream listens on 127.0.0.1 only: connecting to ::1 is refused (or unreachable).
    scripted_upstream up;
    EXPECT_THROW(raw_client("::1", up.port(), 1s), std::system_error);
    EXPECT_THROW(raw_client("not-an-ip", up.port()), std::system_error);
}

}  // namespace
}  // namespace sluice::test
