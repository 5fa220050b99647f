// Token bucket + FIFO wait queue of one upstream (DESIGN §3.3); see admission_queue.hpp.
#include "policy/admission_queue.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace sluice::policy {
namespace {

constexpr double ns_per_minute = 60e9;
/// Bound on every offset we convert back to an integer duration (~146 years): keeps absurd but
/// valid configs (1e-300 requests per minute) from overflowing.
constexpr double max_offset_ns = 0x1.0p62;

double to_ns(std::chrono::steady_clock::duration d) {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

/// `ns` rounded up to whole nanoseconds, so a timer armed there never fires before the token
/// is due.
std::chrono::nanoseconds ceil_ns(double ns) {
    return std::chrono::nanoseconds{
        static_cast<std::int64_t>(std::ceil(std::clamp(ns, -max_offset_ns, max_offset_ns)))};
}

/// Whole seconds, rounded up, at least 1: the `Retry-After` of a 429 (DESIGN §3.3).
std::chrono::seconds retry_after_seconds(double ns) {
    const double s = std::ceil(std::clamp(ns, 0.0, max_offset_ns) / 1e9);
    return std::chrono::seconds{std::max<std::int64_t>(1, static_cast<std::int64_t>(s))};
}

}  // namespace

admission_queue::admission_queue(const config::rate_limit_policy& rate,
                                 const config::queue_policy& queue, const clock& clk)
    : rate_(rate),
      queue_(queue),
      clock_(clk),
      interval_ns_(rate.requests_per_minute > 0
                       ? std::min(ns_per_minute / rate.requests_per_minute, max_offset_ns)
                       : max_offset_ns),
      capacity_ns_(std::min(static_cast<double>(rate.burst_size) * interval_ns_, max_offset_ns)),
      max_wait_ns_(std::max(0.0, to_ns(queue.max_wait))),
      queueing_(queue.max_size > 0 && queue.max_wait.count() > 0),
      base_(clk.now()),
      zero_ns_(-capacity_ns_) {}

double admission_queue::zero_at(time_point now) const {
    return std::max(zero_ns_ - to_ns(now - base_), -capacity_ns_);
}

std::size_t admission_queue::due_count(double zero_ns) const {
    // Waiter p of n is due when zero - (n-1-p) * interval <= 0; true for a prefix of the queue.
    const std::size_t n = waiters_.size();
    std::size_t lo = 0;
    std::size_t hi = n;
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (zero_ns - static_cast<double>(n - 1 - mid) * interval_ns_ <= 0.0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void admission_queue::advance(time_point now) {
    zero_ns_ = zero_at(now);
    base_ = now;
    const std::size_t due = due_count(zero_ns_);
    waiters_.erase(waiters_.begin(), waiters_.begin() + static_cast<std::ptrdiff_t>(due));
}

admission admission_queue::admit() {
    if (!rate_.enabled)
        return {};
    const time_point now = clock_.now();
    advance(now);

    // Pending waiters imply a negative count, so a free token means an empty queue.
    if (waiters_.empty() && -zero_ns_ >= interval_ns_) {
        zero_ns_ += interval_ns_;
        return {};
    }

    // This request's token would be due `wait` ns from now, behind every pending waiter.
    const double wait = zero_ns_ + interval_ns_;
    admission out;
    if (!queueing_) {
        out.verdict = queue_.max_size == 0 ? admission_verdict::rejected_queue_full
                                           : admission_verdict::rejected_wait_too_long;
        out.retry_after = retry_after_seconds(wait);
        return out;
    }
    const std::size_t n = waiters_.size();
    if (n >= queue_.max_size || wait > max_wait_ns_) {
        out.verdict = n >= queue_.max_size ? admission_verdict::rejected_queue_full
                                           : admission_verdict::rejected_wait_too_long;
        double until = wait - max_wait_ns_;
        if (n >= queue_.max_size) {
            // Room appears when the waiter at index n - max_size becomes due.
            until =
                std::max(until, zero_ns_ - static_cast<double>(queue_.max_size - 1) * interval_ns_);
        }
        out.retry_after = retry_after_seconds(until);
        return out;
    }

    zero_ns_ += interval_ns_;
    out.verdict = admission_verdict::queued;
    out.id = next_id_++;
    out.ready_at = now + ceil_ns(zero_ns_);
    waiters_.push_back(out.id);
    return out;
}

std::optional<admission_queue::time_point> admission_queue::ready_at(waiter_id id) const {
    const auto it = std::lower_bound(waiters_.begin(), waiters_.end(), id);
    if (it == waiters_.end() || *it != id)
        return std::nullopt;
    const auto behind = static_cast<double>(waiters_.end() - it - 1);
    return base_ + ceil_ns(zero_ns_ - behind * interval_ns_);
}

bool admission_queue::leave(waiter_id id) {
    if (!rate_.enabled)
        return true;
    advance(clock_.now());
    return !std::binary_search(waiters_.begin(), waiters_.end(), id);
}

std::vector<waiter_id> admission_queue::cancel(waiter_id id) {
    if (!rate_.enabled)
        return {};
    advance(clock_.now());
    const auto it = std::lower_bound(waiters_.begin(), waiters_.end(), id);
    if (it == waiters_.end() || *it != id)
        return {};
    // Giving the token back moves the zero point one interval earlier: waiters ahead keep their
    // time (one fewer behind them, one more token), later ones move up by one interval. None
    // becomes due: the next one's new time is the cancelled waiter's, still in the future.
    const auto later = waiters_.erase(it);
    std::vector<waiter_id> moved(later, waiters_.end());
    zero_ns_ -= interval_ns_;
    assert(waiters_.empty() ||
           zero_ns_ - static_cast<double>(waiters_.size() - 1) * interval_ns_ > 0.0);
    return moved;
}

double admission_queue::tokens() const {
    if (!rate_.enabled)
        return static_cast<double>(rate_.burst_size);
    const double t = -zero_at(clock_.now()) / interval_ns_;
    return std::min(t, static_cast<double>(rate_.burst_size));
}

double admission_queue::available_tokens() const {
    return std::max(0.0, tokens());
}

std::size_t admission_queue::queue_depth() const {
    const double zero = zero_ns_ - to_ns(clock_.now() - base_);
    return waiters_.size() - due_count(zero);
}

std::chrono::nanoseconds admission_queue::token_interval() const {
    return std::chrono::nanoseconds{static_cast<std::int64_t>(std::llround(interval_ns_))};
}

}  // namespace sluice::policy
