// Address classification for passthrough destinations.
#include "upstream/destination.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

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

}  // namespace

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
