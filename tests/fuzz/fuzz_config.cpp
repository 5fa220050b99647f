// libFuzzer target: the configuration loader (daemon/config/config.cpp, units.cpp) on YAML text,
// through load_string, the entry point that load_file, --check-config and SIGHUP reloads share.
// An accepted config must keep every bound docs/configuration.md promises, since the daemon
// relies on them (no zero burst, no duration that overflows the steady clock, no CR/LF in a
// header value).
//
// Substitution: `${env:NAME}` only reads the environment, so it stays; the variables the seeds
// name are set here (values with a secret marker and with CR LF). `${file:PATH}` would let an
// input read any file of the machine, block on /dev/stdin or a FIFO, or spend its time reading
// /dev/zero: this target is linked with `-Wl,--wrap=fopen`, and while the loader runs, fopen
// serves a few in-memory files under /fuzz/ and fails with ENOENT for every other path.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace sluice::config;

/// Marks every secret the environment and the /fuzz/ files hand out: no error may show it.
constexpr std::string_view secret_marker = "Qm7xFuzzSecret";

/// True while load_string runs: only then does fopen serve the in-memory files.
bool loading = false;

/// The files `${file:...}` may read during fuzzing.
struct memory_file {
    const char* path;
    std::string_view text;
};
constexpr memory_file memory_files[] = {
    {"/fuzz/token", "token-Qm7xFuzzSecret\n"},
    {"/fuzz/crlf", "Qm7xFuzzSecret\r\nX-Injected: 1"},
    {"/fuzz/empty", ""},
};

}  // namespace

extern "C" std::FILE* __real_fopen(const char* path, const char* mode);

/// fopen as seen by the code linked with `--wrap=fopen`: in-memory /fuzz/ files while loading,
/// the real one otherwise (libFuzzer itself reads and writes files).
extern "C" std::FILE* __wrap_fopen(const char* path, const char* mode) {
    if (!loading)
        return __real_fopen(path, mode);
    for (const auto& f : memory_files) {
        if (std::strcmp(path, f.path) != 0)
            continue;
        if (f.text.empty())
            return __real_fopen("/dev/null", "rb");
        return fmemopen(const_cast<char*>(f.text.data()), f.text.size(), "rb");
    }
    errno = ENOENT;
    return nullptr;
}

namespace {

constexpr duration max_duration = std::chrono::hours{8760};

bool valid_duration(duration d, bool positive) {
    return d <= max_duration && (positive ? d > duration{0} : d >= duration{0});
}

bool is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool all_of(std::string_view s, bool (*pred)(char)) {
    return std::all_of(s.begin(), s.end(), pred);
}

void check_status_set(const status_set& s) {
    for (unsigned code = 0; code < 100; ++code)
        FUZZ_CHECK(!s.contains(code));
}

/// The bounds of docs/configuration.md, "Policy sections".
void check_policy(const policy& p) {
    FUZZ_CHECK(std::isfinite(p.rate_limit.requests_per_minute));
    FUZZ_CHECK(p.rate_limit.requests_per_minute > 0 && p.rate_limit.requests_per_minute <= 1e9);
    FUZZ_CHECK(p.rate_limit.burst_size >= 1);
    FUZZ_CHECK(valid_duration(p.queue.max_wait, false));
    FUZZ_CHECK(p.retry.max_retries <= 100);
    FUZZ_CHECK(valid_duration(p.retry.initial_delay, false));
    FUZZ_CHECK(valid_duration(p.retry.max_delay, false));
    FUZZ_CHECK(p.retry.initial_delay <= p.retry.max_delay);
    FUZZ_CHECK(std::isfinite(p.retry.exponential_base) && p.retry.exponential_base >= 1);
    FUZZ_CHECK(p.retry.jitter >= 0 && p.retry.jitter <= 1);
    check_status_set(p.retry.retry_on_status);
    FUZZ_CHECK(p.circuit_breaker.failure_threshold >= 1);
    FUZZ_CHECK(valid_duration(p.circuit_breaker.recovery_timeout, true));
    FUZZ_CHECK(p.circuit_breaker.half_open_max_requests >= 1);
    check_status_set(p.circuit_breaker.failure_status);
    FUZZ_CHECK(valid_duration(p.timeouts.connect, true));
    FUZZ_CHECK(valid_duration(p.timeouts.request, true));
    FUZZ_CHECK(valid_duration(p.timeouts.total, true));
    FUZZ_CHECK(p.pool.max_connections >= 1);
    FUZZ_CHECK(valid_duration(p.pool.idle_timeout, true));
    FUZZ_CHECK(valid_duration(p.pool.max_connection_age, true));
    FUZZ_CHECK(p.tls.min_version == "1.2" || p.tls.min_version == "1.3");
    FUZZ_CHECK(p.tls.cert_file.empty() == p.tls.key_file.empty());
}

void check_upstream(const upstream& u) {
    FUZZ_CHECK(!u.name.empty());
    FUZZ_CHECK(all_of(u.name, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    }));
    FUZZ_CHECK(u.name != "passthrough" && u.name != "unrouted");
    FUZZ_CHECK(!u.hosts.empty());
    for (const auto& h : u.hosts) {
        FUZZ_CHECK(!h.host.empty());
        FUZZ_CHECK(!h.port || *h.port != 0);
        FUZZ_CHECK(std::none_of(h.host.begin(), h.host.end(),
                                [](char c) { return c >= 'A' && c <= 'Z'; }));
    }
    FUZZ_CHECK(u.origin.scheme == "http" || u.origin.scheme == "https");
    FUZZ_CHECK(!u.origin.host.empty() && u.origin.port != 0);
    for (const auto& [name, value] : u.set_headers) {
        FUZZ_CHECK(!name.empty() && all_of(name, is_tchar));
        // A value goes verbatim into the request sent upstream: no CR, LF, NUL, DEL.
        FUZZ_CHECK(all_of(value, [](char c) {
            const auto byte = static_cast<unsigned char>(c);
            return byte >= 0x20 ? byte != 0x7f : c == '\t';
        }));
    }
    check_policy(u.policy);
}

/// The bounds of docs/configuration.md, top-level keys, `log` and `limits`.
void check_config(const config& c) {
    FUZZ_CHECK(!c.listen.host.empty() && !c.admin_listen.host.empty());
    FUZZ_CHECK(!(c.listen == c.admin_listen) || c.listen.port == 0);
    FUZZ_CHECK(c.threads <= 1024);
    FUZZ_CHECK(valid_duration(c.drain_timeout, false));
    FUZZ_CHECK(c.max_dynamic_upstreams >= 1);
    for (auto port : c.connect_ports)
        FUZZ_CHECK(port != 0);
    FUZZ_CHECK(all_of(c.via_id, [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-';
    }));
    for (const auto& cidr : c.allow_cidrs)
        FUZZ_CHECK(cidr.prefix <= (cidr.v6 ? 128u : 32u));
    for (const auto& name : c.log.redact_headers) {
        FUZZ_CHECK(!name.empty() && all_of(name, is_tchar));
        FUZZ_CHECK(
            std::none_of(name.begin(), name.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }));
    }
    FUZZ_CHECK(valid_duration(c.limits.header_read_timeout, true));
    FUZZ_CHECK(valid_duration(c.limits.client_idle_timeout, true));
    FUZZ_CHECK(c.limits.max_header_bytes >= 1024);
    FUZZ_CHECK(c.limits.max_client_connections >= 1);
    check_policy(c.defaults);
    for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
        check_upstream(c.upstreams[i]);
        for (std::size_t j = 0; j < i; ++j)
            FUZZ_CHECK(c.upstreams[i].name != c.upstreams[j].name);
    }
}

}  // namespace

/// libFuzzer initialisation: the environment the seed configs name.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const std::string secret(secret_marker);
    ::setenv("GITHUB_TOKEN", ("ghp-" + secret).c_str(), 1);
    ::setenv("PAYMENTS_KEY", ("pk-" + secret).c_str(), 1);
    ::setenv("EXAMPLE_TOKEN", ("ex-" + secret).c_str(), 1);
    ::setenv("SLUICE_POD_NAME", "pod-7", 1);
    ::setenv("SLUICE_FUZZ_CRLF", (secret + "\r\nX-Injected: 1").c_str(), 1);
    ::setenv("SLUICE_FUZZ_EMPTY", "", 1);
    return 0;
}

/// libFuzzer entry point: loads one YAML text and checks the result.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view yaml(reinterpret_cast<const char*>(data), size);
    loading = true;
    const load_result result = load_string(yaml, "fuzz.yaml");
    loading = false;

    // Exactly one of a config and a list of errors (config.hpp, load_result).
    FUZZ_CHECK((result.value != nullptr) == result.errors.empty());
    // A secret reaches an error only if the input spelled it itself (maybe through an escape).
    const bool spelled = yaml.find(secret_marker) != std::string_view::npos ||
                         yaml.find('\\') != std::string_view::npos;
    for (const auto& e : result.errors) {
        const std::string line = e.to_string();
        FUZZ_CHECK(!e.reason.empty());
        const bool shows_secret = !spelled && line.find(secret_marker) != std::string::npos;
        if (shows_secret)
            std::fprintf(stderr, "error shows a secret: %s\n", line.c_str());
        FUZZ_CHECK(!shows_secret);
    }
    if (result.value)
        check_config(*result.value);
    return 0;
}
