// tests/cpp/select_test.cc: Select over several channels of mixed flavors.
#include "xchannels/select.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <thread>
#include <vector>

#include "xchannels/channel.h"
#include "test_util.h"

namespace xchannels {

namespace {

using std::chrono::milliseconds;
using Ch = Channel<int64_t>;

using testing_util::kScale;

using testing_util::kForever;

// Three channels: unbounded, bounded(1), bounded(16).
struct Three {
  std::array<Ref<Ch>, 3> refs{Ch::Create(0), Ch::Create(1), Ch::Create(16)};
  std::array<Ch*, 3> ptrs{refs[0].get(), refs[1].get(), refs[2].get()};
  std::span<Ch* const> span() const { return ptrs; }
};

TEST(Select, SelectReady) {
  Three t;
  int64_t v = 5;
  ASSERT_EQ(t.refs[1]->send(v, kForever), OpStatus::kOk);
  size_t index = 99;
  int64_t out = 0;
  EXPECT_EQ(Select<int64_t>(t.span(), &index, out, kForever), OpStatus::kOk);
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(out, 5);
  // Nothing left: a past deadline gives kEmpty at once.
  EXPECT_EQ(Select<int64_t>(t.span(), &index, out, Clock::now()),
            OpStatus::kEmpty);
}

TEST(Select, SelectWakes) {
  for (size_t target = 0; target < 3; ++target) {
    Three t;
    size_t index = 99;
    int64_t out = 0;
    OpStatus st = OpStatus::kEmpty;
    std::thread waiter([&] { st = Select<int64_t>(t.span(), &index, out, kForever); });
    std::this_thread::sleep_for(milliseconds(20));
    int64_t v = 40 + static_cast<int64_t>(target);
    const auto sent_at = Clock::now();
    ASSERT_EQ(t.refs[target]->send(v, kForever), OpStatus::kOk);
    waiter.join();
    EXPECT_LT(Clock::now() - sent_at, milliseconds(500));
    EXPECT_EQ(st, OpStatus::kOk);
    EXPECT_EQ(index, target);
    EXPECT_EQ(out, v);
  }
}

TEST(Select, SelectFair) {
  // Every channel always has items: no channel may starve.
  std::array<Ref<Ch>, 3> refs{Ch::Create(0), Ch::Create(0), Ch::Create(0)};
  std::array<Ch*, 3> ptrs{refs[0].get(), refs[1].get(), refs[2].get()};
  constexpr int kRounds = 300;
  for (auto& r : refs) {
    for (int i = 0; i < kRounds; ++i) {
      int64_t v = i;
      ASSERT_EQ(r->send(v, kForever), OpStatus::kOk);
    }
  }
  std::array<int, 3> hits{};
  for (int i = 0; i < kRounds; ++i) {
    size_t index;
    int64_t out;
    ASSERT_EQ(Select<int64_t>(std::span<Ch* const>(ptrs), &index, out, kForever),
              OpStatus::kOk);
    ++hits[index];
  }
  for (int h : hits) EXPECT_GE(h, kRounds / 3 / 2);
}

TEST(Select, SelectTimeout) {
  Three t;
  size_t index;
  int64_t out;
  for (int ms : {0, 1, 30}) {
    const auto t0 = Clock::now();
    EXPECT_EQ(Select<int64_t>(t.span(), &index, out, t0 + milliseconds(ms)),
              OpStatus::kEmpty);
    const auto elapsed = Clock::now() - t0;
    EXPECT_GE(elapsed, milliseconds(ms));
    EXPECT_LT(elapsed, milliseconds(ms + 400));
  }
}

TEST(Select, SelectAllClosed) {
  Three t;
  int64_t v = 9;
  ASSERT_EQ(t.refs[2]->send(v, kForever), OpStatus::kOk);
  t.refs[0]->close();
  t.refs[2]->close();
  size_t index;
  int64_t out;
  // Closed channel 2 still has an item: drained first.
  EXPECT_EQ(Select<int64_t>(t.span(), &index, out, kForever), OpStatus::kOk);
  EXPECT_EQ(index, 2u);
  EXPECT_EQ(out, 9);
  // Channel 1 is open: closed ones are skipped and the call times out.
  EXPECT_EQ(Select<int64_t>(t.span(), &index, out, Clock::now() + milliseconds(5)),
            OpStatus::kEmpty);
  // A blocked Select wakes when the last open channel closes.
  OpStatus st = OpStatus::kOk;
  std::thread waiter([&] { st = Select<int64_t>(t.span(), &index, out, kForever); });
  std::this_thread::sleep_for(milliseconds(20));
  t.refs[1]->close();
  waiter.join();
  EXPECT_EQ(st, OpStatus::kClosed);
  EXPECT_EQ(Select<int64_t>(t.span(), &index, out, kForever), OpStatus::kClosed);
}

TEST(Select, SelectInterrupted) {
  testing_util::SignalHandler handler;
  Three t;
  size_t index;
  int64_t out;
  EXPECT_EQ(testing_util::SignalUntilDone([&] {
              return Select<int64_t>(t.span(), &index, out, kForever, true);
            }),
            OpStatus::kInterrupted);
}

TEST(Select, SelectDuplicateChannel) {
  auto ch = Ch::Create(0);
  std::array<Ch*, 2> ptrs{ch.get(), ch.get()};
  size_t index;
  int64_t out;
  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(10));
    int64_t v = 3;
    ch->send(v, kForever);
  });
  EXPECT_EQ(Select<int64_t>(std::span<Ch* const>(ptrs), &index, out, kForever),
            OpStatus::kOk);
  EXPECT_EQ(out, 3);
  sender.join();
}

// Receivers and Selects mixed over three flavors: every item seen once.
TEST(Select, SelectMpmc) {
  Three t;
  constexpr int kProducers = 3;
  const int64_t per_producer = 20000 / kScale;
  std::vector<std::atomic<uint8_t>> seen(kProducers * per_producer);
  std::barrier start(kProducers + 4);
  std::atomic<int> producers_left{kProducers};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      start.arrive_and_wait();
      for (int64_t i = 0; i < per_producer; ++i) {
        int64_t v = (int64_t{p} << 32) | i;
        // Spread over the channels, producer p favoring channel p.
        const size_t c = (i % 4 == 0) ? (p + 1) % 3 : p;
        ASSERT_EQ(t.refs[c]->send(v, kForever), OpStatus::kOk);
      }
      if (producers_left.fetch_sub(1) == 1) {
        for (auto& r : t.refs) r->close();
      }
    });
  }
  auto record = [&](int64_t out) {
    const int p = static_cast<int>(out >> 32);
    const int64_t i = out & 0xffffffff;
    ASSERT_LT(p, kProducers);
    EXPECT_EQ(seen[p * per_producer + i].fetch_add(1), 0) << "duplicate";
  };
  for (int s = 0; s < 2; ++s) {  // two selecting consumers
    threads.emplace_back([&] {
      start.arrive_and_wait();
      size_t index;
      int64_t out;
      while (Select<int64_t>(t.span(), &index, out, kForever) == OpStatus::kOk) {
        record(out);
      }
    });
  }
  for (int c = 0; c < 2; ++c) {  // two plain receivers, on channels 0 and 1
    threads.emplace_back([&, c] {
      start.arrive_and_wait();
      int64_t out;
      while (t.refs[c]->recv(out, kForever) == OpStatus::kOk) record(out);
    });
  }
  for (auto& th : threads) th.join();
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace xchannels
