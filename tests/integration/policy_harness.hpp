// Shared helpers of the policy integration tests (retry_test, breaker_test, admission_test): a
// fixture with one TLS upstream "api" and the proxy in front of it, scripted answer sequences,
// request builders, arrival-time arithmetic and HTTP-date formatting.
#pragma once

#include <atomic>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "integration/harness.hpp"

namespace sluice::test {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// `d` in whole milliseconds (truncated), for readable assertions and messages.
inline milliseconds ms(steady::duration d) {
    return std::chrono::duration_cast<milliseconds>(d);
}

/// Answers the i-th request (in the order the upstream completes them) with steps[i]; the last
/// step answers every later request.
inline script in_turn(std::vector<action> steps) {
    auto next = std::make_shared<std::atomic<std::size_t>>(0);
    return [steps = std::move(steps), next](const received_request&) {
        const std::size_t i = next->fetch_add(1);
        return steps[std::min(i, steps.size() - 1)];
    };
}

/// Time from each arrival to the next, from the upstream's own `received_at` stamps.
inline std::vector<milliseconds> arrival_gaps(const std::vector<received_request>& reqs) {
    std::vector<milliseconds> out;
    for (std::size_t i = 1; i < reqs.size(); ++i)
        out.push_back(ms(reqs[i].received_at - reqs[i - 1].received_at));
    return out;
}

/// "<method> http://api.example.test<path> HTTP/1.1" with a Content-Length body.
inline std::string with_body(std::string_view method, std::string_view path, std::string_view body,
                             std::string_view extra = "") {
    std::string r(method);
    r += " http://api.example.test";
    r += path;
    r += " HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: ";
    r += std::to_string(body.size());
    r += "\r\n";
    r += extra;
    r += "\r\n";
    r += body;
    return r;
}

/// The same with `Transfer-Encoding: chunked`, one chunk per entry of `chunks`.
inline std::string with_chunked_body(std::string_view method, std::string_view path,
                                     const std::vector<std::string>& chunks) {
    std::string r(method);
    r += " http://api.example.test";
    r += path;
    r += " HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    r += chunked_body(chunks);
    return r;
}

/// GET http://api.example.test<path>.
inline std::string get_path(std::string_view path, std::string_view extra = "") {
    return get("http://api.example.test" + std::string(path), "api.example.test", extra);
}

/// A port on 127.0.0.1 where nothing listens: bound by an acceptor, read back, closed.
inline std::uint16_t closed_port() {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0},
                                     /*reuse_address=*/false);
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

// Proxy-Status values sluice sends (DESIGN §5, §3.5).
inline const std::string rate_limited_status =
    "sluice; error=proxy_internal_response; details=\"rate limited\"";
inline const std::string circuit_open_status =
    "sluice; error=destination_unavailable; details=\"circuit open\"";
inline std::string received_status(int status) {
    return "sluice; received-status=" + std::to_string(status);
}

/// The `error=` token of a Proxy-Status value, e.g. "connection_refused"; empty when none.
inline std::string proxy_error_type(const http_response& r) {
    const std::string v = r.header("Proxy-Status");
    const auto at = v.find("error=");
    if (at == std::string::npos)
        return {};
    const auto end = v.find_first_of("; ", at + 6);
    return v.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
}

// ---- HTTP-dates (RFC 9110 §5.6.7) ---------------------------------------------------------

inline std::tm utc_fields(std::chrono::sys_seconds t) {
    const std::time_t tt = t.time_since_epoch().count();
    std::tm tm{};
    gmtime_r(&tt, &tm);
    return tm;
}
inline constexpr const char* short_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
inline constexpr const char* long_days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                            "Thursday", "Friday", "Saturday"};
inline constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/// `Sun, 06 Nov 1994 08:49:37 GMT`
inline std::string imf_fixdate(std::chrono::sys_seconds t) {
    const std::tm tm = utc_fields(t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", short_days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return buf;
}
/// `Sunday, 06-Nov-94 08:49:37 GMT`
inline std::string rfc850_date(std::chrono::sys_seconds t) {
    const std::tm tm = utc_fields(t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d-%s-%02d %02d:%02d:%02d GMT", long_days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year % 100, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return buf;
}
/// `Sun Nov  6 08:49:37 1994`
inline std::string asctime_date(std::chrono::sys_seconds t) {
    const std::tm tm = utc_fields(t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s %s %2d %02d:%02d:%02d %04d", short_days[tm.tm_wday],
                  months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  tm.tm_year + 1900);
    return buf;
}

// ---- fixture ------------------------------------------------------------------------------

/// A TLS upstream and a proxy with upstream "api" (hosts api.example.test) in front of it.
/// base_config() turns retry, breaker and rate limit off; `configure` turns on what a test needs
/// on the upstream's policy.
class policy_test : public ::testing::Test {
  protected:
    void start(script s, const std::function<void(config::policy&)>& configure,
               upstream_options opts = {}) {
        opts.tls = true;
        upstream = std::make_unique<scripted_upstream>(opts, std::move(s));
        start_proxy("https", "localhost", upstream->port(), configure);
    }

    /// The proxy alone, its upstream "api" forwarding to scheme://host:port.
    void start_proxy(std::string scheme, std::string host, std::uint16_t port,
                     const std::function<void(config::policy&)>& configure) {
        auto c = base_config();
        auto& u =
            add_upstream(c, "api", "api.example.test", std::move(scheme), std::move(host), port);
        if (configure)
            configure(u.policy);
        proxy = std::make_unique<running_proxy>(std::move(c));
    }

    /// One request on a new client connection.
    http_response fetch(std::string_view request, milliseconds timeout = 5s) {
        raw_client c(proxy->port());
        c.send(request);
        return c.read_response(timeout);
    }

    std::unique_ptr<scripted_upstream> upstream;
    std::unique_ptr<running_proxy> proxy;
};

}  // namespace sluice::test
