// core/include/xchannels/process_channel.h: a channel between processes: a
// ring of byte records in a shared-memory segment (a memfd), with blocking
// put/get across processes. What a record holds (the flat form of an Item)
// is flat_form.h's.
//
// Why a separate type and not a flavor of Channel<T>: Channel<T> moves Items,
// which hold pointers (messages, SharedBuffers, channels) valid in one
// process only. Here every value is copied into the segment as bytes and
// out again, a Channel cannot travel at all, and the channel itself is a
// file descriptor that a child process inherits or receives.
//
// Segment layout (one memfd, mapped MAP_SHARED by every handle):
//   [0, kHeaderBytes)       SegmentHeader
//   [kHeaderBytes, +ring)   the data ring; records at 8-byte aligned absolute
//                           offsets head <= off < tail, position off % ring
//   record := u32 len, u32 ~len, len bytes, zero padding to 8
//
// The design that keeps the others alive when a process dies (SIGKILL in the
// middle of any call):
//   - One robust, process-shared mutex guards head, tail, count, closed and
//     the waiters' registration. A process that dies holding it leaves it
//     EOWNERDEAD; the next locker repairs the state (Recover) and marks the
//     mutex consistent.
//   - A put copies its record beyond tail, then publishes it by advancing
//     tail: a record is committed exactly when tail passes it. A writer that
//     dies before that store leaves bytes past tail that nobody reads; one
//     that dies after it has committed the record, which is delivered.
//   - A get copies the record out, then advances head. A reader that dies
//     before that store leaves the record for the next reader (it is not
//     lost); one that dies after it had received it.
//   - count is re-derived from head and tail by Recover, so a death between
//     the tail/head store and the count store does not skew it.
//   - Waiting is on two futex words (data_seq, space_seq), shared, not
//     FUTEX_PRIVATE. A waiter reads the word under the mutex, registers
//     (recv_waiters/send_waiters), unlocks and sleeps while the word is
//     unchanged; whoever makes progress bumps the word under the mutex and
//     wakes after unlocking. The bump after the read is what the futex
//     compares, so no wake-up is lost. A put wakes one receiver, a get one
//     sender, close() every waiter; a receiver that leaves items behind
//     wakes one more; and a sleeper looks again every 250 ms, so a woken
//     process that dies before taking its item delays the others at most
//     that long. A process killed while
//     registered as a waiter leaves its count behind: that costs later
//     calls a needless FUTEX_WAKE, nothing else. A waiter unregisters
//     without the mutex (an atomic decrement): once awake it needs no wake,
//     and it must not wait for the mutex past its deadline.
//   - The mutex is waited for in slices of 250 ms too. A robust mutex
//     keeps "somebody waits" as one bit of its lock word; a waiter killed
//     between its wake-up and its retry, while a third process took the
//     lock, takes that bit with it, and the next unlock wakes nobody: the
//     other waiters would sleep on a free lock forever (the kernel's exit
//     path re-wakes only when the lock is free at that moment). With the
//     slices they look again. (A priority-inheritance mutex, whose waiters
//     queue in the kernel, has no such hole, but it hands the lock over
//     instead of letting a running process take it: 17x slower with two
//     producers and two consumers on two cores.) A put or get with a
//     timeout gives up waiting for the mutex 250 ms past its deadline:
//     only a stopped or stuck holder takes that long.
//
// Shared memory is untrusted input: another process (buggy or hostile) may
// write anything into the segment. The ring size and item limit are read
// once at attach and checked against the mapping; head, tail, count and
// every record header are checked before use, so a corrupted segment gives
// kCorrupt, never an out-of-bounds access. A record's bytes are copied out
// before they are parsed (the flat form, flat_form.h, checks every length
// too).
//
// Thread safety: every method is thread-safe and may be called from any
// thread of any process that holds a handle.
#ifndef XCHANNELS_PROCESS_CHANNEL_H_
#define XCHANNELS_PROCESS_CHANNEL_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "xchannels/detail/common.h"
#include "xchannels/detail/futex.h"
// RecordBuffer, which Recv fills; and what a record holds, for the callers.
#include "xchannels/flat_form.h"
#include "xchannels/refcount.h"

namespace xchannels {

enum class ShmStatus : uint8_t {
  kOk,
  kEmpty,        // nothing to get (try, or the deadline passed)
  kFull,         // no room (try, or the deadline passed)
  kClosed,       // put on a closed channel; get on a closed, drained one
  kInterrupted,  // an interruptible wait returned EINTR, or reached a re-check
                 // (every 250 ms): the caller checks signals, calls again
  kTooLarge,     // the record can never fit the ring
  kCorrupt,      // the segment's state fails a check
  kUnsupported,  // select: the kernel has no futex_waitv (before 5.16)
  kBusy,         // a *NoLockWait call found the mutex held by another caller
};

class ProcessChannel final : public RefCounted {
 public:
  static constexpr size_t kHeaderBytes = 4096;
  static constexpr size_t kMinRingBytes = 64;
  static constexpr size_t kMaxRingBytes = size_t{1} << 40;
  static constexpr uint32_t kFlagPickle = 1;  // fallback='pickle'

  // Creates a new segment (memfd, mode 0600) with a ring of `ring_bytes`
  // (rounded up to 8) and an item limit (0: none). Returns nullptr with
  // *error set (an errno text) on failure.
  static Ref<ProcessChannel> Create(size_t ring_bytes, uint64_t max_items,
                                    uint32_t flags, std::string* error);
  // Maps the segment behind `fd` and takes over the descriptor (closed with
  // the handle, or at once on failure). Checks the header.
  static Ref<ProcessChannel> Attach(int fd, std::string* error);

  // Non-blocking put of one record.
  ShmStatus TrySend(std::span<const uint8_t> record) {
    return Send(record, {}, Deadline(Clock::time_point::min()), false);
  }
  // Blocks until there is room, the deadline passes (kFull), the channel is
  // closed (kClosed) or, when interruptible, a signal arrives. The record
  // is `head` followed by `tail` (two pieces, so a message payload is
  // copied once, straight into the ring).
  ShmStatus Send(std::span<const uint8_t> head, std::span<const uint8_t> tail,
                 const Deadline& deadline, bool interruptible) {
    return SendImpl(head, tail, deadline, interruptible, false);
  }
  ShmStatus Send(std::span<const uint8_t> record, const Deadline& deadline,
                 bool interruptible) {
    return Send(record, {}, deadline, interruptible);
  }
  ShmStatus TryRecv(RecordBuffer* out) {
    return Recv(out, Deadline(Clock::time_point::min()), false);
  }
  // TrySend / TryRecv that do not wait for the mutex either: kBusy when
  // another caller holds it. For callers that hold a lock of their own (an
  // interpreter's GIL): a process stopped (SIGSTOP, a debugger) while it
  // holds the mutex must not freeze them; on kBusy they call TrySend /
  // TryRecv again without their lock.
  ShmStatus TrySendNoLockWait(std::span<const uint8_t> head,
                              std::span<const uint8_t> tail) {
    return SendImpl(head, tail, Deadline(Clock::time_point::min()), false,
                    true);
  }
  ShmStatus TryRecvNoLockWait(RecordBuffer* out) {
    return RecvImpl(out, Deadline(Clock::time_point::min()), false, true);
  }
  // Blocks until a record arrives (copied into *out), the deadline passes
  // (kEmpty), the channel is closed and drained (kClosed) or, when
  // interruptible, a signal arrives.
  ShmStatus Recv(RecordBuffer* out, const Deadline& deadline,
                 bool interruptible) {
    return RecvImpl(out, deadline, interruptible, false);
  }
  // Closes the channel for every process and wakes every waiter. Returns
  // false if it was closed already.
  bool Close();

  // Waits until one of `chans` has a record and takes it: *index says
  // which. Fair: the probe starts at a rotating position. Skips closed,
  // drained channels while others are open; kClosed when all are; kEmpty
  // when the deadline passes; kCorrupt (with *index) for a corrupted one.
  // Sleeps on every channel's data word at once (futex_waitv, Linux 5.16+;
  // on older kernels it returns kUnsupported). The waiter registers on
  // each channel like Recv, and on leaving passes a wake-up on to another
  // reader of any channel that still has records, so a put's single wake
  // that reached this selector is not lost to the others.
  static ShmStatus Select(std::span<ProcessChannel* const> chans,
                          RecordBuffer* out, size_t* index,
                          const Deadline& deadline, bool interruptible);

  // For a waiter that does not take the record itself (an asyncio watcher
  // thread): the data (or space) word now; a wait, registered like Recv's
  // (or Send's), until the word differs from `seq` (kOk), the deadline
  // passes (kEmpty) or a signal arrives (kInterrupted), taking nothing; and
  // a nudge that moves both words and wakes every waiter (they re-check).
  uint32_t Seq(bool data) const;
  ShmStatus WaitSeq(bool data, uint32_t seq, const Deadline& deadline,
                    bool interruptible);
  void Nudge();

  bool closed() const;
  uint64_t size() const;  // records queued (a snapshot)
  size_t ring_bytes() const noexcept { return ring_; }
  uint64_t max_items() const noexcept { return max_items_; }
  uint32_t flags() const noexcept { return flags_; }
  int fd() const noexcept { return fd_; }
  // A random number drawn at creation, the same in every handle: tells
  // whether a descriptor reached by number is still this channel's segment.
  uint64_t segment_id() const noexcept { return segment_id_; }
  // The largest record that fits an empty ring.
  size_t max_record_bytes() const noexcept { return ring_ - 8; }

 private:
  // The raw segment, for the tests of the untrusted-segment checks
  // (core/src/test_peers.h).
  friend class ProcessChannelTestPeer;
  struct Header;
  ProcessChannel(int fd, uint8_t* base, size_t ring, uint64_t max_items,
                 uint32_t flags, uint64_t segment_id);
  ~ProcessChannel() override;
  Header* header() const noexcept;
  uint8_t* ring() const noexcept { return base_ + kHeaderBytes; }
  enum class Locked : uint8_t { kYes, kBusy, kTimedOut, kInterrupted, kCorrupt };
  // Locks the mutex, repairing the state after a dead owner (kYes). Not
  // locked: kCorrupt if the segment is unusable; kBusy if `no_wait` and
  // another caller holds it; kTimedOut if `until` passed first;
  // kInterrupted if `interruptible` and a re-check came first. Waits in
  // slices of at most detail::kSignalRecheck (pthread_mutex_timedlock), so
  // a waiter a killed waiter left asleep (see the header) wakes by itself.
  Locked Lock(const Deadline& until = Deadline(), bool interruptible = false,
              bool no_wait = false);
  ShmStatus SendImpl(std::span<const uint8_t> head,
                     std::span<const uint8_t> tail, const Deadline& deadline,
                     bool interruptible, bool no_lock_wait);
  ShmStatus RecvImpl(RecordBuffer* out, const Deadline& deadline,
                     bool interruptible, bool no_lock_wait);
  void Unlock();
  // With the lock held, when no progress is possible: releases it, spins,
  // then sleeps on `word` registered in *waiters until the word moves (the
  // wait protocol in the header comment). Returns with the lock released:
  // kOk to look again, kCorrupt, or kInterrupted. The mutex is waited for
  // until `lock_until` (see Lock).
  ShmStatus AwaitChange(std::atomic<uint32_t>* word,
                        std::atomic<uint32_t>* waiters,
                        const Deadline& deadline, const Deadline& lock_until,
                        bool interruptible);
  // With the lock held: unless `word` has moved from `seq`, registers in
  // *waiters, unlocks, sleeps (at most detail::kSignalRecheck), and
  // unregisters without the mutex. Returns with the lock released: the
  // futex errno (0 if it did not sleep).
  int SleepOn(std::atomic<uint32_t>* word, std::atomic<uint32_t>* waiters,
              uint32_t seq, const Deadline& deadline);
  struct State {
    uint64_t head, tail, count;
  };
  // With the lock held: reads head/tail/count once each and checks them;
  // false if corrupt. Only the snapshot in *out may be used afterwards.
  bool StateValid(State* out) const;
  // Lock, then StateValid: kOk with the lock held and *st read; otherwise
  // the lock is not held and the status says why (`timed_out`: what the
  // caller returns when the mutex was not had in time, kFull or kEmpty).
  ShmStatus LockState(State* st, const Deadline& lock_until, bool interruptible,
                      bool no_lock_wait, ShmStatus timed_out);
  // With the lock held, on finding the state corrupt: marks the segment
  // corrupt, wakes every waiter, unlocks. Returns kCorrupt.
  ShmStatus CorruptUnlock();
  // With the lock held, after EOWNERDEAD: re-derives count from the records.
  bool Recover();

  int fd_;
  uint8_t* base_;
  size_t ring_;          // read once at attach, never again from the segment
  uint64_t max_items_;   // likewise
  uint32_t flags_;
  uint64_t segment_id_;  // likewise
};

}  // namespace xchannels

#endif  // XCHANNELS_PROCESS_CHANNEL_H_
