// The per-thread shards of the per-request series (admin/metrics.hpp): what sync() folds into
// the prometheus-cpp series equals what prometheus-cpp would have counted itself.
#include "admin/metrics.hpp"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::admin {
namespace {

// The one series of `family` whose labels include every pair of `labels`.
const prometheus::ClientMetric* find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& family, const prometheus::Labels& labels) {
    for (const auto& f : families) {
        if (f.name != family)
            continue;
        for (const auto& m : f.metric) {
            std::size_t matched = 0;
            for (const auto& l : m.label) {
                auto it = labels.find(l.name);
                matched += it != labels.end() && it->second == l.value;
            }
            if (matched == labels.size())
                return &m;
        }
    }
    return nullptr;
}

double counter(registry& r, const std::string& family, const prometheus::Labels& labels) {
    r.sync();
    const auto families = r.prometheus().Collect();
    auto* m = find(families, family, labels);
    return m ? m->counter.value : -1;
}

TEST(MetricShards, HistogramBucketsAreThoseOfPrometheusCpp) {
    registry r("test");
    auto m = r.upstream("api");
    prometheus::Histogram reference(latency_buckets());
    // On the bounds, just past them, below the first, past the last, negative, infinite.
    std::vector<double> values{0,  0.001, 0.0010001, 0.0025, 0.7,  1,    10,  59.9,
                               60, 60.5,  1e9,       -1,     1e-9, 0.05, 0.1, 30};
    for (double v : values) {
        m->attempt(attempt_outcome::success, v);
        reference.Observe(v);
    }
    m->attempt(attempt_outcome::success, std::numeric_limits<double>::infinity());
    reference.Observe(std::numeric_limits<double>::infinity());
    r.sync();
    const auto families = r.prometheus().Collect();
    auto* got = find(families, "sluice_upstream_attempt_duration_seconds", {{"upstream", "api"}});
    ASSERT_NE(got, nullptr);
    const auto want = reference.Collect().histogram;
    EXPECT_EQ(got->histogram.sample_count, want.sample_count);
    EXPECT_EQ(got->histogram.sample_sum, want.sample_sum);
    ASSERT_EQ(got->histogram.bucket.size(), want.bucket.size());
    for (std::size_t i = 0; i < want.bucket.size(); ++i) {
        EXPECT_EQ(got->histogram.bucket[i].upper_bound, want.bucket[i].upper_bound) << i;
        EXPECT_EQ(got->histogram.bucket[i].cumulative_count, want.bucket[i].cumulative_count)
            << "bucket le=" << want.bucket[i].upper_bound;
    }
}

TEST(MetricShards, NaNLandsInTheInfBucket) {
    registry r("test");
    auto m = r.upstream("api");
    m->ratelimit_waited(std::nan(""));
    r.sync();
    const auto families = r.prometheus().Collect();
    auto* got = find(families, "sluice_ratelimit_wait_seconds", {{"upstream", "api"}});
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->histogram.sample_count, 1u);
    EXPECT_EQ(got->histogram.bucket.front().cumulative_count, 0u);  // le=0.001
    EXPECT_EQ(got->histogram.bucket.back().cumulative_count, 1u);   // le=+Inf
}

TEST(MetricShards, CountsFromManyThreadsAddUpOnceEach) {
    registry r("test");
    auto m = r.upstream("api");
    constexpr int threads = 4, per_thread = 20000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&m, t] {
            for (int i = 0; i < per_thread; ++i) {
                m->request(i % 4 == 0 ? "POST" : "GET", i % 4 == 0 ? 503 : 200, 0.002);
                m->attempt(i % 4 == 0 ? attempt_outcome::http_5xx : attempt_outcome::success,
                           0.002);
            }
            m->request("BREW", 418, 0.5);  // outside the standard methods: "other"
            m->connections_changed(t + 1, -t);
        });
        // Sync while the writers run: later syncs add only what is new.
        r.sync();
    }
    for (auto& t : pool)
        t.join();
    const double gets = threads * per_thread * 3 / 4, posts = threads * per_thread / 4;
    const prometheus::Labels get_200{{"upstream", "api"}, {"method", "GET"}, {"code", "200"}};
    EXPECT_EQ(counter(r, "sluice_requests_total", get_200), gets);
    EXPECT_EQ(counter(r, "sluice_requests_total", get_200), gets);  // a second sync adds nothing
    EXPECT_EQ(counter(r, "sluice_requests_total",
                      {{"upstream", "api"}, {"method", "POST"}, {"code", "503"}}),
              posts);
    EXPECT_EQ(counter(r, "sluice_requests_total",
                      {{"upstream", "api"}, {"method", "other"}, {"code", "418"}}),
              threads);
    EXPECT_EQ(
        counter(r, "sluice_upstream_attempts_total", {{"upstream", "api"}, {"outcome", "success"}}),
        gets);
    EXPECT_EQ(counter(r, "sluice_upstream_attempts_total",
                      {{"upstream", "api"}, {"outcome", "http_5xx"}}),
              posts);
    auto families = r.prometheus().Collect();
    auto* duration = find(families, "sluice_request_duration_seconds", {{"upstream", "api"}});
    ASSERT_NE(duration, nullptr);
    EXPECT_EQ(duration->histogram.sample_count, threads * (per_thread + 1u));
    EXPECT_NEAR(duration->histogram.sample_sum, threads * (per_thread * 0.002 + 0.5), 1e-6);
    auto* active =
        find(families, "sluice_upstream_connections", {{"upstream", "api"}, {"state", "active"}});
    auto* idle =
        find(families, "sluice_upstream_connections", {{"upstream", "api"}, {"state", "idle"}});
    ASSERT_NE(active, nullptr);
    ASSERT_NE(idle, nullptr);
    EXPECT_EQ(active->gauge.value, 1 + 2 + 3 + 4);
    EXPECT_EQ(idle->gauge.value, -(0 + 1 + 2 + 3));

    m->request("GET", 200, 0.002);  // this thread's own shard
    EXPECT_EQ(counter(r, "sluice_requests_total", get_200), gets + 1);
}

TEST(MetricShards, SerializeShowsWhatWasCountedUntilThen) {
    registry r("test");
    auto m = r.upstream("api");
    m->request("GET", 200, 0.002);
    const std::string text = r.serialize();
    EXPECT_NE(text.find("sluice_requests_total{code=\"200\",method=\"GET\",upstream=\"api\"} 1"),
              std::string::npos)
        << text;
}

// A thread remembers the shard it used last; an upstream_metrics made after another was freed
// (perhaps at the same address) gets shards of its own. ASan would see a stale shard written.
TEST(MetricShards, ANewRegistryNeverWritesAFreedShard) {
    for (int round = 0; round < 3; ++round) {
        registry r("test");
        auto m = r.upstream("api");
        m->attempt(attempt_outcome::timeout, 1);
        EXPECT_EQ(counter(r, "sluice_upstream_attempts_total",
                          {{"upstream", "api"}, {"outcome", "timeout"}}),
                  1)
            << "round " << round;
    }
}

}  // namespace
}  // namespace sluice::admin
