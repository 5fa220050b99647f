// Passthrough destination rules (DESIGN §3.2): internal ranges in every IPv6 spelling.
#include "upstream/destination.hpp"

#include <gtest/gtest.h>

namespace sluice::upstream {
namespace {

namespace ip = boost::asio::ip;
using tcp = boost::asio::ip::tcp;

config::cidr make_cidr(const std::string& text) {
    config::cidr c;
    c.text = text;
    auto slash = text.find('/');
    auto a = ip::make_address(text.substr(0, slash));
    c.prefix = static_cast<unsigned>(std::stoul(text.substr(slash + 1)));
    if (a.is_v4()) {
        auto b = a.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), c.address.begin());
    } else {
        c.v6 = true;
        auto b = a.to_v6().to_bytes();
        std::copy(b.begin(), b.end(), c.address.begin());
    }
    return c;
}

TEST(Destination, InternalRanges) {
    for (auto s : {"127.0.0.1",
                   "127.255.255.254",
                   "10.1.2.3",
                   "172.16.0.1",
                   "172.31.255.255",
                   "192.168.1.1",
                   "169.254.169.254",
                   "100.64.0.1",
                   "100.127.255.255",
                   "0.0.0.0",
                   "0.1.2.3",
                   "224.0.0.1",
                   "255.255.255.255",
                   "::1",
                   "::",
                   "fc00::1",
                   "fd12::1",
                   "fe80::1",
                   "ff02::1",
                   "::ffff:127.0.0.1",
                   "::ffff:169.254.169.254",
                   "64:ff9b::a9fe:a9fe",
                   "::127.0.0.1",
                   "::ffff:10.0.0.1"}) {
        EXPECT_TRUE(is_internal_address(ip::make_address(s))) << s;
    }
    for (auto s : {"8.8.8.8", "172.32.0.1", "172.15.255.255", "100.128.0.1", "192.169.0.1",
                   "2001:db8::1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"}) {
        EXPECT_FALSE(is_internal_address(ip::make_address(s))) << s;
    }
}

TEST(Destination, AllowCidrsOpenOnlyTheirRange) {
    std::vector<config::cidr> allow{make_cidr("10.1.0.0/16"), make_cidr("fd00::/8")};
    EXPECT_TRUE(passthrough_may_connect(ip::make_address("10.1.2.3"), allow));
    EXPECT_TRUE(passthrough_may_connect(ip::make_address("::ffff:10.1.2.3"), allow));
    EXPECT_FALSE(passthrough_may_connect(ip::make_address("10.2.0.1"), allow));
    EXPECT_TRUE(passthrough_may_connect(ip::make_address("fd12::1"), allow));
    EXPECT_FALSE(passthrough_may_connect(ip::make_address("fc00::1"), allow));
    EXPECT_FALSE(passthrough_may_connect(ip::make_address("127.0.0.1"), allow));
    EXPECT_TRUE(passthrough_may_connect(ip::make_address("93.184.216.34"), {}));
}

TEST(Destination, CidrPrefixEdges) {
    auto c = make_cidr("172.16.0.0/12");
    EXPECT_TRUE(cidr_contains(c, ip::make_address("172.31.0.1")));
    EXPECT_FALSE(cidr_contains(c, ip::make_address("172.32.0.1")));
    EXPECT_TRUE(cidr_contains(make_cidr("0.0.0.0/0"), ip::make_address("1.2.3.4")));
    EXPECT_FALSE(cidr_contains(make_cidr("0.0.0.0/0"), ip::make_address("2001:db8::1")));
    EXPECT_TRUE(cidr_contains(make_cidr("2001:db8::/33"), ip::make_address("2001:db8:7fff::1")));
    EXPECT_FALSE(cidr_contains(make_cidr("2001:db8::/33"), ip::make_address("2001:db8:8000::1")));
}

tcp::endpoint ep(const char* address, std::uint16_t port) {
    return {ip::make_address(address), port};
}

TEST(OwnListeners, LoopbackSpellingsOfTheListenerPortsAreSluiceItself) {
    own_listeners own;
    own.set({ep("127.0.0.1", 3128), ep("127.0.0.1", 9464)});
    EXPECT_TRUE(own.reaches(ep("127.0.0.1", 3128)));
    EXPECT_TRUE(own.reaches(ep("127.0.0.1", 9464)));
    EXPECT_TRUE(own.reaches(ep("127.0.0.2", 3128)));         // all of 127/8 is this host
    EXPECT_TRUE(own.reaches(ep("0.0.0.0", 3128)));           // Linux connects it to the host
    EXPECT_TRUE(own.reaches(ep("::ffff:127.0.0.1", 3128)));  // IPv4-mapped
    EXPECT_TRUE(own.reaches(ep("::1", 9464)));
    EXPECT_TRUE(own.reaches(ep("::", 9464)));
    EXPECT_FALSE(own.reaches(ep("127.0.0.1", 443)));
    EXPECT_FALSE(own.reaches(ep("93.184.216.34", 3128)));  // another host on the same port
}

TEST(OwnListeners, AListenerOnEveryAddressIsReachedThroughThisHostsAddresses) {
    own_listeners own;
    own.set({ep("0.0.0.0", 3128)});
    EXPECT_TRUE(own.reaches(ep("127.0.0.1", 3128)));
    EXPECT_FALSE(own.reaches(ep("192.0.2.1", 3128)));  // TEST-NET-1: never a local address
    EXPECT_FALSE(own.reaches(ep("127.0.0.1", 3129)));
    own.set({});  // rebinding replaces the set
    EXPECT_FALSE(own.reaches(ep("127.0.0.1", 3128)));
}

}  // namespace
}  // namespace sluice::upstream
