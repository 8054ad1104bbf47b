// tests/cpp/process_channel_test.cc: ProcessChannel (a channel in a shared
// memory segment) within one process, across fork()ed processes, with
// processes killed in the middle of calls, and over a corrupted segment.
// The flat form of Items is tested in flat_form_test.cc.
#include "xchannels/process_channel.h"
#include "xchannels/detail/mutex.h"  // XCHANNELS_TSAN
#include "process_test_util.h"
#include "test_peers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace xchannels {
namespace {

using namespace std::chrono_literals;
using Peer = ProcessChannelTestPeer;  // the raw segment
using namespace process_test_util;  // Make, In, Soon, Fork, Wait, KillAtExit

std::vector<uint8_t> Rec(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}
std::string Str(const RecordBuffer& v) {
  return std::string(v.data(), v.data() + v.size());
}

// A record that checks itself: index, length, a byte pattern from both.
std::vector<uint8_t> Numbered(uint64_t i, size_t len) {
  std::vector<uint8_t> r(std::max<size_t>(len, 16));
  std::memcpy(r.data(), &i, 8);
  const uint64_t n = r.size();
  std::memcpy(r.data() + 8, &n, 8);
  for (size_t k = 16; k < r.size(); ++k) r[k] = static_cast<uint8_t>(i * 31 + k);
  return r;
}
bool Intact(const RecordBuffer& r, uint64_t* index) {
  if (r.size() < 16) return false;
  uint64_t i, n;
  std::memcpy(&i, r.data(), 8);
  std::memcpy(&n, r.data() + 8, 8);
  if (n != r.size()) return false;
  for (size_t k = 16; k < r.size(); ++k) {
    if (r.data()[k] != static_cast<uint8_t>(i * 31 + k)) return false;
  }
  *index = i;
  return true;
}

TEST(ProcessChannelTest, RecordsComeOutInOrderAcrossTheRingsWrap) {
  Ref<ProcessChannel> ch = Make(256);
  RecordBuffer out;
  for (int round = 0; round < 200; ++round) {
    const std::string a(static_cast<size_t>(round % 37), 'a' + round % 26);
    const std::string b(static_cast<size_t>(round % 53), 'A' + round % 26);
    ASSERT_EQ(ch->TrySend(Rec(a)), ShmStatus::kOk);
    ASSERT_EQ(ch->TrySend(Rec(b)), ShmStatus::kOk);
    ASSERT_EQ(ch->size(), 2u);
    ASSERT_EQ(ch->TryRecv(&out), ShmStatus::kOk);
    ASSERT_EQ(Str(out), a);
    ASSERT_EQ(ch->TryRecv(&out), ShmStatus::kOk);
    ASSERT_EQ(Str(out), b);
  }
  EXPECT_EQ(ch->TryRecv(&out), ShmStatus::kEmpty);
}

TEST(ProcessChannelTest, BoundedByBytesAndByItems) {
  Ref<ProcessChannel> bytes = Make(64);
  EXPECT_EQ(bytes->TrySend(std::vector<uint8_t>(57)), ShmStatus::kTooLarge);
  EXPECT_EQ(bytes->TrySend(std::vector<uint8_t>(56)), ShmStatus::kOk);
  EXPECT_EQ(bytes->TrySend(std::vector<uint8_t>(0)), ShmStatus::kFull);
  EXPECT_EQ(bytes->Send(std::vector<uint8_t>(0), In(20ms), false),
            ShmStatus::kFull);

  Ref<ProcessChannel> items = Make(4096, 2);
  EXPECT_EQ(items->TrySend(Rec("a")), ShmStatus::kOk);
  EXPECT_EQ(items->TrySend(Rec("b")), ShmStatus::kOk);
  EXPECT_EQ(items->TrySend(Rec("c")), ShmStatus::kFull);
  RecordBuffer out;
  EXPECT_EQ(items->TryRecv(&out), ShmStatus::kOk);
  EXPECT_EQ(items->TrySend(Rec("c")), ShmStatus::kOk);
}

TEST(ProcessChannelTest, CloseDrainsThenReportsClosedAndWakesWaiters) {
  Ref<ProcessChannel> ch = Make();
  RecordBuffer out;
  ShmStatus got = ShmStatus::kOk;
  std::thread waiter([&] { got = ch->Recv(&out, Soon(), false); });
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(ch->Close());
  waiter.join();
  EXPECT_EQ(got, ShmStatus::kClosed);
  EXPECT_FALSE(ch->Close());
  EXPECT_EQ(ch->TrySend(Rec("x")), ShmStatus::kClosed);

  Ref<ProcessChannel> ch2 = Make();
  ASSERT_EQ(ch2->TrySend(Rec("left")), ShmStatus::kOk);
  ch2->Close();
  ASSERT_EQ(ch2->TryRecv(&out), ShmStatus::kOk);
  EXPECT_EQ(Str(out), "left");
  EXPECT_EQ(ch2->Recv(&out, Soon(), false), ShmStatus::kClosed);
}

TEST(ProcessChannelTest, RecvTimesOutOnTheMonotonicClock) {
  Ref<ProcessChannel> ch = Make();
  RecordBuffer out;
  const auto t0 = Clock::now();
  EXPECT_EQ(ch->Recv(&out, In(30ms), false), ShmStatus::kEmpty);
  EXPECT_GE(Clock::now() - t0, 30ms);
}

TEST(ProcessChannelTest, AttachChecksTheSegment) {
  std::string err;
  EXPECT_FALSE(ProcessChannel::Attach(dup(STDIN_FILENO), &err));
  EXPECT_FALSE(err.empty());
  Ref<ProcessChannel> ch = Make();
  // A segment with a wrong magic is refused.
  Peer::Segment(*ch)[0] ^= 0xff;
  EXPECT_FALSE(ProcessChannel::Attach(dup(ch->fd()), &err));
  EXPECT_NE(err.find("bad header"), std::string::npos) << err;
  Peer::Segment(*ch)[0] ^= 0xff;
  // A segment of another layout version (offset 8, after the magic) is
  // refused with both versions named.
  uint32_t version;
  std::memcpy(&version, Peer::Segment(*ch) + 8, 4);
  const uint32_t older = version - 1;
  std::memcpy(Peer::Segment(*ch) + 8, &older, 4);
  EXPECT_FALSE(ProcessChannel::Attach(dup(ch->fd()), &err));
  EXPECT_NE(err.find("layout version " + std::to_string(older) +
                     ", this xchannels reads version " +
                     std::to_string(version)),
            std::string::npos)
      << err;
  std::memcpy(Peer::Segment(*ch) + 8, &version, 4);
  Ref<ProcessChannel> again = ProcessChannel::Attach(dup(ch->fd()), &err);
  ASSERT_TRUE(again) << err;
  ASSERT_EQ(ch->TrySend(Rec("via one handle")), ShmStatus::kOk);
  RecordBuffer out;
  ASSERT_EQ(again->TryRecv(&out), ShmStatus::kOk);
  EXPECT_EQ(Str(out), "via one handle");
}

TEST(ProcessChannelTest, StreamsBetweenForkedProcessesBothWays) {
  Ref<ProcessChannel> ch = Make(1024, 8);   // small: both sides block often
  Ref<ProcessChannel> back = Make(1024, 8);
  constexpr uint64_t kN = 20000;
  const pid_t pid = Fork([&] {
    RecordBuffer out;
    for (;;) {
      ShmStatus s = ch->Recv(&out, Soon(), false);
      if (s == ShmStatus::kClosed) break;
      if (s != ShmStatus::kOk) _exit(2);
      if (back->Send(out.span(), Soon(), false) != ShmStatus::kOk) _exit(3);
    }
    back->Close();
  });
  std::thread producer([&] {
    for (uint64_t i = 0; i < kN; ++i) {
      ASSERT_EQ(ch->Send(Numbered(i, i % 300), Soon(), false),
                ShmStatus::kOk);
    }
    ch->Close();
  });
  RecordBuffer out;
  uint64_t next = 0;
  while (back->Recv(&out, Soon(), false) == ShmStatus::kOk) {
    uint64_t i;
    ASSERT_TRUE(Intact(out, &i));
    ASSERT_EQ(i, next++);
  }
  producer.join();
  EXPECT_EQ(next, kN);
  const int status = Wait(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// 4 producer and 4 consumer processes; one of each is killed with SIGKILL
// at a random point, 100 rounds. Every record a producer saw committed (Send returned kOk:
// it writes the index to a pipe afterwards) arrives intact, exactly once,
// and the survivors finish.
TEST(ProcessChannelTest, ProcessesKilledMidCallLeaveTheChannelUsable) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 100; ++round) {
    Ref<ProcessChannel> ch = Make(2048, 0);
    // Large enough for every record: it is drained only at the end.
    Ref<ProcessChannel> results = Make(8 << 20, 0);
    constexpr int kProducers = 4;
    constexpr uint64_t kPer = 1500;
    constexpr uint64_t kAfter = uint64_t{1} << 40;
    int commit_pipe[2];
    ASSERT_EQ(pipe(commit_pipe), 0);
    std::vector<pid_t> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.push_back(Fork([&, p] {
        close(commit_pipe[0]);
        // Producer 0, the one to be killed, never stops by itself: the
        // kill always lands in the middle of its stream.
        for (uint64_t k = 0; p == 0 || k < kPer; ++k) {
          const uint64_t i = (static_cast<uint64_t>(p) << 32) + k;
          if (ch->Send(Numbered(i, 16 + i % 200), Soon(), false) !=
              ShmStatus::kOk) {
            _exit(2);
          }
          if (write(commit_pipe[1], &i, 8) != 8) _exit(3);
        }
      }));
    }
    close(commit_pipe[1]);
    // Consumers forward what they got to `results`, then exit.
    auto consumer = [&] {
      RecordBuffer out;
      for (;;) {
        ShmStatus s = ch->Recv(&out, Soon(), false);
        if (s == ShmStatus::kClosed) return;
        if (s != ShmStatus::kOk) _exit(4);
        uint64_t i;
        if (!Intact(out, &i)) _exit(5);
        if (results->Send(out.span(), Soon(), false) != ShmStatus::kOk) _exit(6);
      }
    };
    const pid_t victim_consumer = Fork(consumer);
    std::vector<pid_t> survivors;
    for (int c = 0; c < 3; ++c) survivors.push_back(Fork(consumer));
    // Kill one producer once it has reported a random number of commits,
    // and one consumer a little later; then read the commits until every
    // producer has gone (EOF), and reap.
    const uint64_t kill_at = 100 + rng() % (kPer - 200);
    const size_t kill_consumer_at = rng() % 400;
    std::set<uint64_t> committed;
    uint64_t i;
    uint64_t from_victim = 0;
    size_t after_kill = 0;
    bool producer_killed = false, consumer_killed = false;
    while (read(commit_pipe[0], &i, 8) == 8) {
      committed.insert(i);
      from_victim += i < (uint64_t{1} << 32);
      if (!producer_killed && from_victim >= kill_at) {
        kill(producers[0], SIGKILL);
        producer_killed = true;
      } else if (producer_killed && !consumer_killed &&
                 ++after_kill >= kill_consumer_at) {
        kill(victim_consumer, SIGKILL);
        consumer_killed = true;
      }
    }
    close(commit_pipe[0]);
    if (!consumer_killed) kill(victim_consumer, SIGKILL);
    for (size_t p = 1; p < producers.size(); ++p) {
      const int st = Wait(producers[p]);
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    }
    Wait(producers[0]);
    Wait(victim_consumer);
    ASSERT_EQ(ch->Send(Numbered(kAfter, 40), In(5000ms), false), ShmStatus::kOk);
    committed.insert(kAfter);
    ch->Close();
    for (pid_t s : survivors) {
      const int st = Wait(s);
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    }
    results->Close();
    std::set<uint64_t> received;
    RecordBuffer out;
    while (results->TryRecv(&out) == ShmStatus::kOk) {
      ASSERT_TRUE(Intact(out, &i));
      ASSERT_TRUE(received.insert(i).second) << "duplicate " << i;
    }
    // Everything committed arrived, except what the killed consumer had
    // taken: it received those (at most the one in its hands) and died.
    size_t missing = 0;
    for (uint64_t c : committed) missing += received.count(c) == 0;
    EXPECT_LE(missing, 1u) << "round " << round;
    // A killed producer may have committed one record it could not report.
    EXPECT_LE(received.size(), committed.size() + 1);
    // And the channel still worked for this process after the kills.
    EXPECT_EQ(received.count(kAfter), 1u);
  }
}

TEST(ProcessChannelTest, NoLockWaitCallsReturnBusyWhileAnotherHoldsTheMutex) {
  // A caller holding a lock of its own (an interpreter's GIL) tries first
  // without waiting for the segment's mutex: a stopped holder must not
  // freeze it. Here another thread holds the mutex; the plain calls wait for
  // it, the NoLockWait ones return kBusy and take or leave nothing.
  Ref<ProcessChannel> ch = Make(4096, 0);
  ASSERT_EQ(ch->TrySend(Rec("queued")), ShmStatus::kOk);
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(
      Peer::Segment(*ch) + 32);  // after magic .. max_items
  ASSERT_EQ(pthread_mutex_lock(mutex), 0);
  RecordBuffer out;
  const std::vector<uint8_t> more = Rec("more");
  EXPECT_EQ(ch->TryRecvNoLockWait(&out), ShmStatus::kBusy);
  EXPECT_EQ(ch->TrySendNoLockWait(more, {}), ShmStatus::kBusy);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    RecordBuffer o;
    EXPECT_EQ(ch->TryRecv(&o), ShmStatus::kOk);  // waits for the mutex
    EXPECT_EQ(Str(o), "queued");
    got = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(got.load());
  pthread_mutex_unlock(mutex);
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(ch->TrySendNoLockWait(more, {}), ShmStatus::kOk);
  ASSERT_EQ(ch->TryRecvNoLockWait(&out), ShmStatus::kOk);
  EXPECT_EQ(Str(out), "more");
  EXPECT_EQ(ch->TryRecvNoLockWait(&out), ShmStatus::kEmpty);
}

// A child that takes `mutex` and then pauses (or stops itself, SIGSTOP,
// when `stop`), holding it; returns its pid once it holds it, or -1.
pid_t HoldTheMutex(pthread_mutex_t* mutex, bool stop) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  const pid_t pid = Fork([&] {
    pthread_mutex_lock(mutex);
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(3);
    if (stop) raise(SIGSTOP);
    for (;;) pause();
  });
  char c = 0;
  const bool ok = read(ready[0], &c, 1) == 1;
  close(ready[0]);
  close(ready[1]);
  if (!ok) {
    kill(pid, SIGKILL);
    Wait(pid);
    return -1;
  }
  return pid;
}

TEST(ProcessChannelTest, AWaiterWhoseWakeUpWasLostTakesTheFreeMutexAnyway) {
  // What a waiter killed between its wake-up and its retry leaves behind
  // (see the header): the mutex free, with another waiter asleep that no
  // unlock will wake. Made here directly: a child holds the mutex, a
  // second child waits for it in a put, and the lock word is cleared under
  // it with no wake-up. The waiter looks again within 250 ms and puts; it
  // used to sleep forever (the CI hang of ProcessesKilledMidCall...).
  Ref<ProcessChannel> ch = Make(4096, 0);
  uint8_t* seg = Peer::Segment(*ch);
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(seg + 32);
  const pid_t holder = HoldTheMutex(mutex, false);
  ASSERT_GT(holder, 0);
  KillAtExit kill_holder{holder};
  const pid_t waiter = Fork([&] {
    _exit(ch->Send(Rec("after the lost wake-up"), Soon(), false) ==
                  ShmStatus::kOk
              ? 0
              : 2);
  });
  KillAtExit kill_waiter{waiter};
  // Until the waiter sleeps in the kernel on the lock word (FUTEX_WAITERS).
  auto* word = reinterpret_cast<std::atomic<uint32_t>*>(mutex);  // __lock first
  const auto registered_by = Clock::now() + 30s;
  while ((word->load() & 0x80000000u) == 0 && Clock::now() < registered_by) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_NE(word->load() & 0x80000000u, 0u) << "no waiter registered";
  std::this_thread::sleep_for(20ms);  // into futex_wait
  word->store(0);  // free, and nobody woken
  const auto t0 = Clock::now();
  int status = -1;
  while (waitpid(waiter, &status, WNOHANG) == 0 && Clock::now() - t0 < 5s) {
    std::this_thread::sleep_for(5ms);
  }
  const auto took = Clock::now() - t0;
  if (status != -1) kill_waiter.pid = 0;  // reaped
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the waiter slept on the free mutex";
  EXPECT_LT(took, 2s);
  RecordBuffer out;
  ASSERT_EQ(ch->TryRecv(&out), ShmStatus::kOk);
  EXPECT_EQ(Str(out), "after the lost wake-up");
}

TEST(ProcessChannelTest, TimedCallsGiveUpOnAStoppedHolderOfTheMutex) {
  // A process stopped while it holds the mutex: a put or get with a
  // timeout gives up after max(timeout, 250 ms) (Full / Empty), and an
  // interruptible call without one returns to its signal check. It used to
  // wait for the mutex however long the holder stayed stopped.
  Ref<ProcessChannel> ch = Make(4096, 0);
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(Peer::Segment(*ch) + 32);
  const pid_t holder = HoldTheMutex(mutex, true);
  ASSERT_GT(holder, 0);
  KillAtExit kill_holder{holder};
  RecordBuffer out;
  auto t0 = Clock::now();
  EXPECT_EQ(ch->Send(Rec("x"), In(50ms), false), ShmStatus::kFull);
  EXPECT_GE(Clock::now() - t0, 300ms);  // 250 ms past the deadline
  EXPECT_LT(Clock::now() - t0, 5s);
  t0 = Clock::now();
  EXPECT_EQ(ch->Recv(&out, In(400ms), false), ShmStatus::kEmpty);
  EXPECT_GE(Clock::now() - t0, 650ms);
  EXPECT_LT(Clock::now() - t0, 5s);
  t0 = Clock::now();
  EXPECT_EQ(ch->Recv(&out, Deadline(), true), ShmStatus::kInterrupted);
  EXPECT_LT(Clock::now() - t0, 5s);
  // The no-lock-wait calls say so at once.
  EXPECT_EQ(ch->TryRecvNoLockWait(&out), ShmStatus::kBusy);
  // A receiver waiting for the mutex when the holder dies takes it over
  // (EOWNERDEAD from pthread_mutex_timedlock) and goes on to wait for data.
  std::thread receiver([&] {
    RecordBuffer o;
    EXPECT_EQ(ch->Recv(&o, Soon(), false), ShmStatus::kOk);
    EXPECT_EQ(Str(o), "y");
  });
  std::this_thread::sleep_for(100ms);
  kill(holder, SIGKILL);
  Wait(holder);
  kill_holder.pid = 0;
  // The dead holder's mutex is recovered: the channel goes on.
  ASSERT_EQ(ch->Send(Rec("y"), In(5000ms), false), ShmStatus::kOk);
  receiver.join();
  EXPECT_EQ(ch->TryRecv(&out), ShmStatus::kEmpty);
}

TEST(ProcessChannelTest, AHolderOfTheLockKilledIsRecoveredFrom) {
  // A child takes the lock and dies holding it, in the middle of a put: it
  // has written bytes past tail and a wrong count. The robust mutex hands
  // the next caller EOWNERDEAD; Recover re-derives the count from the
  // records, and the channel goes on.
  Ref<ProcessChannel> ch = Make(4096, 0);
  ASSERT_EQ(ch->TrySend(Rec("before")), ShmStatus::kOk);
  uint8_t* seg = Peer::Segment(*ch);
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(seg + 32);  // after magic .. max_items
  const size_t count_at = Peer::StateOffset() + 16;
  const pid_t pid = Fork([&] {
    pthread_mutex_lock(mutex);
    std::memset(seg + ProcessChannel::kHeaderBytes + 16, 0xab, 64);
    const uint64_t wrong = 5;
    std::memcpy(seg + count_at, &wrong, 8);
    raise(SIGKILL);
  });
  Wait(pid);
  RecordBuffer out;
  ASSERT_EQ(ch->TryRecv(&out), ShmStatus::kOk);  // repairs, then takes
  EXPECT_EQ(Str(out), "before");
  EXPECT_EQ(ch->size(), 0u);
  EXPECT_EQ(ch->TrySend(Rec("after")), ShmStatus::kOk);
  EXPECT_EQ(ch->size(), 1u);
  ASSERT_EQ(ch->TryRecv(&out), ShmStatus::kOk);
  EXPECT_EQ(Str(out), "after");
}

TEST(ProcessChannelTest, ScribblingWhileOthersReadAndWriteNeverCrashes) {
#ifdef XCHANNELS_TSAN
  GTEST_SKIP() << "the scribbler's plain stores race with the channel's "
                  "loads by design (a hostile process); TSan reports that, "
                  "ASan checks the bounds";
#else
  // Another process may change the state at any moment, also between two
  // reads of one call: only values read once and checked may be used.
  Ref<ProcessChannel> ch = Make(256, 0);
  uint8_t* seg = Peer::Segment(*ch);
  const size_t state = Peer::StateOffset();
  const size_t nstate = Peer::StateBytes();
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937 rng(11);
    while (!stop.load(std::memory_order_relaxed)) {
      volatile uint8_t* p = seg + state + rng() % nstate;
      *p = static_cast<uint8_t>(rng());
      if (rng() % 4 == 0) {
        volatile uint8_t* r = seg + ProcessChannel::kHeaderBytes + rng() % 256;
        *r = static_cast<uint8_t>(rng());
      }
    }
  });
  RecordBuffer out;
  const auto end = Clock::now() + 300ms;
  int calls = 0;
  while (Clock::now() < end) {
    const ShmStatus r = ch->TryRecv(&out);
    ASSERT_TRUE(r == ShmStatus::kOk || r == ShmStatus::kEmpty ||
                r == ShmStatus::kCorrupt);
    ASSERT_LE(out.size(), 256u);
    ch->TrySend(std::vector<uint8_t>(1 + calls % 40, 5));
    ++calls;
  }
  stop = true;
  scribbler.join();
  EXPECT_GT(calls, 100);
#endif
}

TEST(ProcessChannelTest, ACorruptedSegmentGivesKCorruptNeverACrash) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    Ref<ProcessChannel> ch = Make(256, 0);
    for (int k = 0; k < 3; ++k) {
      ASSERT_EQ(ch->TrySend(std::vector<uint8_t>(rng() % 60, 7)),
                ShmStatus::kOk);
    }
    RecordBuffer out;
    ASSERT_EQ(ch->TryRecv(&out), ShmStatus::kOk);
    // Scribble over head/tail/count or over record headers (the mutex and
    // the futex words are left: corrupting a pthread mutex is not something
    // any check can survive, and is equivalent to a hostile process that
    // never unlocks).
    uint8_t* seg = Peer::Segment(*ch);
    const size_t state_begin = Peer::StateOffset();
    const int hits = 1 + static_cast<int>(rng() % 4);
    for (int h = 0; h < hits; ++h) {
      size_t off;
      if (rng() % 2 == 0) {
        off = state_begin + rng() % 24;  // head, tail, count
      } else {
        off = ProcessChannel::kHeaderBytes + rng() % 256;  // the ring
      }
      seg[off] = static_cast<uint8_t>(rng());
    }
    for (int k = 0; k < 6; ++k) {
      const ShmStatus r = ch->TryRecv(&out);
      ASSERT_TRUE(r == ShmStatus::kOk || r == ShmStatus::kEmpty ||
                  r == ShmStatus::kCorrupt);
      ASSERT_LE(out.size(), 256u);
      const ShmStatus s = ch->TrySend(std::vector<uint8_t>(9, 1));
      ASSERT_TRUE(s == ShmStatus::kOk || s == ShmStatus::kFull ||
                  s == ShmStatus::kCorrupt);
    }
    ch->Close();  // never blocks, even when corrupt
  }
}

TEST(ProcessChannelTest, SelectWaitsOnEveryChannelAcrossProcesses) {
  Ref<ProcessChannel> a = Make(), b = Make();
  ProcessChannel* both[] = {a.get(), b.get()};
  RecordBuffer out;
  size_t index = 99;
  EXPECT_EQ(ProcessChannel::Select(both, &out, &index, In(20ms), false),
            ShmStatus::kEmpty);
  // A child process puts into the second channel while we sleep on both.
  const pid_t pid = Fork([&] {
    std::this_thread::sleep_for(50ms);
    if (b->TrySend(Rec("from the child")) != ShmStatus::kOk) _exit(2);
  });
  ASSERT_EQ(ProcessChannel::Select(both, &out, &index, Soon(), false),
            ShmStatus::kOk);
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(Str(out), "from the child");
  EXPECT_EQ(Wait(pid), 0);
  // Fair: with both ready, neither starves.
  int got[2] = {0, 0};
  for (int k = 0; k < 40; ++k) {
    ASSERT_EQ(a->TrySend(Rec("a")), ShmStatus::kOk);
    ASSERT_EQ(b->TrySend(Rec("b")), ShmStatus::kOk);
    ASSERT_EQ(ProcessChannel::Select(both, &out, &index, Soon(), false),
              ShmStatus::kOk);
    ++got[index];
  }
  EXPECT_GT(got[0], 5);
  EXPECT_GT(got[1], 5);
  while (a->TryRecv(&out) == ShmStatus::kOk) {
  }
  while (b->TryRecv(&out) == ShmStatus::kOk) {
  }
  // Closed channels are skipped; all closed: kClosed, and close wakes.
  a->Close();
  std::thread closer([&] {
    std::this_thread::sleep_for(30ms);
    b->Close();
  });
  EXPECT_EQ(ProcessChannel::Select(both, &out, &index, Soon(), false),
            ShmStatus::kClosed);
  closer.join();
}

TEST(ProcessChannelTest, SelectingReadersDoNotStrandRecords) {
  // Two selectors and a plain reader share a channel; every record is taken.
  Ref<ProcessChannel> a = Make(4096, 0), b = Make();
  constexpr int kN = 3000;
  std::atomic<int> taken{0};
  auto selector = [&] {
    ProcessChannel* both[] = {a.get(), b.get()};
    RecordBuffer out;
    size_t index;
    while (ProcessChannel::Select(both, &out, &index, Soon(), false) ==
           ShmStatus::kOk) {
      taken.fetch_add(1);
    }
  };
  auto reader = [&] {
    RecordBuffer out;
    while (a->Recv(&out, Soon(), false) == ShmStatus::kOk) {
      taken.fetch_add(1);
    }
  };
  std::thread s1(selector), s2(selector), r(reader);
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(a->Send(Numbered(static_cast<uint64_t>(i), 20), std::nullopt,
                      false),
              ShmStatus::kOk);
  }
  const auto give_up = Clock::now() + 10s;
  while (taken.load() < kN && Clock::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(taken.load(), kN) << "records stranded with readers asleep";
  a->Close();
  b->Close();
  s1.join();
  s2.join();
  r.join();
  EXPECT_EQ(taken.load(), kN);
}

}  // namespace
}  // namespace xchannels
