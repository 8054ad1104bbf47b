// core/src/barrier.cc: membarrier(2) behind detail::HeavyBarrier, and the
// registry of per-thread send slots behind close().
#include "xchannels/detail/barrier.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "xchannels/detail/mutex.h"

namespace xchannels::detail {
namespace {

long Membarrier(int cmd) {
  return syscall(__NR_membarrier, cmd, 0u, 0);
}

bool ChooseAsymmetric() {
  const char* env = std::getenv("XCHANNELS_SYMMETRIC_BARRIERS");
  if (env != nullptr && std::strcmp(env, "1") == 0) return false;
  const long cmds = Membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  // Registration is per process (inherited by fork) and must precede the
  // first use.
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// The slots of every thread that ever sent. Slots are never freed (an exited
// thread's slot is reused by a later one) and the list only grows at the
// head, with `next` fixed before a slot is published: WaitForSenders walks it
// without the lock. mu guards which slots are in use, and publication.
struct SlotRegistry {
  Mutex mu;
  std::atomic<SendSlot*> head{nullptr};
  // in_use[i]: slot i (SendSlot::index) belongs to a live thread. Its size
  // is the number of slots made so far.
  std::vector<uint8_t> in_use ABSL_GUARDED_BY(mu);
};

SlotRegistry& Registry() {
  static SlotRegistry* r = new SlotRegistry();  // never destroyed: threads
  return *r;                                    // may exit after main
}

// fork(): the child has only the forking thread. Hold the registry lock
// across the fork so no other thread owns it in the child, and there free
// every other thread's slot (a thread caught mid-send no longer exists; its
// slot would make close() wait forever).
void BeforeFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { Registry().mu.Lock(); }
void AfterForkParent() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Registry().mu.Unlock();
}
void AfterForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  SlotRegistry& r = Registry();
  for (SendSlot* s = r.head.load(std::memory_order_relaxed); s != nullptr;
       s = s->next) {
    if (s != tls_send_slot) {
      s->channel.store(nullptr, std::memory_order_relaxed);
      r.in_use[s->index] = 0;
    }
  }
  r.mu.Unlock();
}

// Set while this thread's thread_local destructors run (after its
// SlotReturner is gone).
thread_local bool tls_exiting = false;

// Hands the slot back when its thread exits.
struct SlotReturner {
  SendSlot* slot = nullptr;
  ~SlotReturner() {
    if (slot == nullptr) return;
    SlotRegistry& r = Registry();
    MutexLock lock(&r.mu);
    slot->channel.store(nullptr, std::memory_order_release);
    r.in_use[slot->index] = 0;
    tls_send_slot = nullptr;
    tls_exiting = true;
  }
};

SendSlot* PublishNewSlot(SlotRegistry& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.mu) {
  r.in_use.push_back(1);  // may throw: nothing published yet
  SendSlot* slot;
  try {
    slot = new SendSlot();
  } catch (...) {
    r.in_use.pop_back();
    throw;
  }
  slot->index = static_cast<uint32_t>(r.in_use.size() - 1);
  slot->next = r.head.load(std::memory_order_relaxed);
  r.head.store(slot, std::memory_order_release);
  return slot;
}

}  // namespace

void InitBarriers() noexcept {
  static const bool asymmetric = [] {
    const bool a = ChooseAsymmetric();
    g_asymmetric_barriers.store(a, std::memory_order_relaxed);
    Registry();
    pthread_atfork(BeforeFork, AfterForkParent, AfterForkChild);
    return a;
  }();
  (void)asymmetric;
}

void HeavyBarrier() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (AsymmetricBarriers()) {
    // The registration is per process and survives fork(). Transient
    // failures (ENOMEM for the kernel's CPU mask, EINTR) are retried; a
    // lost registration is renewed. If it keeps failing, the senders' light
    // barriers would be unsound: stop loudly rather than lose wake-ups.
    for (int attempt = 0;; ++attempt) {
      if (Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) break;
      const int err = errno;
      if (err == EPERM) Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
      if (attempt == 1000) {
        static const char kMsg[] =
            "xchannels: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) keeps "
            "failing; set XCHANNELS_SYMMETRIC_BARRIERS=1\n";
        (void)!write(2, kMsg, sizeof(kMsg) - 1);
        std::abort();
      }
      sched_yield();
    }
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

SendSlot& AcquireSendSlot() {
  SlotRegistry& r = Registry();
  if (tls_exiting) {
    // A send from a thread_local destructor that ran after the returner:
    // a slot of its own, never handed back (one per such thread).
    MutexLock lock(&r.mu);
    tls_send_slot = PublishNewSlot(r);
    return *tls_send_slot;
  }
  thread_local SlotReturner returner;
  SendSlot* slot = nullptr;
  {
    MutexLock lock(&r.mu);
    for (SendSlot* s = r.head.load(std::memory_order_relaxed); s != nullptr;
         s = s->next) {
      if (!r.in_use[s->index]) {
        slot = s;
        r.in_use[s->index] = 1;
        break;
      }
    }
    if (slot == nullptr) slot = PublishNewSlot(r);
  }
  returner.slot = slot;
  tls_send_slot = slot;
  return *slot;
}

void WaitForSenders(const void* channel) noexcept {
  SlotRegistry& r = Registry();
  for (SendSlot* s = r.head.load(std::memory_order_acquire); s != nullptr;
       s = s->next) {
    // A sender holds its slot only across one non-blocking enqueue; if it
    // was preempted there, give it the CPU, then back off to short sleeps.
    for (int round = 0;
         s->channel.load(std::memory_order_acquire) == channel; ++round) {
      if (round < 64) {
        sched_yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
}

}  // namespace xchannels::detail
