// core/include/xchannels/channel.h: xchannels::Channel<T>, a blocking MPMC
// channel with close, deadlines and interruptible waits; the public type only
// dispatches to one flavor (detail/unbounded.h, detail/bounded.h).
//
// Invariants:
//   - A channel is alive while any Ref to it exists; a thread blocked in it
//     holds one through its caller, so a channel is never destroyed under a
//     waiter. On the last Unref it leaves the registry, then the queue
//     destroys every item still queued.
//   - Closed is final. After close(), no send succeeds; receives drain the
//     items that were sent (kOk) and then report kClosed. No item whose send
//     returned kOk is ever lost.
//   - FIFO per producer thread; no order between producers (moodycamel).
//   - No sleep loops: every wait is a futex wait woken by the operation that
//     makes progress possible (see detail/queue_base.h for the protocol), or
//     an external waiter's Notifier call (event loops; AddRecvWaiter below).
//
// Memory ordering: an item's construction (by the sender) happens-before its
// use by the receiver that gets it. close() happens-before the kClosed seen
// by any thread.
//
// Lifecycle (what each operation returns in each state):
//
//   state                 | send / try_send     | recv / try_recv        | close
//   ----------------------+---------------------+------------------------+--------
//   open                  | kOk; kFull (bounded,| kOk; kEmpty (nothing,  | -> closed, wakes
//                         | no room by deadline | by deadline / try);    | every waiter
//                         | / try); blocks      | blocks otherwise;      |
//                         | otherwise;          | kInterrupted           |
//                         | kInterrupted        |                        |
//   closed, items queued  | kClosed             | kOk (drains)           | no-op
//   closed and drained    | kClosed             | kClosed                | no-op
//
//   Task tracking (queue.Queue's task_done/join): every item whose send
//   returned kOk counts as one unfinished task until task_done() is called
//   for it (by anyone) or close_and_drop() dropped it. Counting costs a send
//   no locked instruction (detail/task_counter.h). join() waits, in any
//   state, until no task is unfinished.
//
//   Counted close (several producers): close_after(n) makes the next n
//   counted_close() calls close the channel on the last one; without it,
//   counted_close() is close().
//
//   kInterrupted only with interruptible=true, when a signal handler ran on
//   the blocked thread (FUTEX_WAIT returned EINTR). Nothing was sent or
//   received; the caller checks its signals and may call again.
#ifndef XCHANNELS_CHANNEL_H_
#define XCHANNELS_CHANNEL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <variant>

#include "xchannels/detail/bounded.h"
#include "xchannels/detail/common.h"
#include "xchannels/detail/unbounded.h"
#include "xchannels/refcount.h"

namespace xchannels {

// The type-erased part of every channel: id, registry entry, close.
class ChannelBase : public RefCounted {
 public:
  // Thread-safe. Never blocks. Process-unique, never reused, starts at 1.
  uint64_t id() const noexcept { return id_; }

  // Thread-safe. Idempotent. Waits only for sends already in flight (each a
  // non-blocking enqueue; see detail/barrier.h) and takes the wait-list
  // locks briefly. Wakes every waiter (send, recv, Select) in every thread.
  // Must not be called from inside a send on the same thread.
  virtual void close() = 0;
  // Thread-safe. Never blocks.
  virtual bool closed() const = 0;
  // Thread-safe. Never blocks. Approximate under concurrency.
  virtual size_t size() const = 0;
  // Thread-safe. Never blocks. 0 means unbounded.
  virtual size_t capacity() const = 0;

  // Thread-safe. Never blocks. Adds n (>= 1) to the number of
  // counted_close() calls still needed before the channel closes. Returns
  // false (and changes nothing) if the channel is closed already, or if the
  // count would overflow.
  bool close_after(uint64_t n) noexcept {
    uint64_t p = close_pending_.load(std::memory_order_relaxed);
    do {
      if (closed() || n == 0 || p > UINT64_MAX - n) return false;
    } while (!close_pending_.compare_exchange_weak(
        p, p + n, std::memory_order_acq_rel, std::memory_order_relaxed));
    return true;
  }
  // Thread-safe. As close(), except after close_after(n): then each call
  // counts one down and only the call that reaches zero closes. Returns true
  // if the channel is closed on return.
  bool counted_close() {
    uint64_t p = close_pending_.load(std::memory_order_acquire);
    for (;;) {
      if (p == 0) break;
      if (close_pending_.compare_exchange_weak(p, p - 1,
                                               std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        if (p != 1) return closed();
        break;
      }
    }
    close();
    return true;
  }
  // Thread-safe. Never blocks. The counted_close() calls still needed.
  uint64_t close_pending() const noexcept {
    return close_pending_.load(std::memory_order_acquire);
  }

  // An opaque tag naming the element type T of the Channel<T> behind this.
  const void* type_tag() const noexcept { return type_tag_; }

  // Not thread-safe against itself: set once, right after Create and before
  // the channel is shared. Opaque data that travels with the channel (the
  // Python bindings keep the `type=` spec here, so every interpreter that
  // attaches by id sees it). Never changes after that.
  void set_attachment(std::shared_ptr<const void> a) noexcept {
    attachment_ = std::move(a);
  }
  // Thread-safe once set. Copies the shared pointer (two atomic ops).
  const std::shared_ptr<const void>& attachment() const noexcept {
    return attachment_;
  }

 protected:
  explicit ChannelBase(const void* type_tag);
  ~ChannelBase() override = default;
  // Leaves the registry (if registered), then deletes the channel.
  void OnLastUnref() noexcept override;
  // Adds the channel to Registry::Global(). Called once, by Create.
  void Register();

 private:
  const uint64_t id_;
  const void* const type_tag_;
  bool registered_ = false;
  std::atomic<uint64_t> close_pending_{0};
  std::shared_ptr<const void> attachment_;
};

namespace detail {
template <class T>
struct TypeTag {
  static constexpr char tag = 0;
};
}  // namespace detail

template <class T>
class Channel;

template <class T>
OpStatus Select(std::span<Channel<T>* const> channels, size_t* index, T& out,
                Deadline deadline, bool interruptible = false);  // select.h

// T: move-constructible and move-assignable; its destructor must not throw.
template <class T>
class Channel final : public ChannelBase {
  static_assert(std::is_move_constructible_v<T> &&
                    std::is_move_assignable_v<T> &&
                    std::is_nothrow_destructible_v<T>,
                "Channel<T> needs a movable T with a non-throwing destructor");

 public:
  // Thread-safe. Allocates. Returns a new open channel, registered in
  // Registry::Global(). capacity 0 = unbounded.
  static Ref<Channel> Create(size_t capacity = 0) {
    Ref<Channel> ch = Ref<Channel>::Adopt(new Channel(capacity));
    ch->Register();
    return ch;
  }

  // Thread-safe. Never blocks. Returns the Channel<T> behind `base`, or
  // nullptr if `base` is null or holds another element type.
  static Ref<Channel> FromBase(Ref<ChannelBase> base) noexcept {
    if (!base || base->type_tag() != &detail::TypeTag<T>::tag) return nullptr;
    return Ref<Channel>::Adopt(static_cast<Channel*>(base.Release()));
  }

  // Thread-safe. Never blocks. Sends v if there is room: kOk (v moved-from),
  // kFull (bounded, no room) or kClosed; on failure v is untouched.
  // May allocate (a queue block); throws std::bad_alloc if that fails.
  OpStatus try_send(T& v) {
    return Dispatch([&](auto& f) { return f.TrySend(v); });
  }

  // Thread-safe. Blocks until there is room, the channel closes, the
  // deadline passes (kFull) or, if interruptible, a signal handler runs
  // (kInterrupted). An unbounded channel never blocks. On kOk v is
  // moved-from; otherwise untouched. May allocate, as try_send.
  OpStatus send(T& v, Deadline deadline, bool interruptible = false) {
    return Dispatch(
        [&](auto& f) { return f.Send(v, deadline, interruptible); });
  }

  // Thread-safe. Never blocks, never allocates. kOk (out assigned), kEmpty,
  // or kClosed once the channel is closed and drained.
  OpStatus try_recv(T& out) {
    return Dispatch([&](auto& f) { return f.TryRecv(out); });
  }

  // Thread-safe. Blocks until an item arrives (kOk), the channel is closed
  // and drained (kClosed), the deadline passes (kEmpty) or, if
  // interruptible, a signal handler runs (kInterrupted). Spins about a
  // microsecond before parking. Never allocates.
  OpStatus recv(T& out, Deadline deadline, bool interruptible = false) {
    return Dispatch(
        [&](auto& f) { return f.Recv(out, deadline, interruptible); });
  }

  // Thread-safe. Idempotent. Never allocates. Wakes every waiter at once.
  void close() override {
    Dispatch([](auto& f) { f.Close(); });
  }
  // Thread-safe. Never blocks.
  bool closed() const override {
    return const_cast<Channel*>(this)->Dispatch(
        [](auto& f) { return f.closed(); });
  }
  // Thread-safe. Never blocks. Approximate under concurrency.
  size_t size() const override {
    return const_cast<Channel*>(this)->Dispatch(
        [](auto& f) { return f.size(); });
  }
  // Thread-safe. Never blocks. 0 = unbounded.
  size_t capacity() const override { return capacity_; }

  // ---- Task tracking (queue.Queue's task_done / join) ----------------------
  // Thread-safe. Never blocks, never allocates. Marks one sent item as
  // processed; returns false (nothing changed) if no task is unfinished.
  bool task_done() noexcept { return tasks().TaskDone(); }
  // Thread-safe. Never blocks. Items sent and not yet marked done (or
  // dropped); exact when nothing runs concurrently.
  uint64_t unfinished_tasks() const noexcept {
    return const_cast<Channel*>(this)->tasks().Unfinished();
  }
  // Thread-safe. Blocks until no task is unfinished (kOk), the deadline
  // passes (kEmpty) or, if interruptible, a signal handler runs
  // (kInterrupted). Never allocates. Independent of close: a closed channel
  // still waits for the tasks taken from it.
  OpStatus join(Deadline deadline, bool interruptible = false) {
    return tasks().Join(deadline, interruptible);
  }
  // As AddRecvWaiter, for an external joiner: notified whenever the count
  // may have reached zero (every joiner at once); re-check with
  // unfinished_tasks(). Nothing to pass on when leaving.
  void AddJoinWaiter(detail::WaitNode* node, bool barrier = true) {
    tasks().join_waiters().Add(node);
    if (barrier) detail::HeavyBarrier();
  }
  bool RemoveJoinWaiter(detail::WaitNode* node) {
    return !tasks().join_waiters().Remove(node);
  }

  // Thread-safe. close(), then takes every item still queued and destroys
  // it (on this thread), marking each one's task done: queue.Queue's
  // shutdown(immediate=True). Returns how many items it dropped. Receivers
  // racing it may still take some of the items. Never allocates.
  size_t close_and_drop()
    requires std::is_default_constructible_v<T>
  {
    close();
    size_t dropped = 0;
    for (;;) {
      T item;
      if (try_recv(item) != OpStatus::kOk) break;
      ++dropped;
    }
    tasks().AddDone(dropped);
    return dropped;
  }

  // ---- External waiters (event loops) ----------------------------------------
  // A waiter that is not a blocked thread: its node's Parker carries a
  // detail::Notifier, called (under the wait-list lock) instead of a futex
  // wake. Protocol, the same Dekker pattern as recv/send:
  //   parker.Rearm(); Add*Waiter(&node);   // links, then a HeavyBarrier
  //   try_recv / try_send                  // the re-check; then wait for
  //                                        // Notify() and try again
  //   notified = Remove*Waiter(&node);     // before giving up or retrying
  //   if (notified && leaving) PassOn*();  // the lost-wake-up rule
  // A waiter that was notified and leaves (cancelled, timed out, or took
  // its item) must call PassOn*(); one that retries need not. Several nodes
  // (one per channel, as Select) may share one Parker.

  // Thread-safe. Never allocates. Links `node` in the receivers' list, then
  // issues the HeavyBarrier (a system call, see detail/barrier.h): the
  // caller must re-check with try_recv before relying on a notification.
  // `node` must stay valid until removed. A caller that links nodes in
  // several channels may pass barrier=false for all of them and call
  // detail::HeavyBarrier() once after the last, before any re-check.
  void AddRecvWaiter(detail::WaitNode* node, bool barrier = true) {
    recv_waiters().Add(node);
    if (barrier) detail::HeavyBarrier();
  }
  // Thread-safe. Never allocates. Unlinks `node`; returns true if it had
  // been notified (a notifier had already unlinked it), false otherwise.
  bool RemoveRecvWaiter(detail::WaitNode* node) {
    return !recv_waiters().Remove(node);
  }
  // Thread-safe. Never allocates. Wakes one receiver if items remain: the
  // duty of a notified receiver that leaves.
  void PassOnRecv() {
    Dispatch([](auto& f) { f.PassOnRecv(); });
  }

  // As AddRecvWaiter, for a sender waiting for room. Bounded channels only
  // (capacity() > 0): an unbounded send never waits, so on an unbounded
  // channel this notifies `node` at once and links nothing.
  void AddSendWaiter(detail::WaitNode* node, bool barrier = true) {
    Dispatch([&](auto& f) {
      if constexpr (requires { f.send_waiters(); }) {
        f.send_waiters().Add(node);
        if (barrier) detail::HeavyBarrier();
      } else {
        if (node->parker->TryNotify() && node->parker->notifier != nullptr) {
          node->parker->notifier->Notify();
        }
      }
    });
  }
  // As RemoveRecvWaiter, for a node added by AddSendWaiter (an unbounded
  // channel's node counts as notified).
  bool RemoveSendWaiter(detail::WaitNode* node) {
    return Dispatch([&](auto& f) {
      if constexpr (requires { f.send_waiters(); }) {
        return !f.send_waiters().Remove(node);
      } else {
        return true;
      }
    });
  }
  // Thread-safe. Never allocates. Wakes one waiting sender if a slot is
  // free (no-op on an unbounded channel): the duty of a notified sender that
  // leaves without sending.
  void PassOnSend() {
    // Not through Dispatch: GCC 12 then warns (wrongly) of a null access.
    if (auto* bounded = std::get_if<2>(&flavor_)) bounded->PassOnSend();
  }

 private:
  template <class U>
  friend OpStatus Select(std::span<Channel<U>* const>, size_t*, U&, Deadline,
                         bool);

  explicit Channel(size_t capacity)
      : ChannelBase(&detail::TypeTag<T>::tag), capacity_(capacity) {
    // The flavors are neither copyable nor movable: build in place.
    if (capacity == 0) {
      flavor_.template emplace<1>();
    } else {
      flavor_.template emplace<2>(capacity);
    }
  }
  ~Channel() override = default;

  template <class F>
  decltype(auto) Dispatch(F&& f) {
    if (capacity_ == 0) return f(*std::get_if<1>(&flavor_));
    return f(*std::get_if<2>(&flavor_));
  }

  // For Select.
  detail::Probe ProbeRecv(T& out) {
    return Dispatch([&](auto& f) { return f.ProbeRecv(out); });
  }
  detail::WaitList& recv_waiters() {
    return Dispatch(
        [](auto& f) -> detail::WaitList& { return f.recv_waiters(); });
  }
  detail::TaskCounter& tasks() {
    return Dispatch(
        [](auto& f) -> detail::TaskCounter& { return f.tasks(); });
  }
  const size_t capacity_;
  // monostate only until the constructor body has run.
  std::variant<std::monostate, detail::Unbounded<T>, detail::Bounded<T>>
      flavor_;
};

}  // namespace xchannels

#endif  // XCHANNELS_CHANNEL_H_
