// tests/cpp/channel_test.cc: the conformance suite run over every channel
// flavor (unbounded, bounded(1), bounded(16)), with crossbeam's test names.
#include "xchannels/channel.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "xchannels/registry.h"

namespace xchannels {

namespace {

using std::chrono::milliseconds;

using testing_util::kScale;

using testing_util::In;
using testing_util::g_signals;
using testing_util::SignalHandler;
using testing_util::SignalUntilDone;
using testing_util::kForever;

using testing_util::Flavors;
using testing_util::FlavorNames;

template <class F>
class ChannelTest : public ::testing::Test {
 protected:
  static constexpr size_t kCap = F::kCapacity;
  template <class T = int64_t>
  static Ref<Channel<T>> Make() {
    return Channel<T>::Create(kCap);
  }
};
TYPED_TEST_SUITE(ChannelTest, Flavors, FlavorNames);

TYPED_TEST(ChannelTest, Smoke) {
  auto ch = this->Make();
  int64_t v = 7;
  EXPECT_EQ(ch->send(v, kForever), OpStatus::kOk);
  int64_t out = 0;
  EXPECT_EQ(ch->recv(out, kForever), OpStatus::kOk);
  EXPECT_EQ(out, 7);
  EXPECT_EQ(ch->try_recv(out), OpStatus::kEmpty);
  v = 8;
  EXPECT_EQ(ch->try_send(v), OpStatus::kOk);
  EXPECT_EQ(ch->try_recv(out), OpStatus::kOk);
  EXPECT_EQ(out, 8);
  EXPECT_FALSE(ch->closed());
  EXPECT_GE(ch->id(), 1u);
}

TYPED_TEST(ChannelTest, Capacity) {
  auto ch = this->Make();
  EXPECT_EQ(ch->capacity(), this->kCap);
  const size_t n = this->kCap == 0 ? 1000 : this->kCap;
  for (size_t i = 0; i < n; ++i) {
    int64_t v = static_cast<int64_t>(i);
    ASSERT_EQ(ch->try_send(v), OpStatus::kOk) << i;
  }
  EXPECT_EQ(ch->size(), n);
  if (this->kCap != 0) {
    int64_t v = -1;
    EXPECT_EQ(ch->try_send(v), OpStatus::kFull);
    EXPECT_EQ(ch->send(v, In(milliseconds(1))), OpStatus::kFull);
  }
  int64_t out;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(ch->try_recv(out), OpStatus::kOk);
    EXPECT_EQ(out, static_cast<int64_t>(i));  // FIFO from one producer
  }
  EXPECT_EQ(ch->size(), 0u);
}

TYPED_TEST(ChannelTest, TryRecvEmpty) {
  auto ch = this->template Make<std::unique_ptr<int>>();
  auto out = std::make_unique<int>(3);
  EXPECT_EQ(ch->try_recv(out), OpStatus::kEmpty);
  ASSERT_NE(out, nullptr);  // untouched
  EXPECT_EQ(*out, 3);
}

TYPED_TEST(ChannelTest, TrySendFull) {
  if (this->kCap == 0) GTEST_SKIP() << "unbounded channels are never full";
  auto ch = this->template Make<std::unique_ptr<int>>();
  for (size_t i = 0; i < this->kCap; ++i) {
    auto v = std::make_unique<int>(static_cast<int>(i));
    ASSERT_EQ(ch->try_send(v), OpStatus::kOk);
    EXPECT_EQ(v, nullptr);  // moved-from on kOk
  }
  auto v = std::make_unique<int>(99);
  EXPECT_EQ(ch->try_send(v), OpStatus::kFull);
  ASSERT_NE(v, nullptr);  // untouched on failure
  EXPECT_EQ(*v, 99);
  std::unique_ptr<int> out;
  ASSERT_EQ(ch->try_recv(out), OpStatus::kOk);
  EXPECT_EQ(ch->try_send(v), OpStatus::kOk);
}

TYPED_TEST(ChannelTest, CloseWakesReceiver) {
  auto ch = this->Make();
  constexpr int kThreads = 4;
  std::atomic<int> started{0};
  std::vector<OpStatus> results(kThreads, OpStatus::kOk);
  std::vector<Clock::time_point> woke(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      started.fetch_add(1);
      int64_t out;
      results[i] = ch->recv(out, kForever);
      woke[i] = Clock::now();
    });
  }
  while (started.load() < kThreads) std::this_thread::yield();
  std::this_thread::sleep_for(milliseconds(50));  // let them park
  const auto closed_at = Clock::now();
  ch->close();
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(results[i], OpStatus::kClosed);
    // "Within milliseconds"; generous for a loaded 2-core box.
    EXPECT_LT(woke[i] - closed_at, milliseconds(500));
  }
}

TYPED_TEST(ChannelTest, CloseWakesSender) {
  if (this->kCap == 0) GTEST_SKIP() << "unbounded senders never wait";
  auto ch = this->Make();
  for (size_t i = 0; i < this->kCap; ++i) {
    int64_t v = 1;
    ASSERT_EQ(ch->try_send(v), OpStatus::kOk);
  }
  constexpr int kThreads = 4;
  std::atomic<int> started{0};
  std::vector<OpStatus> results(kThreads, OpStatus::kOk);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      started.fetch_add(1);
      int64_t v = 2;
      results[i] = ch->send(v, kForever);
    });
  }
  while (started.load() < kThreads) std::this_thread::yield();
  std::this_thread::sleep_for(milliseconds(50));
  const auto closed_at = Clock::now();
  ch->close();
  for (auto& t : threads) t.join();
  EXPECT_LT(Clock::now() - closed_at, milliseconds(500));
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(results[i], OpStatus::kClosed);
  // The items sent before close are still there.
  int64_t out;
  for (size_t i = 0; i < this->kCap; ++i) {
    EXPECT_EQ(ch->try_recv(out), OpStatus::kOk);
    EXPECT_EQ(out, 1);
  }
  EXPECT_EQ(ch->try_recv(out), OpStatus::kClosed);
}

TYPED_TEST(ChannelTest, CloseDrains) {
  auto ch = this->Make();
  const size_t n = this->kCap == 0 ? 100 : this->kCap;
  for (size_t i = 0; i < n; ++i) {
    int64_t v = static_cast<int64_t>(i);
    ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  }
  ch->close();
  ch->close();  // idempotent
  EXPECT_TRUE(ch->closed());
  int64_t v = -1;
  EXPECT_EQ(ch->try_send(v), OpStatus::kClosed);
  EXPECT_EQ(ch->send(v, kForever), OpStatus::kClosed);
  EXPECT_EQ(v, -1);
  int64_t out;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(ch->recv(out, kForever), OpStatus::kOk);
    EXPECT_EQ(out, static_cast<int64_t>(i));
  }
  EXPECT_EQ(ch->recv(out, kForever), OpStatus::kClosed);
  EXPECT_EQ(ch->try_recv(out), OpStatus::kClosed);
  EXPECT_EQ(ch->recv(out, In(milliseconds(10))), OpStatus::kClosed);
}

TYPED_TEST(ChannelTest, Spsc) {
  auto ch = this->Make();
  const int64_t n = 100000 / kScale;
  std::thread producer([&] {
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = i;
      ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
    }
    ch->close();
  });
  int64_t expected = 0, out;
  while (ch->recv(out, kForever) == OpStatus::kOk) {
    ASSERT_EQ(out, expected);
    ++expected;
  }
  producer.join();
  EXPECT_EQ(expected, n);
}

TYPED_TEST(ChannelTest, Mpmc) {
  auto ch = this->Make();
  constexpr int kProducers = 4, kConsumers = 4;
  const int64_t per_producer = 20000 / kScale;
  std::vector<std::atomic<uint8_t>> seen(kProducers * per_producer);
  std::barrier start(kProducers + kConsumers);
  std::atomic<int> producers_left{kProducers};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      start.arrive_and_wait();
      for (int64_t i = 0; i < per_producer; ++i) {
        int64_t v = (int64_t{p} << 32) | i;
        ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
      }
      if (producers_left.fetch_sub(1) == 1) ch->close();
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      std::vector<int64_t> last(kProducers, -1);
      int64_t out;
      while (ch->recv(out, kForever) == OpStatus::kOk) {
        const int p = static_cast<int>(out >> 32);
        const int64_t i = out & 0xffffffff;
        ASSERT_LT(p, kProducers);
        EXPECT_GT(i, last[p]) << "FIFO per producer broken";
        last[p] = i;
        EXPECT_EQ(seen[p * per_producer + i].fetch_add(1), 0) << "duplicate";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

TYPED_TEST(ChannelTest, StressOneshot) {
  const int rounds = 2000 / kScale;
  for (int r = 0; r < rounds; ++r) {
    auto ch = this->Make();
    std::thread sender([&] {
      int64_t v = r;
      EXPECT_EQ(ch->send(v, kForever), OpStatus::kOk);
    });
    int64_t out;
    ASSERT_EQ(ch->recv(out, kForever), OpStatus::kOk);
    EXPECT_EQ(out, r);
    sender.join();
  }
}

struct Payload {
  static inline std::atomic<int> drops{0};
  ~Payload() { drops.fetch_add(1); }
};

TYPED_TEST(ChannelTest, DropsAll) {
  Payload::drops = 0;
  const size_t registered = Registry::Global().size();
  const int n = this->kCap == 0 ? 500 : static_cast<int>(this->kCap);
  {
    auto ch = this->template Make<std::unique_ptr<Payload>>();
    for (int i = 0; i < n; ++i) {
      auto v = std::make_unique<Payload>();
      ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
    }
    std::unique_ptr<Payload> out;
    ASSERT_EQ(ch->try_recv(out), OpStatus::kOk);
    out.reset();
    EXPECT_EQ(Payload::drops.load(), 1);
    EXPECT_EQ(Registry::Global().size(), registered + 1);
  }
  EXPECT_EQ(Payload::drops.load(), n);
  EXPECT_EQ(Registry::Global().size(), registered);
}

// Sends racing close: every send that returned kOk is received; none lost.
TYPED_TEST(ChannelTest, CloseRacesSend) {
  const int rounds = 300 / kScale;
  constexpr int kSenders = 3;
  for (int r = 0; r < rounds; ++r) {
    auto ch = this->Make();
    std::atomic<int64_t> sent_ok{0};
    std::barrier start(kSenders + 2);
    std::vector<std::thread> threads;
    for (int s = 0; s < kSenders; ++s) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (;;) {
          int64_t v = 1;
          const OpStatus st = ch->send(v, kForever);
          if (st != OpStatus::kOk) {
            EXPECT_EQ(st, OpStatus::kClosed);
            EXPECT_EQ(v, 1);
            return;
          }
          sent_ok.fetch_add(1);
        }
      });
    }
    int64_t received = 0;
    threads.emplace_back([&] {
      start.arrive_and_wait();
      int64_t out;
      OpStatus st;
      while ((st = ch->recv(out, kForever)) == OpStatus::kOk) ++received;
      EXPECT_EQ(st, OpStatus::kClosed);
    });
    start.arrive_and_wait();
    std::this_thread::sleep_for(std::chrono::microseconds(r % 7 * 50));
    ch->close();
    for (auto& t : threads) t.join();
    ASSERT_EQ(received, sent_ok.load()) << "round " << r;
  }
}

// ---- interruptible waits ---------------------------------------------------

TYPED_TEST(ChannelTest, Interrupted) {
  SignalHandler handler;
  auto ch = this->Make();
  int64_t out = 0;
  EXPECT_EQ(SignalUntilDone([&] { return ch->recv(out, kForever, true); }),
            OpStatus::kInterrupted);
  EXPECT_EQ(SignalUntilDone(
                [&] { return ch->recv(out, In(milliseconds(10000)), true); }),
            OpStatus::kInterrupted);

  // Not interruptible: keeps waiting through signals, then gets the item.
  std::atomic<bool> done{false};
  OpStatus result = OpStatus::kEmpty;
  std::thread t([&] {
    result = ch->recv(out, kForever, false);
    done.store(true);
  });
  // Deliver 5 signals one at a time (pending signals of one kind coalesce,
  // so wait for each handler run before sending the next).
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    const int before = g_signals.load();
    const auto give_up = Clock::now() + std::chrono::seconds(5);
    pthread_kill(t.native_handle(), SIGUSR1);
    while (g_signals.load() == before && Clock::now() < give_up) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  EXPECT_FALSE(done.load());
  int64_t v = 42;
  ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
  t.join();
  EXPECT_EQ(result, OpStatus::kOk);
  EXPECT_EQ(out, 42);

  if (this->kCap != 0) {  // a full bounded channel: send is interruptible too
    for (size_t i = 0; i < this->kCap; ++i) {
      int64_t w = 1;
      ASSERT_EQ(ch->try_send(w), OpStatus::kOk);
    }
    int64_t w = 5;
    EXPECT_EQ(SignalUntilDone([&] { return ch->send(w, kForever, true); }),
              OpStatus::kInterrupted);
    EXPECT_EQ(w, 5);
  }
}

// A signal that lands just before an interruptible wait starts interrupts
// no system call: the wait must still return to its caller (who looks at
// its signal flags) within detail::kSignalRecheck, with nothing lost.
TYPED_TEST(ChannelTest, InterruptibleWaitReturnsAtTheRecheck) {
  auto ch = this->Make();
  int64_t out = 0;
  auto t0 = Clock::now();
  EXPECT_EQ(ch->recv(out, kForever, true), OpStatus::kInterrupted);
  auto took = Clock::now() - t0;
  EXPECT_GE(took, detail::kSignalRecheck - milliseconds(5));
  EXPECT_LT(took, detail::kSignalRecheck + milliseconds(2000));
  // A deadline before the re-check is a plain timeout.
  EXPECT_EQ(ch->recv(out, In(milliseconds(20)), true), OpStatus::kEmpty);
  // Not interruptible: no re-check, the deadline decides.
  t0 = Clock::now();
  EXPECT_EQ(ch->recv(out, In(detail::kSignalRecheck + milliseconds(150)), false),
            OpStatus::kEmpty);
  EXPECT_GE(Clock::now() - t0, detail::kSignalRecheck + milliseconds(145));
  // An item sent while a re-checking receiver sleeps reaches it.
  std::thread sender([&] {
    std::this_thread::sleep_for(detail::kSignalRecheck + milliseconds(100));
    int64_t v = 7;
    EXPECT_EQ(ch->send(v, kForever), OpStatus::kOk);
  });
  OpStatus st;
  int rounds = 0;
  while ((st = ch->recv(out, In(std::chrono::seconds(10)), true)) ==
         OpStatus::kInterrupted) {
    ++rounds;
  }
  sender.join();
  EXPECT_EQ(st, OpStatus::kOk);
  EXPECT_EQ(out, 7);
  EXPECT_GE(rounds, 1);
  EXPECT_EQ(ch->try_recv(out), OpStatus::kEmpty);
}

// ---- timeouts, table-driven --------------------------------------------------

struct TimeoutCase {
  size_t capacity;
  int timeout_ms;  // negative: a deadline already in the past
  friend std::ostream& operator<<(std::ostream& os, const TimeoutCase& c) {
    return os << "{capacity=" << c.capacity << ", timeout_ms=" << c.timeout_ms
              << "}";
  }
};

std::string TimeoutName(const ::testing::TestParamInfo<TimeoutCase>& info) {
  const int t = info.param.timeout_ms;
  return "Cap" + std::to_string(info.param.capacity) + "_" +
         (t < 0 ? "Past" + std::to_string(-t) : std::to_string(t)) + "ms";
}

// Elapsed must be >= the timeout and not wildly over it (generous bound).
constexpr milliseconds kSlack(400);

class RecvTimeout : public ::testing::TestWithParam<TimeoutCase> {};

TEST_P(RecvTimeout, WaitsUntilDeadline) {
  const TimeoutCase c = GetParam();
  auto ch = Channel<int64_t>::Create(c.capacity);
  int64_t out = 0;
  const auto t0 = Clock::now();
  const Deadline d = t0 + milliseconds(c.timeout_ms);
  EXPECT_EQ(ch->recv(out, d), OpStatus::kEmpty);
  const auto elapsed = Clock::now() - t0;
  EXPECT_GE(elapsed, milliseconds(std::max(c.timeout_ms, 0)));
  EXPECT_LT(elapsed, milliseconds(std::max(c.timeout_ms, 0)) + kSlack);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RecvTimeout,
    ::testing::Values(TimeoutCase{0, -5}, TimeoutCase{0, 0}, TimeoutCase{0, 1},
                      TimeoutCase{0, 20}, TimeoutCase{0, 100},
                      TimeoutCase{1, 0}, TimeoutCase{1, 20},
                      TimeoutCase{16, -5}, TimeoutCase{16, 20}),
    TimeoutName);

class SendTimeout : public ::testing::TestWithParam<TimeoutCase> {};

TEST_P(SendTimeout, WaitsUntilDeadline) {
  const TimeoutCase c = GetParam();
  auto ch = Channel<int64_t>::Create(c.capacity);
  for (size_t i = 0; i < c.capacity; ++i) {
    int64_t v = 1;
    ASSERT_EQ(ch->try_send(v), OpStatus::kOk);
  }
  int64_t v = 2;
  const auto t0 = Clock::now();
  EXPECT_EQ(ch->send(v, t0 + milliseconds(c.timeout_ms)), OpStatus::kFull);
  const auto elapsed = Clock::now() - t0;
  EXPECT_EQ(v, 2);
  EXPECT_GE(elapsed, milliseconds(std::max(c.timeout_ms, 0)));
  EXPECT_LT(elapsed, milliseconds(std::max(c.timeout_ms, 0)) + kSlack);
}

INSTANTIATE_TEST_SUITE_P(Table, SendTimeout,
                         ::testing::Values(TimeoutCase{1, -5},
                                           TimeoutCase{1, 0},
                                           TimeoutCase{1, 20},
                                           TimeoutCase{16, 1},
                                           TimeoutCase{16, 100}),
                         TimeoutName);

// A receiver whose deadline passes just as an item arrives must not strand
// it: the notification is passed on (regression guard for the timeout exit).
TEST(ChannelRaces, TimeoutRacesSendPassesOn) {
  for (size_t cap : {size_t{0}, size_t{1}, size_t{16}}) {
    auto ch = Channel<int64_t>::Create(cap);
    const int64_t n = 20000 / kScale;
    std::atomic<int64_t> got{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    // Two "impatient" receivers with tiny deadlines, one patient receiver.
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&] {
        int64_t out;
        while (!stop.load()) {
          if (ch->recv(out, Clock::now() + std::chrono::microseconds(20)) ==
              OpStatus::kOk) {
            got.fetch_add(1);
          }
        }
      });
    }
    threads.emplace_back([&] {
      int64_t out;
      while (ch->recv(out, kForever) == OpStatus::kOk) got.fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = i;
      ASSERT_EQ(ch->send(v, kForever), OpStatus::kOk);
      if (i % 64 == 0) std::this_thread::yield();
    }
    stop.store(true);  // impatient receivers leave; the rest is the patient
    // one's. Without pass-on, it could sleep with items queued.
    const auto give_up = Clock::now() + std::chrono::seconds(30);
    while (got.load() < n && Clock::now() < give_up) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    ch->close();
    for (auto& t : threads) t.join();
    EXPECT_EQ(got.load(), n) << "capacity " << cap;
  }
}

TEST(ChannelFromBase, ChecksElementType) {
  Ref<Channel<int64_t>> ch = Channel<int64_t>::Create();
  Ref<ChannelBase> base = Registry::Global().Find(ch->id());
  ASSERT_TRUE(base);
  Ref<ChannelBase> copy = base;
  EXPECT_FALSE(Channel<double>::FromBase(std::move(copy)));
  Ref<Channel<int64_t>> typed = Channel<int64_t>::FromBase(std::move(base));
  EXPECT_EQ(typed.get(), ch.get());
  EXPECT_FALSE(Channel<int64_t>::FromBase(nullptr));
}

}  // namespace
}  // namespace xchannels
