// core/include/xchannels/detail/bounded.h: the bounded flavor: a slot count
// caps the queue; senders wait for a free slot on their own wait list.
//
// Invariants (besides QueueBase's):
//   - slots_ = items queued + slots reserved by senders not yet enqueued
//     <= capacity_. A sender reserves by CAS (slots_ < capacity_) before it
//     enqueues; a receiver frees one after every successful dequeue, and a
//     sender frees its own if it finds the channel closed.
//   - No lost wake-up: a sender waits through detail::ParkUntil (waiter.h);
//     whoever frees a slot passes a LightBarrier and notifies one waiting
//     sender (barrier.h). A notified sender that leaves without a slot
//     (timeout, interrupt) passes the notification on if a slot is free
//     (PassOnSend). close() wakes every sender.
//
// Memory ordering: slots_ is only a counter (the items are published by the
// queue); its RMWs are acq_rel; the Dekker pair is LightBarrier (freeing
// side) against HeavyBarrier (parking side), see barrier.h.
#ifndef XCHANNELS_DETAIL_BOUNDED_H_
#define XCHANNELS_DETAIL_BOUNDED_H_

#include <algorithm>
#include <atomic>
#include <cstddef>

#include "xchannels/detail/queue_base.h"

namespace xchannels::detail {

template <class T>
class Bounded final : public QueueBase<T, Bounded<T>> {
  using Base = QueueBase<T, Bounded<T>>;
  friend Base;

 public:
  explicit Bounded(size_t capacity)
      : Base(std::min<size_t>(capacity, kMaxInitialCapacity)),
        capacity_(capacity) {}

  size_t capacity() const noexcept { return capacity_; }
  size_t size() const noexcept { return std::min(Base::size(), capacity_); }

  OpStatus TrySend(T& v) {
    if (this->closed()) return OpStatus::kClosed;
    if (!TryReserve()) {
      return this->closed() ? OpStatus::kClosed : OpStatus::kFull;
    }
    return SendReserved(v);
  }

  OpStatus Send(T& v, const Deadline& deadline, bool interruptible) {
    if (this->closed()) return OpStatus::kClosed;
    if (TryReserve()) return SendReserved(v);
    if (!deadline.has_value() || Clock::now() < *deadline) {
      for (int i = 0; i < kSpinIterations; ++i) {
        CpuRelax();
        if (TryReserve()) return SendReserved(v);
      }
    }
    const WaitTarget target = SendTarget();
    const OpStatus s = ParkUntil(
        std::span<const WaitTarget>(&target, 1),
        [&]() -> Attempt {
          if (this->closed()) return Attempt::Done(OpStatus::kClosed);
          if (TryReserve()) return Attempt::Done(OpStatus::kOk);
          return Attempt::Wait();
        },
        deadline, interruptible, OpStatus::kFull);
    return s == OpStatus::kOk ? SendReserved(v) : s;  // kOk: slot reserved
  }

  void Close() {
    Base::Close();
    send_waiters_.NotifyAll();
  }

  // The senders' wait target (waiter.h): this list, and PassOnSend, the
  // pass-on of a notified sender that leaves without sending.
  WaitTarget SendTarget() noexcept {
    return {&send_waiters_,
            [](void* self) { static_cast<Bounded*>(self)->PassOnSend(); },
            this};
  }
  void PassOnSend() {
    if (slots_.load(std::memory_order_relaxed) < capacity_) {
      send_waiters_.NotifyOne();
    }
  }

 private:
  // Preallocation is capped so that a huge maxsize costs nothing up front.
  static constexpr size_t kMaxInitialCapacity = 256;

  bool TryReserve() noexcept {
    size_t n = slots_.load(std::memory_order_relaxed);
    while (n < capacity_) {
      if (slots_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  OpStatus SendReserved(T& v) {
    OpStatus s;
    try {
      s = this->Enqueue(v);
    } catch (...) {
      ReleaseSlot();
      throw;
    }
    if (s != OpStatus::kOk) ReleaseSlot();
    return s;
  }

  void ReleaseSlot() {
    slots_.fetch_sub(1, std::memory_order_acq_rel);
    LightBarrier();
    send_waiters_.NotifyOne();  // no lock unless a sender waits
  }

  void OnDequeued() { ReleaseSlot(); }

  const size_t capacity_;
  alignas(kCacheLine) std::atomic<size_t> slots_{0};
  alignas(kCacheLine) WaitList send_waiters_;
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_BOUNDED_H_
