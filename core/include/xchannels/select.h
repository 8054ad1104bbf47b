// core/include/xchannels/select.h: Select, a blocking receive from whichever
// of several channels has an item first.
//
// Invariants:
//   - One Parker per call, shared by one WaitNode per channel; each node is
//     linked in its channel's receiver list while the call sleeps, and all
//     are unlinked before it returns (so no channel keeps a pointer into a
//     finished call's stack).
//   - Fair: each call starts probing at a per-thread rotating index, so a
//     channel that always has items cannot starve the others.
//   - No lost wake-up: the wait goes through detail::ParkUntil (waiter.h)
//     over every channel's receiver target. Every channel whose node was
//     taken by a notifier and that still has items after the call took (at
//     most) one item gets its notification passed on to another receiver.
//   - kClosed only when every channel is closed and drained; closed channels
//     are skipped while others may still deliver.
//
// Memory ordering: as for Channel<T>::recv (per channel).
#ifndef XCHANNELS_SELECT_H_
#define XCHANNELS_SELECT_H_

#include <atomic>
#include <cassert>
#include <cstddef>
#include <memory>
#include <span>

#include "xchannels/channel.h"

namespace xchannels {

// Thread-safe. Blocks until one of `channels` yields an item (kOk, *index
// set to its position, out assigned), every channel is closed and drained
// (kClosed), the deadline passes (kEmpty) or, if interruptible, a signal
// handler runs (kInterrupted; nothing received). `channels` must not be
// empty (the bindings reject that) and may repeat a channel. Never allocates
// for up to 8 channels. (interruptible defaults to false in channel.h.)
template <class T>
OpStatus Select(std::span<Channel<T>* const> channels, size_t* index, T& out,
                Deadline deadline, bool interruptible) {
  const size_t n = channels.size();
  assert(n > 0);
  if (n == 0) return OpStatus::kClosed;
  const size_t start = detail::NextSelectStart() % n;
  bool busy = false;

  // One round over every channel, starting at `start`.
  auto probe_all = [&]() -> OpStatus {
    size_t drained = 0;
    busy = false;
    for (size_t k = 0; k < n; ++k) {
      size_t i = start + k;
      if (i >= n) i -= n;
      switch (channels[i]->ProbeRecv(out)) {
        case detail::Probe::kGot:
          *index = i;
          return OpStatus::kOk;
        case detail::Probe::kDrained:
          ++drained;
          break;
        case detail::Probe::kBusy:
          busy = true;
          break;
        case detail::Probe::kEmpty:
          break;
      }
    }
    return drained == n ? OpStatus::kClosed : OpStatus::kEmpty;
  };

  OpStatus s = probe_all();
  if (s != OpStatus::kEmpty) return s;
  if (!deadline.has_value() || Clock::now() < *deadline) {
    for (int i = 0; i < detail::kSelectSpinIterations; ++i) {
      detail::CpuRelax();
      s = probe_all();
      if (s != OpStatus::kEmpty) return s;
    }
  }

  constexpr size_t kInline = detail::Waiter::kInline;
  detail::WaitTarget inline_targets[kInline];
  std::unique_ptr<detail::WaitTarget[]> heap_targets;
  detail::WaitTarget* targets = inline_targets;
  if (n > kInline) {
    heap_targets = std::make_unique<detail::WaitTarget[]>(n);
    targets = heap_targets.get();
  }
  for (size_t i = 0; i < n; ++i) targets[i] = channels[i]->recv_target();
  return detail::ParkUntil(
      std::span<const detail::WaitTarget>(targets, n),
      [&]() -> detail::Attempt {
        const OpStatus r = probe_all();
        if (r != OpStatus::kEmpty) return detail::Attempt::Done(r);
        return busy ? detail::Attempt::Busy() : detail::Attempt::Wait();
      },
      deadline, interruptible, OpStatus::kEmpty);
}

}  // namespace xchannels

#endif  // XCHANNELS_SELECT_H_
