// slice_checkpoint: the count of I/O completions between two reads of the thread's CPU clock,
// and deadline_stream's completions driving it. Each test runs on a fresh thread, whose
// counters start at zero.
#include "core/slice_checkpoint.hpp"

#include <time.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "core/deadline_stream.hpp"

namespace sluice {
namespace {

namespace net = boost::asio;
using net::ip::tcp;
namespace sc = slice_checkpoint;

// Runs `f` on a thread of its own (fresh thread_local counters) and waits for it.
template <class F>
void on_fresh_thread(F f) {
    std::thread t(f);
    t.join();
}

std::chrono::nanoseconds raw_thread_cpu_time() {
    timespec ts{};
    EXPECT_EQ(::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

TEST(SliceCheckpoint, ReadsTheCallingThreadsCpuClock) {
    on_fresh_thread([] {
        // Spin until the thread has used some CPU, so that the reading cannot be a zero.
        const auto start = raw_thread_cpu_time();
        volatile std::uint64_t sink = 0;
        while (raw_thread_cpu_time() - start < std::chrono::microseconds{200})
            sink = sink + 1;
        const auto before = raw_thread_cpu_time();
        const auto read = sc::read_thread_cpu_time();
        const auto after = raw_thread_cpu_time();
        EXPECT_GT(read.count(), 0);
        EXPECT_LE(before, read);
        EXPECT_LE(read, after);
    });
}

TEST(SliceCheckpoint, TakesOneEverySixteenthCompletion) {
    ASSERT_EQ(sc::completions_per_checkpoint, 16u);
    on_fresh_thread([] {
        std::vector<int> taken_at;
        for (int i = 1; i <= 40; ++i)
            if (sc::after_completion())
                taken_at.push_back(i);
        EXPECT_EQ(taken_at, (std::vector<int>{16, 32}));
        EXPECT_EQ(sc::taken_on_this_thread(), 2u);
    });
}

TEST(SliceCheckpoint, CountsPerThread) {
    on_fresh_thread([] {
        for (unsigned i = 0; i < sc::completions_per_checkpoint - 1; ++i)
            EXPECT_FALSE(sc::after_completion());
        // Another thread's completions do not bring this thread's checkpoint closer.
        on_fresh_thread([] {
            for (unsigned i = 0; i < sc::completions_per_checkpoint - 1; ++i)
                EXPECT_FALSE(sc::after_completion());
            EXPECT_EQ(sc::taken_on_this_thread(), 0u);
        });
        EXPECT_TRUE(sc::after_completion());
        EXPECT_EQ(sc::taken_on_this_thread(), 1u);
    });
}

// Every completion of a deadline_stream operation counts, whether it went through the
// scheduler (reads) or completed inside the call (a write the socket takes at once).
TEST(SliceCheckpoint, DeadlineStreamCompletionsDriveIt) {
    on_fresh_thread([] {
        net::io_context ioc;
        tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        tcp::socket client(ioc);
        client.connect(acceptor.local_endpoint());
        tcp::socket peer = acceptor.accept();
        deadline_stream stream(std::move(client));

        int reads = 0, writes = 0;
        char byte = 0;
        // 12 reads of one byte each, then 20 one-byte writes: 32 completions, two checkpoints.
        std::function<void()> read_one = [&] {
            stream.async_read_some(net::buffer(&byte, 1),
                                   [&](boost::system::error_code ec, std::size_t) {
                                       ASSERT_FALSE(ec) << ec.message();
                                       if (++reads < 12)
                                           read_one();
                                   });
        };
        net::write(peer, net::buffer(std::string(12, 'x')));
        read_one();
        ioc.run();
        ASSERT_EQ(reads, 12);
        EXPECT_EQ(sc::taken_on_this_thread(), 0u);

        for (int i = 0; i < 20; ++i)
            stream.async_write_some(net::buffer("y", 1),
                                    [&](boost::system::error_code ec, std::size_t n) {
                                        ASSERT_FALSE(ec) << ec.message();
                                        writes += static_cast<int>(n);
                                    });
        ioc.restart();
        ioc.run();
        ASSERT_EQ(writes, 20);
        EXPECT_EQ(sc::taken_on_this_thread(), 2u);
    });
}

}  // namespace
}  // namespace sluice
