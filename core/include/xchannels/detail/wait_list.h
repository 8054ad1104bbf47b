// core/include/xchannels/detail/wait_list.h: an intrusive FIFO of parked
// threads (one per channel side) with a lock-free "anyone waiting?" check.
//
// Invariants:
//   - A WaitNode is linked in at most one list, and `linked` is true exactly
//     while it is; both are read and written only under that list's mu_.
//   - count_ == number of linked nodes; it changes only under mu_, so a
//     reader that sees 0 after its barrier knows that no waiter had
//     registered before the barrier that pairs with it (Dekker pattern below).
//   - A notifier unlinks a node and calls TryNotify on its Parker under mu_,
//     so once the waiter's Remove() (which takes mu_) returns false, nobody
//     touches the node or the Parker's word any more; only the FutexWake
//     system call, made after unlocking, may still name the address.
//   - An external waiter's node (Parker::notifier set) is notified by calling
//     Notifier::Notify() under mu_, not by a futex wake after unlocking: its
//     owner may free it as soon as its Remove() has taken mu_.
//   - Several nodes (Select: one per channel) may share one Parker; a node
//     whose Parker was already notified is skipped by NotifyOne, which then
//     notifies the next node, so one notification is never absorbed twice.
//
// Memory ordering (the Dekker pattern every caller follows; the barriers are
// those of barrier.h, an asymmetric pair, or seq_cst fences on either side):
//   waiter:   Add(node) [count_++ under mu_]; HeavyBarrier(); re-check state
//   notifier: publish state;                   LightBarrier(); HasWaiters()
// Either the waiter's re-check sees the new state, or the notifier sees
// count_ > 0 and takes the lock. mu_ orders everything else.
#ifndef XCHANNELS_DETAIL_WAIT_LIST_H_
#define XCHANNELS_DETAIL_WAIT_LIST_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "xchannels/detail/futex.h"
#include "xchannels/detail/intrusive_list.h"
#include "xchannels/detail/mutex.h"

namespace xchannels::detail {

struct WaitNode {
  Parker* parker = nullptr;
  WaitNode* prev = nullptr;
  WaitNode* next = nullptr;
  bool linked = false;  // under the owning list's mu_
};

class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;

  // Thread-safe. Never allocates. Appends `node`; the caller then issues a
  // HeavyBarrier and re-checks the condition it is about to wait for.
  void Add(WaitNode* node) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    list_.PushBack(node);
    node->linked = true;
    count_.fetch_add(1, std::memory_order_relaxed);
  }

  // Thread-safe. Never allocates. Unlinks `node` if it is still linked and
  // returns true; returns false if a notifier already took it out (the
  // caller was notified and must pass the notification on if it leaves
  // without consuming what it stood for).
  bool Remove(WaitNode* node) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (!node->linked) return false;
    Unlink(node);
    return true;
  }

  // Thread-safe. Never blocks, never allocates. Meaningful only after a
  // barrier (LightBarrier or stronger) that follows the caller's change.
  bool HasWaiters() const noexcept {
    return count_.load(std::memory_order_relaxed) != 0;
  }

  // Thread-safe. Never allocates. Takes the lock only if someone waits.
  // Unlinks nodes from the front until one whose Parker was not yet notified
  // is found, notifies it and wakes its thread (or, for an external waiter,
  // calls its Notifier under the lock).
  void NotifyOne() ABSL_LOCKS_EXCLUDED(mu_) {
    if (!HasWaiters()) return;
    std::atomic<uint32_t>* to_wake = nullptr;
    {
      MutexLock lock(&mu_);
      while (!list_.empty()) {
        WaitNode* node = list_.front();
        Unlink(node);
        Parker* parker = node->parker;
        if (parker->TryNotify()) {
          if (parker->notifier != nullptr) {
            parker->notifier->Notify();  // under mu_, see the invariants
          } else {
            to_wake = &parker->word;
          }
          break;
        }
      }
    }
    // After unlocking: the woken thread need not wait for our lock. The
    // Parker may be gone by now; see the invariants above.
    if (to_wake != nullptr) FutexWake(to_wake, 1);
  }

  // Thread-safe. Never allocates. Notifies and wakes every linked node
  // (close). Wakes under the lock because the nodes
  // may vanish as soon as it is released; this path is rare.
  void NotifyAll() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    while (!list_.empty()) {
      WaitNode* node = list_.front();
      Unlink(node);
      Parker* parker = node->parker;
      if (!parker->TryNotify()) continue;
      if (parker->notifier != nullptr) {
        parker->notifier->Notify();
      } else {
        FutexWake(&parker->word, 1);
      }
    }
  }

 private:
  void Unlink(WaitNode* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    list_.Unlink(node);
    node->linked = false;
    count_.fetch_sub(1, std::memory_order_relaxed);
  }

  Mutex mu_;
  IntrusiveList<WaitNode> list_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint32_t> count_{0};
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_WAIT_LIST_H_
