// Which resolved addresses a passthrough upstream may connect to (DESIGN §3.2).
#pragma once

#include <vector>

#include <boost/asio/ip/address.hpp>

#include "config/config.hpp"

namespace sluice::upstream {

/// True when `a` lies in a range passthrough never reaches on its own: loopback (127/8, ::1),
/// private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local and metadata (169.254/16,
/// fe80::/10), CGNAT (100.64/10), "this network" (0/8), unspecified and multicast addresses.
/// IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) IPv6
/// addresses are judged by the IPv4 address they carry.
bool is_internal_address(const boost::asio::ip::address& a) noexcept;

/// True when `a` is inside `c` (an `allow_cidrs` entry); an IPv4-mapped IPv6 address matches
/// IPv4 entries.
bool cidr_contains(const config::cidr& c, const boost::asio::ip::address& a) noexcept;

/// True when a passthrough upstream may connect to `a`: not internal, or listed in `allow`.
bool passthrough_may_connect(const boost::asio::ip::address& a,
                             const std::vector<config::cidr>& allow) noexcept;

}  // namespace sluice::upstream
