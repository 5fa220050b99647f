// `Retry-After` parsing (RFC 9110 §10.2.3, §5.6.7); see retry_after.hpp.
#include "policy/retry_after.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/text.hpp"

namespace sluice::policy {
namespace {

using namespace std::chrono;

constexpr std::array<std::string_view, 7> short_days{"Mon", "Tue", "Wed", "Thu",
                                                     "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_days{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> month_names{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// Reads a date left to right; every method consumes only on success.
class cursor {
  public:
    explicit cursor(std::string_view s) : s_(s) {}

    bool done() const { return i_ == s_.size(); }
    bool eat(char c) {
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    bool eat(std::string_view lit) {
        if (s_.substr(i_, lit.size()) != lit)
            return false;
        i_ += lit.size();
        return true;
    }
    /// Exactly `n` digits.
    std::optional<unsigned> digits(std::size_t n) {
        if (s_.size() - i_ < n)
            return std::nullopt;
        unsigned v = 0;
        for (std::size_t k = 0; k < n; ++k) {
            const char c = s_[i_ + k];
            if (!is_digit(c))
                return std::nullopt;
            v = v * 10 + static_cast<unsigned>(c - '0');
        }
        i_ += n;
        return v;
    }
    /// A run of letters.
    std::string_view word() {
        const std::size_t start = i_;
        while (i_ < s_.size() && is_alpha(s_[i_]))
            ++i_;
        return s_.substr(start, i_ - start);
    }
    /// `Jan`..`Dec` as 1..12.
    std::optional<unsigned> month() {
        for (unsigned m = 0; m < month_names.size(); ++m) {
            if (eat(month_names[m]))
                return m + 1;
        }
        return std::nullopt;
    }

  private:
    std::string_view s_;
    std::size_t i_ = 0;
};

template <std::size_t N>
bool is_one_of(std::string_view w, const std::array<std::string_view, N>& names) {
    for (auto n : names) {
        if (w == n)
            return true;
    }
    return false;
}

struct time_of_day {
    unsigned hour, minute, second;
};

/// `hour ":" minute ":" second`, 00:00:00 – 23:59:60.
std::optional<time_of_day> read_time(cursor& c) {
    const auto h = c.digits(2);
    if (!h || !c.eat(':'))
        return std::nullopt;
    const auto m = c.digits(2);
    if (!m || !c.eat(':'))
        return std::nullopt;
    const auto s = c.digits(2);
    if (!s || *h > 23 || *m > 59 || *s > 60)
        return std::nullopt;
    return time_of_day{*h, *m, *s};
}

std::optional<sys_seconds> assemble(int y, unsigned mon, unsigned d, time_of_day t) {
    const year_month_day ymd{year{y}, month{mon}, day{d}};
    if (!ymd.ok())
        return std::nullopt;
    return sys_days{ymd} + hours{t.hour} + minutes{t.minute} + seconds{t.second};
}

/// `, DD Mon YYYY HH:MM:SS GMT` after a short day name.
std::optional<sys_seconds> imf_fixdate(cursor& c) {
    if (!c.eat(", "))
        return std::nullopt;
    const auto d = c.digits(2);
    if (!d || !c.eat(' '))
        return std::nullopt;
    const auto m = c.month();
    if (!m || !c.eat(' '))
        return std::nullopt;
    const auto y = c.digits(4);
    if (!y || !c.eat(' '))
        return std::nullopt;
    const auto t = read_time(c);
    if (!t || !c.eat(" GMT") || !c.done())
        return std::nullopt;
    return assemble(static_cast<int>(*y), *m, *d, *t);
}

/// `, DD-Mon-YY HH:MM:SS GMT` after a long day name.
std::optional<sys_seconds> rfc850_date(cursor& c, system_clock::time_point now) {
    if (!c.eat(", "))
        return std::nullopt;
    const auto d = c.digits(2);
    if (!d || !c.eat('-'))
        return std::nullopt;
    const auto m = c.month();
    if (!m || !c.eat('-'))
        return std::nullopt;
    const auto yy = c.digits(2);
    if (!yy || !c.eat(' '))
        return std::nullopt;
    const auto t = read_time(c);
    if (!t || !c.eat(" GMT") || !c.done())
        return std::nullopt;
    // The year ending in yy within (now - 50, now + 50] years.
    const int current = static_cast<int>(year_month_day{floor<days>(now)}.year());
    int y = current - current % 100 + static_cast<int>(*yy);
    if (y > current + 50)
        y -= 100;
    else if (y <= current - 50)
        y += 100;
    return assemble(y, *m, *d, *t);
}

/// ` Mon DD HH:MM:SS YYYY` (DD may be ` D`) after a short day name.
std::optional<sys_seconds> asctime_date(cursor& c) {
    if (!c.eat(' '))
        return std::nullopt;
    const auto m = c.month();
    if (!m || !c.eat(' '))
        return std::nullopt;
    std::optional<unsigned> d;
    if (c.eat(' '))
        d = c.digits(1);
    else
        d = c.digits(2);
    if (!d || !c.eat(' '))
        return std::nullopt;
    const auto t = read_time(c);
    if (!t || !c.eat(' '))
        return std::nullopt;
    const auto y = c.digits(4);
    if (!y || !c.done())
        return std::nullopt;
    return assemble(static_cast<int>(*y), *m, *d, *t);
}

}  // namespace

std::optional<sys_seconds> parse_http_date(std::string_view text, system_clock::time_point now) {
    cursor c{text};
    const std::string_view name = c.word();
    if (is_one_of(name, short_days)) {
        cursor after = c;
        if (auto t = imf_fixdate(after))
            return t;
        return asctime_date(c);
    }
    if (is_one_of(name, long_days))
        return rfc850_date(c, now);
    return std::nullopt;
}

std::optional<milliseconds> parse_retry_after(std::string_view value,
                                              system_clock::time_point now) {
    value = trim_ows(value);
    if (value.empty())
        return std::nullopt;
    if (is_digit(value.front())) {
        std::int64_t secs = 0;
        for (const char ch : value) {
            if (!is_digit(ch))
                return std::nullopt;
            // Saturate instead of overflowing: 99999999999 means "a very long time".
            if (secs < max_retry_after.count())
                secs = secs * 10 + (ch - '0');
        }
        return duration_cast<milliseconds>(std::min(seconds{secs}, max_retry_after));
    }
    const auto date = parse_http_date(value, now);
    if (!date)
        return std::nullopt;
    // Compared in whole seconds first: years up to 9999 away would overflow nanoseconds.
    const seconds ahead = *date - floor<seconds>(now);
    if (ahead > max_retry_after)
        return duration_cast<milliseconds>(max_retry_after);
    if (ahead <= seconds{0})
        return milliseconds{0};
    const auto delay = ceil<milliseconds>(*date - now);
    return std::clamp(delay, milliseconds{0}, duration_cast<milliseconds>(max_retry_after));
}

}  // namespace sluice::policy
