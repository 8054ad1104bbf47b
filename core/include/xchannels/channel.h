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
//     makes progress possible (detail/waiter.h holds the protocol), or an
//     external waiter's Notifier call (event loops; recv_target() below).
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
//   the blocked thread (FUTEX_WAIT returned EINTR) or, at the latest, after
//   each detail::kSignalRecheck (250 ms) of sleep: a signal that landed
//   just before the sleep began interrupted nothing. Nothing was sent or
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
#include "xchannels/detail/waiter.h"
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
  bool close_after(uint64_t n) noexcept;
  // Thread-safe. As close(), except after close_after(n): then each call
  // counts one down and only the call that reaches zero closes. Returns true
  // if the channel is closed on return.
  bool counted_close();
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

  // ---- Wait targets (detail/waiter.h) ----------------------------------------
  // What Select and external waiters (event loops) wait on: a wait list and
  // the pass-on of its notifications. An external waiter's Parker carries a
  // detail::Notifier, called (under the wait-list lock) instead of a futex
  // wake; it follows the protocol of waiter.h with a detail::Waiter:
  //   parker.Rearm(); waiter.Link();   // links, then a HeavyBarrier
  //   try_recv / try_send / unfinished_tasks()   // the re-check; then wait
  //                                              // for Notify() and retry
  //   waiter.Unlink();                 // before giving up or retrying
  //   waiter.PassOn();                 // when leaving for good
  // Thread-safe, never blocks, never allocates. The target stays valid while
  // the channel lives.
  //
  // Receivers: notified when an item may be there, or on close.
  detail::WaitTarget recv_target() {
    return Dispatch([](auto& f) { return f.RecvTarget(); });
  }
  // Senders: notified when a slot may be free, or on close. An unbounded
  // channel's send target has no list: a waiter on it is notified at once.
  detail::WaitTarget send_target() {
    return Dispatch([](auto& f) { return f.SendTarget(); });
  }
  // Joiners: notified whenever the task count may have reached zero (every
  // joiner at once); re-check with unfinished_tasks().
  detail::WaitTarget join_target() {
    return Dispatch([](auto& f) { return f.JoinTarget(); });
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
    if (capacity_ == 0) return f(Flavor<1>());
    return f(Flavor<2>());
  }
  // The flavor the constructor built: capacity_ says which, so the pointer
  // is never null, and saying so keeps GCC 16 from warning (-Wstringop-
  // overflow on a "likely null" destination) where it cannot prove it.
  template <size_t I>
  auto& Flavor() {
    auto* f = std::get_if<I>(&flavor_);
    if (f == nullptr) __builtin_unreachable();
    return *f;
  }

  // For Select.
  detail::Probe ProbeRecv(T& out) {
    return Dispatch([&](auto& f) { return f.ProbeRecv(out); });
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
