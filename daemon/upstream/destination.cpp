// Address classification for passthrough destinations.
#include "upstream/destination.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace sluice::upstream {

namespace {

using v4_bytes = std::array<std::uint8_t, 4>;

// The IPv4 address an IPv6 address stands for, if it embeds one.
bool embedded_v4(const boost::asio::ip::address_v6& a, v4_bytes& out) {
    auto b = a.to_bytes();
    bool mapped = a.is_v4_mapped();
    bool zero96 = std::all_of(b.begin(), b.begin() + 12, [](auto x) { return x == 0; });
    bool nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b &&
                 std::all_of(b.begin() + 4, b.begin() + 12, [](auto x) { return x == 0; });
    // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1 themselves.
    bool compatible = zero96 && (b[12] | b[13]) != 0;
    if (!mapped && !nat64 && !compatible)
        return false;
    std::copy(b.begin() + 12, b.end(), out.begin());
    return true;
}

bool internal_v4(const v4_bytes& b) {
    return b[0] == 0 ||                                // 0/8
           b[0] == 10 ||                               // 10/8
           b[0] == 127 ||                              // 127/8
           (b[0] == 100 && (b[1] & 0xc0) == 64) ||     // 100.64/10
           (b[0] == 169 && b[1] == 254) ||             // 169.254/16, metadata
           (b[0] == 172 && (b[1] & 0xf0) == 16) ||     // 172.16/12
           (b[0] == 192 && b[1] == 168) ||             // 192.168/16
           (b[0] == 192 && b[1] == 0 && b[2] == 0) ||  // 192.0.0/24, IETF protocol assignments
           b[0] >= 224;                                // multicast, reserved, broadcast
}

bool prefix_matches(const std::uint8_t* net, const std::uint8_t* addr, unsigned prefix) {
    unsigned full = prefix / 8, rest = prefix % 8;
    for (unsigned i = 0; i < full; ++i) {
        if (net[i] != addr[i])
            return false;
    }
    if (rest == 0)
        return true;
    std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (net[full] & mask) == (addr[full] & mask);
}

// The address an IPv4-mapped IPv6 address carries, else `a` itself.
boost::asio::ip::address unmapped(const boost::asio::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
    return a;
}

// Whether `a` is an address of one of this host's interfaces.
bool is_local_interface_address(const boost::asio::ip::address& a) {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0)
        return false;
    bool found = false;
    for (ifaddrs* i = list; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET && a.is_v4()) {
            const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
            found = ntohl(sin->sin_addr.s_addr) == a.to_v4().to_uint();
        } else if (i->ifa_addr->sa_family == AF_INET6 && a.is_v6()) {
            const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
            const auto bytes = a.to_v6().to_bytes();
            found = std::memcmp(sin6->sin6_addr.s6_addr, bytes.data(), bytes.size()) == 0;
        }
    }
    freeifaddrs(list);
    return found;
}

}  // namespace

void own_listeners::set(std::vector<boost::asio::ip::tcp::endpoint> endpoints) {
    std::lock_guard lock(mutex_);
    endpoints_ = std::move(endpoints);
}

bool own_listeners::reaches(const boost::asio::ip::tcp::endpoint& target) const {
    const auto to = unmapped(target.address());
    bool any_address = false;  // a listener on this port bound to every address
    {
        std::lock_guard lock(mutex_);
        bool port_matches = false;
        for (const auto& own : endpoints_) {
            if (own.port() != target.port())
                continue;
            port_matches = true;
            const auto at = unmapped(own.address());
            if (at == to)
                return true;
            any_address = any_address || at.is_unspecified();
        }
        if (!port_matches)
            return false;
    }
    if (to.is_loopback() || to.is_unspecified())
        return true;
    return any_address && is_local_interface_address(to);
}

bool is_internal_address(const boost::asio::ip::address& a) noexcept {
    if (a.is_v4())
        return internal_v4(a.to_v4().to_bytes());
    auto v6 = a.to_v6();
    v4_bytes v4;
    if (embedded_v4(v6, v4))
        return internal_v4(v4);
    auto b = v6.to_bytes();
    return v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() ||
           (b[0] & 0xfe) == 0xfc ||                    // fc00::/7 unique local
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||  // fe80::/10 link-local
           (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0);    // fec0::/10 site-local (deprecated)
}

bool cidr_contains(const config::cidr& c, const boost::asio::ip::address& a) noexcept {
    if (!c.v6) {
        v4_bytes v4;
        if (a.is_v4()) {
            v4 = a.to_v4().to_bytes();
        } else if (!embedded_v4(a.to_v6(), v4)) {
            return false;
        }
        return prefix_matches(c.address.data(), v4.data(), std::min(c.prefix, 32u));
    }
    if (!a.is_v6())
        return false;
    auto b = a.to_v6().to_bytes();
    return prefix_matches(c.address.data(), b.data(), std::min(c.prefix, 128u));
}

bool passthrough_may_connect(const boost::asio::ip::address& a,
                             const std::vector<config::cidr>& allow) noexcept {
    if (!is_internal_address(a))
        return true;
    return std::any_of(allow.begin(), allow.end(),
                       [&](const config::cidr& c) { return cidr_contains(c, a); });
}

}  // namespace sluice::upstream
