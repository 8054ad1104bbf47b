// tests/cpp/async_test.cc: external waiters (a detail::Waiter whose Parker
// has a detail::Notifier), the waiters behind the asyncio bindings: notify,
// remove-after-notify passes the notification on, close notifies, one
// notification per shared Parker, and no lost wake-up under contention (run
// under TSan too).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
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

using testing_util::In;

// The wait-protocol steps of waiter.h for one external waiter: Arm links a
// detail::Waiter over the given targets (after Rearm), Remove unlinks it
// (true: a target had notified it), PassOn hands notifications on.
struct ExternalBase : detail::Notifier {
  detail::Parker parker;
  std::vector<detail::WaitTarget> targets;
  std::unique_ptr<detail::Waiter> waiter;

  ExternalBase() { parker.notifier = this; }
  void Arm(std::vector<detail::WaitTarget> ts) {
    waiter.reset();
    targets = std::move(ts);
    waiter = std::make_unique<detail::Waiter>(targets, &parker);
    parker.Rearm();
    waiter->Link();
  }
  bool Remove() { return waiter->Unlink(); }
  void PassOn() { waiter->PassOn(); }

 protected:
  ~ExternalBase() = default;
};

// An external waiter that only counts its notifications.
struct CountingWaiter final : ExternalBase {
  std::atomic<int> notifications{0};

  void Notify() noexcept override {
    notifications.fetch_add(1, std::memory_order_relaxed);
  }
  int count() const { return notifications.load(std::memory_order_relaxed); }
  void ArmRecv(Ch& ch) { Arm({ch.recv_target()}); }
  void ArmSend(Ch& ch) { Arm({ch.send_target()}); }
};

// What a notified waiter that leaves does for a target (waiter.h step 7).
void PassOnTarget(const detail::WaitTarget& t) {
  if (t.pass_on != nullptr) t.pass_on(t.owner);
}

// Every test runs over both flavors.
struct Flavor {
  size_t capacity;
  friend std::ostream& operator<<(std::ostream& os, const Flavor& f) {
    return os << (f.capacity == 0 ? "unbounded" : "bounded");
  }
};

class ExternalWaiter : public ::testing::TestWithParam<Flavor> {
 protected:
  Ref<Ch> Make() { return Ch::Create(GetParam().capacity); }
};

INSTANTIATE_TEST_SUITE_P(Flavors, ExternalWaiter,
                         ::testing::Values(Flavor{0}, Flavor{16}),
                         ::testing::PrintToStringParamName());

TEST_P(ExternalWaiter, NotifiedBySend) {
  Ref<Ch> ch = Make();
  CountingWaiter w;
  w.ArmRecv(*ch);
  int64_t v = 0;
  EXPECT_EQ(ch->try_recv(v), OpStatus::kEmpty);  // the re-check
  EXPECT_EQ(w.count(), 0);
  int64_t x = 7;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  EXPECT_EQ(w.count(), 1);
  EXPECT_TRUE(w.Remove());  // a notifier unlinked it
  EXPECT_EQ(ch->try_recv(v), OpStatus::kOk);
  EXPECT_EQ(v, 7);
}

TEST_P(ExternalWaiter, RemoveWithoutNotification) {
  Ref<Ch> ch = Make();
  CountingWaiter w;
  w.ArmRecv(*ch);
  EXPECT_FALSE(w.Remove());
  int64_t x = 1;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  EXPECT_EQ(w.count(), 0);  // no longer linked: nobody told it
}

TEST_P(ExternalWaiter, RearmedWaiterIsNotifiedAgain) {
  Ref<Ch> ch = Make();
  CountingWaiter w;
  for (int64_t i = 0; i < 3; ++i) {
    w.ArmRecv(*ch);
    int64_t x = i;
    ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
    EXPECT_EQ(w.count(), i + 1);
    EXPECT_TRUE(w.Remove());
    int64_t v = -1;
    ASSERT_EQ(ch->try_recv(v), OpStatus::kOk);
    EXPECT_EQ(v, i);
  }
}

// The lost-wake-up rule: a notified waiter that leaves without its item
// (cancelled) passes the notification on to the next external waiter.
TEST_P(ExternalWaiter, RemoveAfterNotifyPassesOnToExternal) {
  Ref<Ch> ch = Make();
  CountingWaiter a, b;
  a.ArmRecv(*ch);
  b.ArmRecv(*ch);
  int64_t x = 1;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  EXPECT_EQ(a.count(), 1);  // FIFO: the first waiter
  EXPECT_EQ(b.count(), 0);
  // a is cancelled: it leaves without taking the item.
  ASSERT_TRUE(a.Remove());
  a.PassOn();
  EXPECT_EQ(b.count(), 1);
  EXPECT_TRUE(b.Remove());
  int64_t v = 0;
  EXPECT_EQ(ch->try_recv(v), OpStatus::kOk);
  // Nothing left: passing on now wakes nobody.
  CountingWaiter c;
  c.ArmRecv(*ch);
  PassOnTarget(ch->recv_target());
  EXPECT_EQ(c.count(), 0);
  EXPECT_FALSE(c.Remove());
}

// ... and to a thread blocked in recv(): without the pass-on it would sleep
// through its whole deadline.
TEST_P(ExternalWaiter, RemoveAfterNotifyPassesOnToBlockedThread) {
  Ref<Ch> ch = Make();
  CountingWaiter a;
  a.ArmRecv(*ch);
  std::atomic<int> got{-1};
  OpStatus status = OpStatus::kInterrupted;
  std::thread t([&] {
    int64_t v = 0;
    status = ch->recv(v, In(milliseconds(20000)));
    got.store(static_cast<int>(v));
  });
  std::this_thread::sleep_for(milliseconds(50));  // let it park behind a
  int64_t x = 42;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  if (a.count() == 1) {  // a was first in line (almost always)
    ASSERT_TRUE(a.Remove());
    a.PassOn();
  } else {
    ASSERT_FALSE(a.Remove());
  }
  t.join();
  EXPECT_EQ(status, OpStatus::kOk);
  EXPECT_EQ(got.load(), 42);
}

TEST_P(ExternalWaiter, CloseNotifiesEveryWaiter) {
  Ref<Ch> ch = Make();
  std::vector<std::unique_ptr<CountingWaiter>> ws;
  for (int i = 0; i < 5; ++i) {
    ws.push_back(std::make_unique<CountingWaiter>());
    ws.back()->ArmRecv(*ch);
  }
  ch->close();
  for (auto& w : ws) {
    EXPECT_EQ(w->count(), 1);
    EXPECT_TRUE(w->Remove());
    int64_t v = 0;
    EXPECT_EQ(ch->try_recv(v), OpStatus::kClosed);
  }
}

TEST(ExternalSendWaiter, NotifiedWhenASlotFrees) {
  Ref<Ch> ch = Ch::Create(1);
  int64_t x = 1;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  CountingWaiter w;
  w.ArmSend(*ch);
  int64_t y = 2;
  EXPECT_EQ(ch->try_send(y), OpStatus::kFull);  // the re-check
  int64_t v = 0;
  ASSERT_EQ(ch->try_recv(v), OpStatus::kOk);
  EXPECT_EQ(w.count(), 1);
  EXPECT_TRUE(w.Remove());
  EXPECT_EQ(ch->try_send(y), OpStatus::kOk);
}

TEST(ExternalSendWaiter, RemoveAfterNotifyPassesOn) {
  Ref<Ch> ch = Ch::Create(1);
  int64_t x = 1;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  CountingWaiter a, b;
  a.ArmSend(*ch);
  b.ArmSend(*ch);
  int64_t v = 0;
  ASSERT_EQ(ch->try_recv(v), OpStatus::kOk);  // one slot frees
  EXPECT_EQ(a.count(), 1);
  EXPECT_EQ(b.count(), 0);
  ASSERT_TRUE(a.Remove());  // a gives up
  a.PassOn();
  EXPECT_EQ(b.count(), 1);
  EXPECT_TRUE(b.Remove());
  int64_t y = 2;
  EXPECT_EQ(ch->try_send(y), OpStatus::kOk);
}

TEST(ExternalSendWaiter, CloseNotifiesSenders) {
  Ref<Ch> ch = Ch::Create(1);
  int64_t x = 1;
  ASSERT_EQ(ch->try_send(x), OpStatus::kOk);
  CountingWaiter s;
  s.ArmSend(*ch);
  CountingWaiter r;  // and a receiver on another channel is untouched
  Ref<Ch> other = Ch::Create(0);
  r.ArmRecv(*other);
  ch->close();
  EXPECT_EQ(s.count(), 1);
  EXPECT_EQ(r.count(), 0);
  EXPECT_TRUE(s.Remove());
  int64_t y = 2;
  EXPECT_EQ(ch->try_send(y), OpStatus::kClosed);
  EXPECT_FALSE(r.Remove());
}

TEST(ExternalSendWaiter, UnboundedNotifiesAtOnce) {
  Ref<Ch> ch = Ch::Create(0);
  CountingWaiter w;
  w.ArmSend(*ch);
  EXPECT_EQ(w.count(), 1);  // notified by Link itself: a send never waits
  EXPECT_FALSE(w.Remove());  // no list, so nothing was linked
  w.PassOn();  // a no-op
  PassOnTarget(ch->send_target());  // likewise
}

// One Parker shared by nodes in two channels (select_async): notified once;
// the second channel's notification goes to the next waiter instead.
TEST(ExternalSelect, SharedParkerIsNotifiedOnce) {
  Ref<Ch> c1 = Ch::Create(0), c2 = Ch::Create(0);
  CountingWaiter sel;  // one Parker, a node in c1 and one in c2
  sel.Arm({c1->recv_target(), c2->recv_target()});
  CountingWaiter other;
  other.ArmRecv(*c2);
  int64_t x = 1, y = 2;
  ASSERT_EQ(c1->try_send(x), OpStatus::kOk);
  ASSERT_EQ(c2->try_send(y), OpStatus::kOk);
  EXPECT_EQ(sel.count(), 1);
  EXPECT_EQ(other.count(), 1);
  // c1's node was notified; c2's was skipped (its Parker already notified)
  // and unlinked by c2's notifier, which then notified `other`.
  EXPECT_TRUE(sel.Remove());
  EXPECT_TRUE(other.Remove());
}

// ---- contention: an "event loop" thread serving external waiters -----------

// A loop: Notify() queues the waiter and wakes the loop thread, as the
// bindings' hub does with its eventfd.
struct Loop {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> ready;  // waiter indices
};

struct LoopWaiter final : ExternalBase {
  Loop* loop = nullptr;
  int index = 0;
  bool done = false;  // loop thread only

  void Notify() noexcept override {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->ready.push_back(index);
    loop->cv.notify_one();
  }
};

// Receives through `n` external waiters until the channel is closed and
// drained; returns how many items they took.
int64_t ServeReceivers(Ch& ch, int n) {
  Loop loop;
  std::vector<std::unique_ptr<LoopWaiter>> ws;
  int64_t got = 0;
  // Arm, re-check; on an item, leave (passing on if notified) and go again.
  auto serve = [&](LoopWaiter& w) {
    for (;;) {
      w.Arm({ch.recv_target()});
      int64_t v = 0;
      OpStatus s = ch.try_recv(v);
      if (s == OpStatus::kEmpty) return;  // armed: wait for Notify
      w.Remove();
      w.PassOn();  // leaving: hand on a notification it did not use
      if (s == OpStatus::kClosed) {
        w.done = true;
        return;
      }
      ++got;
    }
  };
  for (int i = 0; i < n; ++i) {
    ws.push_back(std::make_unique<LoopWaiter>());
    ws.back()->loop = &loop;
    ws.back()->index = i;
  }
  for (auto& w : ws) serve(*w);
  int remaining = n;
  for (auto& w : ws) remaining -= w->done ? 1 : 0;
  while (remaining > 0) {
    std::deque<int> batch;
    {
      std::unique_lock<std::mutex> lock(loop.mu);
      if (!loop.cv.wait_for(lock, std::chrono::seconds(60),
                            [&] { return !loop.ready.empty(); })) {
        ADD_FAILURE() << "lost wake-up: " << remaining << " waiters stuck";
        for (auto& w : ws) {
          if (!w->done) w->Remove();
        }
        return got;
      }
      batch.swap(loop.ready);
    }
    for (int i : batch) {
      LoopWaiter& w = *ws[static_cast<size_t>(i)];
      // A stale entry (notified while serve() was re-checking, which then
      // left and passed the notification on) is harmless: skip or retry.
      if (w.done) continue;
      w.Remove();
      serve(w);  // retrying consumes the notification
      if (w.done) --remaining;
    }
  }
  return got;
}

TEST_P(ExternalWaiter, StressLoopAndThreadsShareTheItems) {
  constexpr int kProducers = 3;
  const int64_t per_producer = 20000 / kScale;
  Ref<Ch> ch = Make();
  std::atomic<int64_t> thread_got{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&] {
      for (int64_t i = 0; i < per_producer; ++i) {
        int64_t v = i;
        ASSERT_EQ(ch->send(v, std::nullopt), OpStatus::kOk);
      }
    });
  }
  std::thread receiver([&] {  // a plain blocking receiver competes
    int64_t v = 0;
    while (ch->recv(v, std::nullopt) == OpStatus::kOk) {
      thread_got.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::thread closer([&] {
    for (auto& t : threads) t.join();
    ch->close();
  });
  const int64_t loop_got = ServeReceivers(*ch, 8);
  closer.join();
  receiver.join();
  EXPECT_EQ(loop_got + thread_got.load(), kProducers * per_producer);
}

TEST(ExternalSendWaiter, StressLoopSendsThreadsReceive) {
  constexpr int kWaiters = 6;
  const int64_t per_waiter = 5000 / kScale;
  Ref<Ch> ch = Ch::Create(2);
  std::atomic<int64_t> received{0};
  std::vector<std::thread> receivers;
  for (int r = 0; r < 2; ++r) {
    receivers.emplace_back([&] {
      int64_t v = 0;
      while (ch->recv(v, std::nullopt) == OpStatus::kOk) {
        received.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  Loop loop;
  std::vector<std::unique_ptr<LoopWaiter>> ws;
  std::vector<int64_t> left(kWaiters, per_waiter);
  for (int i = 0; i < kWaiters; ++i) {
    ws.push_back(std::make_unique<LoopWaiter>());
    ws.back()->loop = &loop;
    ws.back()->index = i;
  }
  // Send until full, then arm and re-check; done when nothing is left.
  auto serve = [&](int i) {
    LoopWaiter& w = *ws[static_cast<size_t>(i)];
    while (left[static_cast<size_t>(i)] > 0) {
      int64_t v = i;
      if (ch->try_send(v) == OpStatus::kOk) {
        --left[static_cast<size_t>(i)];
        continue;
      }
      w.Arm({ch->send_target()});
      v = i;
      OpStatus s = ch->try_send(v);
      if (s == OpStatus::kFull) return;  // armed
      ASSERT_EQ(s, OpStatus::kOk);
      --left[static_cast<size_t>(i)];
      w.Remove();
      w.PassOn();
    }
    w.done = true;
  };
  int remaining = kWaiters;
  for (int i = 0; i < kWaiters; ++i) {
    serve(i);
    if (ws[static_cast<size_t>(i)]->done) --remaining;
  }
  while (remaining > 0) {
    std::deque<int> batch;
    {
      std::unique_lock<std::mutex> lock(loop.mu);
      ASSERT_TRUE(loop.cv.wait_for(lock, std::chrono::seconds(60),
                                   [&] { return !loop.ready.empty(); }))
          << "lost wake-up";
      batch.swap(loop.ready);
    }
    for (int i : batch) {
      if (ws[static_cast<size_t>(i)]->done) continue;  // stale, see above
      ws[static_cast<size_t>(i)]->Remove();
      serve(i);
      if (ws[static_cast<size_t>(i)]->done) --remaining;
    }
  }
  ch->close();
  for (auto& t : receivers) t.join();
  EXPECT_EQ(received.load(), kWaiters * per_waiter);
}

}  // namespace
}  // namespace xchannels
