// core/include/xchannels/event_hub.h: an event loop's wake-up point: an
// eventfd and a ready list of entries. External waiters (detail::Notifier,
// futex.h) push themselves here from any thread when notified; the loop
// watches the eventfd and drains the list in its own thread. The bindings'
// asyncio hub (bindings/aio.cpp) is one EventHub per (interpreter, loop).
//
// Invariants:
//   - An entry is on the list at most once (in_ready), and in_ready is true
//     exactly while it is; both under mu_.
//   - The eventfd is written only when the list goes from empty to
//     non-empty (or is opened with entries waiting), and read (reset) by
//     Drain when it takes the whole list; both under mu_, so a non-empty
//     list always has an unread write.
//   - Lock order: a channel's wait-list lock, then mu_ (Push runs under the
//     former, from Notifier::Notify). Nothing takes a wait-list lock while
//     holding mu_.
//
// Memory ordering: mu_ orders the list; the eventfd write happens-before
// the loop's read that sees it (a system call).
#ifndef XCHANNELS_EVENT_HUB_H_
#define XCHANNELS_EVENT_HUB_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "xchannels/detail/intrusive_list.h"
#include "xchannels/detail/mutex.h"

namespace xchannels {

class EventHub {
 public:
  // Embedded in whatever waits (one per waiter); its fields belong to the
  // hub it is pushed to.
  struct Entry {
    Entry* prev = nullptr;
    Entry* next = nullptr;
    bool in_ready = false;
  };

  EventHub() = default;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;
  ~EventHub();

  // Thread-safe. Creates the eventfd if there is none (signalling it at once
  // if entries are waiting) and returns it; -errno on failure.
  int Open();
  // Thread-safe. Closes the eventfd (entries stay listed).
  void Close();
  // Thread-safe. The eventfd, or -1.
  int fd() const;

  // Thread-safe. Never blocks for long, never allocates. Lists `e` unless it
  // is listed already, writing the eventfd if the list was empty.
  void Push(Entry* e) noexcept ABSL_LOCKS_EXCLUDED(mu_);
  // Thread-safe. Takes `e` off the list if it is there.
  void Remove(Entry* e) noexcept ABSL_LOCKS_EXCLUDED(mu_);
  // Thread-safe. Resets the eventfd and moves the whole list, in order, into
  // `out` (appended). Throws std::bad_alloc if `out` cannot grow; then the
  // list is kept and the eventfd re-signalled, so nothing is lost.
  void Drain(std::vector<Entry*>& out) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Signal() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable detail::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  detail::IntrusiveList<Entry> ready_ ABSL_GUARDED_BY(mu_);
};

}  // namespace xchannels

#endif  // XCHANNELS_EVENT_HUB_H_
