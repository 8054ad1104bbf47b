// core/include/xchannels/detail/barrier.h: asymmetric memory barriers, and
// the per-thread "sending to" slots that let close() wait for in-flight
// senders. Together they keep every full barrier off a send's fast path.
//
// Why: a send must (1) not enqueue into a channel whose receivers may already
// have seen it closed and drained, and (2) see a receiver that is about to
// park. Both are store-then-load (Dekker) patterns, and a full fence (or a
// locked RMW) per send waits for the store buffer to drain into cache lines
// the receiver is polling: measured, that halves SPSC throughput. So the
// sender pays only a compiler barrier (LightBarrier) and the rare side (a
// receiver about to park, close()) pays HeavyBarrier: membarrier(2)
// MEMBARRIER_CMD_PRIVATE_EXPEDITED, which makes every running thread of the
// process execute a full barrier before it returns (folly's
// asymmetricLightBarrier/asymmetricHeavyBarrier are the same idea).
//
// The pairing argument: thread A does  store X; LightBarrier(); load Y
// and thread B does  store Y; HeavyBarrier(); load X.  HeavyBarrier acts as
// a full fence at some point F of A's execution inside B's call. If F falls
// between A's store and load, this is Dekker with two fences. If F is after
// A's load, A's store precedes F, so B's load (after the call) sees X. If F
// is before A's store, A's load follows F, which follows B's store, so A
// sees Y. Either A sees Y or B sees X: never neither.
//
// Fallback: if membarrier is unavailable (old kernel, seccomp) or the
// environment variable XCHANNELS_SYMMETRIC_BARRIERS=1 is set, both barriers
// are seq_cst fences. The mode is fixed by InitBarriers(), which every
// channel's constructor calls, so it is settled before any barrier that
// pairs with another runs (a channel is published after its construction).
//
// Send slots: every thread that sends owns one SendSlot, registered in a
// process-wide list for the thread's lifetime. One slot per thread: a send
// must not start another send on the same thread before it finishes (the
// channel's element type must not send from its move constructor).
// fork() frees every slot but the forking thread's in the child. A sender
// stores the channel's address in its slot, LightBarrier, then checks the
// closed flag; it clears the slot (release) after enqueueing. close() sets
// the flag, HeavyBarrier, then waits until no slot holds the channel: by the pairing argument, every
// sender that saw the flag clear is visible in its slot, so once the scan
// finds none, every item that will ever be sent is in the queue.
#ifndef XCHANNELS_DETAIL_BARRIER_H_
#define XCHANNELS_DETAIL_BARRIER_H_

#include <atomic>

namespace xchannels::detail {

// Thread-safe, idempotent: settles the barrier mode (registering with
// membarrier once per process).
void InitBarriers() noexcept;

// Set once, by InitBarriers(), before the first channel exists.
inline std::atomic<bool> g_asymmetric_barriers{false};

// True once InitBarriers() chose membarrier. A relaxed read of a value that
// never changes after InitBarriers() returned.
inline bool AsymmetricBarriers() noexcept {
  return g_asymmetric_barriers.load(std::memory_order_relaxed);
}

// The cheap side of a Dekker pair: a compiler barrier with membarrier, a
// seq_cst fence without.
inline void LightBarrier() noexcept {
  if (AsymmetricBarriers()) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// The expensive side: a system call (about 2 us when a sibling thread is
// running on another core), so only on paths that are about to sleep or
// that close a channel. Also a full fence for the caller.
void HeavyBarrier() noexcept;

// A cache line of its own: written twice per send by its thread only.
struct alignas(64) SendSlot {
  // The channel this thread is sending to right now (never dereferenced,
  // only compared), or nullptr. Every store is a release store: the closer
  // that reads any later value of the slot then sees the enqueue before it
  // (C++20 release sequences hold only RMWs, so relaxed stores would not do).
  std::atomic<const void*> channel{nullptr};
  SendSlot* next = nullptr;  // fixed before the slot is published
  // Dense, fixed before the slot is published: slot i is the i-th ever made.
  // Its owner thread names its per-channel task counter cell with it
  // (task_counter.h); a later owner inherits the cells, which is harmless.
  // Which slots are in use is the registry's (barrier.cc, under its mutex).
  uint32_t index = 0;
};

// This thread's slot, or nullptr before its first send. (The default TLS
// model: initial-exec would save a __tls_get_addr call per send in the
// dlopen'ed module, no measurable gain, at the risk of dlopen failing when
// the static TLS reserve is used up.)
inline thread_local SendSlot* tls_send_slot = nullptr;

// Registers a slot for this thread (handed back for reuse when the thread
// exits). Allocates once per thread; throws std::bad_alloc if memory runs
// out (out of the send, which then sent nothing).
SendSlot& AcquireSendSlot();

// This thread's slot.
inline SendSlot& MySendSlot() {
  SendSlot* s = tls_send_slot;
  return s != nullptr ? *s : AcquireSendSlot();
}

// Blocks until no thread's slot holds `channel` (yielding, then sleeping
// 50 us at a time, while a preempted sender finishes). Thread-safe; takes no
// lock. A thread must not call it while its own slot holds `channel`.
void WaitForSenders(const void* channel) noexcept;

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_BARRIER_H_
