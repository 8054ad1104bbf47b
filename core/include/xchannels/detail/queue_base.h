// core/include/xchannels/detail/queue_base.h: what every flavor shares: the
// moodycamel queue, the close/in-flight state word, the receiver wait list
// and the blocking receive loop.
//
// Invariants:
//   - state_ = kClosedBit | (senders between their fetch_add and fetch_sub of
//     kInFlightOne). The closed bit never clears. Once closed, in-flight can
//     only rise transiently (a sender that sees the bit undoes at once).
//   - No item is lost: a sender enqueues only if its fetch_add saw the bit
//     clear; a receiver reports kClosed (Probe::kDrained) only if it loaded
//     state_ == kClosedBit (closed, nobody in flight) and, after that load,
//     try_dequeue failed and size_approx() was 0.
//   - No lost wake-up: every receiver that parks is linked in recv_waiters_
//     and re-checked the queue and state_ after a seq_cst fence; every
//     sender, after enqueueing (and after dropping its in-flight count),
//     fences and notifies one waiter (all, if it was the last in flight of a
//     closed channel). A waiter that was notified but leaves without taking
//     an item (timeout, interrupt, Select taking elsewhere) wakes one other
//     receiver if the queue is non-empty (PassOnRecv).
//   - moodycamel's try_dequeue may fail while an item is present (another
//     consumer is half-way through an overcommitted dequeue). Probe reports
//     that as kBusy when size_approx() > 0, and no caller parks on kBusy.
//
// Memory ordering: the item itself is published by moodycamel (release on
// enqueue, acquire on dequeue). The state_ RMWs are acq_rel, so a receiver
// that loads "closed, 0 in flight" with acquire sees every item enqueued by
// the senders that have left. Sleeping relies on the seq_cst fences of the
// Dekker pattern described in wait_list.h.
#ifndef XCHANNELS_DETAIL_QUEUE_BASE_H_
#define XCHANNELS_DETAIL_QUEUE_BASE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#include "concurrentqueue/concurrentqueue.h"
#include "xchannels/detail/common.h"
#include "xchannels/detail/futex.h"
#include "xchannels/detail/wait_list.h"

namespace xchannels::detail {

inline constexpr uint64_t kClosedBit = 1;
inline constexpr uint64_t kInFlightOne = 2;
inline constexpr size_t kCacheLine = 64;

// The Dekker fence of a sender, placed right after a seq_cst RMW. On x86 a
// lock-prefixed RMW already is a full barrier (no store-load reordering
// across it), so only the compiler must be stopped; an mfence there costs
// ~10% of SPSC throughput. Elsewhere: a real seq_cst fence.
inline void FenceAfterRmw() {
#if defined(__x86_64__) || defined(__i386__)
  std::atomic_signal_fence(std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// The outcome of one non-blocking receive attempt.
enum class Probe : uint8_t {
  kGot,      // an item was moved into `out`
  kEmpty,    // nothing there (and not closed-and-drained)
  kBusy,     // looks non-empty but a concurrent dequeue is mid-way: retry
  kDrained,  // closed, nobody in flight, queue empty: final
};

// Derived must provide `void OnDequeued()` (called after every successful
// dequeue; the bounded flavor frees a slot there).
template <class T, class Derived>
class QueueBase {
 public:
  QueueBase(const QueueBase&) = delete;
  QueueBase& operator=(const QueueBase&) = delete;

  bool closed() const noexcept {
    return (state_.load(std::memory_order_acquire) & kClosedBit) != 0;
  }
  size_t size() const noexcept { return queue_.size_approx(); }
  WaitList& recv_waiters() noexcept { return recv_waiters_; }

  // One receive attempt, with the close rule of the invariants.
  Probe ProbeRecv(T& out) {
    if (TryDequeue(out)) return Probe::kGot;
    const uint64_t st = state_.load(std::memory_order_seq_cst);
    if (st == kClosedBit) {
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

  OpStatus Recv(T& out, const Deadline& deadline, bool interruptible) {
    if (TryDequeue(out)) return OpStatus::kOk;
    if (!deadline.has_value() || Clock::now() < *deadline) {
      for (int i = 0; i < kSpinIterations; ++i) {
        CpuRelax();
        if (TryDequeue(out)) return OpStatus::kOk;
      }
    }
    for (;;) {
      Probe p = ProbeRecv(out);
      if (p == Probe::kGot) return OpStatus::kOk;
      if (p == Probe::kDrained) return OpStatus::kClosed;
      if (p == Probe::kBusy) {
        YieldCpu();
        continue;
      }
      if (deadline.has_value() && Clock::now() >= *deadline) {
        return OpStatus::kEmpty;
      }
      Parker parker;
      WaitNode node;
      node.parker = &parker;
      recv_waiters_.Add(&node);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      p = ProbeRecv(out);
      WaitResult w = WaitResult::kNotified;
      if (p == Probe::kEmpty) {
        w = Park(parker, deadline, interruptible);
        // Giving up: one last look, an item may have just arrived.
        if (w != WaitResult::kNotified) p = ProbeRecv(out);
      }
      const bool notified = !recv_waiters_.Remove(&node);
      switch (p) {
        case Probe::kGot:
          if (notified) PassOnRecv();
          return OpStatus::kOk;
        case Probe::kDrained:
          return OpStatus::kClosed;  // close() woke everyone already
        case Probe::kBusy:
        case Probe::kEmpty:
          break;
      }
      if (w != WaitResult::kNotified) {
        if (notified) PassOnRecv();
        return w == WaitResult::kTimeout ? OpStatus::kEmpty
                                         : OpStatus::kInterrupted;
      }
      // Notified (or busy): go round and try again; we still want an item,
      // so the notification is not wasted.
      if (p == Probe::kBusy) YieldCpu();
    }
  }

 protected:
  explicit QueueBase(size_t initial_capacity) : queue_(initial_capacity) {}
  ~QueueBase() = default;

  bool TryDequeue(T& out) {
    if (!queue_.try_dequeue(out)) return false;
    static_cast<Derived*>(this)->OnDequeued();
    return true;
  }

  // Enqueues `v` unless the channel is closed. A bounded caller has already
  // reserved a slot (and must release it on kClosed). Throws std::bad_alloc
  // if moodycamel cannot allocate a block (v untouched, nothing enqueued).
  OpStatus Enqueue(T& v) {
    const uint64_t prev =
        state_.fetch_add(kInFlightOne, std::memory_order_acq_rel);
    if ((prev & kClosedBit) != 0) {
      EndInFlight(/*enqueued=*/false);
      return OpStatus::kClosed;
    }
    bool ok;
    try {
      ok = queue_.enqueue(std::move(v));
    } catch (...) {
      EndInFlight(false);
      throw;
    }
    EndInFlight(ok);
    if (!ok) throw std::bad_alloc();
    return OpStatus::kOk;
  }

  void Close() {
    state_.fetch_or(kClosedBit, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    recv_waiters_.NotifyAll();
  }

 private:
  void EndInFlight(bool enqueued) {
    const uint64_t prev =
        state_.fetch_sub(kInFlightOne, std::memory_order_seq_cst);
    FenceAfterRmw();
    if (!recv_waiters_.HasWaiters()) return;
    if (prev == (kClosedBit | kInFlightOne)) {
      recv_waiters_.NotifyAll();  // receivers waiting for in-flight to end
    } else if (enqueued) {
      recv_waiters_.NotifyOne();
    }
  }

  // TSan: moodycamel 1.0.3 has a formal (C++-model) race when a block is
  // recycled; it is suppressed for TSan builds only, see core/src/wait.cc
  // and tests/cpp/tsan.supp.
  moodycamel::ConcurrentQueue<T> queue_;
  // Written by every send; kept off the lines the receivers write.
  alignas(kCacheLine) std::atomic<uint64_t> state_{0};
  alignas(kCacheLine) WaitList recv_waiters_;
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_QUEUE_BASE_H_
