#include "core/slice_checkpoint.hpp"

#include <time.h>

#include "core/coarse_clock.hpp"

namespace sluice::slice_checkpoint {

namespace {
thread_local std::uint64_t taken = 0;
}  // namespace

std::chrono::nanoseconds read_thread_cpu_time() noexcept {
    // coarse_clock's clock_gettime(2) read: a zero when the clock cannot be read.
    return coarse_clock::detail::read(CLOCK_THREAD_CPUTIME_ID);
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
