// Table tests of the duration and size parsers (daemon/config/units.cpp).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"

namespace sluice::config {
namespace {

using std::chrono::milliseconds;

struct duration_case {
    std::string_view text;
    std::optional<duration> expected;
};

TEST(ParseDuration, Table) {
    using namespace std::chrono_literals;
    const duration_case cases[] = {
        // accepted
        {"0", 0ms},
        {"0s", 0ms},
        {"0ms", 0ms},
        {"0.0s", 0ms},
        {"250ms", 250ms},
        {"1s", 1000ms},
        {"1.5s", 1500ms},
        {"0.25s", 250ms},
        {"1.500s", 1500ms},
        {"2m", 120'000ms},
        {"1.5m", 90'000ms},
        {"1h", 3'600'000ms},
        {"0.5h", 1'800'000ms},
        {"007s", 7000ms},
        {"1.0ms", 1ms},
        {"9223372036854ms", 9'223'372'036'854ms},  // largest that fits int64 nanoseconds
        // no unit (only a bare 0 may omit it)
        {"1", std::nullopt},
        {"15", std::nullopt},
        {"0.0", std::nullopt},
        {"00", std::nullopt},
        // unknown or misspelt units
        {"1d", std::nullopt},
        {"1sec", std::nullopt},
        {"1S", std::nullopt},
        {"1us", std::nullopt},
        {"1ns", std::nullopt},
        {"1 s", std::nullopt},
        {"1h30m", std::nullopt},
        // malformed numbers
        {"", std::nullopt},
        {"s", std::nullopt},
        {"ms", std::nullopt},
        {".5s", std::nullopt},
        {"1.s", std::nullopt},
        {"1..5s", std::nullopt},
        {"1e3ms", std::nullopt},
        {"0x10s", std::nullopt},
        {" 1s", std::nullopt},
        {"1s ", std::nullopt},
        // negative or signed
        {"-1s", std::nullopt},
        {"-0s", std::nullopt},
        {"+1s", std::nullopt},
        // not a whole number of milliseconds
        {"0.5ms", std::nullopt},
        {"1.0001s", std::nullopt},
        // overflow
        {"9223372036855ms", std::nullopt},
        {"2562048h", std::nullopt},
        {"99999999999999999999999s", std::nullopt},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(parse_duration(c.text), c.expected) << "text: '" << c.text << "'";
    }
}

struct size_case {
    std::string_view text;
    std::optional<std::uint64_t> expected;
};

TEST(ParseSize, Table) {
    const size_case cases[] = {
        // plain bytes
        {"0", 0},
        {"512", 512},
        {"1048576", 1048576},
        {"18446744073709551615", 18446744073709551615u},  // UINT64_MAX
        // binary units
        {"1KiB", 1024},
        {"64KiB", 65536},
        {"10MiB", 10485760},
        {"1GiB", 1073741824},
        {"2TiB", 2199023255552u},
        {"1.5KiB", 1536},
        {"0.5MiB", 524288},
        // decimal units
        {"1KB", 1000},
        {"1MB", 1000000},
        {"3GB", 3000000000u},
        {"1TB", 1000000000000u},
        {"1.5KB", 1500},
        // wrong case or unknown units
        {"1kib", std::nullopt},
        {"1kb", std::nullopt},
        {"1K", std::nullopt},
        {"1k", std::nullopt},
        {"1B", std::nullopt},
        {"1MiBs", std::nullopt},
        {"1PiB", std::nullopt},
        {"1 KiB", std::nullopt},
        // garbage
        {"", std::nullopt},
        {"KiB", std::nullopt},
        {"abc", std::nullopt},
        {"1.", std::nullopt},
        {".5KiB", std::nullopt},
        {"1e3", std::nullopt},
        {"0x10", std::nullopt},
        // negative or signed
        {"-1", std::nullopt},
        {"-1KiB", std::nullopt},
        {"+1", std::nullopt},
        // fractional bytes
        {"1.5", std::nullopt},
        {"0.1KiB", std::nullopt},
        // overflow
        {"18446744073709551616", std::nullopt},
        {"16777216TiB", std::nullopt},
        {"99999999999999999999999", std::nullopt},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(parse_size(c.text), c.expected) << "text: '" << c.text << "'";
    }
}

}  // namespace
}  // namespace sluice::config
