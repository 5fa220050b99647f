// The admission of one upstream (DESIGN §3.3): a token bucket with a bounded FIFO wait queue in
// front of it, as a pure object fed by a clock. The driver owns the timers and the lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"

namespace sluice::policy {

/// Identifies one queued request of an admission_queue; never reused (a 64-bit counter from 1).
using waiter_id = std::uint64_t;

/// What admission_queue::admit() decided about one request (DESIGN §3.3).
enum class admission_verdict {
    admitted,                ///< a token was free: go now
    queued,                  ///< token taken on credit: wait until `ready_at`, then go
    rejected_queue_full,     ///< 429: `queue.max_size` waiters already queued (or max_size 0)
    rejected_wait_too_long,  ///< 429: the token would be due later than `queue.max_wait`
};

/// The result of admission_queue::admit().
struct admission {
    admission_verdict verdict = admission_verdict::admitted;
    /// Queued only: the waiter's id, for ready_at(), leave() and cancel().
    waiter_id id = 0;
    /// Queued only: the instant its token is due (ns, rounded up); the driver arms a timer there.
    std::chrono::steady_clock::time_point ready_at{};
    /// Rejected only: the `Retry-After` of the 429, whole seconds >= 1 (see admission_queue).
    std::chrono::seconds retry_after{0};

    /// Go now.
    bool admitted() const { return verdict == admission_verdict::admitted; }
    /// Wait until ready_at (a timer), then leave(); or cancel() on giving up.
    bool queued() const { return verdict == admission_verdict::queued; }
    /// Answer 429 with retry_after; nothing was taken.
    bool rejected() const { return !admitted() && !queued(); }
};

/// Token bucket plus bounded FIFO wait queue of one upstream (DESIGN §3.3).
///
/// Bucket: capacity `burst_size` tokens, refilled continuously at `requests_per_minute / 60`
/// tokens per second, computed from `clock.now()` whenever the object is used (no background
/// task). It starts full.
///
/// Reservation model: a request either takes a free token at once (`admitted`), or takes its
/// token on credit and joins the queue (`queued`) — the token count then goes negative — or is
/// rejected at once, taking nothing. Because every waiter holds its token already, the instant
/// it may go is known at admission: the waiter at index p (0 = head) of n is ready when the
/// token count reaches -(n-1-p), i.e. waiters become ready one token interval (60 s /
/// requests_per_minute) apart, in FIFO order. Hence a request whose wait would exceed
/// `queue.max_wait` is rejected at admission, never after waiting in vain, and since a waiter's
/// ready time can only move earlier afterwards (cancel()), no waiter ever waits past its
/// admission time + max_wait. The policies are fixed for the object's life: a reload that
/// changes them builds a new admission_queue (DESIGN §3.9 keeps the state only when unchanged).
///
/// A waiter whose token has come due is forgotten by the next mutating call (admit, leave,
/// cancel): its token is spent whether or not it goes. So a request is only ever admitted at
/// once when no waiter is pending, and ready times stay a pure function of token count, queue
/// length and position.
///
/// `Retry-After` of a rejection: the whole seconds, rounded up, at least 1, until the same
/// request would not be rejected if nothing else happened meanwhile — the later of (a) the
/// instant its wait would have shrunk to max_wait, and (b) for a full queue, the instant the
/// waiter at index n - max_size becomes due, making room. Without queueing (max_size 0 or
/// max_wait 0) that is the time until a whole token is free.
///
/// Not thread-safe: the driver guards each upstream's queue with a small mutex, never held
/// across I/O. admit() allocates nothing when the request is admitted at once.
class admission_queue {
  public:
    using time_point = std::chrono::steady_clock::time_point;

    /// Copies the policies; `clk` must outlive the object. Precondition (config validation):
    /// requests_per_minute in (0, 1e9], burst_size >= 1.
    admission_queue(const config::rate_limit_policy& rate, const config::queue_policy& queue,
                    const clock& clk);

    /// Decides about one request (or one retry attempt: every attempt takes a token) now.
    /// With `rate_limit.enabled == false` always `admitted`, touching nothing.
    admission admit();

    /// The instant waiter `id`'s token is due, or nullopt if `id` is not queued (unknown, left,
    /// cancelled, or its token came due before the last mutating call).
    std::optional<time_point> ready_at(waiter_id id) const;

    /// The waiter woke at or after its ready_at and goes upstream: forget it (its token stays
    /// spent). Returns true when `id` is no longer queued; false when its token is not yet due
    /// (an early wake-up: nothing changes, re-arm at ready_at(id)).
    bool leave(waiter_id id);

    /// The waiter gives up (client gone, total timeout): it leaves the queue, its token is given
    /// back, and each later waiter becomes ready exactly one token interval earlier, so its place
    /// is not lost to newcomers. Returns the ids whose ready_at changed (all later waiters, in
    /// queue order) so the driver re-arms their timers; empty if `id` was not queued.
    std::vector<waiter_id> cancel(waiter_id id);

    /// Current token count: at most burst_size, negative while waiters hold tokens on credit.
    double tokens() const;
    /// tokens() clamped at 0: the `sluice_ratelimit_tokens` gauge.
    double available_tokens() const;
    /// Waiters whose token is not yet due: the `sluice_queue_depth` gauge.
    std::size_t queue_depth() const;

    /// Time between two tokens: 60 s / requests_per_minute, rounded to whole nanoseconds.
    std::chrono::nanoseconds token_interval() const;
    /// The bucket policy this queue was built with (to compare on reload).
    const config::rate_limit_policy& rate_policy() const { return rate_; }
    /// The queue policy this queue was built with (to compare on reload).
    const config::queue_policy& queue_policy() const { return queue_; }

  private:
    /// Moves base_ to `now` (refilling, capped at burst) and forgets waiters now due.
    void advance(time_point now);
    /// Number of leading waiters whose token is due when the zero point is at `zero_ns` from
    /// base_ and the clock at base_.
    std::size_t due_count(double zero_ns) const;
    /// The zero point as seen at `now`, relative to now, capped at a full bucket.
    double zero_at(time_point now) const;

    config::rate_limit_policy rate_;
    config::queue_policy queue_;
    const clock& clock_;
    double interval_ns_;  ///< ns per token
    double capacity_ns_;  ///< burst_size * interval_ns_: how far the zero point may lag now
    double max_wait_ns_;
    bool queueing_;  ///< max_size > 0 and max_wait > 0
    /// The bucket is kept as its zero point: the instant (zero_ns_ ns after base_) at which the
    /// token count is 0; tokens(t) = (t - zero) / interval. Taking a token moves it one interval
    /// later. base_ moves to now on each mutation so zero_ns_ stays small and exact.
    time_point base_;
    double zero_ns_;
    std::deque<waiter_id> waiters_;  ///< pending waiters, FIFO; ids ascending
    waiter_id next_id_ = 1;
};

}  // namespace sluice::policy
