// Header rules: framing checks (shared case 8), hop-by-hop removal (case 13), Via, redaction.
#include "http/header_rules.hpp"

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

bhttp::fields fields(std::initializer_list<std::pair<std::string, std::string>> list) {
    bhttp::fields f;
    for (const auto& [k, v] : list)
        f.insert(k, v);
    return f;
}

std::vector<std::string> names(const bhttp::fields& f) {
    std::vector<std::string> out;
    for (const auto& field : f)
        out.emplace_back(field.name_string());
    return out;
}

unsigned framing_status(std::initializer_list<std::pair<std::string, std::string>> list,
                        unsigned version = 11) {
    auto r = check_request_framing(fields(list), version);
    return r ? r->status : 0;
}

TEST(Framing, SoundBodiesPass) {
    EXPECT_EQ(framing_status({}), 0u);
    EXPECT_EQ(framing_status({{"Content-Length", "5"}}), 0u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked"}}), 0u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "Chunked"}}), 0u);
    // RFC 9110 §5.6.1: empty list elements and OWS are part of the list syntax.
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked,"}}), 0u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked "}}), 0u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", ", chunked"}}), 0u);
    // The same length repeated is one length (RFC 9112 §6.3).
    EXPECT_EQ(framing_status({{"Content-Length", "5"}, {"Content-Length", "5"}}), 0u);
    EXPECT_EQ(framing_status({{"Content-Length", "5, 5"}}), 0u);
}

TEST(Framing, SmugglingShapesRejected) {
    EXPECT_EQ(framing_status({{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}), 400u);
    EXPECT_EQ(framing_status({{"Content-Length", "5"}, {"Content-Length", "40"}}), 400u);
    EXPECT_EQ(framing_status({{"Content-Length", "5, 40"}}), 400u);
    EXPECT_EQ(framing_status({{"Content-Length", "-1"}}), 400u);
    EXPECT_EQ(framing_status({{"Content-Length", "0x10"}}), 400u);
    EXPECT_EQ(framing_status({{"Content-Length", ""}}), 400u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked, gzip"}}), 400u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}),
              400u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", ""}}), 400u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked"}}, 10), 400u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "gzip"}}), 400u);
    // Underscore spellings some origins map onto the framing fields.
    EXPECT_EQ(framing_status({{"Transfer_Encoding", "chunked"}}), 400u);
    EXPECT_EQ(framing_status({{"content_length", "5"}}), 400u);
    EXPECT_EQ(framing_status({{"X_Trace", "1"}}), 0u);
}

TEST(Framing, OtherCodingsBeforeChunkedAreNotImplemented) {
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "gzip, chunked"}}), 501u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "foo, chunked"}}), 501u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "xchunked"}}), 501u);
    EXPECT_EQ(framing_status({{"Transfer-Encoding", "chunked, xfoo"}}), 501u);
}

TEST(HopByHop, RemovesFixedAndNominatedFields) {
    auto f = fields({{"Connection", ""},
                     {"Connection", "close, X-Trace"},
                     {"X-Trace", "s"},
                     {"Keep-Alive", "timeout=99"},
                     {"Proxy-Connection", "keep-alive"},
                     {"TE", "trailers, deflate"},
                     {"Upgrade", "h2c"},
                     {"Trailer", "X-T"},
                     {"Transfer-Encoding", "chunked"},
                     {"Proxy-Authorization", "Basic dGVzdDp0ZXN0"},
                     {"Accept", "*/*"},
                     {"X-Keep", "1"}});
    strip_hop_by_hop(f);
    EXPECT_EQ(names(f), (std::vector<std::string>{"Accept", "X-Keep"}));
}

// Names are erased while the Connection values naming them are read in place: a Connection
// that names itself, or names a field twice or in another case, must not pull its own value away.
TEST(HopByHop, ConnectionNamingItselfOrRepeatedNames) {
    auto f = fields({{"Connection", "connection, X-A"},
                     {"X-A", "1"},
                     {"Accept", "*/*"},
                     {"Connection", " CONNECTION , x-a, X-B,, Keep-Alive"},
                     {"x-b", "2"},
                     {"Keep-Alive", "timeout=5"}});
    strip_hop_by_hop(f);
    EXPECT_EQ(names(f), (std::vector<std::string>{"Accept"}));
}

TEST(HopByHop, ConnectionListsIsCaseInsensitive) {
    auto f = fields({{"Connection", "Keep-Alive, Upgrade"}});
    EXPECT_TRUE(connection_lists(f, "upgrade"));
    EXPECT_TRUE(connection_lists(f, "keep-alive"));
    EXPECT_FALSE(connection_lists(f, "close"));
}

TEST(Via, AppendsAndDetectsOwnPseudonym) {
    bhttp::fields f;
    append_via(f, 11, "sluice-0a1b2c3d");
    EXPECT_EQ(f[bhttp::field::via], "1.1 sluice-0a1b2c3d");
    EXPECT_TRUE(via_contains(f, "sluice-0a1b2c3d"));
    EXPECT_FALSE(via_contains(f, "sluice-ffffffff"));
    auto chain = fields({{"Via", "1.0 fred, 1.1 sluice-aaaaaaaa (sluice)"}});
    EXPECT_TRUE(via_contains(chain, "sluice-aaaaaaaa"));
    EXPECT_FALSE(via_contains(chain, "sluice-bbbbbbbb"));  // another instance: not a loop
    auto two_lines = fields({{"Via", "1.0 a"}, {"Via", "1.1 b"}});
    append_via(two_lines, 11, "sluice-c");
    EXPECT_EQ(two_lines.count(bhttp::field::via), 1u);
    EXPECT_EQ(two_lines[bhttp::field::via], "1.0 a, 1.1 b, 1.1 sluice-c");
    bhttp::fields old;
    append_via(old, 10, "p");
    EXPECT_EQ(old[bhttp::field::via], "1.0 p");
}

// Empty list elements are accepted and not passed on (RFC 9110 §5.6.1): an empty Via line, a
// stray comma, whitespace around entries.
TEST(Via, EmptyEntriesAreDropped) {
    auto empty = fields({{"Via", ""}});
    append_via(empty, 11, "s");
    EXPECT_EQ(empty[bhttp::field::via], "1.1 s");
    auto stray = fields({{"Via", " , 1.0 a ,, 1.1 b (x) ,"}, {"Via", "\t"}});
    append_via(stray, 11, "s");
    EXPECT_EQ(stray[bhttp::field::via], "1.0 a, 1.1 b (x), 1.1 s");
    std::string joined;
    append_via_entries(joined, ",,, ");
    EXPECT_EQ(joined, "");
}

TEST(KeepAlive, TimeoutParameter) {
    EXPECT_EQ(keep_alive_timeout(fields({{"Keep-Alive", "timeout=5, max=100"}})),
              std::chrono::seconds{5});
    EXPECT_EQ(keep_alive_timeout(fields({{"Keep-Alive", "max=100, timeout = 1"}})),
              std::chrono::seconds{1});
    EXPECT_EQ(keep_alive_timeout(fields({{"Keep-Alive", "timeout=abc"}})), std::nullopt);
    EXPECT_EQ(keep_alive_timeout(fields({})), std::nullopt);
}

TEST(Redaction, SensitiveFields) {
    std::vector<std::string> redact{"x-api-key"};
    for (auto name :
         {"Authorization", "proxy-authorization", "Cookie", "SET-COOKIE", "X-Api-Key"}) {
        EXPECT_TRUE(is_sensitive(name, redact)) << name;
    }
    EXPECT_FALSE(is_sensitive("Accept", redact));
}

// find_field() finds what Beast's find() finds, and the run of that name after it holds
// every field of the name (Beast's count()), whatever the order the fields came in, the
// spelling of their names, and the unknown fields among them.
TEST(FieldScan, FindsWhatBeastsIndexFinds) {
    const std::vector<std::pair<std::string, std::string>> lines = {
        {"Host", "a"},
        {"X-One", "1"},
        {"transfer-encoding", "gzip"},
        {"HOST", "b"},
        {"Content-Length", "5"},
        {"Via", "1.1 x"},
        {"X_Under", "u"},
        {"TRANSFER-ENCODING", "chunked"},
        {"via", "1.0 y"},
        {"Connection", "te"},
        {"Expect", "100-continue"},
    };
    const bhttp::field probes[] = {
        bhttp::field::host,
        bhttp::field::transfer_encoding,
        bhttp::field::content_length,
        bhttp::field::via,
        bhttp::field::connection,
        bhttp::field::expect,
        bhttp::field::keep_alive,
        bhttp::field::retry_after,
        bhttp::field::proxy_authorization,
    };
    // Every rotation of the lines, so that each name comes first, last and in between.
    for (std::size_t shift = 0; shift < lines.size(); ++shift) {
        bhttp::fields f;
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const auto& [k, v] = lines[(i + shift) % lines.size()];
            f.insert(k, v);
        }
        for (const auto name : probes) {
            const auto mine = find_field(f, name);
            const auto beasts = f.find(name);
            ASSERT_EQ(mine == f.end(), beasts == f.end()) << bhttp::to_string(name);
            if (mine == f.end())
                continue;
            EXPECT_EQ(&*mine, &*beasts) << bhttp::to_string(name);
            // The others of that name follow it, as after Beast's find().
            std::vector<std::string> a, b;
            for (auto it = mine; it != f.end() && it->name() == name; ++it)
                a.emplace_back(it->value());
            for (auto it = beasts; it != f.end() && it->name() == name; ++it)
                b.emplace_back(it->value());
            EXPECT_EQ(a, b) << bhttp::to_string(name);
            EXPECT_EQ(a.size(), f.count(name)) << bhttp::to_string(name);
        }
    }
}

}  // namespace
}  // namespace sluice::http
