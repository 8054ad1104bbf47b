// tests/cpp/task_test.cc: queue.Queue's task tracking (task_done, join,
// unfinished_tasks), immediate close (close_and_drop) and counted close
// (close_after), over every channel flavor.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "xchannels/channel.h"

namespace xchannels {
namespace {

using std::chrono::milliseconds;
using testing_util::In;
using testing_util::kScale;
using testing_util::kForever;

using testing_util::Flavors;
using testing_util::FlavorNames;

template <class F>
class TaskTest : public ::testing::Test {
 protected:
  static constexpr size_t kCap = F::kCapacity;
  static Ref<Channel<int64_t>> Make() { return Channel<int64_t>::Create(kCap); }
};
TYPED_TEST_SUITE(TaskTest, Flavors, FlavorNames);

TYPED_TEST(TaskTest, CountsSendsAndTaskDone) {
  auto ch = this->Make();
  EXPECT_EQ(ch->unfinished_tasks(), 0u);
  EXPECT_FALSE(ch->task_done());  // nothing was sent
  EXPECT_EQ(ch->join(kForever), OpStatus::kOk);
  const int n = this->kCap == 0 ? 5 : static_cast<int>(this->kCap);
  for (int i = 0; i < n; ++i) {
    int64_t v = i;
    ASSERT_EQ(ch->try_send(v), OpStatus::kOk);
  }
  EXPECT_EQ(ch->unfinished_tasks(), static_cast<uint64_t>(n));
  if (this->kCap != 0) {  // a refused send counts nothing
    int64_t v = -1;
    EXPECT_EQ(ch->try_send(v), OpStatus::kFull);
    EXPECT_EQ(ch->send(v, In(milliseconds(1))), OpStatus::kFull);
    EXPECT_EQ(ch->unfinished_tasks(), static_cast<uint64_t>(n));
  }
  // Receiving does not finish a task; task_done does, even for an item
  // still queued (as queue.Queue counts).
  int64_t out;
  ASSERT_EQ(ch->try_recv(out), OpStatus::kOk);
  EXPECT_EQ(ch->unfinished_tasks(), static_cast<uint64_t>(n));
  EXPECT_EQ(ch->join(In(milliseconds(5))), OpStatus::kEmpty);
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(ch->task_done());
    EXPECT_EQ(ch->unfinished_tasks(), static_cast<uint64_t>(n - i - 1));
  }
  EXPECT_FALSE(ch->task_done());  // too many: refused, nothing changed
  EXPECT_EQ(ch->unfinished_tasks(), 0u);
  EXPECT_EQ(ch->join(kForever), OpStatus::kOk);
  // Closed: sends refused and uncounted; join still answers.
  ch->close();
  int64_t v = 1;
  EXPECT_EQ(ch->try_send(v), OpStatus::kClosed);
  EXPECT_EQ(ch->unfinished_tasks(), 0u);
  EXPECT_EQ(ch->join(kForever), OpStatus::kOk);
}

TYPED_TEST(TaskTest, JoinWakesOnLastTaskDone) {
  auto ch = this->Make();
  int64_t v = 1;
  ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  constexpr int kJoiners = 3;
  std::atomic<int> returned{0};
  std::vector<std::thread> joiners;
  for (int i = 0; i < kJoiners; ++i) {
    joiners.emplace_back([&] {
      EXPECT_EQ(ch->join(kForever), OpStatus::kOk);
      returned.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(milliseconds(30));
  EXPECT_EQ(returned.load(), 0);
  int64_t out;
  ASSERT_EQ(ch->recv(out, kForever), OpStatus::kOk);
  std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(returned.load(), 0);  // received is not done
  EXPECT_TRUE(ch->task_done());
  for (auto& t : joiners) t.join();
  EXPECT_EQ(returned.load(), kJoiners);
}

TYPED_TEST(TaskTest, JoinInterruptedAndTimedOut) {
  testing_util::SignalHandler handler;
  auto ch = this->Make();
  int64_t v = 1;
  ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  EXPECT_EQ(testing_util::SignalUntilDone(
                [&] { return ch->join(kForever, true); }),
            OpStatus::kInterrupted);
  const auto start = Clock::now();
  EXPECT_EQ(ch->join(In(milliseconds(20))), OpStatus::kEmpty);
  EXPECT_GE(Clock::now() - start, milliseconds(20));
  EXPECT_EQ(ch->unfinished_tasks(), 1u);
}

// Producers, consumers and joiners at once: a joiner that returns after the
// producers finished must see every item processed (the consumer's work
// happens-before its task_done, which happens-before the join's return).
TYPED_TEST(TaskTest, JoinUnderContention) {
  for (int round = 0; round < 5; ++round) {
    auto ch = this->Make();
    constexpr int kProducers = 2, kConsumers = 3;
    const int64_t per = 4000 / kScale;
    const int64_t total = kProducers * per;
    std::atomic<int64_t> processed{0};
    std::atomic<int> producers_left{kProducers};
    std::vector<std::thread> threads;
    for (int p = 0; p < kProducers; ++p) {
      threads.emplace_back([&] {
        for (int64_t i = 0; i < per; ++i) {
          int64_t v = i;
          ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
        }
        producers_left.fetch_sub(1);
      });
    }
    for (int c = 0; c < kConsumers; ++c) {
      threads.emplace_back([&] {
        int64_t out;
        while (ch->recv(out, kForever) == OpStatus::kOk) {
          processed.fetch_add(1, std::memory_order_relaxed);
          ASSERT_TRUE(ch->task_done());
        }
      });
    }
    // Join until the producers are done and a join still returns: then
    // every item must have been processed.
    for (;;) {
      const bool producers_done = producers_left.load() == 0;
      ASSERT_EQ(ch->join(kForever), OpStatus::kOk);
      if (producers_done) break;
    }
    EXPECT_EQ(processed.load(std::memory_order_relaxed), total);
    EXPECT_EQ(ch->unfinished_tasks(), 0u);
    EXPECT_FALSE(ch->task_done());
    ch->close();
    for (auto& t : threads) t.join();
  }
}

// The crawler pattern: a consumer puts follow-up items before it calls
// task_done for the one it took, so the count never touches zero until the
// last generation is processed; join must not return early.
TYPED_TEST(TaskTest, JoinWaitsForFollowUpItems) {
  if (this->kCap == 1) GTEST_SKIP() << "consumers re-put: needs room";
  auto ch = Channel<int64_t>::Create(this->kCap == 0 ? 0 : 1 << 16);
  constexpr int kConsumers = 3;
  constexpr int kSeeds = 8, kDepth = 8 / kScale + 3;
  // Each item of depth d > 0 spawns two of depth d - 1.
  const int64_t expected = kSeeds * ((int64_t{1} << (kDepth + 1)) - 1);
  std::atomic<int64_t> processed{0};
  for (int i = 0; i < kSeeds; ++i) {
    int64_t v = kDepth;
    ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  }
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      int64_t d;
      while (ch->recv(d, kForever) == OpStatus::kOk) {
        for (int k = 0; d > 0 && k < 2; ++k) {
          int64_t child = d - 1;
          ASSERT_EQ(ch->send(child, kForever), OpStatus::kOk);
        }
        processed.fetch_add(1, std::memory_order_relaxed);
        ASSERT_TRUE(ch->task_done());
      }
    });
  }
  ASSERT_EQ(ch->join(kForever), OpStatus::kOk);
  EXPECT_EQ(processed.load(std::memory_order_relaxed), expected);
  ch->close();
  for (auto& t : threads) t.join();
}

// Threads that exit hand their send slot (and its counter cell) to later
// threads: the count stays exact.
TYPED_TEST(TaskTest, CountSurvivesThreadTurnover) {
  auto ch = Channel<int64_t>::Create(this->kCap == 0 ? 0 : 4096);
  constexpr int kThreads = 40, kEach = 10;
  for (int round = 0; round < kThreads / 4; ++round) {
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        for (int k = 0; k < kEach; ++k) {
          int64_t v = k;
          ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(ch->unfinished_tasks(), static_cast<uint64_t>(kThreads * kEach));
  std::thread done([&] {
    for (int i = 0; i < kThreads * kEach; ++i) ASSERT_TRUE(ch->task_done());
  });
  done.join();
  EXPECT_EQ(ch->unfinished_tasks(), 0u);
  EXPECT_FALSE(ch->task_done());
}

TYPED_TEST(TaskTest, CloseAndDropDropsAndFinishes) {
  auto ch = Channel<std::shared_ptr<int>>::Create(this->kCap == 0 ? 0 : 64);
  auto payload = std::make_shared<int>(7);
  for (int i = 0; i < 10; ++i) {
    auto v = payload;
    ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  }
  std::shared_ptr<int> taken;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(ch->try_recv(taken), OpStatus::kOk);
  EXPECT_EQ(payload.use_count(), 2 + 7);  // payload, taken, 7 queued
  EXPECT_EQ(ch->close_and_drop(), 7u);
  EXPECT_EQ(payload.use_count(), 2);  // the dropped items were destroyed
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(ch->size(), 0u);
  EXPECT_EQ(ch->try_recv(taken), OpStatus::kClosed);
  // The three taken are still unfinished: join waits for them.
  EXPECT_EQ(ch->unfinished_tasks(), 3u);
  EXPECT_EQ(ch->join(In(milliseconds(5))), OpStatus::kEmpty);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ch->task_done());
  EXPECT_FALSE(ch->task_done());
  EXPECT_EQ(ch->join(kForever), OpStatus::kOk);
  EXPECT_EQ(ch->close_and_drop(), 0u);  // idempotent
}

// close_and_drop racing blocked receivers, senders and joiners: every one
// wakes with the right status, and joiners return once only the dropped
// items were unfinished.
TYPED_TEST(TaskTest, CloseAndDropWakesEveryWaiter) {
  for (int round = 0; round < 10; ++round) {
    auto empty = this->Make();   // receivers block here
    auto full = this->Make();    // senders block here (bounded)
    const size_t fill = this->kCap == 0 ? 50 : this->kCap;
    for (size_t i = 0; i < fill; ++i) {
      int64_t v = 1;
      ASSERT_EQ(full->try_send(v), OpStatus::kOk);
    }
    std::barrier start(7);
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&] {
        int64_t out;
        start.arrive_and_wait();
        EXPECT_EQ(empty->recv(out, kForever), OpStatus::kClosed);
        ok.fetch_add(1);
      });
      threads.emplace_back([&] {
        int64_t v = 2;
        start.arrive_and_wait();
        const OpStatus s = full->send(v, kForever);
        // Unbounded: the send lands before the drop, or is refused.
        EXPECT_TRUE(s == OpStatus::kClosed ||
                    (this->kCap == 0 && s == OpStatus::kOk))
            << OpStatusName(s);
        ok.fetch_add(1);
      });
      threads.emplace_back([&] {
        start.arrive_and_wait();
        EXPECT_EQ(full->join(kForever), OpStatus::kOk);
        ok.fetch_add(1);
      });
    }
    start.arrive_and_wait();
    std::this_thread::sleep_for(milliseconds(round % 3));
    empty->close_and_drop();
    full->close_and_drop();
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 6);
    EXPECT_EQ(full->unfinished_tasks(), 0u);
    EXPECT_EQ(full->size(), 0u);
  }
}

TYPED_TEST(TaskTest, CloseAfterCountsCloses) {
  auto ch = this->Make();
  EXPECT_FALSE(ch->close_after(0));
  EXPECT_TRUE(ch->close_after(2));
  EXPECT_TRUE(ch->close_after(1));  // adds: three closes now
  EXPECT_EQ(ch->close_pending(), 3u);
  EXPECT_FALSE(ch->counted_close());
  EXPECT_FALSE(ch->counted_close());
  EXPECT_FALSE(ch->closed());
  int64_t v = 1;
  EXPECT_EQ(ch->try_send(v), OpStatus::kOk);
  EXPECT_TRUE(ch->counted_close());
  EXPECT_TRUE(ch->closed());
  EXPECT_TRUE(ch->counted_close());  // idempotent once closed
  EXPECT_FALSE(ch->close_after(1));  // closed: refused
  int64_t out;
  EXPECT_EQ(ch->try_recv(out), OpStatus::kOk);  // still drains
  EXPECT_EQ(ch->try_recv(out), OpStatus::kClosed);

  auto plain = this->Make();  // without close_after: closes at once
  EXPECT_TRUE(plain->counted_close());
  EXPECT_TRUE(plain->closed());
}

// N producers on N threads, each closing when done: the consumer sees
// every item, then kClosed, with no helper thread.
TYPED_TEST(TaskTest, CloseAfterWithConcurrentProducers) {
  for (int round = 0; round < 5; ++round) {
    auto ch = this->Make();
    constexpr int kProducers = 4;
    const int64_t per = 2000 / kScale;
    ASSERT_TRUE(ch->close_after(kProducers));
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&] {
        for (int64_t i = 0; i < per; ++i) {
          int64_t v = i;
          ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
        }
        ch->counted_close();
      });
    }
    int64_t out, got = 0;
    OpStatus s;
    while ((s = ch->recv(out, kForever)) == OpStatus::kOk) ++got;
    EXPECT_EQ(s, OpStatus::kClosed);
    EXPECT_EQ(got, kProducers * per);
    EXPECT_EQ(ch->close_pending(), 0u);
    for (auto& t : producers) t.join();
  }
}

// An external joiner (an event loop's): notified when the count reaches 0.
struct CountingNotifier final : detail::Notifier {
  std::atomic<int> calls{0};
  void Notify() noexcept override { calls.fetch_add(1); }
};

TYPED_TEST(TaskTest, ExternalJoinWaiter) {
  auto ch = this->Make();
  int64_t v = 1;
  ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  CountingNotifier notifier;
  detail::Parker parker;
  parker.notifier = &notifier;
  const detail::WaitTarget target = ch->join_target();
  detail::Waiter waiter(std::span<const detail::WaitTarget>(&target, 1),
                        &parker);
  waiter.Link();
  EXPECT_NE(ch->unfinished_tasks(), 0u);  // the re-check: still waiting
  int64_t out;
  ASSERT_EQ(ch->try_recv(out), OpStatus::kOk);
  EXPECT_EQ(notifier.calls.load(), 0);
  EXPECT_TRUE(ch->task_done());
  EXPECT_EQ(notifier.calls.load(), 1);
  EXPECT_TRUE(waiter.Unlink());  // it had been notified
  waiter.PassOn();               // joiners: nothing to pass on
  EXPECT_EQ(ch->unfinished_tasks(), 0u);

  parker.Rearm();  // not notified: Unlink says so
  waiter.Link();
  EXPECT_FALSE(waiter.Unlink());
  EXPECT_EQ(notifier.calls.load(), 1);
}

}  // namespace
}  // namespace xchannels
