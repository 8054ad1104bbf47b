// core/include/xchannels/detail/unbounded.h: the unbounded flavor: sends never
// wait; receives wait on the receiver list of QueueBase.
//
// Invariants: those of QueueBase; there is no sender wait list, so send()
// returns kOk or kClosed (or throws std::bad_alloc when memory runs out),
// and the send-side methods every flavor has answer trivially.
// Memory ordering: that of QueueBase.
#ifndef XCHANNELS_DETAIL_UNBOUNDED_H_
#define XCHANNELS_DETAIL_UNBOUNDED_H_

#include <cstddef>

#include "xchannels/detail/queue_base.h"

namespace xchannels::detail {

template <class T>
class Unbounded final : public QueueBase<T, Unbounded<T>> {
  using Base = QueueBase<T, Unbounded<T>>;
  friend Base;

 public:
  Unbounded() : Base(kInitialCapacity) {}

  OpStatus TrySend(T& v) { return this->Enqueue(v); }
  OpStatus Send(T& v, const Deadline&, bool) { return this->Enqueue(v); }
  void Close() { Base::Close(); }
  size_t capacity() const noexcept { return 0; }
  // The send side of the flavor interface, answered trivially: a send never
  // waits, so its target has no list (a waiter on it is notified at once)
  // and there is nothing to pass on.
  WaitTarget SendTarget() noexcept { return {}; }
  void PassOnSend() noexcept {}

 private:
  // moodycamel preallocates this many elements (rounded up to whole blocks).
  static constexpr size_t kInitialCapacity = 64;
  void OnDequeued() noexcept {}
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_UNBOUNDED_H_
