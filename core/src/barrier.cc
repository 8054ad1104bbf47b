// core/src/barrier.cc: membarrier(2) behind detail::HeavyBarrier, and the
// registry of per-thread send slots behind close().
#include "xchannels/detail/barrier.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

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
  // Registration is per process and must precede the first use.
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// The slots of every thread that ever sent; never freed (a thread's slot is
// reused by a later thread), so a scan never meets a dangling pointer.
struct SlotRegistry {
  Mutex mu;
  SendSlot* head ABSL_GUARDED_BY(mu) = nullptr;
};

SlotRegistry& Registry() {
  static SlotRegistry* r = new SlotRegistry();  // never destroyed: threads
  return *r;                                    // may exit after main
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
    slot->channel.store(nullptr, std::memory_order_relaxed);
    slot->in_use = false;
    tls_send_slot = nullptr;
    tls_exiting = true;
  }
};

}  // namespace

void InitBarriers() noexcept {
  static const bool asymmetric = [] {
    const bool a = ChooseAsymmetric();
    g_asymmetric_barriers.store(a, std::memory_order_relaxed);
    return a;
  }();
  (void)asymmetric;
}

void HeavyBarrier() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (AsymmetricBarriers() && Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    // The registration is per process and survives fork(); the only other
    // errors are for unknown commands. Register again once; if that fails
    // too, the senders' light barriers would be unsound: stop loudly rather
    // than lose wake-ups silently.
    if (Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 ||
        Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
      static const char kMsg[] =
          "xchannels: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed; "
          "set XCHANNELS_SYMMETRIC_BARRIERS=1\n";
      (void)!write(2, kMsg, sizeof(kMsg) - 1);
      std::abort();
    }
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

SendSlot& AcquireSendSlot() {
  SlotRegistry& r = Registry();
  if (tls_exiting) {
    // A send from a thread_local destructor that ran after the returner:
    // a slot of its own, never handed back (one per such thread).
    auto* slot = new SendSlot();
    MutexLock lock(&r.mu);
    slot->in_use = true;
    slot->next = r.head;
    r.head = slot;
    tls_send_slot = slot;
    return *slot;
  }
  thread_local SlotReturner returner;
  SendSlot* slot = nullptr;
  {
    MutexLock lock(&r.mu);
    for (SendSlot* s = r.head; s != nullptr; s = s->next) {
      if (!s->in_use) {
        slot = s;
        break;
      }
    }
    if (slot == nullptr) {
      slot = new SendSlot();
      slot->next = r.head;
      r.head = slot;
    }
    slot->in_use = true;
  }
  returner.slot = slot;
  tls_send_slot = slot;
  return *slot;
}

void WaitForSenders(const void* channel) noexcept {
  SlotRegistry& r = Registry();
  MutexLock lock(&r.mu);
  for (SendSlot* s = r.head; s != nullptr; s = s->next) {
    // A sender holds its slot only across one non-blocking enqueue.
    while (s->channel.load(std::memory_order_acquire) == channel) {
      sched_yield();
    }
  }
}

}  // namespace xchannels::detail
