// core/include/xchannels/detail/queue_base.h: what every flavor shares: the
// moodycamel queue, the closed/quiet flags, the receiver wait list, the task
// count and the blocking receive.
//
// Invariants:
//   - flags_ gains kClosed, then kQuiet, and never loses them. kClosed: later
//     sends fail. kQuiet (set by close() after kClosed): every send that
//     passed the closed check has enqueued (close() waited for the senders'
//     slots, see barrier.h), so nothing more will ever be enqueued.
//   - No item is lost: a sender enqueues only if it saw kClosed clear while
//     its send slot held this queue; a receiver reports kClosed
//     (Probe::kDrained) only if it loaded kQuiet and, after that load,
//     try_dequeue failed and size_approx() was 0.
//   - No lost wake-up: receivers wait through detail::ParkUntil (waiter.h,
//     which holds the protocol and its argument); every sender, after
//     enqueueing, passes a LightBarrier and notifies one waiter if any is
//     linked; close() notifies all after setting kQuiet. A waiter that was
//     notified but leaves without taking an item (timeout, interrupt, Select
//     taking elsewhere) wakes one other receiver if the queue is non-empty
//     (PassOnRecv).
//   - Every item enqueued was counted in tasks_ first (after the closed
//     check); see task_counter.h for why that costs a send no fence.
//   - moodycamel's try_dequeue may fail while an item is present (another
//     consumer is half-way through an overcommitted dequeue). Probe reports
//     that as kBusy when size_approx() > 0, and no caller parks on kBusy.
//
// Memory ordering: the item itself is published by moodycamel (release on
// enqueue, acquire on dequeue). A sender clears its slot with release after
// enqueueing and close() reads the slots with acquire before it sets kQuiet
// (release), so a receiver that loads kQuiet (acquire) sees every item ever
// enqueued. The two Dekker pairs (sender: publish, LightBarrier, look;
// waiter or closer: publish, HeavyBarrier, look) are explained in barrier.h:
// no full barrier is on the send path.
#ifndef XCHANNELS_DETAIL_QUEUE_BASE_H_
#define XCHANNELS_DETAIL_QUEUE_BASE_H_

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#include "concurrentqueue.h"
#include "xchannels/detail/barrier.h"
#include "xchannels/detail/common.h"
#include "xchannels/detail/futex.h"
#include "xchannels/detail/task_counter.h"
#include "xchannels/detail/wait_list.h"
#include "xchannels/detail/waiter.h"

namespace xchannels::detail {

inline constexpr uint32_t kClosed = 1;
inline constexpr uint32_t kQuiet = 2;
inline constexpr size_t kCacheLine = 64;

// The outcome of one non-blocking receive attempt.
enum class Probe : uint8_t {
  kGot,      // an item was moved into `out`
  kEmpty,    // nothing there (and not closed-and-drained)
  kBusy,     // looks non-empty but a concurrent dequeue is mid-way: retry
  kDrained,  // closed and quiet (no send in flight), queue empty: final
};

// Derived must provide `void OnDequeued()` (called after every successful
// dequeue; the bounded flavor frees a slot there).
template <class T, class Derived>
class QueueBase {
 public:
  QueueBase(const QueueBase&) = delete;
  QueueBase& operator=(const QueueBase&) = delete;

  bool closed() const noexcept {
    return (flags_.load(std::memory_order_acquire) & kClosed) != 0;
  }
  size_t size() const noexcept { return queue_.size_approx(); }
  // Task tracking (task_done / join): every item sent is counted here.
  TaskCounter& tasks() noexcept { return tasks_; }

  // One receive attempt, with the close rule of the invariants.
  Probe ProbeRecv(T& out) {
    if (TryDequeue(out)) return Probe::kGot;
    if ((flags_.load(std::memory_order_acquire) & kQuiet) != 0) {
      if (TryDequeue(out)) return Probe::kGot;
      return queue_.size_approx() == 0 ? Probe::kDrained : Probe::kBusy;
    }
    return queue_.size_approx() == 0 ? Probe::kEmpty : Probe::kBusy;
  }

  // Wakes one receiver if items remain: called by a notified waiter that
  // leaves without having consumed its notification.
  void PassOnRecv() {
    if (queue_.size_approx() > 0) recv_waiters_.NotifyOne();
  }

  OpStatus TryRecv(T& out) {
    for (;;) {
      switch (ProbeRecv(out)) {
        case Probe::kGot: return OpStatus::kOk;
        case Probe::kDrained: return OpStatus::kClosed;
        case Probe::kEmpty: return OpStatus::kEmpty;
        case Probe::kBusy: YieldCpu(); break;
      }
    }
  }

  // The receivers' wait target (waiter.h): this list, and PassOnRecv.
  WaitTarget RecvTarget() noexcept {
    return {&recv_waiters_,
            [](void* self) { static_cast<QueueBase*>(self)->PassOnRecv(); },
            this};
  }
  WaitTarget JoinTarget() noexcept { return tasks_.Target(); }

  OpStatus Recv(T& out, const Deadline& deadline, bool interruptible) {
    if (TryDequeue(out)) return OpStatus::kOk;
    if (!deadline.has_value() || Clock::now() < *deadline) {
      for (int i = 0; i < kSpinIterations; ++i) {
        CpuRelax();
        if (TryDequeue(out)) return OpStatus::kOk;
      }
    }
    const WaitTarget target = RecvTarget();
    return ParkUntil(
        std::span<const WaitTarget>(&target, 1),
        [&]() -> Attempt {
          switch (ProbeRecv(out)) {
            case Probe::kGot: return Attempt::Done(OpStatus::kOk);
            case Probe::kDrained: return Attempt::Done(OpStatus::kClosed);
            case Probe::kBusy: return Attempt::Busy();
            case Probe::kEmpty: break;
          }
          return Attempt::Wait();
        },
        deadline, interruptible, OpStatus::kEmpty);
  }

 protected:
  explicit QueueBase(size_t initial_capacity) : queue_(initial_capacity) {
    InitBarriers();
  }
  ~QueueBase() = default;

  bool TryDequeue(T& out) {
    if (!queue_.try_dequeue(out)) return false;
    static_cast<Derived*>(this)->OnDequeued();
    return true;
  }

  // Enqueues `v` unless the channel is closed. A bounded caller has already
  // reserved a slot (and must release it on kClosed). Throws std::bad_alloc
  // if moodycamel cannot allocate a block (v untouched, nothing enqueued).
  // No locked instruction and no fence of its own (see barrier.h).
  OpStatus Enqueue(T& v) {
    SendSlot& slot = MySendSlot();
    assert(slot.channel.load(std::memory_order_relaxed) == nullptr &&
           "a send started another send on the same thread");
    slot.channel.store(this, std::memory_order_release);
    LightBarrier();
    if ((flags_.load(std::memory_order_relaxed) & kClosed) != 0) {
      slot.channel.store(nullptr, std::memory_order_release);
      // close() happens-before this kClosed (channel.h's promise).
      std::atomic_thread_fence(std::memory_order_acquire);
      return OpStatus::kClosed;
    }
    bool ok;
    try {
      tasks_.CountSend(slot);  // may throw, having counted nothing
    } catch (...) {
      slot.channel.store(nullptr, std::memory_order_release);
      throw;
    }
    try {
      ok = queue_.enqueue(std::move(v));
    } catch (...) {
      slot.channel.store(nullptr, std::memory_order_release);
      tasks_.FinishFailedSend();
      throw;
    }
    slot.channel.store(nullptr, std::memory_order_release);
    if (!ok) {
      tasks_.FinishFailedSend();
      throw std::bad_alloc();
    }
    LightBarrier();
    recv_waiters_.NotifyOne();  // no lock unless a receiver waits
    return OpStatus::kOk;
  }

  // Thread-safe; may be called more than once. Returns once every send that
  // did not see the channel closed has enqueued, and every receiver was
  // woken.
  void Close() {
    flags_.fetch_or(kClosed, std::memory_order_seq_cst);
    HeavyBarrier();
    WaitForSenders(this);
    flags_.fetch_or(kQuiet, std::memory_order_seq_cst);
    recv_waiters_.NotifyAll();  // always takes the list lock: no barrier
  }

 private:
  // TSan: moodycamel 1.0.3 has a formal (C++-model) race when a block is
  // recycled; it is suppressed for TSan builds only, see core/src/wait.cc
  // and tests/cpp/tsan.supp.
  moodycamel::ConcurrentQueue<T> queue_;
  // Read by every send and receive, written only by close().
  alignas(kCacheLine) std::atomic<uint32_t> flags_{0};
  alignas(kCacheLine) WaitList recv_waiters_;
  TaskCounter tasks_;
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_QUEUE_BASE_H_
