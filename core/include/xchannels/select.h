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
//   - No lost wake-up: registration, HeavyBarrier and re-probe follow the
//     Dekker pattern of wait_list.h on every channel. Every channel whose
//     node was taken by a notifier and that still has items after the call
//     took (at most) one item gets its notification passed on to another
//     receiver.
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

  constexpr size_t kInline = 8;
  detail::WaitNode inline_nodes[kInline];
  std::unique_ptr<detail::WaitNode[]> heap_nodes;
  detail::WaitNode* nodes = inline_nodes;
  if (n > kInline) {
    heap_nodes = std::make_unique<detail::WaitNode[]>(n);
    nodes = heap_nodes.get();
  }

  for (;;) {
    if (busy) {
      detail::YieldCpu();
      s = probe_all();
      if (s != OpStatus::kEmpty) return s;
      continue;
    }
    if (deadline.has_value() && Clock::now() >= *deadline) {
      return OpStatus::kEmpty;
    }
    detail::Parker parker;
    for (size_t i = 0; i < n; ++i) {
      nodes[i].parker = &parker;
      channels[i]->recv_waiters().Add(&nodes[i]);
    }
    detail::HeavyBarrier();  // the waiter's side of the Dekker pair
    s = probe_all();
    detail::WaitResult w = detail::WaitResult::kNotified;
    if (s == OpStatus::kEmpty && !busy) {
      w = detail::Park(parker, deadline, interruptible);
      s = probe_all();  // woken: take what came; gave up: one last look
    }
    // Unlink everywhere; pass on notifications this call does not consume.
    for (size_t i = 0; i < n; ++i) {
      if (!channels[i]->recv_waiters().Remove(&nodes[i])) {
        channels[i]->PassOnRecv();
      }
    }
    if (s != OpStatus::kEmpty) return s;
    if (w == detail::WaitResult::kTimeout) return OpStatus::kEmpty;
    if (w == detail::WaitResult::kInterrupted) return OpStatus::kInterrupted;
  }
}

}  // namespace xchannels

#endif  // XCHANNELS_SELECT_H_
