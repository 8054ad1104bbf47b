// core/include/xchannels/detail/waiter.h: the one place that knows how to
// wait for a channel without losing a wake-up. Recv, bounded Send, Select,
// join and the event-loop waiter of the bindings all go through it.
//
// The protocol (a waiter W, something it waits for on one or more wait
// lists, and the threads that make progress possible):
//
//   1. register   W links one node per target in that target's wait list,
//                 all nodes sharing one Parker;
//   2. barrier    HeavyBarrier() (barrier.h), once after the last link;
//   3. re-probe   W tries again: what it waits for may have happened before
//                 it was linked;
//   4. park       only if the re-probe found nothing: sleep on the Parker
//                 until notified, the deadline or (interruptible) a signal;
//   5. last look  if W gives up (timeout, signal), it tries once more;
//   6. remove     W unlinks every node; a node a notifier already took says
//                 that W consumed a notification from that target;
//   7. pass on    if W leaves (it got what it wanted, or gives up) and a
//                 target had notified it, W hands the notification on to
//                 another waiter of that target (the target's pass_on, which
//                 wakes one if what a notification stands for is still
//                 there). If W goes round again instead, the retry uses the
//                 notification, and nothing is passed on.
//
// Why no wake-up is lost: a thread that makes progress (a send, a freed
// slot, a task_done that reaches zero, close) publishes its change, passes a
// LightBarrier and then looks at the list's waiter count (WaitList::
// HasWaiters). Against steps 1-3 that is the Dekker pair of barrier.h:
// either the notifier sees W's node and notifies it, or W's re-probe sees
// the change. A notification is absorbed by exactly one node (Parker::
// TryNotify); a W that absorbed one and leaves without using it hands it on
// (step 7), so a notification for an item never dies with a W that timed
// out, was interrupted, or took an item from another channel (Select).
//
// Invariants:
//   - Between Link() and Unlink() every node is in its target's list or was
//     taken out by a notifier; after Unlink() none is, so a target never
//     holds a pointer into a finished wait.
//   - notified[i] records, from the last Unlink(), whether target i's node
//     had been taken by a notifier; PassOn() clears it; Link() clears it
//     (a retry uses the notification).
//   - A target with no list (an unbounded channel's send side: never full)
//     counts as notified at once: Link() notifies the parker itself.
//
// Memory ordering: the barrier pair above; the wait-list lock orders a
// notifier's TryNotify before W's Remove.
#ifndef XCHANNELS_DETAIL_WAITER_H_
#define XCHANNELS_DETAIL_WAITER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "xchannels/detail/barrier.h"
#include "xchannels/detail/common.h"
#include "xchannels/detail/futex.h"
#include "xchannels/detail/wait_list.h"

namespace xchannels::detail {

// One thing to wait on: a wait list and what to do to pass a notification
// from it on. list == nullptr: never waits (notified at once on Link).
struct WaitTarget {
  WaitList* list = nullptr;
  void (*pass_on)(void* owner) = nullptr;  // nullptr: nothing to pass on
  void* owner = nullptr;
};

// The nodes, parker and bookkeeping of one wait over n targets. Never
// allocates for up to kInline targets.
class Waiter {
 public:
  static constexpr size_t kInline = 8;

  // `parker` must outlive the waiter's linked span; an external waiter
  // passes a Parker with a Notifier (futex.h).
  explicit Waiter(std::span<const WaitTarget> targets, Parker* parker)
      : targets_(targets), parker_(parker) {
    if (targets.size() > kInline) {
      heap_nodes_ = std::make_unique<WaitNode[]>(targets.size());
      heap_notified_ = std::make_unique<uint8_t[]>(targets.size());
      nodes_ = heap_nodes_.get();
      notified_ = heap_notified_.get();
    }
    for (size_t i = 0; i < targets.size(); ++i) notified_[i] = 0;
  }
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter() { Unlink(); }

  // Steps 1-2. With barrier=false the caller issues the HeavyBarrier itself
  // before its re-probe.
  void Link(bool barrier = true) {
    for (size_t i = 0; i < targets_.size(); ++i) {
      notified_[i] = 0;
      nodes_[i].parker = parker_;
      if (targets_[i].list != nullptr) {
        targets_[i].list->Add(&nodes_[i]);
      } else if (parker_->TryNotify() && parker_->notifier != nullptr) {
        parker_->notifier->Notify();
      }
    }
    linked_ = true;
    if (barrier) HeavyBarrier();
  }

  // Step 6. Idempotent. Returns whether any target had notified this wait.
  bool Unlink() {
    if (!linked_) return false;
    linked_ = false;
    bool any = false;
    for (size_t i = 0; i < targets_.size(); ++i) {
      if (targets_[i].list != nullptr && !targets_[i].list->Remove(&nodes_[i])) {
        notified_[i] = 1;
        any = true;
      }
    }
    return any;
  }

  // Step 7, for a wait that leaves. Any time after Unlink().
  void PassOn() {
    for (size_t i = 0; i < targets_.size(); ++i) {
      if (!notified_[i]) continue;
      notified_[i] = 0;
      if (targets_[i].pass_on != nullptr) targets_[i].pass_on(targets_[i].owner);
    }
  }

  bool linked() const noexcept { return linked_; }

 private:
  std::span<const WaitTarget> targets_;
  Parker* parker_;
  WaitNode inline_nodes_[kInline];
  uint8_t inline_notified_[kInline];
  std::unique_ptr<WaitNode[]> heap_nodes_;
  std::unique_ptr<uint8_t[]> heap_notified_;
  WaitNode* nodes_ = inline_nodes_;
  uint8_t* notified_ = inline_notified_;
  bool linked_ = false;
};

// What one attempt of a blocked operation found.
struct Attempt {
  enum Kind : uint8_t {
    kDone,  // finished: return `status`
    kWait,  // nothing yet: park
    kBusy,  // another thread is mid-way (a concurrent dequeue): retry soon
  };
  Kind kind;
  OpStatus status = OpStatus::kOk;
  static Attempt Done(OpStatus s) { return {kDone, s}; }
  static Attempt Wait() { return {kWait}; }
  static Attempt Busy() { return {kBusy}; }
};

// The slow path of every blocking call: steps 1-7 in a loop until `attempt`
// is done, the deadline passes (returns `on_timeout`) or, if interruptible,
// a signal handler runs (kInterrupted). The caller has already tried (and
// spun, if it spins) without registering. `attempt` is called with no lock
// held, any number of times.
template <class F>
OpStatus ParkUntil(std::span<const WaitTarget> targets, F&& attempt,
                   const Deadline& deadline, bool interruptible,
                   OpStatus on_timeout) {
  Attempt a = attempt();
  for (;;) {
    if (a.kind == Attempt::kDone) return a.status;
    if (a.kind == Attempt::kBusy) {
      YieldCpu();
      a = attempt();
      continue;
    }
    if (deadline.has_value() && Clock::now() >= *deadline) return on_timeout;
    Parker parker;
    Waiter w(targets, &parker);
    w.Link();
    a = attempt();  // step 3
    WaitResult r = WaitResult::kNotified;
    if (a.kind == Attempt::kWait) {
      r = Park(parker, deadline, interruptible);
      if (r != WaitResult::kNotified) a = attempt();  // step 5
    }
    w.Unlink();
    if (a.kind == Attempt::kDone || r != WaitResult::kNotified) {
      w.PassOn();  // leaving
      if (a.kind == Attempt::kDone) return a.status;
      return r == WaitResult::kTimeout ? on_timeout : OpStatus::kInterrupted;
    }
    // Notified, or busy: go round; the retry uses the notification.
    if (a.kind == Attempt::kWait) a = attempt();
  }
}

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_WAITER_H_
