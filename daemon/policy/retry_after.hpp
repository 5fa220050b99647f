// `Retry-After` values (RFC 9110 §10.2.3): delay-seconds or an HTTP-date in any of the three
// forms of RFC 9110 §5.6.7, parsed by hand (no locale, no strptime).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace sluice::policy {

/// Largest delay a `Retry-After` can ask for: 2^31 s, the delta-seconds bound of RFC 9111
/// §1.2.2. Larger values (and dates further away) saturate here.
inline constexpr std::chrono::seconds max_retry_after{2147483648LL};

/// Parses an HTTP-date (RFC 9110 §5.6.7) into UTC seconds:
/// - IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` (the preferred form),
/// - obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`: a two-digit year is placed in the
///   100-year window ending 50 years after `now`'s year (RFC 9110: a date that appears more than
///   50 years in the future is in the past century),
/// - obsolete asctime `Sun Nov  6 08:49:37 1994`.
/// Names are case-sensitive (RFC 9110: HTTP-date is case sensitive); day names must be valid
/// but, like most implementations, are not checked against the date. Day of month is checked
/// against the month (leap years included), hour 00–23, minute 00–59, second 00–60 (leap
/// second). Returns nullopt for anything else, including surrounding junk.
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text,
                                                        std::chrono::system_clock::time_point now);

/// Parses a `Retry-After` field value received at wall time `now` into a delay, in ms:
/// - delay-seconds: 1*DIGIT (no sign, no spaces inside, no fraction), saturating at
///   max_retry_after;
/// - an HTTP-date (parse_http_date): the time from `now` to it, rounded up to whole ms, 0 for a
///   date in the past, at most max_retry_after.
/// Leading and trailing spaces/tabs are ignored (RFC 9110 §5.5). Invalid values (`1m0s`, `-5`,
/// `3.5`, empty, garbage) give nullopt: the caller falls back to its own backoff.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

}  // namespace sluice::policy
