// core/include/xchannels/detail/futex.h: a one-shot futex parker, the only
// place where a channel thread sleeps.
//
// Invariants:
//   - Parker::word goes 0 -> 1 exactly once per Parker (TryNotify returns true
//     for exactly one caller); it never goes back to 0.
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

struct Parker {
  std::atomic<uint32_t> word{0};

  // Thread-safe. Never blocks. Returns true for the first caller only.
  bool TryNotify() noexcept {
    return word.exchange(1, std::memory_order_acq_rel) == 0;
  }
  bool notified() const noexcept {
    return word.load(std::memory_order_acquire) != 0;
  }
};

enum class WaitResult : uint8_t { kNotified, kTimeout, kInterrupted };

// Thread-safe. Blocks until the parker is notified, the deadline passes, or
// (interruptible only) a signal handler runs on this thread. Never allocates.
WaitResult Park(Parker& parker, const Deadline& deadline, bool interruptible);

// Thread-safe. Never blocks. Wakes up to `count` threads parked on `word`.
void FutexWake(std::atomic<uint32_t>* word, int count) noexcept;

// Returns a rotating start index for Select, per thread.
uint32_t NextSelectStart() noexcept;

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_FUTEX_H_
