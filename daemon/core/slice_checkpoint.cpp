#include "core/slice_checkpoint.hpp"

#include <time.h>

namespace sluice::slice_checkpoint {

namespace {
thread_local std::uint64_t taken = 0;
}  // namespace

std::chrono::nanoseconds read_thread_cpu_time() noexcept {
    timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return std::chrono::nanoseconds{0};
    return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

std::uint64_t taken_on_this_thread() noexcept {
    return taken;
}

namespace detail {
void take() noexcept {
    read_thread_cpu_time();
    ++taken;
}
}  // namespace detail

}  // namespace sluice::slice_checkpoint
