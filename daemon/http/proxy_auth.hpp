// Who may use the proxy: the client address list (`client_cidrs`) and `Proxy-Authorization:
// Basic` against a users file (`proxy_auth`), for sidecars that share a network (issue 6).
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/thread_pool.hpp>

#include "config/config.hpp"

namespace sluice::http {

/// The client addresses allowed when `client_cidrs` is not set: anyone when `listen` is a
/// loopback address (only local processes can connect), else loopback only, so that a proxy
/// bound to 0.0.0.0 is never an open relay by default. Returns an empty list for "anyone".
std::vector<config::cidr> effective_client_cidrs(const config::config& cfg);

/// True when `client` may use the proxy under `allowed` (empty = anyone).
bool client_allowed(const boost::asio::ip::address& client,
                    const std::vector<config::cidr>& allowed) noexcept;

/// One line of a users file: `name:hash`.
struct proxy_user {
    std::string name;
    std::string
        hash;  ///< crypt(3) string: bcrypt ($2b$, $2y$), SHA-crypt ($5$, $6$), yescrypt ($y$)
};

/// Reads a users file in htpasswd form: one `name:hash` per line, `#` comments and blank lines
/// ignored. Hashes are crypt(3) strings (htpasswd -B, mkpasswd -m yescrypt, openssl passwd
/// -6/-5); MD5 ($apr1$, $1$), DES and plain-text passwords are refused. Returns the users, or
/// nullopt with `errors` holding `PATH:LINE: reason` lines.
std::optional<std::vector<proxy_user>> load_users_file(const std::string& path,
                                                       std::vector<std::string>& errors);

/// Checks `Proxy-Authorization: Basic` credentials (RFC 7617, RFC 9110 §11.7.1) against the
/// users of a users file. Password hashes are slow by design, so they are checked on a thread
/// of the authenticator's own, never on an I/O thread; credentials that passed are remembered
/// (as a SHA-256 digest of the header value, a bounded LRU) so that a keep-alive client pays
/// once. Thread-safe.
class basic_authenticator {
  public:
    /// `realm` is sent in `Proxy-Authenticate`.
    basic_authenticator(std::vector<proxy_user> users, std::string realm);
    ~basic_authenticator();

    /// True when `header` (the Proxy-Authorization value) names a user of the file with the
    /// right password. Resumes on the caller's executor.
    boost::asio::awaitable<bool> check(std::string header);

    /// Same as check(), synchronously on the calling thread (tests, fuzzing).
    bool check_now(std::string_view header);

    /// The `Proxy-Authenticate` value of a 407: `Basic realm="...", charset="UTF-8"`.
    const std::string& challenge() const noexcept { return challenge_; }

  private:
    bool verify(std::string_view header) const;
    bool remembered(const std::string& digest);
    void remember(const std::string& digest);

    std::unordered_map<std::string, std::string> users_;  // name -> hash
    std::string challenge_;
    boost::asio::thread_pool hashing_{1};
    std::mutex mutex_;  // guards the cache
    std::list<std::string> lru_;
    std::unordered_map<std::string, std::list<std::string>::iterator> cache_;
    static constexpr std::size_t cache_size = 1024;
};

}  // namespace sluice::http
