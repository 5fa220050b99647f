// Small text helpers shared by the HTTP parsers of several components.
#pragma once

#include <string_view>

namespace sluice {

/// `s` without leading and trailing optional whitespace (SP and HTAB, RFC 9110 §5.6.3).
inline std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace sluice
