// Message heads serialized by hand are byte for byte what Beast's own serializer writes.
#include "http/message_head.hpp"

#include <sstream>

#include <gtest/gtest.h>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>

namespace sluice::http {
namespace {

template <bool isRequest>
std::string beast_head(const bhttp::header<isRequest>& h) {
    std::ostringstream os;
    os << h;
    return os.str();
}

template <bool isRequest>
std::string our_head(const bhttp::header<isRequest>& h) {
    std::string out = "prefix|";  // appends, keeping what is there
    append_head(out, h);
    EXPECT_EQ(out.substr(0, 7), "prefix|");
    return out.substr(7);
}

TEST(MessageHead, RequestMatchesBeast) {
    bhttp::request<bhttp::empty_body> r{bhttp::verb::get, "/v1/items?page=2", 11};
    r.set(bhttp::field::host, "api.example.com");
    r.set(bhttp::field::user_agent, "curl/7.88.1");
    r.insert("X-Trace", "a, b");
    r.insert("x-trace", "c");  // repeated fields keep their order and spelling
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()),
              "GET /v1/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\n"
              "User-Agent: curl/7.88.1\r\nX-Trace: a, b\r\nx-trace: c\r\n\r\n");
}

TEST(MessageHead, UnknownMethodAndHttp10) {
    bhttp::request<bhttp::empty_body> r;
    r.method_string("PURGE");
    r.target("/");
    r.version(10);
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()), "PURGE / HTTP/1.0\r\n\r\n");
}

TEST(MessageHead, ResponseMatchesBeast) {
    bhttp::response<bhttp::empty_body> r{bhttp::status::ok, 11};
    r.set(bhttp::field::server, "nginx");
    r.set(bhttp::field::content_length, "2");
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()), "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\n");

    r.reason("Fine");  // a reason phrase as the upstream sent it is kept
    r.result(299);
    EXPECT_EQ(our_head(r.base()), beast_head(r.base()));
    EXPECT_EQ(our_head(r.base()).substr(0, 19), "HTTP/1.1 299 Fine\r\n");

    bhttp::response<bhttp::empty_body> teapot;
    teapot.result(418);
    teapot.version(10);
    EXPECT_EQ(our_head(teapot.base()), beast_head(teapot.base()));
}

}  // namespace
}  // namespace sluice::http
