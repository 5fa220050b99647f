// Tests of the configuration loader (daemon/config/config.cpp): the shipped files, defaults,
// deep merge, substitution, and every validation error with its exact position and key path.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "config/config.hpp"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::filesystem::path source_dir =
    std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "..";

load_result load(std::string_view yaml) {
    return load_string(yaml, "test.yaml");
}

/// Loads `yaml`, which must be valid, and returns the config.
config load_ok(std::string_view yaml) {
    const load_result r = load(yaml);
    for (const auto& e : r.errors)
        ADD_FAILURE() << "unexpected error: " << e.to_string();
    if (!r.value) {
        ADD_FAILURE() << "no config";
        return config{};
    }
    return *r.value;
}

/// Loads `yaml`, which must be invalid, and returns every error as `FILE:LINE:COL: path: why`.
std::vector<std::string> errors_of(std::string_view yaml) {
    const load_result r = load(yaml);
    EXPECT_EQ(r.value, nullptr) << "an invalid config must not produce a value";
    std::vector<std::string> out;
    for (const auto& e : r.errors)
        out.push_back(e.to_string());
    return out;
}

/// A YAML mapping with one upstream whose extra keys are `extra` (4-space indented lines).
std::string one_upstream(std::string_view extra) {
    return "upstreams:\n"
           "  - name: api\n"
           "    hosts: [api.example.com]\n"
           "    origin: https://api.example.com\n" +
           std::string(extra);
}

/// Sets an environment variable for the lifetime of the object.
class scoped_env {
  public:
    scoped_env(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
    ~scoped_env() { ::unsetenv(name_); }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

  private:
    const char* name_;
};

/// A file in the temporary directory, removed at the end of the test.
class temp_file {
  public:
    explicit temp_file(std::string_view contents) {
        path_ =
            std::filesystem::temp_directory_path() /
            ("sluice_config_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
        std::ofstream(path_, std::ios::binary) << contents;
    }
    ~temp_file() { std::filesystem::remove(path_); }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    std::string path() const { return path_.string(); }

  private:
    static inline int counter_ = 0;
    std::filesystem::path path_;
};

// --- shipped files ---------------------------------------------------------------------------

TEST(ShippedConfig, LoadsWithoutErrorsAndSpellsOutTheDefaults) {
    const auto path = (source_dir / "config" / "sluice.yaml").string();
    const load_result r = load_file(path);
    for (const auto& e : r.errors)
        ADD_FAILURE() << e.to_string();
    ASSERT_NE(r.value, nullptr);
    const config& c = *r.value;
    EXPECT_EQ(c.source, path);
    EXPECT_EQ(c.listen, (endpoint{"127.0.0.1", 3128}));
    EXPECT_EQ(c.admin_listen, (endpoint{"127.0.0.1", 9464}));
    EXPECT_EQ(c.unknown_hosts, unknown_hosts_mode::passthrough);
    EXPECT_TRUE(c.upstreams.empty());
    // Apart from unknown_hosts, the shipped file writes out exactly the built-in defaults.
    const config builtin;
    EXPECT_EQ(c.defaults, builtin.defaults);
    EXPECT_EQ(c.threads, builtin.threads);
    EXPECT_EQ(c.drain_timeout, builtin.drain_timeout);
    EXPECT_EQ(c.max_dynamic_upstreams, builtin.max_dynamic_upstreams);
    EXPECT_TRUE(c.allow_cidrs.empty());
    EXPECT_EQ(c.connect_ports, builtin.connect_ports);
    EXPECT_EQ(c.via, builtin.via);
    EXPECT_EQ(c.via_id, "");
    EXPECT_EQ(c.log.level, builtin.log.level);
    EXPECT_EQ(c.log.format, builtin.log.format);
    EXPECT_EQ(c.log.access_log, builtin.log.access_log);
    EXPECT_EQ(c.log.access_log_flush_interval, builtin.log.access_log_flush_interval);
    EXPECT_EQ(c.log.redact_headers, builtin.log.redact_headers);
    EXPECT_EQ(c.limits.max_client_connections, builtin.limits.max_client_connections);
    EXPECT_EQ(c.limits.header_read_timeout, builtin.limits.header_read_timeout);
    EXPECT_EQ(c.limits.client_idle_timeout, builtin.limits.client_idle_timeout);
    EXPECT_EQ(c.limits.max_header_bytes, builtin.limits.max_header_bytes);
    EXPECT_EQ(c.limits.max_request_body, builtin.limits.max_request_body);
}

TEST(ShippedConfig, ExamplesLoadGivenTheirEnvironment) {
    const scoped_env github("GITHUB_TOKEN", "ghp_test");
    const scoped_env payments("PAYMENTS_KEY", "pk_test");
    const scoped_env pod("SLUICE_POD_NAME", "pod-7");
    std::size_t examples = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator(source_dir / "config" / "examples")) {
        if (entry.path().extension() != ".yaml")
            continue;
        ++examples;
        const load_result r = load_file(entry.path().string());
        for (const auto& e : r.errors)
            ADD_FAILURE() << e.to_string();
        EXPECT_NE(r.value, nullptr) << entry.path();
        EXPECT_FALSE(r.value == nullptr || r.value->upstreams.empty()) << entry.path();
    }
    EXPECT_GE(examples, 3u);
}

TEST(ShippedConfig, TlsOriginationExampleSubstitutesItsCredentials) {
    const scoped_env github("GITHUB_TOKEN", "ghp_test");
    const scoped_env payments("PAYMENTS_KEY", "pk_test");
    const load_result r =
        load_file((source_dir / "config" / "examples" / "tls-origination.yaml").string());
    ASSERT_NE(r.value, nullptr);
    const upstream& github_upstream = r.value->upstreams.at(0);
    EXPECT_EQ(github_upstream.set_headers.at(0),
              (std::pair<std::string, std::string>{"Authorization", "Bearer ghp_test"}));
    EXPECT_EQ(github_upstream.policy.rate_limit.requests_per_minute, 80);
    EXPECT_EQ(github_upstream.policy.timeouts.connect, 3s);  // inherited from its defaults
}

// --- defaults --------------------------------------------------------------------------------

TEST(Defaults, EmptyFileIsAValidConfigWithAllDefaults) {
    for (std::string_view text : {"", "\n", "# nothing but a comment\n", "---\n", "{}"}) {
        const config c = load_ok(text);
        EXPECT_EQ(c.source, "test.yaml");
        EXPECT_EQ(c.listen, (endpoint{"127.0.0.1", 3128}));
        EXPECT_EQ(c.admin_listen, (endpoint{"127.0.0.1", 9464}));
        EXPECT_EQ(c.unknown_hosts, unknown_hosts_mode::reject);
        EXPECT_EQ(c.defaults, policy{});
        EXPECT_EQ(c.connect_ports, std::vector<std::uint16_t>{443});
        EXPECT_TRUE(c.upstreams.empty());
    }
}

TEST(Defaults, BuiltInValuesMatchTheDesign) {
    const policy p;
    EXPECT_EQ(p.rate_limit.requests_per_minute, 600);
    EXPECT_EQ(p.rate_limit.burst_size, 60u);
    EXPECT_EQ(p.queue.max_size, 1000u);
    EXPECT_EQ(p.queue.max_wait, 30s);
    EXPECT_EQ(p.retry.max_retries, 3u);
    EXPECT_TRUE(p.retry.retry_on_status.contains(429));
    EXPECT_TRUE(p.retry.retry_on_status.contains(503));
    EXPECT_FALSE(p.retry.retry_on_status.contains(500));
    EXPECT_TRUE(p.circuit_breaker.failure_status.contains(500));
    EXPECT_TRUE(p.circuit_breaker.failure_status.contains(599));
    EXPECT_FALSE(p.circuit_breaker.failure_status.contains(499));
}

TEST(Defaults, UpstreamWithoutSectionsInheritsTheParsedDefaults) {
    const config c = load_ok(R"(defaults:
  rate_limit: {requests_per_minute: 120, burst_size: 7}
  timeouts: {connect: 2s}
upstreams:
  - name: api
    hosts: [api.example.com]
    origin: https://api.example.com
)");
    ASSERT_EQ(c.upstreams.size(), 1u);
    EXPECT_EQ(c.upstreams[0].policy, c.defaults);
    EXPECT_EQ(c.defaults.rate_limit.requests_per_minute, 120);
    EXPECT_EQ(c.defaults.rate_limit.burst_size, 7u);
    EXPECT_EQ(c.defaults.timeouts.connect, 2s);
    EXPECT_EQ(c.defaults.timeouts.request, 30s);  // untouched built-in default
}

TEST(Defaults, EveryTopLevelKeyIsRead) {
    const config c = load_ok(R"(listen: "[::1]:8080"
admin_listen: 0.0.0.0:0
threads: 4
drain_timeout: 2.5s
unknown_hosts: passthrough
max_dynamic_upstreams: 16
allow_cidrs: [10.1.0.0/16, "fd00::/8", 192.168.1.7]
connect_ports: [443, 8443]
via: false
via_id: edge-1.eu_west
log: {level: debug, format: json, access_log: false, access_log_flush_interval: 250ms,
      redact_headers: [X-Api-Key, x-secret]}
limits:
  max_client_connections: 50
  header_read_timeout: 3s
  client_idle_timeout: 1m
  max_header_bytes: 16KiB
  max_request_body: 1MB
)");
    EXPECT_EQ(c.listen, (endpoint{"::1", 8080}));
    EXPECT_EQ(c.admin_listen, (endpoint{"0.0.0.0", 0}));
    EXPECT_EQ(c.threads, 4u);
    EXPECT_EQ(c.drain_timeout, 2500ms);
    EXPECT_EQ(c.unknown_hosts, unknown_hosts_mode::passthrough);
    EXPECT_EQ(c.max_dynamic_upstreams, 16u);
    ASSERT_EQ(c.allow_cidrs.size(), 3u);
    EXPECT_EQ(c.allow_cidrs[0].text, "10.1.0.0/16");
    EXPECT_FALSE(c.allow_cidrs[0].v6);
    EXPECT_EQ(c.allow_cidrs[0].prefix, 16u);
    EXPECT_EQ(c.allow_cidrs[0].address[0], 10);
    EXPECT_EQ(c.allow_cidrs[0].address[1], 1);
    EXPECT_EQ(c.allow_cidrs[0].address[2], 0);
    EXPECT_EQ(c.allow_cidrs[1].text, "fd00::/8");
    EXPECT_TRUE(c.allow_cidrs[1].v6);
    EXPECT_EQ(c.allow_cidrs[1].prefix, 8u);
    EXPECT_EQ(c.allow_cidrs[1].address[0], 0xfd);
    EXPECT_EQ(c.allow_cidrs[2].text, "192.168.1.7/32");  // a bare address is a /32
    EXPECT_EQ(c.allow_cidrs[2].prefix, 32u);
    EXPECT_EQ(c.connect_ports, (std::vector<std::uint16_t>{443, 8443}));
    EXPECT_FALSE(c.via);
    EXPECT_EQ(c.via_id, "edge-1.eu_west");
    EXPECT_EQ(c.log.level, "debug");
    EXPECT_EQ(c.log.format, log_format::json);
    EXPECT_FALSE(c.log.access_log);
    EXPECT_EQ(c.log.access_log_flush_interval, 250ms);
    EXPECT_EQ(c.log.redact_headers, (std::vector<std::string>{"x-api-key", "x-secret"}));
    EXPECT_EQ(c.limits.max_client_connections, 50u);
    EXPECT_EQ(c.limits.header_read_timeout, 3s);
    EXPECT_EQ(c.limits.client_idle_timeout, 60s);
    EXPECT_EQ(c.limits.max_header_bytes, 16u * 1024);
    EXPECT_EQ(c.limits.max_request_body, 1000000u);
}

TEST(Defaults, EveryPolicyKeyIsRead) {
    const config c = load_ok(R"(defaults:
  rate_limit: {enabled: false, requests_per_minute: 0.5, burst_size: 1}
  queue: {max_size: 0, max_wait: 0s}
  retry:
    enabled: false
    max_retries: 100
    initial_delay: 250ms
    exponential_base: 1
    max_delay: 250ms
    jitter: 0
    retry_on_status: [5xx, 429, 408]
    retry_non_idempotent: true
    buffer_limit: 0
  circuit_breaker:
    enabled: false
    failure_threshold: 1
    recovery_timeout: 1ms
    half_open_max_requests: 3
    failure_status: [500, "4XX"]
  timeouts: {connect: 1ms, request: 1h, total: 2h}
  pool: {max_connections: 1, idle_timeout: 1s, max_connection_age: 10m}
  tls: {verify: false, ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, min_version: 1.3}
)");
    const policy& p = c.defaults;
    EXPECT_FALSE(p.rate_limit.enabled);
    EXPECT_EQ(p.rate_limit.requests_per_minute, 0.5);
    EXPECT_EQ(p.rate_limit.burst_size, 1u);
    EXPECT_EQ(p.queue.max_size, 0u);
    EXPECT_EQ(p.queue.max_wait, 0ms);
    EXPECT_FALSE(p.retry.enabled);
    EXPECT_EQ(p.retry.max_retries, 100u);
    EXPECT_EQ(p.retry.initial_delay, 250ms);
    EXPECT_EQ(p.retry.exponential_base, 1.0);
    EXPECT_EQ(p.retry.max_delay, 250ms);
    EXPECT_EQ(p.retry.jitter, 0.0);
    status_set retry_statuses;
    retry_statuses.add_class(5);
    retry_statuses.codes.set(429);
    retry_statuses.codes.set(408);
    EXPECT_EQ(p.retry.retry_on_status, retry_statuses);
    EXPECT_TRUE(p.retry.retry_non_idempotent);
    EXPECT_EQ(p.retry.buffer_limit, 0u);
    EXPECT_FALSE(p.circuit_breaker.enabled);
    EXPECT_EQ(p.circuit_breaker.failure_threshold, 1u);
    EXPECT_EQ(p.circuit_breaker.recovery_timeout, 1ms);
    EXPECT_EQ(p.circuit_breaker.half_open_max_requests, 3u);
    EXPECT_TRUE(p.circuit_breaker.failure_status.contains(500));
    EXPECT_FALSE(p.circuit_breaker.failure_status.contains(501));
    EXPECT_TRUE(p.circuit_breaker.failure_status.contains(404));
    EXPECT_EQ(p.timeouts, (timeouts_policy{1ms, 1h, 2h}));
    EXPECT_EQ(p.pool, (pool_policy{1, 1s, 10min}));
    EXPECT_EQ(p.tls, (tls_policy{false, "/ca.pem", "/c.pem", "/k.pem", "1.3"}));
}

TEST(Defaults, EmptyValuesOfSectionsAndListsAreEmpty) {
    const config c = load_ok(R"(log:
defaults:
  retry:
    retry_on_status:
connect_ports:
upstreams:
  # every upstream commented out
)");
    EXPECT_TRUE(c.upstreams.empty());
    EXPECT_TRUE(c.connect_ports.empty());
    EXPECT_EQ(c.defaults.retry.retry_on_status, status_set{});
    EXPECT_EQ(c.log.level, "info");
}

TEST(Defaults, LocalhostListenIsLoopback) {
    const config c = load_ok("listen: localhost:8080\nadmin_listen: LOCALHOST:8081\n");
    EXPECT_EQ(c.listen, (endpoint{"127.0.0.1", 8080}));
    EXPECT_EQ(c.admin_listen, (endpoint{"127.0.0.1", 8081}));
}

// --- deep merge ------------------------------------------------------------------------------

TEST(DeepMerge, UpstreamKeysOverrideOnlyThemselves) {
    const config c = load_ok(R"(defaults:
  rate_limit: {requests_per_minute: 300, burst_size: 30}
  retry: {max_retries: 5, jitter: 0.1}
  tls: {ca_file: /etc/ca.pem}
upstreams:
  - name: api
    hosts: [api.example.com]
    origin: https://api.example.com
    rate_limit: {burst_size: 5}
    retry: {max_retries: 1}
    tls: {min_version: "1.3"}
)");
    const policy& p = c.upstreams.at(0).policy;
    EXPECT_EQ(p.rate_limit.requests_per_minute, 300);  // from defaults
    EXPECT_EQ(p.rate_limit.burst_size, 5u);            // its own
    EXPECT_TRUE(p.rate_limit.enabled);
    EXPECT_EQ(p.retry.max_retries, 1u);
    EXPECT_EQ(p.retry.jitter, 0.1);
    EXPECT_EQ(p.retry.initial_delay, 1s);
    EXPECT_EQ(p.tls.ca_file, "/etc/ca.pem");
    EXPECT_EQ(p.tls.min_version, "1.3");
    EXPECT_EQ(p.queue, c.defaults.queue);
    EXPECT_EQ(p.circuit_breaker, c.defaults.circuit_breaker);
    // The defaults themselves are untouched by the upstream's keys.
    EXPECT_EQ(c.defaults.rate_limit.burst_size, 30u);
    EXPECT_EQ(c.defaults.retry.max_retries, 5u);
}

TEST(DeepMerge, DefaultsWrittenAfterUpstreamsStillApply) {
    const config c = load_ok(R"(upstreams:
  - name: api
    hosts: [api.example.com]
    origin: https://api.example.com
    rate_limit: {burst_size: 5}
defaults:
  rate_limit: {requests_per_minute: 42}
)");
    EXPECT_EQ(c.upstreams.at(0).policy.rate_limit.requests_per_minute, 42);
    EXPECT_EQ(c.upstreams.at(0).policy.rate_limit.burst_size, 5u);
}

TEST(DeepMerge, StatusListsReplaceTheInheritedListWhole) {
    const config c = load_ok(one_upstream("    retry: {retry_on_status: [500]}\n"));
    status_set expected;
    expected.codes.set(500);
    EXPECT_EQ(c.upstreams.at(0).policy.retry.retry_on_status, expected);
}

TEST(DeepMerge, EachPolicySectionCanBeDisabled) {
    const config c =
        load_ok(one_upstream("    rate_limit: {enabled: false}\n"
                             "    retry: {enabled: false}\n"
                             "    circuit_breaker: {enabled: false}\n"));
    const policy& p = c.upstreams.at(0).policy;
    EXPECT_FALSE(p.rate_limit.enabled);
    EXPECT_FALSE(p.retry.enabled);
    EXPECT_FALSE(p.circuit_breaker.enabled);
    EXPECT_EQ(p.rate_limit.burst_size, 60u);  // the rest is kept for when it is re-enabled
    EXPECT_TRUE(c.defaults.rate_limit.enabled);
}

TEST(DeepMerge, DisabledDefaultsCanBeReEnabledPerUpstream) {
    const config c = load_ok("defaults: {retry: {enabled: false}}\n" +
                             one_upstream("    retry: {enabled: true}\n"));
    EXPECT_FALSE(c.defaults.retry.enabled);
    EXPECT_TRUE(c.upstreams.at(0).policy.retry.enabled);
}

TEST(DeepMerge, TlsClientCertificatePairMayBeSplitBetweenDefaultsAndUpstream) {
    const config c = load_ok("defaults: {tls: {cert_file: /c.pem, key_file: /k.pem}}\n" +
                             one_upstream("    tls: {cert_file: /other.pem}\n"));
    EXPECT_EQ(c.upstreams.at(0).policy.tls.cert_file, "/other.pem");
    EXPECT_EQ(c.upstreams.at(0).policy.tls.key_file, "/k.pem");
}

// --- upstreams, origins and hosts ------------------------------------------------------------

TEST(Upstreams, ReadsNameHostsOriginSetHeadersAndPosition) {
    const config c = load_ok(R"(upstreams:
  - name: api
    hosts: [API.Example.com, "*.Example.org", "[2001:DB8:0::1]", "api.example.com:8443", "*.x.io:444"]
    origin: HTTPS://API.Example.COM/
    set_headers:
      Authorization: Bearer abc
      X-Trace: "1"
  - name: plain.v2_x-y
    hosts: [10.0.0.1]
    origin: http://10.0.0.1:8080
)");
    ASSERT_EQ(c.upstreams.size(), 2u);
    const upstream& u = c.upstreams[0];
    EXPECT_EQ(u.name, "api");
    EXPECT_EQ(u.pos, (position{2, 5}));
    EXPECT_THAT(u.hosts, ElementsAre(host_pattern{"api.example.com", false, std::nullopt},
                                     host_pattern{".example.org", true, std::nullopt},
                                     host_pattern{"2001:db8::1", false, std::nullopt},
                                     host_pattern{"api.example.com", false, 8443},
                                     host_pattern{".x.io", true, 444}));
    EXPECT_EQ(u.origin, (origin{"https", "api.example.com", 443}));
    EXPECT_THAT(u.set_headers,
                ElementsAre(std::pair<std::string, std::string>{"Authorization", "Bearer abc"},
                            std::pair<std::string, std::string>{"X-Trace", "1"}));
    EXPECT_EQ(c.upstreams[1].name, "plain.v2_x-y");
    EXPECT_EQ(c.upstreams[1].pos, (position{8, 5}));
    EXPECT_EQ(c.upstreams[1].origin, (origin{"http", "10.0.0.1", 8080}));
}

TEST(Upstreams, OriginDefaultPortsAndAuthority) {
    struct origin_case {
        std::string text;
        origin expected;
        std::string authority;
    };
    const origin_case cases[] = {
        {"http://example.com", {"http", "example.com", 80}, "example.com"},
        {"https://example.com", {"https", "example.com", 443}, "example.com"},
        {"https://example.com:443", {"https", "example.com", 443}, "example.com"},
        {"https://example.com:8443", {"https", "example.com", 8443}, "example.com:8443"},
        {"http://example.com:443", {"http", "example.com", 443}, "example.com:443"},
        {"https://[2001:db8::1]", {"https", "2001:db8::1", 443}, "[2001:db8::1]"},
        {"http://[::1]:8080/", {"http", "::1", 8080}, "[::1]:8080"},
        {"https://192.0.2.1:1", {"https", "192.0.2.1", 1}, "192.0.2.1:1"},
    };
    for (const auto& c : cases) {
        const config cfg =
            load_ok("upstreams: [{name: a, hosts: [a.test], origin: \"" + c.text + "\"}]");
        ASSERT_EQ(cfg.upstreams.size(), 1u) << c.text;
        EXPECT_EQ(cfg.upstreams[0].origin, c.expected) << c.text;
        EXPECT_EQ(cfg.upstreams[0].origin.authority(), c.authority) << c.text;
        EXPECT_EQ(cfg.upstreams[0].origin.tls(), c.expected.scheme == "https") << c.text;
    }
}

TEST(Upstreams, SameHostOnDifferentPortsOrAsWildcardIsNotADuplicate) {
    const config c = load_ok(R"(upstreams:
  - {name: a, hosts: [example.com], origin: "https://example.com"}
  - {name: b, hosts: ["example.com:8443", "*.example.com"], origin: "https://b.example.com"}
)");
    EXPECT_EQ(c.upstreams.size(), 2u);
}

// --- substitution ----------------------------------------------------------------------------

TEST(Substitution, EnvironmentVariables) {
    const scoped_env token("SLUICE_TEST_TOKEN", "s3cr3t");
    const scoped_env id("SLUICE_TEST_ID", "edge");
    const config c = load_ok(
        "via_id: ${env:SLUICE_TEST_ID}-${env:SLUICE_TEST_ID}\n" +
        one_upstream("    set_headers: {Authorization: \"Bearer ${env:SLUICE_TEST_TOKEN}\"}\n"));
    EXPECT_EQ(c.via_id, "edge-edge");
    EXPECT_EQ(c.upstreams.at(0).set_headers.at(0).second, "Bearer s3cr3t");
}

TEST(Substitution, EmptyEnvironmentVariableIsAnEmptyString) {
    const scoped_env empty("SLUICE_TEST_EMPTY", "");
    const config c = load_ok("via_id: \"${env:SLUICE_TEST_EMPTY}\"\n");
    EXPECT_EQ(c.via_id, "");
}

TEST(Substitution, AppliesToNumbersDurationsAndBooleansToo) {
    const scoped_env burst("SLUICE_TEST_BURST", "9");
    const scoped_env wait("SLUICE_TEST_WAIT", "3s");
    const scoped_env via("SLUICE_TEST_VIA", "false");
    const config c = load_ok(R"(via: ${env:SLUICE_TEST_VIA}
defaults:
  rate_limit:
    burst_size: ${env:SLUICE_TEST_BURST}
  queue:
    max_wait: "${env:SLUICE_TEST_WAIT}"
)");
    EXPECT_FALSE(c.via);
    EXPECT_EQ(c.defaults.rate_limit.burst_size, 9u);
    EXPECT_EQ(c.defaults.queue.max_wait, 3s);
}

TEST(Substitution, FileContentsWithoutTrailingWhitespace) {
    const temp_file secret("tok en\n\n \t\r\n");
    const config c =
        load_ok(one_upstream("    set_headers: {X-Key: \"k=${file:" + secret.path() + "};\"}\n"));
    EXPECT_EQ(c.upstreams.at(0).set_headers.at(0).second, "k=tok en;");
}

TEST(Substitution, EscapeAndLoneDollarsAreLiteral) {
    const scoped_env id("SLUICE_TEST_ID", "x");
    const config c =
        load_ok(one_upstream("    set_headers:\n"
                             "      A: \"$${env:SLUICE_TEST_ID}\"\n"
                             "      B: \"$$${env:SLUICE_TEST_ID}\"\n"
                             "      C: \"cost: $5 {not} $\"\n"
                             "      D: \"$${${env:SLUICE_TEST_ID}}\"\n"));
    const auto& h = c.upstreams.at(0).set_headers;
    ASSERT_EQ(h.size(), 4u);
    EXPECT_EQ(h[0].second, "${env:SLUICE_TEST_ID}");
    EXPECT_EQ(h[1].second, "$${env:SLUICE_TEST_ID}");  // a lone $, then the $${ escape
    EXPECT_EQ(h[2].second, "cost: $5 {not} $");
    EXPECT_EQ(h[3].second, "${x}");
}

TEST(Substitution, SubstitutedTextIsNotScannedAgain) {
    const scoped_env nested("SLUICE_TEST_NESTED", "${env:HOME}");
    const config c = load_ok("via_id: x\n" +
                             one_upstream("    set_headers: {A: \"${env:SLUICE_TEST_NESTED}\"}\n"));
    EXPECT_EQ(c.upstreams.at(0).set_headers.at(0).second, "${env:HOME}");
}

TEST(Substitution, RejectedSubstitutedValueIsNamedAsWrittenNeverShown) {
    // Every value parser quotes what it rejects (shared case: a fuzzer found the CIDR parser
    // quoting a secret read with ${file:}). Whatever the parser, the text and every part of it
    // stay out of the message; the value as written and what it should be are given instead.
    const std::string secret = "10.0Tok3nSecret";
    const scoped_env env("SLUICE_TEST_SECRET", secret.c_str());
    const std::vector<std::string> errors = errors_of(
        "listen: ${env:SLUICE_TEST_SECRET}:3128\n"
        "allow_cidrs: [\"${env:SLUICE_TEST_SECRET}/8\"]\n"
        "upstreams:\n"
        "  - name: api\n"
        "    hosts: [\"${env:SLUICE_TEST_SECRET}:99999\"]\n"
        "    origin: https://${env:SLUICE_TEST_SECRET}:0\n");
    EXPECT_THAT(errors,
                ElementsAre("test.yaml:1:9: listen: the substituted value of "
                            "'${env:SLUICE_TEST_SECRET}:3128' is not an IP:port address (its "
                            "text is not shown)",
                            "test.yaml:2:15: allow_cidrs[0]: the substituted value of "
                            "'${env:SLUICE_TEST_SECRET}/8' is not a CIDR such as 10.0.0.0/8 (its "
                            "text is not shown)",
                            "test.yaml:5:13: upstreams[0].hosts[0]: the substituted value of "
                            "'${env:SLUICE_TEST_SECRET}:99999' is not a host name or pattern "
                            "(its text is not shown)",
                            "test.yaml:6:13: upstreams[0].origin: the substituted value of "
                            "'https://${env:SLUICE_TEST_SECRET}:0' is not an http:// or https:// "
                            "origin (its text is not shown)"));
    for (const auto& e : errors)
        EXPECT_EQ(e.find("Tok3n"), std::string::npos) << e;
}

TEST(Substitution, ValueWithoutSubstitutionIsStillQuotedInItsError) {
    EXPECT_THAT(errors_of("allow_cidrs: [\"10.0.0.300/8\"]\n"),
                ElementsAre("test.yaml:1:15: allow_cidrs[0]: invalid IP address '10.0.0.300' "
                            "(expected e.g. 10.0.0.0/8 or fd00::/8)"));
}

TEST(Substitution, KeysAreNotSubstituted) {
    const scoped_env name("SLUICE_TEST_KEY", "via");
    EXPECT_THAT(errors_of("${env:SLUICE_TEST_KEY}: false\n"),
                ElementsAre("test.yaml:1:1: ${env:SLUICE_TEST_KEY}: unknown key"));
}

TEST(Substitution, MissingEnvironmentVariableIsAnErrorAtItsValue) {
    ::unsetenv("SLUICE_TEST_MISSING");
    EXPECT_THAT(
        errors_of(one_upstream("    set_headers:\n"
                               "      Authorization: \"Bearer ${env:SLUICE_TEST_MISSING}\"\n")),
        ElementsAre("test.yaml:6:22: upstreams[0].set_headers.Authorization: environment "
                    "variable SLUICE_TEST_MISSING is not set"));
}

TEST(Substitution, EveryFailingSubstitutionOfAValueIsReported) {
    ::unsetenv("SLUICE_TEST_MISSING");
    ::unsetenv("SLUICE_TEST_MISSING2");
    EXPECT_THAT(errors_of("via_id: ${env:SLUICE_TEST_MISSING}${env:SLUICE_TEST_MISSING2}\n"),
                ElementsAre("test.yaml:1:9: via_id: environment variable SLUICE_TEST_MISSING is "
                            "not set",
                            "test.yaml:1:9: via_id: environment variable SLUICE_TEST_MISSING2 is "
                            "not set"));
}

TEST(Substitution, UnreadableFileIsAnError) {
    EXPECT_THAT(errors_of("via_id: ${file:/nonexistent/sluice/secret}\n"),
                ElementsAre("test.yaml:1:9: via_id: cannot read file /nonexistent/sluice/secret: "
                            "No such file or directory"));
}

TEST(Substitution, MalformedSubstitutionsAreErrors) {
    EXPECT_THAT(
        errors_of("via_id: \"${env:X\"\n"
                  "log: {level: \"${vault:x}\"}\n"
                  "defaults: {tls: {ca_file: \"${env:}\", cert_file: \"${file:}\", key_file: "
                  "\"${file:}\"}}\n"),
        ElementsAre(
            "test.yaml:1:9: via_id: unterminated ${ (write $${ for a literal ${)",
            "test.yaml:2:14: log.level: unknown substitution ${vault:x}: expected ${env:NAME} or "
            "${file:PATH} (write $${ for a literal ${)",
            "test.yaml:3:27: defaults.tls.ca_file: ${env:} needs a variable name",
            "test.yaml:3:49: defaults.tls.cert_file: ${file:} needs a path",
            "test.yaml:3:71: defaults.tls.key_file: ${file:} needs a path"));
}

TEST(Substitution, ErrorsNeverShowTheSubstitutedSecret) {
    const scoped_env secret("SLUICE_TEST_SECRET", "hunter2");
    const auto errors = errors_of("via_id: \"x ${env:SLUICE_TEST_SECRET}\"\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0],
              "test.yaml:1:9: via_id: must be empty or match [A-Za-z0-9._-]+, got 'x "
              "${env:SLUICE_TEST_SECRET}'");
}

// --- error reporting -------------------------------------------------------------------------

TEST(Errors, ToStringFormats) {
    EXPECT_EQ((config_error{"f.yaml", {3, 7}, "defaults.retry.jitter", "must be between 0 and 1"})
                  .to_string(),
              "f.yaml:3:7: defaults.retry.jitter: must be between 0 and 1");
    EXPECT_EQ((config_error{"f.yaml", {2, 1}, "", "illegal map value"}).to_string(),
              "f.yaml:2:1: illegal map value");
    EXPECT_EQ((config_error{"f.yaml", {}, "", "cannot read"}).to_string(),
              "f.yaml:0:0: cannot read");
}

TEST(Errors, StructuredFieldsAreOneBasedFromTheYamlMark) {
    const load_result r = load("threads: 2\ndefaults:\n  retry:\n    jitter: 1.5\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].file, "test.yaml");
    EXPECT_EQ(r.errors[0].pos, (position{4, 13}));
    EXPECT_EQ(r.errors[0].key_path, "defaults.retry.jitter");
    EXPECT_EQ(r.errors[0].reason, "must be between 0 and 1, got '1.5'");
    EXPECT_EQ(r.value, nullptr);
}

TEST(Errors, YamlSyntaxErrorHasTheParserPositionAndNoKeyPath) {
    const load_result r = load("listen: 127.0.0.1:3128\nconnect_ports: [443, 8443\nvia: true\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].key_path, "");
    EXPECT_EQ(r.errors[0].pos, (position{3, 4}));
    EXPECT_EQ(r.errors[0].to_string(), "test.yaml:3:4: end of sequence flow not found");
    EXPECT_THAT(errors_of("a: b: c\n"), ElementsAre("test.yaml:1:5: illegal map value"));
}

TEST(Errors, UnreadableFileIsAtZeroZero) {
    const load_result r = load_file("/nonexistent/sluice.yaml");
    EXPECT_EQ(r.value, nullptr);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(),
              "/nonexistent/sluice.yaml:0:0: cannot read the configuration file: No such file or "
              "directory");
    const load_result dir = load_file(std::filesystem::temp_directory_path().string());
    ASSERT_EQ(dir.errors.size(), 1u);
    EXPECT_EQ(dir.errors[0].pos, (position{0, 0}));
    EXPECT_EQ(dir.errors[0].reason, "cannot read the configuration file: Is a directory");
}

TEST(Errors, LoadFileNamesTheFileInErrors) {
    const temp_file file("threads: many\n");
    const load_result r = load_file(file.path());
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(),
              file.path() + ":1:10: threads: expected an integer, got 'many'");
}

TEST(Errors, AllErrorsAreReportedInFileOrder) {
    EXPECT_THAT(errors_of(R"(upstreams:
  - name: Bad Name
    hosts: ["*"]
    origin: ftp://x
    rate_limit: {burst_size: 0}
threads: 2000
listen: nowhere
defaults:
  retry: {jitter: -1, max_retries: 101}
  bogus: 1
)"),
                ElementsAre("test.yaml:2:11: upstreams[0].name: must match [a-z0-9_.-]+, got "
                            "'Bad Name'",
                            "test.yaml:3:13: upstreams[0].hosts[0]: a bare * would match every "
                            "host: use unknown_hosts: passthrough instead",
                            "test.yaml:4:13: upstreams[0].origin: scheme must be http or https, "
                            "got 'ftp'",
                            "test.yaml:5:30: upstreams[0].rate_limit.burst_size: must be at least "
                            "1, got '0'",
                            "test.yaml:6:10: threads: must be between 0 and 1024, got '2000'",
                            "test.yaml:7:9: listen: expected IP:port or [IPv6]:port, as in "
                            "127.0.0.1:3128 or [::1]:3128",
                            "test.yaml:9:19: defaults.retry.jitter: must be between 0 and 1, got "
                            "'-1'",
                            "test.yaml:9:36: defaults.retry.max_retries: must be between 0 and "
                            "100, got '101'",
                            "test.yaml:10:3: defaults.bogus: unknown key"));
}

TEST(Errors, SecondYamlDocumentIsAnError) {
    EXPECT_THAT(errors_of("threads: 1\n---\nthreads: 2\n"),
                ElementsAre("test.yaml:3:1: a configuration file holds one YAML document, found "
                            "a second"));
    // Empty documents around the configuration are harmless.
    EXPECT_EQ(load_ok("---\nthreads: 1\n---\n").threads, 1u);
    EXPECT_EQ(load_ok("---\n---\n").threads, 0u);
}

TEST(Errors, StrayCommaIsASyntaxErrorNotAHangNorAnEmptyConfig) {
    // yaml-cpp 0.7 alone would loop forever here (LoadAll) or ignore the rest (Load).
    EXPECT_THAT(errors_of(","), ElementsAre("test.yaml:1:1: unexpected ','"));
    EXPECT_THAT(errors_of(",\nthreads: 1\n"), ElementsAre("test.yaml:1:1: unexpected ','"));
    EXPECT_THAT(errors_of("- 443\n,\n"), ElementsAre("test.yaml:2:1: unexpected ','"));
    EXPECT_THAT(errors_of("threads: 1\n---\n,\n"), ElementsAre("test.yaml:3:1: unexpected ','"));
}

// --- unknown keys, duplicates, types ---------------------------------------------------------

TEST(UnknownKeys, AtTopLevel) {
    EXPECT_THAT(
        errors_of("listen: 127.0.0.1:1\nlisten_addr: 1\nfoo: {a: 1}\n"),
        ElementsAre("test.yaml:2:1: listen_addr: unknown key", "test.yaml:3:1: foo: unknown key"));
}

TEST(UnknownKeys, SuggestsACloseKnownKey) {
    EXPECT_THAT(errors_of("treads: 2\ndefaults: {rate_limit: {burst: 5, bust_size: 5}}\n"),
                ElementsAre("test.yaml:1:1: treads: unknown key (did you mean threads?)",
                            "test.yaml:2:25: defaults.rate_limit.burst: unknown key",
                            "test.yaml:2:35: defaults.rate_limit.bust_size: unknown key (did you "
                            "mean burst_size?)"));
}

TEST(UnknownKeys, InDefaults) {
    EXPECT_THAT(errors_of(R"(defaults:
  rate_limits: {}
  retry:
    max_retry: 3
  tls: {sni: x}
  set_headers: {A: b}
)"),
                ElementsAre("test.yaml:2:3: defaults.rate_limits: unknown key (did you mean "
                            "rate_limit?)",
                            "test.yaml:4:5: defaults.retry.max_retry: unknown key (did you mean "
                            "max_retries?)",
                            "test.yaml:5:9: defaults.tls.sni: unknown key",
                            "test.yaml:6:3: defaults.set_headers: unknown key"));
}

TEST(UnknownKeys, InAnUpstreamAndItsSections) {
    EXPECT_THAT(errors_of(one_upstream("    path: /v1\n"
                                       "    pool: {max_conns: 3}\n")),
                ElementsAre("test.yaml:5:5: upstreams[0].path: unknown key",
                            "test.yaml:6:12: upstreams[0].pool.max_conns: unknown key"));
}

TEST(UnknownKeys, InLogAndLimits) {
    EXPECT_THAT(errors_of("log: {file: x}\nlimits: {max_connections: 3}\n"),
                ElementsAre("test.yaml:1:7: log.file: unknown key",
                            "test.yaml:2:10: limits.max_connections: unknown key"));
}

TEST(DuplicateKeys, AreErrors) {
    EXPECT_THAT(
        errors_of("threads: 1\nthreads: 2\ndefaults: {queue: {max_size: 1, max_size: 2}}\n"),
        ElementsAre("test.yaml:2:1: threads: duplicate key (first at line 1)",
                    "test.yaml:3:33: defaults.queue.max_size: duplicate key (first at "
                    "line 3)"));
}

TEST(Types, WrongTypesAreErrors) {
    EXPECT_THAT(errors_of(R"(listen: [127.0.0.1, 80]
threads: {n: 1}
via: yes
drain_timeout: [1s]
log: info
connect_ports: 443
defaults:
  rate_limit: [600]
  retry: {jitter: lots, exponential_base: "x"}
upstreams: {name: a}
)"),
                ElementsAre("test.yaml:1:9: listen: expected an address, got a sequence",
                            "test.yaml:2:10: threads: expected an integer, got a mapping",
                            "test.yaml:3:6: via: expected true or false, got 'yes'",
                            "test.yaml:4:16: drain_timeout: expected a duration, got a sequence",
                            "test.yaml:5:6: log: expected a mapping, got a scalar",
                            "test.yaml:6:16: connect_ports: expected a sequence, got a scalar",
                            "test.yaml:8:15: defaults.rate_limit: expected a mapping, got a "
                            "sequence",
                            "test.yaml:9:19: defaults.retry.jitter: expected a number, got 'lots'",
                            "test.yaml:9:43: defaults.retry.exponential_base: expected a number, "
                            "got 'x'",
                            "test.yaml:10:12: upstreams: expected a sequence, got a mapping"));
}

TEST(Types, EmptyValueForAScalarIsAnErrorAtItsKey) {
    EXPECT_THAT(errors_of("threads:\nvia_id:\n"),
                ElementsAre("test.yaml:1:1: threads: expected an integer, got an empty value",
                            "test.yaml:2:1: via_id: expected a string, got an empty value"));
}

TEST(Types, IntegersRejectDecimalsAndNumbersRejectNonFinite) {
    EXPECT_THAT(errors_of("threads: 1.0\nmax_dynamic_upstreams: 1e3\n"
                          "defaults: {retry: {jitter: .nan, exponential_base: inf}}\n"),
                ElementsAre("test.yaml:1:10: threads: expected an integer, got '1.0'",
                            "test.yaml:2:24: max_dynamic_upstreams: expected an integer, got "
                            "'1e3'",
                            "test.yaml:3:28: defaults.retry.jitter: expected a number, got '.nan'",
                            "test.yaml:3:52: defaults.retry.exponential_base: expected a number, "
                            "got 'inf'"));
}

TEST(Types, ConfigMustBeAMapping) {
    EXPECT_THAT(errors_of("- a\n- b\n"),
                ElementsAre("test.yaml:1:1: the configuration must be a mapping of keys, got a "
                            "sequence"));
    EXPECT_THAT(errors_of("just text\n"),
                ElementsAre("test.yaml:1:1: the configuration must be a mapping of keys, got a "
                            "scalar"));
}

TEST(Types, NonStringKeysAreErrors) {
    EXPECT_THAT(errors_of("? [a, b]\n: 1\n"),
                ElementsAre("test.yaml:1:3: keys must be strings, got a sequence"));
}

// --- bounds ----------------------------------------------------------------------------------

TEST(Bounds, RequestsPerMinute) {
    EXPECT_THAT(errors_of("defaults:\n  rate_limit: {requests_per_minute: 0}\n"),
                ElementsAre("test.yaml:2:37: defaults.rate_limit.requests_per_minute: must be "
                            "greater than 0 and at most 1e9, got '0'"));
    EXPECT_THAT(errors_of("defaults:\n  rate_limit: {requests_per_minute: -5}\n"),
                ElementsAre("test.yaml:2:37: defaults.rate_limit.requests_per_minute: must be "
                            "greater than 0 and at most 1e9, got '-5'"));
    EXPECT_THAT(errors_of("defaults:\n  rate_limit: {requests_per_minute: 1000000001}\n"),
                ElementsAre("test.yaml:2:37: defaults.rate_limit.requests_per_minute: must be "
                            "greater than 0 and at most 1e9, got '1000000001'"));
    EXPECT_EQ(load_ok("defaults: {rate_limit: {requests_per_minute: 1e9}}")
                  .defaults.rate_limit.requests_per_minute,
              1e9);
}

TEST(Bounds, BurstSize) {
    EXPECT_THAT(errors_of("defaults: {rate_limit: {burst_size: 0}}\n"),
                ElementsAre("test.yaml:1:37: defaults.rate_limit.burst_size: must be at least 1, "
                            "got '0'"));
    EXPECT_THAT(errors_of("defaults: {rate_limit: {burst_size: -1}}\n"),
                ElementsAre("test.yaml:1:37: defaults.rate_limit.burst_size: must be at least 1, "
                            "got '-1'"));
    EXPECT_THAT(errors_of("defaults: {rate_limit: {burst_size: 4294967296}}\n"),
                ElementsAre("test.yaml:1:37: defaults.rate_limit.burst_size: must be between 1 "
                            "and 4294967295, got '4294967296'"));
}

TEST(Bounds, MaxRetries) {
    EXPECT_THAT(errors_of("defaults: {retry: {max_retries: 101}}\n"),
                ElementsAre("test.yaml:1:33: defaults.retry.max_retries: must be between 0 and "
                            "100, got '101'"));
    EXPECT_EQ(load_ok("defaults: {retry: {max_retries: 0}}").defaults.retry.max_retries, 0u);
}

TEST(Bounds, Jitter) {
    EXPECT_THAT(errors_of("defaults: {retry: {jitter: 1.01}}\n"),
                ElementsAre("test.yaml:1:28: defaults.retry.jitter: must be between 0 and 1, got "
                            "'1.01'"));
    EXPECT_THAT(errors_of("defaults: {retry: {jitter: -0.1}}\n"),
                ElementsAre("test.yaml:1:28: defaults.retry.jitter: must be between 0 and 1, got "
                            "'-0.1'"));
    EXPECT_EQ(load_ok("defaults: {retry: {jitter: 1}}").defaults.retry.jitter, 1.0);
}

TEST(Bounds, ExponentialBase) {
    EXPECT_THAT(errors_of("defaults: {retry: {exponential_base: 0.99}}\n"),
                ElementsAre("test.yaml:1:38: defaults.retry.exponential_base: must be at least 1, "
                            "got '0.99'"));
}

TEST(Bounds, FailureThresholdAndHalfOpenMaxRequests) {
    EXPECT_THAT(errors_of("defaults:\n"
                          "  circuit_breaker:\n"
                          "    failure_threshold: 0\n"
                          "    half_open_max_requests: 0\n"),
                ElementsAre("test.yaml:3:24: defaults.circuit_breaker.failure_threshold: must be "
                            "at least 1, got '0'",
                            "test.yaml:4:29: defaults.circuit_breaker.half_open_max_requests: "
                            "must be at least 1, got '0'"));
}

TEST(Bounds, RecoveryTimeoutIsPositive) {
    EXPECT_THAT(errors_of("defaults: {circuit_breaker: {recovery_timeout: 0s}}\n"),
                ElementsAre("test.yaml:1:48: defaults.circuit_breaker.recovery_timeout: must be "
                            "greater than 0"));
}

TEST(Bounds, PoolMaxConnectionsAndDurations) {
    EXPECT_THAT(
        errors_of("defaults:\n"
                  "  pool: {max_connections: 0, idle_timeout: 0, max_connection_age: 0ms}\n"),
        ElementsAre("test.yaml:2:27: defaults.pool.max_connections: must be at least 1, "
                    "got '0'",
                    "test.yaml:2:44: defaults.pool.idle_timeout: must be greater than 0",
                    "test.yaml:2:67: defaults.pool.max_connection_age: must be greater "
                    "than 0"));
}

TEST(Bounds, TimeoutsArePositive) {
    EXPECT_THAT(errors_of("defaults:\n  timeouts: {connect: 0, request: 0s, total: 0.0h}\n"),
                ElementsAre("test.yaml:2:23: defaults.timeouts.connect: must be greater than 0",
                            "test.yaml:2:35: defaults.timeouts.request: must be greater than 0",
                            "test.yaml:2:46: defaults.timeouts.total: must be greater than 0"));
}

TEST(Bounds, DurationsNeedAUnitAndHaveAMaximum) {
    EXPECT_THAT(errors_of("drain_timeout: 15\n"
                          "defaults: {queue: {max_wait: -1s}, timeouts: {total: 8761h}}\n"),
                ElementsAre("test.yaml:1:16: drain_timeout: expected a duration with a unit "
                            "(250ms, 1.5s, 2m, 1h), got '15'",
                            "test.yaml:2:30: defaults.queue.max_wait: expected a duration with a "
                            "unit (250ms, 1.5s, 2m, 1h), got '-1s'",
                            "test.yaml:2:54: defaults.timeouts.total: must be at most 8760h, got "
                            "'8761h'"));
    EXPECT_EQ(load_ok("drain_timeout: 0").drain_timeout, 0ms);
}

TEST(Bounds, InitialDelayNotAboveMaxDelayInDefaults) {
    EXPECT_THAT(errors_of("defaults:\n  retry: {initial_delay: 2s, max_delay: 1s}\n"),
                ElementsAre("test.yaml:2:26: defaults.retry.initial_delay: initial_delay (2s) "
                            "must not be greater than max_delay (1s)"));
    EXPECT_THAT(errors_of("defaults:\n  retry: {max_delay: 500ms}\n"),
                ElementsAre("test.yaml:2:22: defaults.retry.max_delay: initial_delay (1s) must "
                            "not be greater than max_delay (500ms)"));
    EXPECT_EQ(load_ok("defaults: {retry: {initial_delay: 5s, max_delay: 5s}}")
                  .defaults.retry.initial_delay,
              5s);
}

TEST(Bounds, InitialDelayNotAboveMaxDelayAfterTheMerge) {
    // The upstream sets only max_delay; the violation needs the inherited initial_delay.
    EXPECT_THAT(errors_of("defaults: {retry: {initial_delay: 2s}}\n" +
                          one_upstream("    retry: {max_delay: 1s}\n")),
                ElementsAre("test.yaml:6:24: upstreams[0].retry.max_delay: initial_delay (2s) "
                            "must not be greater than max_delay (1s)"));
}

TEST(Bounds, InheritedDelayViolationIsReportedOnceWhereItWasWritten) {
    EXPECT_THAT(errors_of("defaults: {retry: {initial_delay: 2s, max_delay: 1s}}\n" +
                          one_upstream("    retry: {jitter: 0.5}\n")),
                ElementsAre("test.yaml:1:35: defaults.retry.initial_delay: initial_delay (2s) "
                            "must not be greater than max_delay (1s)"));
}

TEST(Bounds, MalformedDelayIsNotAlsoReportedAsOutOfOrder) {
    EXPECT_THAT(errors_of("defaults: {retry: {initial_delay: 1x, max_delay: 500ms}}\n"),
                ElementsAre("test.yaml:1:35: defaults.retry.initial_delay: expected a duration "
                            "with a unit (250ms, 1.5s, 2m, 1h), got '1x'"));
}

TEST(Bounds, TlsMinVersion) {
    EXPECT_THAT(errors_of("defaults: {tls: {min_version: 1.1}}\n"),
                ElementsAre("test.yaml:1:31: defaults.tls.min_version: expected 1.2 or 1.3, got "
                            "'1.1'"));
}

TEST(Bounds, TlsCertAndKeyBothOrNeither) {
    EXPECT_THAT(errors_of("defaults: {tls: {cert_file: /c.pem}}\n"),
                ElementsAre("test.yaml:1:29: defaults.tls.cert_file: cert_file is set but "
                            "key_file is empty: set both for mTLS, or neither"));
    EXPECT_THAT(errors_of(one_upstream("    tls: {key_file: /k.pem}\n")),
                ElementsAre("test.yaml:5:21: upstreams[0].tls.key_file: key_file is set but "
                            "cert_file is empty: set both for mTLS, or neither"));
    // Clearing one half of an inherited pair breaks it too.
    EXPECT_THAT(errors_of("defaults: {tls: {cert_file: /c.pem, key_file: /k.pem}}\n" +
                          one_upstream("    tls: {key_file: \"\"}\n")),
                ElementsAre("test.yaml:6:21: upstreams[0].tls.key_file: cert_file is set but "
                            "key_file is empty: set both for mTLS, or neither"));
}

TEST(Bounds, StatusLists) {
    EXPECT_THAT(errors_of(R"(defaults:
  retry: {retry_on_status: [99, 600, 6xx, "abc", 5xx, 429, [500]]}
  circuit_breaker: {failure_status: 5xx}
)"),
                ElementsAre("test.yaml:2:29: defaults.retry.retry_on_status[0]: expected a status "
                            "code between 100 and 599 or a class 1xx-5xx, got '99'",
                            "test.yaml:2:33: defaults.retry.retry_on_status[1]: expected a status "
                            "code between 100 and 599 or a class 1xx-5xx, got '600'",
                            "test.yaml:2:38: defaults.retry.retry_on_status[2]: expected a status "
                            "code between 100 and 599 or a class 1xx-5xx, got '6xx'",
                            "test.yaml:2:43: defaults.retry.retry_on_status[3]: expected a status "
                            "code between 100 and 599 or a class 1xx-5xx, got 'abc'",
                            "test.yaml:2:60: defaults.retry.retry_on_status[6]: expected a status "
                            "code, got a sequence",
                            "test.yaml:3:37: defaults.circuit_breaker.failure_status: expected a "
                            "sequence, got a scalar"));
    const config c = load_ok("defaults: {retry: {retry_on_status: [1xx, \"2XX\", 599, 100]}}");
    status_set expected;
    expected.add_class(1);
    expected.add_class(2);
    expected.codes.set(599);
    EXPECT_EQ(c.defaults.retry.retry_on_status, expected);
}

TEST(Bounds, Threads) {
    EXPECT_THAT(errors_of("threads: 1025\n"),
                ElementsAre("test.yaml:1:10: threads: must be between 0 and 1024, got '1025'"));
    EXPECT_THAT(errors_of("threads: -1\n"),
                ElementsAre("test.yaml:1:10: threads: must be between 0 and 1024, got '-1'"));
    EXPECT_EQ(load_ok("threads: 1024").threads, 1024u);
}

TEST(Bounds, MaxHeaderBytes) {
    EXPECT_THAT(errors_of("limits:\n  max_header_bytes: 1023\n"),
                ElementsAre("test.yaml:2:21: limits.max_header_bytes: must be at least 1KiB, got "
                            "'1023'"));
    EXPECT_THAT(errors_of("limits:\n  max_header_bytes: 65537\n"),
                ElementsAre("test.yaml:2:21: limits.max_header_bytes: must be at most 64KiB, got "
                            "'65537'"));
    EXPECT_THAT(errors_of("limits:\n  max_header_bytes: 64kb\n"),
                ElementsAre("test.yaml:2:21: limits.max_header_bytes: expected a size in bytes "
                            "(512, 64KiB, 10MiB, 1GB), got '64kb'"));
    EXPECT_EQ(load_ok("limits: {max_header_bytes: 1KiB}").limits.max_header_bytes, 1024u);
}

TEST(Bounds, SizesRejectNegativesAndOverflow) {
    EXPECT_THAT(errors_of("limits: {max_request_body: -1}\n"
                          "defaults: {retry: {buffer_limit: 16777216TiB}}\n"),
                ElementsAre("test.yaml:1:28: limits.max_request_body: expected a size in bytes "
                            "(512, 64KiB, 10MiB, 1GB), got '-1'",
                            "test.yaml:2:34: defaults.retry.buffer_limit: expected a size in "
                            "bytes (512, 64KiB, 10MiB, 1GB), got '16777216TiB'"));
}

TEST(Bounds, OtherLowerBounds) {
    EXPECT_THAT(errors_of("max_dynamic_upstreams: 0\n"
                          "limits:\n"
                          "  max_client_connections: 0\n"
                          "  header_read_timeout: 0s\n"
                          "  client_idle_timeout: 0s\n"),
                ElementsAre("test.yaml:1:24: max_dynamic_upstreams: must be at least 1, got '0'",
                            "test.yaml:3:27: limits.max_client_connections: must be at least 1, "
                            "got '0'",
                            "test.yaml:4:24: limits.header_read_timeout: must be greater than 0",
                            "test.yaml:5:24: limits.client_idle_timeout: must be greater than 0"));
}

TEST(Bounds, ConnectPorts) {
    EXPECT_THAT(errors_of("connect_ports: [443, 0, 65536, https]\n"),
                ElementsAre("test.yaml:1:22: connect_ports[1]: must be between 1 and 65535, got "
                            "'0'",
                            "test.yaml:1:25: connect_ports[2]: must be between 1 and 65535, got "
                            "'65536'",
                            "test.yaml:1:32: connect_ports[3]: expected an integer, got 'https'"));
    EXPECT_EQ(load_ok("connect_ports: [65535, 1]").connect_ports,
              (std::vector<std::uint16_t>{65535, 1}));
}

TEST(Bounds, Enumerations) {
    EXPECT_THAT(errors_of("unknown_hosts: allow\nlog: {level: verbose, format: yaml}\n"),
                ElementsAre("test.yaml:1:16: unknown_hosts: expected reject or passthrough, got "
                            "'allow'",
                            "test.yaml:2:14: log.level: expected trace, debug, info, warn, error, "
                            "critical or off, got 'verbose'",
                            "test.yaml:2:31: log.format: expected text or json, got 'yaml'"));
}

TEST(Bounds, ViaIdIsAToken) {
    EXPECT_THAT(errors_of("via_id: \"a b\"\n"),
                ElementsAre("test.yaml:1:9: via_id: must be empty or match [A-Za-z0-9._-]+, got "
                            "'a b'"));
    EXPECT_THAT(errors_of("via_id: sluice/1\n"),
                ElementsAre("test.yaml:1:9: via_id: must be empty or match [A-Za-z0-9._-]+, got "
                            "'sluice/1'"));
    EXPECT_EQ(load_ok("via_id: \"\"").via_id, "");
}

TEST(Bounds, RedactHeadersAreHeaderNames) {
    EXPECT_THAT(errors_of("log: {redact_headers: [ok, \"bad name\", {a: b}]}\n"),
                ElementsAre("test.yaml:1:28: log.redact_headers[1]: expected a header name, got "
                            "'bad name'",
                            "test.yaml:1:40: log.redact_headers[2]: expected a string, got a "
                            "mapping"));
}

TEST(Bounds, AccessLogFlushIntervalIsAtMostAMinute) {
    EXPECT_EQ(config{}.log.access_log_flush_interval, 1s);
    EXPECT_EQ(load_ok("log: {access_log_flush_interval: 0s}").log.access_log_flush_interval, 0s);
    EXPECT_EQ(load_ok("log: {access_log_flush_interval: 1m}").log.access_log_flush_interval, 60s);
    EXPECT_THAT(errors_of("log: {access_log_flush_interval: 61s}\n"),
                ElementsAre("test.yaml:1:34: log.access_log_flush_interval: must be at most 1m, "
                            "got '61s'"));
    EXPECT_THAT(errors_of("log: {access_log_flush_interval: soon}\n"),
                ElementsAre("test.yaml:1:34: log.access_log_flush_interval: expected a duration "
                            "with a unit (250ms, 1.5s, 2m, 1h), got 'soon'"));
}

// --- listen addresses ------------------------------------------------------------------------

TEST(Listen, AcceptedForms) {
    EXPECT_EQ(load_ok("listen: 0.0.0.0:3128").listen, (endpoint{"0.0.0.0", 3128}));
    EXPECT_EQ(load_ok("listen: \"[::]:3128\"").listen, (endpoint{"::", 3128}));
    EXPECT_EQ(load_ok("listen: \"[0:0::1]:65535\"").listen, (endpoint{"::1", 65535}));
    EXPECT_EQ(load_ok("listen: 10.1.2.3:0").listen, (endpoint{"10.1.2.3", 0}));
}

TEST(Listen, RejectedForms) {
    EXPECT_THAT(
        errors_of(R"(listen: example.com:80
admin_listen: 127.0.0.1
)"),
        ElementsAre(
            "test.yaml:1:9: listen: host must be an IP address or localhost (use 0.0.0.0 for every "
            "interface), got 'example.com'",
            "test.yaml:2:15: admin_listen: expected IP:port or [IPv6]:port, as in 127.0.0.1:3128 "
            "or [::1]:3128"));
    const std::pair<std::string, std::string> cases[] = {
        {"\"::1:3128\"", "an IPv6 address must be in brackets, as in [2001:db8::1]:443"},
        {"\"[::1\"", "missing ']' after the IPv6 address"},
        {"\"[::1]3128\"", "expected ':port' after ']'"},
        {"\"[::1]\"", "expected IP:port or [IPv6]:port, as in 127.0.0.1:3128 or [::1]:3128"},
        {"\"[1.2.3.4]:80\"", "invalid IPv6 address '1.2.3.4'"},
        {"127.0.0.1:65536", "port must be a number between 0 and 65535, got '65536'"},
        {"\"127.0.0.1:\"", "port must be a number between 0 and 65535, got ''"},
        {"127.0.0.1:http", "port must be a number between 0 and 65535, got 'http'"},
        {"127.0.0.01:80",
         "host must be an IP address or localhost (use 0.0.0.0 for every interface), got "
         "'127.0.0.01'"},
        {"\":3128\"",
         "host must be an IP address or localhost (use 0.0.0.0 for every interface), got ''"},
    };
    for (const auto& [value, reason] : cases) {
        EXPECT_THAT(errors_of("listen: " + value + "\n"),
                    ElementsAre("test.yaml:1:9: listen: " + reason))
            << value;
    }
}

TEST(Listen, AdminMustDifferFromListen) {
    EXPECT_THAT(errors_of("listen: 127.0.0.1:9464\n"),
                ElementsAre("test.yaml:1:9: listen: listen and admin_listen are both "
                            "127.0.0.1:9464"));
    EXPECT_THAT(errors_of("listen: \"[::1]:80\"\nadmin_listen: \"[::1]:80\"\n"),
                ElementsAre("test.yaml:2:15: admin_listen: listen and admin_listen are both "
                            "[::1]:80"));
    // Two ephemeral ports are two different ports.
    EXPECT_EQ(load_ok("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0").listen.port, 0);
}

TEST(AllowCidrs, RejectedForms) {
    EXPECT_THAT(errors_of("allow_cidrs: [10.1.2.0/16, 10.0.0.0/33, \"fd00::/129\", bogus, "
                          "\"10.0.0.0/\", 10.0.0.0/x]\n"),
                ElementsAre("test.yaml:1:15: allow_cidrs[0]: host bits are set; the network is "
                            "10.1.0.0/16",
                            "test.yaml:1:28: allow_cidrs[1]: prefix length must be between 0 and "
                            "32, got '33'",
                            "test.yaml:1:41: allow_cidrs[2]: prefix length must be between 0 and "
                            "128, got '129'",
                            "test.yaml:1:55: allow_cidrs[3]: invalid IP address 'bogus' (expected "
                            "e.g. 10.0.0.0/8 or fd00::/8)",
                            "test.yaml:1:62: allow_cidrs[4]: prefix length must be between 0 and "
                            "32, got ''",
                            "test.yaml:1:75: allow_cidrs[5]: prefix length must be between 0 and "
                            "32, got 'x'"));
}

TEST(AllowCidrs, Ipv6IsNormalised) {
    const config c = load_ok("allow_cidrs: [\"FD00:0:0::/16\", \"::/0\", 0.0.0.0/0]");
    ASSERT_EQ(c.allow_cidrs.size(), 3u);
    EXPECT_EQ(c.allow_cidrs[0].text, "fd00::/16");
    EXPECT_EQ(c.allow_cidrs[1].text, "::/0");
    EXPECT_EQ(c.allow_cidrs[2].text, "0.0.0.0/0");
    EXPECT_EQ(c.allow_cidrs[2].prefix, 0u);
}

// --- upstream errors -------------------------------------------------------------------------

TEST(UpstreamErrors, MissingRequiredKeys) {
    EXPECT_THAT(errors_of(R"(upstreams:
  - name: a
  - hosts: [b.example]
    set_headers: {}
  - {}
)"),
                ElementsAre("test.yaml:2:5: upstreams[0].hosts: missing required key",
                            "test.yaml:2:5: upstreams[0].origin: missing required key",
                            "test.yaml:3:5: upstreams[1].name: missing required key",
                            "test.yaml:3:5: upstreams[1].origin: missing required key",
                            "test.yaml:5:5: upstreams[2].name: missing required key",
                            "test.yaml:5:5: upstreams[2].hosts: missing required key",
                            "test.yaml:5:5: upstreams[2].origin: missing required key"));
}

TEST(UpstreamErrors, EntryMustBeAMapping) {
    EXPECT_THAT(errors_of("upstreams:\n  - api\n  -\n"),
                ElementsAre("test.yaml:2:5: upstreams[0]: expected a mapping with name, hosts and "
                            "origin, got a scalar",
                            "test.yaml:3:3: upstreams[1]: expected a mapping with name, hosts and "
                            "origin, got an empty value"));
}

TEST(UpstreamErrors, DuplicateNames) {
    EXPECT_THAT(errors_of(R"(upstreams:
  - {name: api, hosts: [a.example], origin: "https://a.example"}
  - {name: api, hosts: [b.example], origin: "https://b.example"}
)"),
                ElementsAre("test.yaml:3:12: upstreams[1].name: duplicate upstream name 'api' "
                            "(first at line 2)"));
}

TEST(UpstreamErrors, ReservedAndMalformedNames) {
    EXPECT_THAT(errors_of(R"(upstreams:
  - {name: passthrough, hosts: [a.example], origin: "https://a.example"}
  - {name: unrouted, hosts: [b.example], origin: "https://b.example"}
  - {name: API, hosts: [c.example], origin: "https://c.example"}
  - {name: "", hosts: [d.example], origin: "https://d.example"}
  - {name: [x], hosts: [e.example], origin: "https://e.example"}
)"),
                ElementsAre("test.yaml:2:12: upstreams[0].name: 'passthrough' is reserved",
                            "test.yaml:3:12: upstreams[1].name: 'unrouted' is reserved",
                            "test.yaml:4:12: upstreams[2].name: must match [a-z0-9_.-]+, got 'API'",
                            "test.yaml:5:12: upstreams[3].name: must match [a-z0-9_.-]+, got ''",
                            "test.yaml:6:12: upstreams[4].name: expected a string, got a "
                            "sequence"));
}

TEST(UpstreamErrors, BadOrigins) {
    const std::pair<std::string, std::string> cases[] = {
        {"ftp://api.example.com", "scheme must be http or https, got 'ftp'"},
        {"api.example.com", "expected http://host[:port] or https://host[:port]"},
        {"https://api.example.com/v1",
         "an origin has no path (requests keep their own path): expected scheme://host[:port]"},
        {"https://api.example.com//",
         "an origin has no path (requests keep their own path): expected scheme://host[:port]"},
        {"https://user:pw@api.example.com",
         "an origin has no user:password@ part; send credentials with set_headers"},
        {"https://api.example.com?x=1", "an origin has no query"},
        {"https://api.example.com/#top", "an origin has no fragment"},
        {"https://", "missing host"},
        {"https://:443", "missing host"},
        {"https:///", "missing host"},
        {"https://api.example.com:0", "port must be a number between 1 and 65535, got '0'"},
        {"https://api.example.com:70000", "port must be a number between 1 and 65535, got '70000'"},
        {"https://api.example.com:", "port must be a number between 1 and 65535, got ''"},
        {"https://*.example.com", "invalid host name '*.example.com'"},
        {"https://bad_host!", "invalid host name 'bad_host!'"},
        {"https://a..b", "invalid host name 'a..b'"},
        {"https://2001:db8::1", "an IPv6 address must be in brackets, as in [2001:db8::1]:443"},
        {"https://[zz::1]", "invalid IPv6 address 'zz::1'"},
    };
    for (const auto& [origin_text, reason] : cases) {
        EXPECT_THAT(errors_of("upstreams:\n  - name: a\n    hosts: [a.example]\n    origin: \"" +
                              origin_text + "\"\n"),
                    ElementsAre("test.yaml:4:13: upstreams[0].origin: " + reason))
            << origin_text;
    }
    EXPECT_THAT(errors_of("upstreams: [{name: a, hosts: [a.example], origin: {host: a}}]\n"),
                ElementsAre("test.yaml:1:51: upstreams[0].origin: expected an origin URL, got a "
                            "mapping"));
}

TEST(UpstreamErrors, BadHostPatterns) {
    const std::pair<std::string, std::string> cases[] = {
        {"*", "a bare * would match every host: use unknown_hosts: passthrough instead"},
        {"*:443", "a bare * would match every host: use unknown_hosts: passthrough instead"},
        {"api.*.com", "a wildcard must be the whole first label, as in *.example.com"},
        {"*example.com", "a wildcard must be the whole first label, as in *.example.com"},
        {"*.*.example.com", "a wildcard must be the whole first label, as in *.example.com"},
        {"a*.example.com", "a wildcard must be the whole first label, as in *.example.com"},
        {"*.", "invalid host name '*.'"},
        {"", "invalid host name ''"},
        {"api..example.com", "invalid host name 'api..example.com'"},
        {"api.example.com.", "invalid host name 'api.example.com.'"},
        {"api example.com", "invalid host name 'api example.com'"},
        {"2001:db8::1", "an IPv6 address must be in brackets, as in [2001:db8::1]:443"},
        {"[2001:db8::1", "missing ']' after the IPv6 address"},
        {"[not-v6]", "invalid IPv6 address 'not-v6'"},
        {"https://api.example.com",
         "expected host[:port] (api.example.com, *.example.com, [2001:db8::1]:8443), not a URL"},
        {"api.example.com/v1",
         "expected host[:port] (api.example.com, *.example.com, [2001:db8::1]:8443), not a URL"},
        {"api.example.com:0", "port must be a number between 1 and 65535, got '0'"},
        {"api.example.com:99999", "port must be a number between 1 and 65535, got '99999'"},
        {"api.example.com:", "port must be a number between 1 and 65535, got ''"},
    };
    for (const auto& [host, reason] : cases) {
        EXPECT_THAT(errors_of("upstreams:\n  - name: a\n    origin: https://a.example\n"
                              "    hosts:\n      - \"" +
                              host + "\"\n"),
                    ElementsAre("test.yaml:5:9: upstreams[0].hosts[0]: " + reason))
            << host;
    }
}

TEST(UpstreamErrors, HostsMustBeANonEmptyList) {
    EXPECT_THAT(errors_of(R"(upstreams:
  - {name: a, hosts: [], origin: "https://a.example"}
  - {name: b, hosts: b.example, origin: "https://b.example"}
  - name: c
    hosts:
    origin: https://c.example
)"),
                ElementsAre("test.yaml:2:22: upstreams[0].hosts: must list at least one host",
                            "test.yaml:3:22: upstreams[1].hosts: expected a sequence, got a "
                            "scalar",
                            "test.yaml:5:5: upstreams[2].hosts: must list at least one host"));
}

TEST(UpstreamErrors, SameHostInTwoUpstreams) {
    EXPECT_THAT(errors_of(R"(upstreams:
  - name: a
    hosts: [api.example.com, "*.example.com", "[::1]:8080"]
    origin: https://a.example
  - name: b
    hosts: [API.example.com, "*.EXAMPLE.com", "[0::1]:8080", "api.example.com:443"]
    origin: https://b.example
  - hosts: [api.example.com]
    origin: https://c.example
)"),
                ElementsAre("test.yaml:6:13: upstreams[1].hosts[0]: host api.example.com is "
                            "already routed to upstream 'a' (line 3)",
                            "test.yaml:6:30: upstreams[1].hosts[1]: host *.example.com is already "
                            "routed to upstream 'a' (line 3)",
                            "test.yaml:6:47: upstreams[1].hosts[2]: host [::1]:8080 is already "
                            "routed to upstream 'a' (line 3)",
                            "test.yaml:8:5: upstreams[2].name: missing required key",
                            "test.yaml:8:13: upstreams[2].hosts[0]: host api.example.com is "
                            "already routed to upstream 'a' (line 3)"));
}

TEST(UpstreamErrors, SameHostTwiceInOneUpstream) {
    EXPECT_THAT(errors_of("upstreams:\n"
                          "  - {name: a, hosts: [a.example, a.example], origin: "
                          "\"https://a.example\"}\n"),
                ElementsAre("test.yaml:2:34: upstreams[0].hosts[1]: host a.example is already "
                            "routed to upstream 'a' (line 2)"));
}

TEST(UpstreamErrors, SetHeaders) {
    EXPECT_THAT(errors_of(one_upstream(R"(    set_headers:
      Bad Header: x
      Host: other.example
      content-length: "5"
      X-A: a
      x-a: b
      X-Map: {a: b}
      X-Empty:
      X-Ok: ""
)")),
                ElementsAre("test.yaml:6:7: upstreams[0].set_headers.Bad Header: invalid header "
                            "name 'Bad Header'",
                            "test.yaml:7:7: upstreams[0].set_headers.Host: sluice manages the Host "
                            "header itself",
                            "test.yaml:8:7: upstreams[0].set_headers.content-length: sluice "
                            "manages the content-length header itself",
                            "test.yaml:10:7: upstreams[0].set_headers.x-a: header 'x-a' is set "
                            "twice",
                            "test.yaml:11:14: upstreams[0].set_headers.X-Map: expected a string, "
                            "got a mapping",
                            "test.yaml:12:7: upstreams[0].set_headers.X-Empty: expected a string, "
                            "got an empty value"));
}

TEST(UpstreamErrors, SetHeaderValueFromAFileMustNotSplitTheRequest) {
    const temp_file secret("line1\r\nInjected: yes\n");
    EXPECT_THAT(
        errors_of(one_upstream("    set_headers: {X-Key: \"${file:" + secret.path() + "}\"}\n")),
        ElementsAre("test.yaml:5:26: upstreams[0].set_headers.X-Key: header value "
                    "contains a control character (CR, LF, NUL, ...)"));
}

TEST(UpstreamErrors, UpstreamSectionsAreValidatedLikeDefaults) {
    EXPECT_THAT(errors_of(one_upstream(R"(    rate_limit: {burst_size: 0}
    queue: {max_wait: soon}
    retry: {jitter: 2}
    circuit_breaker: {failure_threshold: 0}
    timeouts: {total: 0s}
    pool: {max_connections: 0}
    tls: {min_version: "1.0"}
)")),
                ElementsAre("test.yaml:5:30: upstreams[0].rate_limit.burst_size: must be at least "
                            "1, got '0'",
                            "test.yaml:6:23: upstreams[0].queue.max_wait: expected a duration "
                            "with a unit (250ms, 1.5s, 2m, 1h), got 'soon'",
                            "test.yaml:7:21: upstreams[0].retry.jitter: must be between 0 and 1, "
                            "got '2'",
                            "test.yaml:8:42: upstreams[0].circuit_breaker.failure_threshold: must "
                            "be at least 1, got '0'",
                            "test.yaml:9:23: upstreams[0].timeouts.total: must be greater than 0",
                            "test.yaml:10:29: upstreams[0].pool.max_connections: must be at least "
                            "1, got '0'",
                            "test.yaml:11:24: upstreams[0].tls.min_version: expected 1.2 or 1.3, "
                            "got '1.0'"));
}

TEST(UpstreamErrors, ABadValueDoesNotHideTheOthers) {
    // Errors in the defaults and in an upstream are all reported together.
    EXPECT_THAT(errors_of("defaults: {rate_limit: {burst_size: 0}}\n" +
                          one_upstream("    rate_limit: {burst_size: 0}\n")),
                ElementsAre("test.yaml:1:37: defaults.rate_limit.burst_size: must be at least 1, "
                            "got '0'",
                            "test.yaml:6:30: upstreams[0].rate_limit.burst_size: must be at least "
                            "1, got '0'"));
}

}  // namespace
}  // namespace sluice::config
