// libFuzzer target: `Retry-After` and HTTP-date parsing (daemon/policy/retry_after.cpp), which
// turns an upstream's header into a retry delay (DESIGN §3.5, shared case 6).
//
// Input: the field value as received. Each input is parsed at several wall times, so that
// two-digit RFC 850 years, dates just past and dates far ahead are all reached.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "core/text.hpp"
#include "fuzz_check.hpp"
#include "policy/retry_after.hpp"

namespace {

using namespace std::chrono;
using sluice::policy::max_retry_after;

/// Wall times to parse at, ascending: the epoch, 3 s before the date of RFC 9110's examples,
/// times with sub-second parts, and a century boundary for two-digit years.
const std::array<system_clock::time_point, 5> nows{
    system_clock::time_point{},
    sys_days{1994y / November / 6} + 8h + 49min + 34s,
    sys_days{2024y / May / 1} + 12h + nanoseconds{123456789},
    sys_days{2037y / October / 21} + 7h + 27min + 57s + 500ms,
    sys_days{2099y / December / 31} + 23h + 59min + 59s + 999ms,
};

bool all_digits(std::string_view s) {
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
    }
    return !s.empty();
}

/// True for the only form with both a comma and dashes: RFC 850, whose two-digit year moves
/// with `now`.
bool looks_rfc850(std::string_view s) {
    return s.find(',') != std::string_view::npos && s.find('-') != std::string_view::npos;
}

/// `t` as an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
std::string imf_fixdate(sys_seconds t) {
    static constexpr std::array<const char*, 7> day_names{"Sun", "Mon", "Tue", "Wed",
                                                          "Thu", "Fri", "Sat"};
    static constexpr std::array<const char*, 12> month_names{
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss time{t - day};
    char text[64];
    std::snprintf(text, sizeof text, "%s, %02u %s %04d %02d:%02d:%02d GMT",
                  day_names[weekday{day}.c_encoding()], static_cast<unsigned>(ymd.day()),
                  month_names[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()),
                  static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()));
    return text;
}

/// The delay for an HTTP-date, checked against the date itself rather than recomputed the way
/// the parser does it: zero for a date not after `now`, the cap for one too far ahead, and
/// otherwise the time until it rounded up to a whole millisecond.
void check_date_delay(sys_seconds date, system_clock::time_point now, milliseconds delay) {
    // In whole seconds: year 0 or 9999 in nanoseconds would overflow. A date of whole seconds
    // is not after `now` exactly when it is not after `now` rounded down.
    const seconds ahead_s = date - floor<seconds>(now);
    if (ahead_s <= seconds{0}) {
        FUZZ_CHECK(delay == milliseconds{0});
        return;
    }
    if (ahead_s > max_retry_after) {
        FUZZ_CHECK(delay == duration_cast<milliseconds>(max_retry_after));
        return;
    }
    const nanoseconds ahead = date - now;  // under 69 years: no overflow
    FUZZ_CHECK(delay >= ahead);
    FUZZ_CHECK(delay - ahead < milliseconds{1});
}

/// Parses `value` at `now` and checks the result; returns the delay.
std::optional<milliseconds> check_at(std::string_view value, system_clock::time_point now) {
    const auto delay = sluice::policy::parse_retry_after(value, now);
    if (delay) {
        FUZZ_CHECK(*delay >= milliseconds{0});
        FUZZ_CHECK(*delay <= duration_cast<milliseconds>(max_retry_after));
    }
    const std::string_view trimmed = sluice::trim_ows(value);
    const auto date = sluice::policy::parse_http_date(trimmed, now);
    if (all_digits(trimmed)) {
        FUZZ_CHECK(!date);
        FUZZ_CHECK(delay);
        if (trimmed.size() <= 9)
            FUZZ_CHECK(*delay == seconds{std::stoll(std::string(trimmed))});
        return delay;
    }
    FUZZ_CHECK(delay.has_value() == date.has_value());
    if (!date)
        return delay;
    check_date_delay(*date, now, *delay);
    // Every date the parser accepts names an instant its preferred form spells the same way,
    // up to year 9999 (a leap second after 9999-12-31 23:59:59 is in year 10000).
    if (year_month_day{floor<days>(*date)}.year() <= year{9999})
        FUZZ_CHECK(sluice::policy::parse_http_date(imf_fixdate(*date), now) == date);
    if (looks_rfc850(trimmed)) {
        // A two-digit year is placed within 50 years of now.
        const int then = static_cast<int>(year_month_day{floor<days>(*date)}.year());
        const int current = static_cast<int>(year_month_day{floor<days>(now)}.year());
        FUZZ_CHECK(then > current - 50 && then <= current + 50);
    }
    return delay;
}

}  // namespace

/// libFuzzer entry point: one `Retry-After` field value, parsed at each of `nows`.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view value(reinterpret_cast<const char*>(data), size);
    const bool moving_year = looks_rfc850(value);
    std::optional<milliseconds> earlier;
    for (const auto now : nows) {
        const auto delay = check_at(value, now);
        // The later the reception, the shorter (or equal) the wait for the same value.
        if (earlier && delay && !moving_year)
            FUZZ_CHECK(*delay <= *earlier);
        earlier = delay;
    }
    return 0;
}
