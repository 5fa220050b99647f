// Parses the two unit-carrying value forms of the configuration: durations and sizes.
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "config/config.hpp"

namespace sluice::config {
namespace {

/// A non-negative decimal `digits[.digits]` times `multiplier`, computed exactly.
/// Returns nullopt when the text is not such a number, when the product is not a whole number
/// (`1.5` bytes, `0.3ms`) or when it exceeds `limit`.
std::optional<std::uint64_t> scaled_decimal(std::string_view number, std::uint64_t multiplier,
                                            std::uint64_t limit) {
    // 128-bit intermediates keep `digits * multiplier` exact before the limit check.
    using wide = unsigned __int128;
    const std::size_t dot = number.find('.');
    const std::string_view whole = number.substr(0, dot);
    std::string_view fraction =
        dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
    // "1." and ".5" are rejected: YAML authors write 1.0 and 0.5.
    if (whole.empty() || (dot != std::string_view::npos && fraction.empty()))
        return std::nullopt;

    wide value = 0;
    for (char c : whole) {
        if (c < '0' || c > '9')
            return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
        if (value > limit)
            return std::nullopt;
    }
    value *= multiplier;
    if (value > limit)
        return std::nullopt;

    for (char c : fraction) {
        if (c < '0' || c > '9')
            return std::nullopt;
    }
    while (!fraction.empty() && fraction.back() == '0')
        fraction.remove_suffix(1);
    if (!fraction.empty()) {
        // Beyond 18 significant fraction digits nothing can be a whole number of units here
        // (the largest multiplier has far fewer factors of 10), and 10^19 would overflow.
        if (fraction.size() > 18)
            return std::nullopt;
        wide numerator = 0;
        wide denominator = 1;
        for (char c : fraction) {
            numerator = numerator * 10 + static_cast<unsigned>(c - '0');
            denominator *= 10;
        }
        numerator *= multiplier;
        if (numerator % denominator != 0)
            return std::nullopt;
        value += numerator / denominator;
        if (value > limit)
            return std::nullopt;
    }
    return static_cast<std::uint64_t>(value);
}

/// Splits `250ms` into `250` and `ms`: the unit is the trailing run of letters.
std::pair<std::string_view, std::string_view> split_unit(std::string_view text) {
    std::size_t i = text.size();
    while (i > 0 && ((text[i - 1] >= 'a' && text[i - 1] <= 'z') ||
                     (text[i - 1] >= 'A' && text[i - 1] <= 'Z'))) {
        --i;
    }
    return {text.substr(0, i), text.substr(i)};
}

}  // namespace

std::optional<duration> parse_duration(std::string_view text) {
    if (text == "0")
        return duration{0};
    const auto [number, unit] = split_unit(text);
    std::uint64_t multiplier = 0;
    if (unit == "ms") {
        multiplier = 1;
    } else if (unit == "s") {
        multiplier = 1000;
    } else if (unit == "m") {
        multiplier = 60 * 1000;
    } else if (unit == "h") {
        multiplier = 60 * 60 * 1000;
    } else {
        return std::nullopt;
    }
    // Bounded so that every parsed duration converts to std::chrono::nanoseconds (the steady
    // clock's unit) without overflow.
    constexpr std::uint64_t limit =
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 1'000'000);
    const auto ms = scaled_decimal(number, multiplier, limit);
    if (!ms)
        return std::nullopt;
    return duration{static_cast<duration::rep>(*ms)};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    const auto [number, unit] = split_unit(text);
    std::uint64_t multiplier = 0;
    if (unit.empty()) {
        multiplier = 1;
    } else if (unit == "KiB") {
        multiplier = std::uint64_t{1} << 10;
    } else if (unit == "MiB") {
        multiplier = std::uint64_t{1} << 20;
    } else if (unit == "GiB") {
        multiplier = std::uint64_t{1} << 30;
    } else if (unit == "TiB") {
        multiplier = std::uint64_t{1} << 40;
    } else if (unit == "KB") {
        multiplier = 1000;
    } else if (unit == "MB") {
        multiplier = 1000 * 1000;
    } else if (unit == "GB") {
        multiplier = 1000 * 1000 * 1000;
    } else if (unit == "TB") {
        multiplier = std::uint64_t{1000} * 1000 * 1000 * 1000;
    } else {
        return std::nullopt;
    }
    return scaled_decimal(number, multiplier, std::numeric_limits<std::uint64_t>::max());
}

}  // namespace sluice::config
