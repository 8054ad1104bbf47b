// core/src/wait.cc: the futex system calls behind detail::Park / FutexWake.
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>

#include "xchannels/detail/futex.h"
#include "xchannels/detail/mutex.h"  // XCHANNELS_TSAN

namespace xchannels::detail {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "futex word must be a plain 32-bit integer");

void YieldCpu() { sched_yield(); }

bool TimeLeft(Clock::time_point deadline, timespec* out) {
  const Clock::time_point now = Clock::now();
  if (now >= deadline) return false;
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now)
          .count();
  out->tv_sec = static_cast<time_t>(ns / 1000000000);
  out->tv_nsec = static_cast<long>(ns % 1000000000);
  return true;
}

Deadline CappedForRecheck(const Deadline& deadline) {
  const Clock::time_point cap = Clock::now() + kSignalRecheck;
  return deadline.has_value() && *deadline <= cap ? deadline : Deadline(cap);
}

WaitResult Park(Parker& parker, const Deadline& deadline, bool interruptible) {
  // Interruptible: wake at kSignalRecheck at the latest (see futex.h).
  const Deadline until = interruptible ? CappedForRecheck(deadline) : deadline;
  for (;;) {
    if (parker.notified()) return WaitResult::kNotified;
    // Recomputed on every round.
    timespec ts{};
    timespec* tsp = nullptr;
    if (until.has_value()) {
      if (!TimeLeft(*until, &ts)) {
        if (until == deadline) return WaitResult::kTimeout;
        return parker.notified() ? WaitResult::kNotified
                                 : WaitResult::kInterrupted;
      }
      tsp = &ts;
    }
    const long r = syscall(SYS_futex, reinterpret_cast<uint32_t*>(&parker.word),
                           FUTEX_WAIT_PRIVATE, 0u, tsp, nullptr, 0);
    if (r == -1 && errno == EINTR && interruptible) {
      return parker.notified() ? WaitResult::kNotified
                               : WaitResult::kInterrupted;
    }
    // 0 (woken, maybe spuriously), EAGAIN (word already 1), ETIMEDOUT (the
    // loop re-checks the deadline), EINTR when not interruptible: loop.
  }
}

void FutexWake(std::atomic<uint32_t>* word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE,
          count, nullptr, nullptr, 0);
}

uint32_t NextSelectStart() noexcept {
  thread_local uint32_t counter = 0;
  return counter++;
}

}  // namespace xchannels::detail

#ifdef XCHANNELS_TSAN
// TSan builds only: the suppression documented line by line in
// tests/cpp/tsan.supp (keep the two identical). A moodycamel 1.0.3 formal
// race on recycled blocks, cameron314/concurrentqueue#254.
extern "C" const char* __tsan_default_suppressions() {
  return "race_top:moodycamel::ConcurrentQueue*::ImplicitProducer::dequeue\n"
         "race:moodycamel::ConcurrentQueue*::FreeList*::try_get\n";
}
#endif
