// Which resolved addresses a passthrough upstream may connect to (DESIGN §3.2).
#pragma once

#include <mutex>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

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

/// The addresses sluice itself listens on (the proxy and admin listeners). No upstream
/// connection, configured or passthrough, may reach them: a request sent there would come back
/// into sluice (issue 6; a Via loop check would catch it only after a second admission).
/// Thread-safe: the server replaces the set when it rebinds, I/O threads read it.
class own_listeners {
  public:
    /// Replaces the set with `endpoints` (as bound: an unspecified address means every local
    /// address).
    void set(std::vector<boost::asio::ip::tcp::endpoint> endpoints);

    /// True when connecting to `target` could reach one of the listeners: same port, and an
    /// address that is the listener's own, loopback, unspecified (0.0.0.0 and :: connect to
    /// the local host on Linux), or, for a listener on an unspecified address, any address of
    /// this host's interfaces (getifaddrs(3), read only when the port matches).
    bool reaches(const boost::asio::ip::tcp::endpoint& target) const;

  private:
    mutable std::mutex mutex_;
    std::vector<boost::asio::ip::tcp::endpoint> endpoints_;
};

}  // namespace sluice::upstream
