// Process logging on stderr (spdlog) and the access log line, text or JSON (DESIGN §3.7, §3.9).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace sluice::logging {

/// Configures the default spdlog logger to write to stderr at `cfg.level`, and the access log
/// to write in `cfg.format` (or not at all when `cfg.access_log` is false). Safe to call again
/// on reload. An unknown level name falls back to "info".
void configure(const config::log_config& cfg);

/// One finished request, as the access log records it. No header values, no query string:
/// credentials never reach the log (DESIGN §3.7).
struct access_entry {
    std::string_view client;    ///< client address "ip:port"
    std::string_view upstream;  ///< upstream name, "passthrough" or "unrouted"
    std::string_view method;
    std::string_view host;          ///< request authority's host
    std::string_view path;          ///< path without the query string
    unsigned status = 0;            ///< final status sent to the client (0: none was sent)
    std::uint64_t bytes_in = 0;     ///< request body bytes read from the client
    std::uint64_t bytes_out = 0;    ///< response body bytes written to the client
    double duration_seconds = 0;    ///< from the first byte of the request head to the last write
    unsigned attempts = 0;          ///< upstream attempts made (0 when answered by sluice)
    double queue_wait_seconds = 0;  ///< time spent waiting for tokens, all attempts
    std::string_view breaker;       ///< breaker state seen: closed, open, half_open ("" unrouted)
    std::string_view error;         ///< RFC 9209 type when sluice made the response, else empty
};

/// Writes `e` as one line on stderr: `key=value` pairs (text) or one JSON object (json).
/// Does nothing when the access log is off. On a thread that batches (below) the line waits in
/// the thread's batch.
void access(const access_entry& e);

/// Makes the calling thread batch its access lines: they gather in a per-thread buffer and
/// flush_access() writes them with one write() instead of one each (64 KiB at most; a full
/// batch is written at once). `schedule` is called when a line lands in an empty batch, or in
/// a batch scheduled before the last configure() (a reload may shorten the interval), and must
/// make flush_access() run on this thread within access_flush_interval(): an I/O thread
/// (re-)arms a timer for it, or with an interval of 0 posts it behind the handlers queued.
void batch_access_on_this_thread(std::function<void()> schedule);

/// `log.access_log_flush_interval` of the last configure(): how long a batched line may wait
/// (0: until the end of the event loop's turn).
std::chrono::milliseconds access_flush_interval() noexcept;

/// Schedules this thread's waiting batch again when configure() ran since it was scheduled:
/// after a reload, a line already waiting waits at most the new interval. The server posts it
/// to every I/O thread on reload.
void reschedule_access();

/// Writes the access lines this thread has batched. Call it before the thread ends.
void flush_access();

/// True when the access log is on (so callers can skip building the entry).
bool access_enabled() noexcept;

/// Returns `path` with any query (`?...`) removed; the query may carry secrets.
std::string_view strip_query(std::string_view path) noexcept;

}  // namespace sluice::logging
