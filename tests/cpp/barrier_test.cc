// tests/cpp/barrier_test.cc: the barriers and send slots of
// core/include/xchannels/detail/barrier.h, seen through channels: the barrier
// mode, no lost wake-ups, per-thread send slots, and close() after fork().
// CTest runs this suite twice, once with XCHANNELS_SYMMETRIC_BARRIERS=1.
#include "xchannels/channel.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "xchannels/detail/barrier.h"

namespace xchannels {

namespace {

using testing_util::kForever;
using testing_util::kScale;

// The barrier mode (detail/barrier.h) follows the environment: CTest runs
// this suite and the channel suites twice, once with
// XCHANNELS_SYMMETRIC_BARRIERS=1, so both the membarrier pairing and the
// fence fallback are exercised.
TEST(Barriers, ModeFollowsEnvironment) {
  auto ch = Channel<int64_t>::Create();  // settles the mode
  const char* env = std::getenv("XCHANNELS_SYMMETRIC_BARRIERS");
  if (env != nullptr && std::string(env) == "1") {
    EXPECT_FALSE(detail::AsymmetricBarriers());
  } else {
    const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0u, 0);
    const bool available =
        cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0;
    EXPECT_EQ(detail::AsymmetricBarriers(), available);
  }
}

// Receivers that park on every item (the sender pauses so their spin runs
// out) must each be woken: a lost wake-up would leave a receiver asleep with
// an item queued, and the deadline below would catch it.
TEST(Barriers, NoLostWakeUpWhenReceiversPark) {
  for (size_t cap : {size_t{0}, size_t{1}}) {
    auto ping = Channel<int64_t>::Create(cap);
    auto pong = Channel<int64_t>::Create(cap);
    const int64_t rounds = 3000 / kScale;
    std::thread echo([&] {
      int64_t v;
      while (ping->recv(v, Clock::now() + std::chrono::seconds(20)) ==
             OpStatus::kOk) {
        if (v % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(30));
        ASSERT_EQ(pong->send(v, kForever), OpStatus::kOk);
      }
    });
    for (int64_t i = 0; i < rounds; ++i) {
      int64_t v = i, out = -1;
      if (i % 5 == 0) std::this_thread::sleep_for(std::chrono::microseconds(30));
      ASSERT_EQ(ping->send(v, kForever), OpStatus::kOk);
      ASSERT_EQ(pong->recv(out, Clock::now() + std::chrono::seconds(20)),
                OpStatus::kOk)
          << "round " << i << ", capacity " << cap;
      ASSERT_EQ(out, i);
    }
    ping->close();
    echo.join();
  }
}

// Send slots are per thread and reused after a thread exits: many
// short-lived sender threads neither leak slots nor confuse close().
TEST(Barriers, ShortLivedSenderThreads) {
  auto ch = Channel<int64_t>::Create();
  const int threads = 200 / kScale + 2;
  for (int t = 0; t < threads; ++t) {
    std::thread([&] {
      int64_t v = t;
      EXPECT_EQ(ch->send(v, kForever), OpStatus::kOk);
    }).join();
  }
  ch->close();  // returns: no exited thread's slot still names the channel
  int64_t out, n = 0;
  while (ch->recv(out, kForever) == OpStatus::kOk) ++n;
  EXPECT_EQ(n, threads);
}

// fork() while another thread keeps sending: in the child that thread is
// gone, possibly caught inside a send; close() there must not wait for it.
TEST(Barriers, CloseInForkChildDoesNotWaitForVanishedSenders) {
  auto ch = Channel<int64_t>::Create();
  std::atomic<bool> stop{false};
  std::thread spammer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      int64_t v = 1;
      ch->send(v, kForever);
      int64_t out;
      ch->try_recv(out);  // keep the queue short
    }
  });
  for (int i = 0; i < 10; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(10);  // a hang becomes a SIGALRM death
      ch->close();
      int64_t v = 2;
      _exit(ch->send(v, kForever) == OpStatus::kClosed ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child died of signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ASSERT_EQ(WEXITSTATUS(status), 0);
  }
  stop.store(true);
  spammer.join();
}

}  // namespace
}  // namespace xchannels
