// Routing: exact before wildcard, ports, case, passthrough LRU (DESIGN §3.2).
#include "upstream/router.hpp"

#include <gtest/gtest.h>

namespace sluice::upstream {
namespace {

config::host_pattern exact(std::string host, std::optional<std::uint16_t> port = {}) {
    return {std::move(host), false, port};
}
config::host_pattern wildcard(std::string suffix, std::optional<std::uint16_t> port = {}) {
    return {std::move(suffix), true, port};
}

config::upstream make_upstream(std::string name, std::vector<config::host_pattern> hosts,
                               std::string origin_host) {
    config::upstream u;
    u.name = std::move(name);
    u.hosts = std::move(hosts);
    u.origin = {"http", std::move(origin_host), 80};
    return u;
}

std::string routed(router& r, std::string_view host, std::uint16_t port = 80) {
    auto b = r.route("http", host, port);
    return b ? b->name : "<none>";
}

class RouterTest : public ::testing::Test {
  protected:
    std::unique_ptr<router> build(
        config::unknown_hosts_mode mode = config::unknown_hosts_mode::reject,
        std::uint32_t max_dynamic = 1024) {
        cfg.unknown_hosts = mode;
        cfg.max_dynamic_upstreams = max_dynamic;
        std::vector<std::string> errors;
        auto r = router::create(cfg, errors);
        EXPECT_TRUE(errors.empty());
        return r;
    }
    config::config cfg;
};

TEST_F(RouterTest, ExactBeforeWildcardAndLongestSuffix) {
    cfg.upstreams = {make_upstream("wide", {wildcard(".example.com")}, "wide"),
                     make_upstream("narrow", {wildcard(".eu.example.com")}, "narrow"),
                     make_upstream("api", {exact("api.eu.example.com")}, "api")};
    auto r = build();
    EXPECT_EQ(routed(*r, "api.eu.example.com"), "api");
    EXPECT_EQ(routed(*r, "x.eu.example.com"), "narrow");
    EXPECT_EQ(routed(*r, "a.b.example.com"), "wide");
    EXPECT_EQ(routed(*r, "example.com"), "<none>");  // a wildcard needs one more label
    EXPECT_EQ(routed(*r, "badexample.com"), "<none>");
}

TEST_F(RouterTest, PortsRestrictOnlyWhenGiven) {
    cfg.upstreams = {make_upstream("any", {exact("api.example.com")}, "any"),
                     make_upstream("alt", {exact("api.example.com", 8443)}, "alt")};
    auto r = build();
    EXPECT_EQ(routed(*r, "api.example.com", 80), "any");
    EXPECT_EQ(routed(*r, "api.example.com", 443), "any");
    EXPECT_EQ(routed(*r, "api.example.com", 8443), "alt");
}

TEST_F(RouterTest, Ipv6Hosts) {
    cfg.upstreams = {make_upstream("v6", {exact("2001:db8::1")}, "v6")};
    auto r = build();
    EXPECT_EQ(routed(*r, "2001:db8::1"), "v6");
    EXPECT_EQ(routed(*r, "2001:db8::2"), "<none>");
}

TEST_F(RouterTest, OriginIsFixedWhateverThePortAsked) {
    cfg.upstreams = {make_upstream("api", {exact("api.example.com")}, "origin.internal")};
    cfg.upstreams[0].origin = {"https", "origin.internal", 443};
    auto r = build();
    auto b = r->route("http", "api.example.com", 8080);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->origin.host, "origin.internal");
    EXPECT_EQ(b->origin.port, 443);
    EXPECT_TRUE(b->tls);
    EXPECT_EQ(b->label, "api");
}

// A configured upstream is lent (valid while the router lives, no reference count touched per
// request); a passthrough one is owned, so that eviction cannot free it under its request.
TEST_F(RouterTest, ConfiguredBundlesAreLentPassthroughOnesOwned) {
    cfg.upstreams = {make_upstream("api", {exact("api.example.com")}, "api")};
    auto r = build(config::unknown_hosts_mode::passthrough, 1);
    const auto owners = r->configured().front().use_count();
    auto configured = r->route("http", "api.example.com", 80);
    ASSERT_TRUE(configured);
    EXPECT_EQ(configured.get(), r->configured().front().get());
    EXPECT_EQ(configured.use_count(), 0);  // no control block shared
    EXPECT_EQ(r->configured().front().use_count(), owners);
    auto dynamic = r->route("http", "other.test", 80);
    ASSERT_TRUE(dynamic);
    EXPECT_GE(dynamic.use_count(), 2);   // the router's LRU and ours
    r->route("http", "third.test", 80);  // evicts other.test from the LRU of 1
    EXPECT_EQ(dynamic.use_count(), 1);   // ours alone: still valid
    EXPECT_EQ(dynamic->name, "other.test");
}

// Two upstreams on one origin keep their own pools (pool limits, connection gauges by label);
// the same upstream after a reload keeps its pool.
TEST_F(RouterTest, PoolKeysNameTheUpstream) {
    cfg.upstreams = {make_upstream("a", {exact("a.example.com")}, "origin.internal"),
                     make_upstream("b", {exact("b.example.com")}, "origin.internal")};
    auto r = build(config::unknown_hosts_mode::passthrough);
    const auto a = r->route("http", "a.example.com", 80)->pool_key;
    const auto b = r->route("http", "b.example.com", 80)->pool_key;
    EXPECT_NE(a, b);
    EXPECT_EQ(build()->route("http", "a.example.com", 80)->pool_key, a);  // a reload
    const auto dynamic = r->route("http", "origin.internal", 80)->pool_key;
    EXPECT_NE(dynamic, a);
    EXPECT_NE(dynamic, b);
}

TEST_F(RouterTest, PassthroughCreatesBoundedDynamicUpstreams) {
    cfg.defaults.rate_limit.burst_size = 7;
    auto r = build(config::unknown_hosts_mode::passthrough, 2);
    auto a = r->route("http", "a.test", 80);
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->dynamic);
    EXPECT_EQ(a->label, "passthrough");
    EXPECT_EQ(a->name, "a.test");
    EXPECT_EQ(a->origin.host, "a.test");
    EXPECT_EQ(a->policy.rate_limit.burst_size, 7u);
    EXPECT_EQ(r->route("http", "a.test", 80), a);  // same bundle while kept
    auto b = r->route("http", "b.test", 8080);
    EXPECT_EQ(b->name, "b.test:8080");
    EXPECT_EQ(r->dynamic_count(), 2u);
    r->route("http", "a.test", 80);  // a is now the most recent
    r->route("https", "c.test", 443);
    EXPECT_EQ(r->dynamic_count(), 2u);
    EXPECT_EQ(r->route("http", "a.test", 80), a);    // kept
    EXPECT_NE(r->route("http", "b.test", 8080), b);  // evicted, so built anew
}

TEST_F(RouterTest, RejectModeRoutesNothingUnknown) {
    auto r = build();
    EXPECT_EQ(r->route("http", "unknown.test", 80), nullptr);
    EXPECT_EQ(r->dynamic_count(), 0u);
}

}  // namespace
}  // namespace sluice::upstream
