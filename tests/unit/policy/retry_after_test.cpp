// `Retry-After` parsing (RFC 9110 §10.2.3, §5.6.7): every form of shared case 6, exact delays
// from a fixed wall clock (2025-01-01T00:00:00Z, a Wednesday).
#include "policy/retry_after.hpp"

#include <gtest/gtest.h>

#include "support/fake_clock.hpp"

namespace sluice::policy {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using std::chrono::sys_seconds;

const auto now = test::fake_clock::default_wall_epoch;

std::optional<ms> parse(std::string_view v) {
    return parse_retry_after(v, now);
}

std::optional<long long> unix_time(std::string_view date,
                                   std::chrono::system_clock::time_point at = now) {
    const auto t = parse_http_date(date, at);
    if (!t)
        return std::nullopt;
    return t->time_since_epoch().count();
}

// Shared case 6, value by value.
TEST(RetryAfter, Case6Forms) {
    EXPECT_EQ(parse("3"), 3000ms);
    EXPECT_EQ(parse("Wed, 01 Jan 2025 00:00:03 GMT"), 3000ms);          // IMF-fixdate, now + 3 s
    EXPECT_EQ(parse("Sunday, 06-Nov-94 08:49:37 GMT"), 0ms);            // RFC 850, 1994: past
    EXPECT_EQ(parse("Sun Nov  6 08:49:37 1994"), 0ms);                  // asctime: past
    EXPECT_EQ(parse("Wed, 21 Oct 2037 07:28:00 GMT"), 404033280000ms);  // 12.8 years ahead
    EXPECT_EQ(parse("1m0s"), std::nullopt);
    EXPECT_EQ(parse("-5"), std::nullopt);
    EXPECT_EQ(parse("99999999999"), ms{2147483648000});  // saturates at 2^31 s
    EXPECT_EQ(parse(""), std::nullopt);
}

TEST(RetryAfter, DelaySeconds) {
    EXPECT_EQ(parse("0"), 0ms);
    EXPECT_EQ(parse("120"), 120000ms);
    EXPECT_EQ(parse("007"), 7000ms);
    EXPECT_EQ(parse(" 3\t"), 3000ms);  // surrounding whitespace is not part of the value
    EXPECT_EQ(parse("2147483647"), ms{2147483647000});
    EXPECT_EQ(parse("2147483648"), ms{2147483648000});
    EXPECT_EQ(parse("2147483649"), ms{2147483648000});
    EXPECT_EQ(parse("184467440737095516160000000000"), ms{2147483648000});
    for (auto bad : {"3.5", "+3", "3 s", "3s", "1 2", " ", "0x10", "abc", "3,4", "\xd9\xa3"})
        EXPECT_EQ(parse(bad), std::nullopt) << bad;
}

TEST(RetryAfter, AllThreeDateFormsGiveTheSameInstant) {
    EXPECT_EQ(unix_time("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(unix_time("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    EXPECT_EQ(unix_time("Sun Nov  6 08:49:37 1994"), 784111777);
    EXPECT_EQ(unix_time("Sun Nov 06 08:49:37 1994"), 784111777);  // 2DIGIT day also allowed
    EXPECT_EQ(unix_time("Thu, 29 Feb 2024 00:00:00 GMT"), 1709164800);
    EXPECT_EQ(unix_time("Thu Feb 29 00:00:00 2024"), 1709164800);
}

TEST(RetryAfter, DatesRoundUpToWholeMsAndPastIsZero) {
    // 250 ms past the second: 3 s ahead on the wire is 2.75 s.
    EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2025 00:00:03 GMT", now + 250ms), 2750ms);
    // Sub-ms remainders round up so a retry never starts before the date.
    EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2025 00:00:03 GMT", now + 250100us), 2750ms);
    EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2025 00:00:03 GMT", now + 250900us), 2750ms);
    EXPECT_EQ(parse_retry_after("Wed, 01 Jan 2025 00:00:03 GMT", now + 249900us), 2751ms);
    EXPECT_EQ(parse("Wed, 01 Jan 2025 00:00:00 GMT"), 0ms);
    EXPECT_EQ(parse("Tue, 31 Dec 2024 23:59:59 GMT"), 0ms);
    EXPECT_EQ(parse("Fri, 31 Dec 9999 23:59:59 GMT"), ms{2147483648000});  // saturates
    EXPECT_EQ(parse("Mon, 01 Jan 0001 00:00:00 GMT"), 0ms);
}

// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century.
TEST(RetryAfter, Rfc850TwoDigitYears) {
    EXPECT_EQ(unix_time("Monday, 01-Jan-75 00:00:00 GMT"), 1735689600LL + 1577836800);  // 2075
    EXPECT_EQ(unix_time("Monday, 01-Jan-76 00:00:00 GMT"), 189302400);                  // 1976
    EXPECT_EQ(unix_time("Monday, 01-Jan-25 00:00:00 GMT"), 1735689600);                 // 2025
    // Seen from 2090 the window is 2041..2140: "10" is 2110 (20 years ahead), "41" is 2041
    // (2141 would be 51 years ahead).
    const auto in_2090 = std::chrono::sys_days{std::chrono::year{2090} / 6 / 1};
    EXPECT_EQ(unix_time("Monday, 01-Jan-10 00:00:00 GMT", in_2090), 4417977600);
    const auto y2041 = sys_seconds{std::chrono::sys_days{std::chrono::year{2041} / 1 / 1}};
    EXPECT_EQ(unix_time("Monday, 01-Jan-41 00:00:00 GMT", in_2090),
              y2041.time_since_epoch().count());
}

TEST(RetryAfter, InvalidDates) {
    for (auto bad : {
             "Sun, 31 Nov 1994 08:49:37 GMT",     // 30 days in November
             "Tue, 29 Feb 2023 08:49:37 GMT",     // not a leap year
             "Sun, 00 Nov 1994 08:49:37 GMT",     // day 0
             "Sun, 06 Nov 1994 24:00:00 GMT",     // hour 24
             "Sun, 06 Nov 1994 08:60:00 GMT",     // minute 60
             "Sun, 06 Nov 1994 08:49:61 GMT",     // second 61
             "sun, 06 Nov 1994 08:49:37 GMT",     // case-sensitive
             "Sun, 06 nov 1994 08:49:37 GMT",     // month case
             "Sun, 06 Nov 1994 08:49:37 gmt",     // zone case
             "Sun, 06 Nov 1994 08:49:37 UTC",     // only GMT
             "Sun, 06 Nov 1994 08:49:37",         // zone missing
             "Sun, 6 Nov 1994 08:49:37 GMT",      // IMF day is 2DIGIT
             "Sun, 06 Nov 94 08:49:37 GMT",       // IMF year is 4DIGIT
             "Sun, 06 Nov 1994 8:49:37 GMT",      // hour is 2DIGIT
             "Sun,  06 Nov 1994 08:49:37 GMT",    // one space only
             "Sun, 06 Nov 1994 08:49:37 GMT ",    // (trailing space is trimmed by the caller)
             "Sun, 06 Nov 1994 08:49:37 GMTx",    // junk after
             "Xyz, 06 Nov 1994 08:49:37 GMT",     // not a day name
             "Sunday, 06 Nov 1994 08:49:37 GMT",  // long name with IMF layout
             "Sun, 06-Nov-94 08:49:37 GMT",       // short name with RFC 850 layout
             "Sunday, 06-Nov-1994 08:49:37 GMT",  // RFC 850 year is 2DIGIT
             "Sunday, 31-Jun-94 08:49:37 GMT",    // 30 days in June
             "Sun Nov 6 08:49:37 1994",           // asctime single-digit day needs the space
             "Sun Nov  6 08:49:37 1994 GMT",      // asctime has no zone
             "Sun Nov  6 08:49:37 94",            // asctime year is 4DIGIT
             "Sun Nov 31 08:49:37 1994",          // 30 days
             "Sun",
             "Sunday",
             "GMT",
         }) {
        EXPECT_EQ(parse_http_date(bad, now), std::nullopt) << bad;
    }
    // Trimmed by parse_retry_after, so this one is fine there.
    EXPECT_EQ(parse("  Sun, 06 Nov 1994 08:49:37 GMT  "), 0ms);
    // Leap second accepted (RFC 9110: second 00-60).
    EXPECT_EQ(unix_time("Sat, 31 Dec 2016 23:59:60 GMT"), 1483228800);
    // The day name is checked as a name, not against the date (like most implementations).
    EXPECT_EQ(unix_time("Mon, 06 Nov 1994 08:49:37 GMT"), 784111777);
}

}  // namespace
}  // namespace sluice::policy
