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
  const size_t capacity_;
  // monostate only until the constructor body has run.
  std::variant<std::monostate, detail::Unbounded<T>, detail::Bounded<T>>
      flavor_;
};

}  // namespace xchannels

#endif  // XCHANNELS_CHANNEL_H_
