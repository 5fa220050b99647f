// The driver of the admission policies: timers and disconnect watching around the pure objects.
#include "upstream/upstream_state.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::upstream {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
using steady_clock = std::chrono::steady_clock;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

upstream_state::upstream_state(const config::policy& p, const clock& clk)
    : queue(p.rate_limit, p.queue, clk),
      breaker(p.circuit_breaker, clk),
      rate_(p.rate_limit),
      queue_policy_(p.queue),
      breaker_policy_(p.circuit_breaker) {}

upstream_state::snapshot upstream_state::read() const {
    auto& self = const_cast<upstream_state&>(*this);
    std::lock_guard lock(self.mutex);
    return {queue.available_tokens(), queue.queue_depth(), breaker.current(),
            breaker.open_remaining()};
}

void upstream_state::wake_all() {
    std::lock_guard lock(mutex);
    for (auto& [id, wake] : wakers)
        wake();
}

bool upstream_state::same_policy(const config::policy& p) const {
    return p.rate_limit == rate_ && p.queue == queue_policy_ &&
           p.circuit_breaker == breaker_policy_;
}

namespace {

// Gives waiter `id`'s place back and re-arms the timers of the waiters behind it.
void give_up(upstream_state& st, policy::waiter_id id) {
    std::lock_guard lock(st.mutex);
    st.wakers.erase(id);
    for (auto moved : st.queue.cancel(id)) {
        if (auto it = st.wakers.find(moved); it != st.wakers.end())
            it->second();
    }
}

// True when the client closed its side (EOF) or reset; false when it merely sent more bytes
// (a pipelined request) or nothing is there.
bool client_closed(net::ip::tcp::socket& s) {
    char byte;
    ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    if (n > 0)
        return false;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace

void count_transition(admin::upstream_metrics& metrics,
                      std::optional<policy::circuit_state> transition) {
    if (transition)
        metrics.circuit_transitions[static_cast<std::size_t>(*transition)]->Increment();
}

namespace {

// The end of every admission that got its token, after `permit` was asked of the breaker: the
// wait is observed and the breaker's answer counted.
admission_result breaker_verdict(admin::upstream_metrics& metrics, policy::circuit_permit permit,
                                 std::chrono::nanoseconds waited) {
    admission_result out;
    out.waited = waited;
    out.permit = std::move(permit);
    metrics.ratelimit_waited(std::chrono::duration<double>(waited).count());
    count_transition(metrics, out.permit.transition);
    if (!out.permit.allowed) {
        metrics.circuit_rejected->Increment();
        out.what = admission_result::kind::circuit_open;
        out.retry_after = out.permit.retry_after;
    }
    return out;
}

}  // namespace

std::optional<admission_result> try_admit(upstream_state& st, const net::any_io_executor& ex,
                                          admin::upstream_metrics& metrics,
                                          queued_admission& queued) {
    policy::admission a;
    policy::circuit_permit permit;
    {
        std::lock_guard lock(st.mutex);
        a = st.queue.admit();
        if (a.queued()) {
            queued.place = a;
            queued.timer = std::make_shared<net::steady_timer>(ex);
            // Another thread that gives up its place moves this waiter earlier: it cancels the
            // wait (on this waiter's own executor), and wait_admission() re-reads ready_at.
            std::weak_ptr<net::steady_timer> weak = queued.timer;
            st.wakers.emplace(a.id, [weak, ex] {
                net::post(ex, [weak] {
                    if (auto t = weak.lock())
                        t->cancel();
                });
            });
            return std::nullopt;
        }
        if (!a.rejected())
            permit = st.breaker.try_acquire();  // under the same lock: one per request
    }
    if (a.rejected()) {
        admission_result out;
        out.what = admission_result::kind::rate_limited;
        out.retry_after = a.retry_after;
        out.queue_full = a.verdict == policy::admission_verdict::rejected_queue_full;
        (out.queue_full ? metrics.rejected_queue_full : metrics.rejected_wait_too_long)
            ->Increment();
        return out;
    }
    return breaker_verdict(metrics, std::move(permit), std::chrono::nanoseconds{0});
}

net::awaitable<admission_result> wait_admission(upstream_state& st, net::ip::tcp::socket& client,
                                                queued_admission& queued,
                                                steady_clock::time_point deadline,
                                                admin::upstream_metrics& metrics,
                                                const std::atomic<bool>* draining) {
    const auto id = queued.place.id;
    auto& timer = *queued.timer;
    const auto queued_at = steady_clock::now();
    // Leaves the queue without a token; the access log still shows how long it waited.
    auto left_queue = [&](admission_result::kind why) {
        give_up(st, id);
        admission_result out;
        out.what = why;
        out.waited = steady_clock::now() - queued_at;
        return out;
    };
    bool watch_client = true;
    for (;;) {
        std::optional<steady_clock::time_point> ready;
        {
            std::lock_guard lock(st.mutex);
            ready = st.queue.ready_at(id);
            if (!ready || *ready <= steady_clock::now()) {
                if (st.queue.leave(id)) {
                    st.wakers.erase(id);
                    break;
                }
                ready = st.queue.ready_at(id);
            }
        }
        if (!ready)
            break;
        if (draining && draining->load())
            co_return left_queue(admission_result::kind::draining);
        if (*ready > deadline)
            co_return left_queue(admission_result::kind::deadline);
        timer.expires_at(*ready);
        if (watch_client) {
            auto r = co_await (timer.async_wait(use_tuple) ||
                               client.async_wait(net::socket_base::wait_read, use_tuple));
            if (r.index() == 1) {
                if (client_closed(client))
                    co_return left_queue(admission_result::kind::client_gone);
                watch_client = false;  // pipelined bytes: readable until we read them
            }
        } else {
            co_await timer.async_wait(use_tuple);
        }
    }
    const auto waited = steady_clock::now() - queued_at;
    policy::circuit_permit permit;
    {
        std::lock_guard lock(st.mutex);
        permit = st.breaker.try_acquire();
    }
    co_return breaker_verdict(metrics, std::move(permit), waited);
}

}  // namespace sluice::upstream
