// spdlog setup and access-log formatting.
#include "core/logging.hpp"

#include <atomic>

#include <spdlog/fmt/chrono.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

namespace sluice::logging {

namespace {

std::atomic<bool> access_on{true};
std::atomic<config::log_format> access_format{config::log_format::text};

std::shared_ptr<spdlog::logger> make_logger(const char* name, const char* pattern) {
    auto logger = spdlog::get(name);
    if (!logger) {
        logger = spdlog::stderr_logger_mt(name);
    }
    logger->set_pattern(pattern);
    return logger;
}

}  // namespace

void configure(const config::log_config& cfg) {
    auto main = make_logger("sluice", "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    auto level = spdlog::level::from_str(cfg.level);
    if (level == spdlog::level::off && cfg.level != "off")
        level = spdlog::level::info;
    main->set_level(level);
    main->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(main);

    // The access log is one line per request, with no level prefix, so JSON lines stay JSON.
    auto access_logger = make_logger("access", "%v");
    access_logger->set_level(spdlog::level::info);
    access_on.store(cfg.access_log, std::memory_order_relaxed);
    access_format.store(cfg.format, std::memory_order_relaxed);
}

bool access_enabled() noexcept {
    return access_on.load(std::memory_order_relaxed);
}

std::string_view strip_query(std::string_view path) noexcept {
    return path.substr(0, path.find('?'));
}

void access(const access_entry& e) {
    if (!access_enabled())
        return;
    auto logger = spdlog::get("access");
    if (!logger)
        return;
    if (access_format.load(std::memory_order_relaxed) == config::log_format::json) {
        boost::json::object o;
        o["ts"] = boost::json::string_view{};  // replaced below: keep key order stable
        o["client"] = e.client;
        o["upstream"] = e.upstream;
        o["method"] = e.method;
        o["host"] = e.host;
        o["path"] = e.path;
        o["status"] = e.status;
        o["bytes_in"] = e.bytes_in;
        o["bytes_out"] = e.bytes_out;
        // Whole microseconds: Boost.JSON would print small doubles in exponent form.
        o["duration_us"] = static_cast<std::int64_t>(e.duration_seconds * 1e6 + 0.5);
        o["attempts"] = e.attempts;
        o["queue_wait_us"] = static_cast<std::int64_t>(e.queue_wait_seconds * 1e6 + 0.5);
        o["breaker"] = e.breaker;
        if (!e.error.empty())
            o["error"] = e.error;
        auto now = std::chrono::system_clock::now();
        o["ts"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}Z",
                              std::chrono::floor<std::chrono::milliseconds>(now));
        logger->info(boost::json::serialize(o));
        return;
    }
    logger->info(
        "{:%Y-%m-%dT%H:%M:%S}Z access client={} upstream={} method={} host={} path={} status={} "
        "bytes_in={} bytes_out={} duration_s={:.6f} attempts={} queue_wait_s={:.6f} breaker={}{}{}",
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now()), e.client,
        e.upstream, e.method, e.host, e.path, e.status, e.bytes_in, e.bytes_out, e.duration_seconds,
        e.attempts, e.queue_wait_seconds, e.breaker.empty() ? std::string_view("-") : e.breaker,
        e.error.empty() ? "" : " error=", e.error);
}

}  // namespace sluice::logging
