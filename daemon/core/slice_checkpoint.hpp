// Gives the kernel a point, every few I/O completions, at which to end an I/O thread's time
// slice, so that a process sharing the CPU with a busy sluice thread (a sidecar's client, most
// often) waits at most about one slice for it instead of a whole scheduler tick
// (BENCHMARKS.md, "Sharing a CPU").
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice::slice_checkpoint {

/// I/O completions between two checkpoints: 16. A proxied request counts about two: the
/// client's read and write, plus an upstream read or write when it has to wait for its
/// socket (tls_stream mostly reads and writes the socket itself); bench/compare's job measured
/// 0.14 checkpoints per request, 2.2 completions. So a fully loaded I/O thread takes one every ~7
/// requests, ~150 µs on the machine of BENCHMARKS.md: a tenth of a slice. A checkpoint is one
/// system call (0.8–1.2 µs in that VM), so it adds under 1 % to a request's CPU time.
inline constexpr unsigned completions_per_checkpoint = 16;

/// Reads the calling thread's CPU time (clock_gettime(2), CLOCK_THREAD_CPUTIME_ID) and returns
/// it, in nanoseconds since the thread started (zero if the clock cannot be read).
///
/// Why it is read: the read makes Linux account the thread's running time up to now
/// (task_sched_runtime() → update_curr()), and a slice found used up ends on the return to
/// user space. Otherwise a thread that never sleeps, on a kernel that does not preempt a busy
/// task between timer interrupts (preempt=none or voluntary, the default of Debian's and most
/// distributions' kernels), is checked only at the next scheduler tick: up to 4 ms at
/// HZ=250 (Debian's), while EEVDF's slice is 0.7 ms × (1 + log2 min(CPUs, 8)) on Linux 6.15
/// and later, 1.4 ms on 2 CPUs. HAProxy reads the same clock in its poll loop; it is why a client
/// sharing a CPU with HAProxy waited at most ~1.6 ms, with sluice before this up to 5 ms.
std::chrono::nanoseconds read_thread_cpu_time() noexcept;

/// Checkpoints taken on the calling thread so far.
std::uint64_t taken_on_this_thread() noexcept;

namespace detail {
/// The completions counted on this thread since its last checkpoint.
inline thread_local unsigned completions = 0;
/// Takes a checkpoint (read_thread_cpu_time()) and counts it.
void take() noexcept;
}  // namespace detail

/// Counts one I/O completion handled on the calling thread; every
/// completions_per_checkpoint-th takes a checkpoint (read_thread_cpu_time()). Returns true
/// when it took one. Called by deadline_stream after each completion handler, scheduled or
/// inline: the client's reads and writes, and the upstreams' when they wait for the socket.
inline bool after_completion() noexcept {
    if (++detail::completions < completions_per_checkpoint)
        return false;
    detail::completions = 0;
    detail::take();
    return true;
}

}  // namespace sluice::slice_checkpoint
