// core/include/xchannels/detail/futex.h: a one-shot futex parker, the only
// place where a channel thread sleeps.
//
// Invariants:
//   - Parker::word goes 0 -> 1 exactly once per Parker (TryNotify returns true
//     for exactly one caller); it never goes back to 0, except through
//     Rearm() by an external waiter none of whose nodes is linked.
//   - A Parker with a Notifier belongs to an external waiter (an event
//     loop's, see Notifier): nobody parks on it; the notifier that wins
//     TryNotify calls Notifier::Notify() instead of waking a thread.
//   - Park() returns kNotified only once word == 1; kTimeout only once the
//     deadline has passed on Clock; kInterrupted only when interruptible and
//     FUTEX_WAIT returned EINTR (a signal handler ran on this thread) while
//     word was still 0.
//   - Spurious futex wake-ups are absorbed (Park loops on word). A FutexWake
//     may reach an address whose Parker is already gone (the notifier wakes
//     after releasing the list lock); that is harmless by the futex contract:
//     every futex user must tolerate spurious wake-ups.
//
// Memory ordering: TryNotify is an acq_rel exchange, Park reads word with
// acquire, so whatever the notifier wrote before TryNotify is visible to the
// woken thread.
#ifndef XCHANNELS_DETAIL_FUTEX_H_
#define XCHANNELS_DETAIL_FUTEX_H_

#include <time.h>

#include <atomic>
#include <cstdint>

#include "xchannels/detail/common.h"

namespace xchannels::detail {

// Spin budget before parking, in CpuRelax() rounds, each followed by one
// re-check of the queue (or of the free slot count). About 1-3 us on current
// x86: long enough to catch a ping-pong reply from a thread on the other
// core, short enough not to matter when nothing comes. Measured with
// BM_*_PingPong (see benchmarks/cpp/channel_bench.cc).
inline constexpr int kSpinIterations = 100;

// Select probes every channel per round, so it spins fewer rounds.
inline constexpr int kSelectSpinIterations = 20;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Gives up the CPU once; used only while another thread is in the middle of
// a short step (a concurrent dequeue) that we must not sleep across.
void YieldCpu();

// The wake-up action of an external waiter: a waiter that is not a parked
// thread (an asyncio event loop, say) is told through this interface.
// Notify() is called at most once per arming of the waiter's Parker, by the
// thread that notifies, while it holds the lock of the wait list the node
// was in (so the waiter, which unlinks its nodes under that lock before it
// goes away, cannot vanish during the call). It must be short, must not
// block for long and must not touch any wait list.
class Notifier {
 public:
  virtual void Notify() noexcept = 0;

 protected:
  ~Notifier() = default;
};

struct Parker {
  std::atomic<uint32_t> word{0};
  // Null for a parked thread; set for an external waiter (then woken by
  // Notify() instead of FutexWake). Set before any node is linked.
  Notifier* notifier = nullptr;

  // Thread-safe. Never blocks. Returns true for the first caller only.
  bool TryNotify() noexcept {
    return word.exchange(1, std::memory_order_acq_rel) == 0;
  }
  bool notified() const noexcept {
    return word.load(std::memory_order_acquire) != 0;
  }
  // External waiters only, and only while none of their nodes is linked in
  // any list (every notifier that could have seen the word did so under a
  // list lock the waiter has taken since): makes the parker notifiable
  // again for the next registration.
  void Rearm() noexcept { word.store(0, std::memory_order_relaxed); }
};

enum class WaitResult : uint8_t { kNotified, kTimeout, kInterrupted };

// An interruptible park sleeps at most this long at a time, then returns
// kInterrupted so that its caller looks at its signal flags and calls again.
// A signal that lands after the caller's last look but before the futex
// call interrupts no system call: without the cap, Ctrl-C would wait for
// the next wake-up, which may never come. ProcessChannel's sleepers use the
// same period, for that reason and to look again after a woken process died.
inline constexpr auto kSignalRecheck = std::chrono::milliseconds(250);

// `deadline`, or kSignalRecheck from now if that comes first.
Deadline CappedForRecheck(const Deadline& deadline);

// Thread-safe. Blocks until the parker is notified, the deadline passes, or
// (interruptible only) a signal handler runs on this thread or
// kSignalRecheck passes (kInterrupted). Never allocates.
WaitResult Park(Parker& parker, const Deadline& deadline, bool interruptible);

// The time left until `deadline` as the relative timeout FUTEX_WAIT takes
// (measured on CLOCK_MONOTONIC, the clock behind steady_clock). Returns
// false if the deadline has passed.
bool TimeLeft(Clock::time_point deadline, timespec* out);

// Thread-safe. Never blocks. Wakes up to `count` threads parked on `word`.
void FutexWake(std::atomic<uint32_t>* word, int count) noexcept;

// Returns a rotating start index for Select, per thread.
uint32_t NextSelectStart() noexcept;

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_FUTEX_H_
