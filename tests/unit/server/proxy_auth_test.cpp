// Client address list and Proxy-Authorization: Basic (issue 6, point 3).
#include "http/proxy_auth.hpp"

#include <crypt.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "config/config.hpp"

namespace sluice::http {
namespace {

std::string hash(const std::string& password, const char* setting) {
    crypt_data data{};
    return crypt_r(password.c_str(), setting, &data);
}

// "Basic " + base64("user:password"), computed by hand for the fixed inputs below.
constexpr const char* alice_ok = "Basic YWxpY2U6czNjcmV0";     // alice:s3cret
constexpr const char* alice_wrong = "Basic YWxpY2U6d3Jvbmc=";  // alice:wrong
constexpr const char* bob_ok = "Basic Ym9iOmh1bnRlcjI=";       // bob:hunter2
constexpr const char* mallory = "Basic bWFsbG9yeTpzM2NyZXQ=";  // mallory:s3cret

class UsersFile : public ::testing::Test {
  protected:
    std::string write(const std::string& text) {
        char name[] = "/tmp/sluice-users-XXXXXX";
        int fd = mkstemp(name);
        EXPECT_GE(fd, 0);
        close(fd);
        std::ofstream(name) << text;
        paths_.push_back(name);
        return name;
    }
    void TearDown() override {
        for (const auto& p : paths_)
            std::remove(p.c_str());
    }
    std::vector<std::string> paths_;
};

TEST_F(UsersFile, ReadsBcryptAndShaCryptUsersSkippingCommentsAndBlankLines) {
    auto path = write("# proxy users\n\nalice:" + hash("s3cret", "$2b$05$abcdefghijklmnopqrstuu") +
                      "\r\nbob:" + hash("hunter2", "$6$saltsalt$") + "\n");
    std::vector<std::string> errors;
    auto users = load_users_file(path, errors);
    ASSERT_TRUE(users) << (errors.empty() ? "" : errors[0]);
    ASSERT_EQ(users->size(), 2u);
    EXPECT_EQ((*users)[0].name, "alice");
    EXPECT_EQ((*users)[1].name, "bob");
}

TEST_F(UsersFile, EveryBadLineIsReportedWithItsLineNumber) {
    auto path = write(
        "alice\n"            // 1: no colon
        "bob:$apr1$x$y\n"    // 2: MD5
        "carol:plaintext\n"  // 3: no hash
        "dave:" +
        hash("pw", "$6$salt$") +
        "\n"  // 4: fine
        "dave:" +
        hash("pw", "$6$salt$") + "\n");  // 5: twice
    std::vector<std::string> errors;
    EXPECT_FALSE(load_users_file(path, errors));
    ASSERT_EQ(errors.size(), 4u);
    EXPECT_EQ(errors[0], path + ":1: expected name:hash");
    EXPECT_TRUE(errors[1].starts_with(path + ":2: user bob: unsupported password hash"));
    EXPECT_TRUE(errors[2].starts_with(path + ":3: user carol: unsupported password hash"));
    EXPECT_EQ(errors[3], path + ":5: user dave is listed twice");
}

TEST_F(UsersFile, MissingFileIsAnError) {
    std::vector<std::string> errors;
    EXPECT_FALSE(load_users_file("/nonexistent/users", errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(errors[0].starts_with("/nonexistent/users: cannot read the users file"));
}

basic_authenticator make_authenticator() {
    return basic_authenticator({{"alice", hash("s3cret", "$2b$05$abcdefghijklmnopqrstuu")},
                                {"bob", hash("hunter2", "$6$saltsalt$")}},
                               "api egress");
}

TEST(BasicAuthenticator, AcceptsExactlyTheRightCredentials) {
    auto auth = make_authenticator();
    EXPECT_TRUE(auth.check_now(alice_ok));
    EXPECT_TRUE(auth.check_now(alice_ok));  // remembered
    EXPECT_TRUE(auth.check_now(bob_ok));
    EXPECT_TRUE(auth.check_now("basic YWxpY2U6czNjcmV0"));  // the scheme is case-insensitive
    EXPECT_TRUE(auth.check_now("  Basic YWxpY2U6czNjcmV0 "));
    EXPECT_FALSE(auth.check_now(alice_wrong));
    EXPECT_FALSE(auth.check_now(mallory));
    EXPECT_FALSE(auth.check_now(""));
    EXPECT_FALSE(auth.check_now("Basic"));
    EXPECT_FALSE(auth.check_now("Bearer YWxpY2U6czNjcmV0"));
    EXPECT_FALSE(auth.check_now("Basic YWxpY2U6czNjcmV0="));  // bad padding
    EXPECT_FALSE(auth.check_now("Basic YWxp Y2U6czNjcmV0"));  // not base64
    EXPECT_FALSE(auth.check_now("Basic YWxpY2U="));           // "alice": no colon
    EXPECT_FALSE(auth.check_now("Basic OnMzY3JldA=="));       // ":s3cret": empty user
    EXPECT_EQ(auth.challenge(), "Basic realm=\"api egress\", charset=\"UTF-8\"");
}

TEST(BasicAuthenticator, CheckRunsOffTheCallersThreadAndResumesOnIt) {
    auto auth = make_authenticator();
    boost::asio::io_context ioc;
    auto run = [&](std::string header) {
        auto f = boost::asio::co_spawn(ioc, auth.check(header), boost::asio::use_future);
        ioc.restart();
        ioc.run();
        return f.get();
    };
    EXPECT_TRUE(run(alice_ok));
    EXPECT_FALSE(run(alice_wrong));
    EXPECT_TRUE(run(bob_ok));
}

config::config with_listen(const std::string& host) {
    config::config c;
    c.listen.host = host;
    return c;
}

TEST(ClientCidrs, DefaultIsAnyoneOnLoopbackListenersAndLoopbackOnlyOtherwise) {
    namespace ip = boost::asio::ip;
    EXPECT_TRUE(effective_client_cidrs(with_listen("127.0.0.1")).empty());
    EXPECT_TRUE(effective_client_cidrs(with_listen("::1")).empty());
    for (const char* host : {"0.0.0.0", "::", "10.0.0.5"}) {
        auto cidrs = effective_client_cidrs(with_listen(host));
        EXPECT_TRUE(client_allowed(ip::make_address("127.0.0.1"), cidrs)) << host;
        EXPECT_TRUE(client_allowed(ip::make_address("127.9.9.9"), cidrs)) << host;
        EXPECT_TRUE(client_allowed(ip::make_address("::1"), cidrs)) << host;
        EXPECT_TRUE(client_allowed(ip::make_address("::ffff:127.0.0.1"), cidrs)) << host;
        EXPECT_FALSE(client_allowed(ip::make_address("10.0.0.7"), cidrs)) << host;
        EXPECT_FALSE(client_allowed(ip::make_address("2001:db8::1"), cidrs)) << host;
    }
}

TEST(ClientCidrs, ConfiguredListIsUsedAsIs) {
    namespace ip = boost::asio::ip;
    auto loaded = config::load_string("listen: 0.0.0.0:3128\nclient_cidrs: [10.1.0.0/16]\n", "t");
    ASSERT_TRUE(loaded.value);
    auto cidrs = effective_client_cidrs(*loaded.value);
    EXPECT_TRUE(client_allowed(ip::make_address("10.1.2.3"), cidrs));
    EXPECT_FALSE(client_allowed(ip::make_address("10.2.0.1"), cidrs));
    EXPECT_FALSE(client_allowed(ip::make_address("127.0.0.1"), cidrs));
}

}  // namespace
}  // namespace sluice::http
