// Client address list and Proxy-Authorization: Basic.
#include "http/proxy_auth.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/text.hpp"
#include "upstream/destination.hpp"

namespace sluice::http {

namespace {

namespace net = boost::asio;

config::cidr loopback_cidr(bool v6) {
    config::cidr c;
    c.v6 = v6;
    if (v6) {
        c.text = "::1/128";
        c.address[15] = 1;
        c.prefix = 128;
    } else {
        c.text = "127.0.0.0/8";
        c.address[0] = 127;
        c.prefix = 8;
    }
    return c;
}

bool is_loopback_host(const std::string& host) {
    boost::system::error_code ec;
    auto a = net::ip::make_address(host, ec);
    return !ec && a.is_loopback();
}

// Hash schemes libxcrypt checks that are fit for passwords today.
bool strong_hash(std::string_view h) {
    for (std::string_view prefix : {"$2b$", "$2y$", "$2a$", "$5$", "$6$", "$y$", "$7$", "$gy$"}) {
        if (h.starts_with(prefix))
            return true;
    }
    return false;
}

// RFC 4648 base64, strict: no whitespace, padding only at the end.
std::optional<std::string> decode_base64(std::string_view in) {
    if (in.empty() || in.size() % 4 != 0)
        return std::nullopt;
    std::string out(in.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()),
                                  static_cast<int>(in.size()));
    if (n < 0)
        return std::nullopt;
    std::size_t padding = 0;
    if (in.ends_with("=="))
        padding = 2;
    else if (in.ends_with("="))
        padding = 1;
    if (in.substr(0, in.size() - padding).find('=') != std::string_view::npos)
        return std::nullopt;
    out.resize(static_cast<std::size_t>(n) - padding);
    return out;
}

std::string sha256(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<const char*>(md.data()), len);
}

}  // namespace

std::vector<config::cidr> effective_client_cidrs(const config::config& cfg) {
    if (cfg.client_cidrs)
        return *cfg.client_cidrs;
    if (is_loopback_host(cfg.listen.host))
        return {};
    return {loopback_cidr(false), loopback_cidr(true)};
}

bool client_allowed(const boost::asio::ip::address& client,
                    const std::vector<config::cidr>& allowed) noexcept {
    if (allowed.empty())
        return true;
    return std::any_of(allowed.begin(), allowed.end(),
                       [&](const config::cidr& c) { return upstream::cidr_contains(c, client); });
}

std::optional<std::vector<proxy_user>> load_users_file(const std::string& path,
                                                       std::vector<std::string>& errors) {
    std::ifstream in(path);
    if (!in) {
        errors.push_back(path + ": cannot read the users file: " + std::strerror(errno));
        return std::nullopt;
    }
    std::vector<proxy_user> users;
    const std::size_t errors_before = errors.size();
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        std::string_view l = trim_ows(line);
        if (l.empty() || l.front() == '#')
            continue;
        const std::string where = path + ":" + std::to_string(number) + ": ";
        const auto colon = l.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            errors.push_back(where + "expected name:hash");
            continue;
        }
        proxy_user u{std::string(l.substr(0, colon)), std::string(l.substr(colon + 1))};
        if (!strong_hash(u.hash)) {
            errors.push_back(where + "user " + u.name +
                             ": unsupported password hash (use bcrypt from htpasswd -B, or "
                             "SHA-crypt/yescrypt from mkpasswd or openssl passwd -6)");
            continue;
        }
        if (std::any_of(users.begin(), users.end(),
                        [&](const proxy_user& o) { return o.name == u.name; })) {
            errors.push_back(where + "user " + u.name + " is listed twice");
            continue;
        }
        users.push_back(std::move(u));
    }
    if (errors.size() != errors_before)
        return std::nullopt;
    return users;
}

basic_authenticator::basic_authenticator(std::vector<proxy_user> users, std::string realm)
    : challenge_("Basic realm=\"" + realm + "\", charset=\"UTF-8\"") {
    for (auto& u : users)
        users_.emplace(std::move(u.name), std::move(u.hash));
}

basic_authenticator::~basic_authenticator() {
    hashing_.join();
}

net::awaitable<bool> basic_authenticator::check(std::string header) {
    const std::string digest = sha256(header);
    if (remembered(digest))
        co_return true;
    // The hash runs on the authenticator's thread; the caller resumes on its own executor.
    // Named first: GCC 12 mishandles temporaries inside a co_await expression.
    auto work = [this, &header]() -> net::awaitable<bool> { co_return verify(header); };
    bool ok = co_await net::co_spawn(hashing_, std::move(work), net::use_awaitable);
    if (ok)
        remember(digest);
    co_return ok;
}

bool basic_authenticator::check_now(std::string_view header) {
    const std::string digest = sha256(header);
    if (remembered(digest))
        return true;
    const bool ok = verify(header);
    if (ok)
        remember(digest);
    return ok;
}

bool basic_authenticator::verify(std::string_view header) const {
    // credentials = auth-scheme 1*SP token68 (RFC 9110 §11.4); the scheme is case-insensitive.
    header = trim_ows(header);
    const auto space = header.find(' ');
    if (space == std::string_view::npos)
        return false;
    std::string_view scheme = header.substr(0, space);
    if (scheme.size() != 5 ||
        !std::equal(scheme.begin(), scheme.end(), "basic", [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
        return false;
    }
    auto decoded = decode_base64(trim_ows(header.substr(space + 1)));
    if (!decoded)
        return false;
    const auto colon = decoded->find(':');  // RFC 7617 §2: a user-id cannot contain ':'
    if (colon == std::string::npos)
        return false;
    auto it = users_.find(decoded->substr(0, colon));
    if (it == users_.end())
        return false;
    const std::string password = decoded->substr(colon + 1);
    crypt_data data{};
    const char* hashed = crypt_r(password.c_str(), it->second.c_str(), &data);
    if (!hashed || hashed[0] == '*')
        return false;
    const std::string_view computed(hashed);
    return computed.size() == it->second.size() &&
           CRYPTO_memcmp(computed.data(), it->second.data(), computed.size()) == 0;
}

bool basic_authenticator::remembered(const std::string& digest) {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(digest);
    if (it == cache_.end())
        return false;
    lru_.splice(lru_.begin(), lru_, it->second);
    return true;
}

void basic_authenticator::remember(const std::string& digest) {
    std::lock_guard lock(mutex_);
    if (cache_.contains(digest))
        return;
    lru_.push_front(digest);
    cache_.emplace(digest, lru_.begin());
    if (lru_.size() > cache_size) {
        cache_.erase(lru_.back());
        lru_.pop_back();
    }
}

}  // namespace sluice::http
