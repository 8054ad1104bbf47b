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
// Large values travel out of line (Prepare): a value whose flat record is
// larger than kInlineMax, or than the ring, is written once into a memfd
// (mem_file.h) that the sending handle keeps and reuses, and the ring
// carries a small kOutOfLine record naming it by process id and
// descriptor number (flat_form.h). A SharedBuffer whose bytes live in a
// sealed memfd goes by descriptor the same way, with no copy at all. The
// descriptors' lifetime:
//   - The sender holds each (the record's file, or a duplicate in its
//     OwnedFds) from the commit until the head has passed the record. At
//     its next call on this handle it then closes a duplicate, and puts a
//     file back in its pool (at most kPoolFiles files, none over
//     kPoolFileMax bytes) for the next large value: a written page costs
//     less than a fresh one.
//   - The receiver opens them (/proc/PID/fd/N), checked, under the mutex
//     and before it advances the head: while the sender must still hold
//     them. It copies an out-of-line record there, under the mutex (the
//     sender reuses the file once the head has passed, and may write it
//     at any time: the copy, not the file, is parsed); it maps a sealed
//     buffer. A record whose sender has exited by then is consumed and
//     reported lost (kLost): the kernel freed its memfd with the sender. A
//     receiver out of descriptors or memory leaves the record queued
//     (kResources).
//   - A process that dies closes its descriptors and mappings: the kernel
//     frees each memfd with its last holder, so nothing outlives them.
// Accounting: a queued out-of-line value weighs its data bytes plus its
// record against `capacity` (header.ool_bytes sums the former), and counts
// one item against the item limit; an empty channel admits one value of any
// size.
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
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "xchannels/detail/common.h"
#include "xchannels/detail/futex.h"
// RecordBuffer, which Recv fills; and what a record holds, for the callers.
#include "xchannels/flat_form.h"
#include "xchannels/mem_file.h"
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
  kLost,         // get: the record named a memfd its sender no longer holds
                 // (it exited first); the record was consumed
  kResources,    // get: no descriptor or memory left to open a record's
                 // memfds; the record stays queued
  kNoMemory,     // get: no memory for a copy of the record's out-of-line
                 // value; the record was consumed (left, it would stop
                 // every reader)
};

// What a put sends (ProcessChannel::Prepare): the record, as `head` then
// `tail` (a view into the Item it was made from, so a message payload is
// copied once), and the descriptors it names, held until it is taken.
struct OutRecord {
  RecordBuffer head;
  std::span<const uint8_t> tail;
  OwnedFds fds;       // duplicates of the memfds of buffers sent by descriptor
  Ref<MemFile> file;  // the out-of-line record's file
  size_t size() const noexcept { return head.size() + tail.size(); }
};

class ProcessChannel final : public RefCounted {
 public:
  static constexpr size_t kHeaderBytes = 4096;
  static constexpr size_t kMinRingBytes = 64;
  static constexpr size_t kMaxRingBytes = size_t{1} << 40;
  static constexpr uint32_t kFlagPickle = 1;  // fallback='pickle'
  // Records larger than this go out of line (and any that does not fit).
  static constexpr size_t kInlineMax = 256 * 1024;
  // The reuse pool of out-of-line files (see above).
  static constexpr size_t kPoolFiles = 2;
  static constexpr size_t kPoolFileMax = size_t{128} << 20;

  // Creates a new segment (memfd, mode 0600) with a ring of `ring_bytes`
  // (rounded up to 8) and an item limit (0: none). Returns nullptr with
  // *error set (an errno text) on failure.
  static Ref<ProcessChannel> Create(size_t ring_bytes, uint64_t max_items,
                                    uint32_t flags, std::string* error);
  // Maps the segment behind `fd` and takes over the descriptor (closed with
  // the handle, or at once on failure). Checks the header.
  static Ref<ProcessChannel> Attach(int fd, std::string* error);

  // The record that carries `item` on this channel, inline or out of line
  // (its memfd written here, outside any lock). Returns false with *error
  // set if the item has no flat form (it holds a channel: *error empty) or
  // the memfd could not be made or written (an errno text). Throws
  // std::bad_alloc.
  // With `inline_only`, a value that must go out of line is left alone:
  // true with out->head empty (no record ever is), for a caller that calls
  // again without a lock of its own (the GIL) for the memfd's write only.
  bool Prepare(const Item& item, OutRecord* out, std::string* error,
               bool inline_only = false);
  // Puts a prepared record: as Send / TrySendNoLockWait; on kOk the
  // channel holds record.fds until the record is taken.
  ShmStatus Send(OutRecord& record, const Deadline& deadline,
                 bool interruptible) {
    return SendImpl(record.head, record.tail, &record, deadline,
                    interruptible, false);
  }
  ShmStatus TrySendNoLockWait(OutRecord& record) {
    return SendImpl(record.head, record.tail, &record,
                    Deadline(Clock::time_point::min()), false, true);
  }

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
    return SendImpl(head, tail, nullptr, deadline, interruptible, false);
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
    return SendImpl(head, tail, nullptr, Deadline(Clock::time_point::min()),
                    false, true);
  }
  ShmStatus TryRecvNoLockWait(RecordBuffer* out) {
    return RecvImpl(out, Deadline(Clock::time_point::min()), false, true);
  }
  // Blocks until a record arrives (copied into *out, with out->files the
  // memfds it names), the deadline passes (kEmpty), the channel is closed
  // and drained (kClosed) or, when interruptible, a signal arrives.
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
  // when the deadline passes; kCorrupt, kLost, kResources or kNoMemory
  // (with *index) as Recv returns them.
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

  // Records this handle sent that name a descriptor (a large value, a
  // memfd SharedBuffer) depend on this process until they are taken: it
  // holds the descriptor the receiver opens. WaitSent waits until every
  // one has been taken (kOk), the deadline passes (kFull) or, when
  // interruptible, a signal arrives (kInterrupted); kCorrupt if the segment
  // is. For an exit hook, as multiprocessing.Queue flushes its feeder at
  // exit. ForgetSent closes them without waiting (a forked child's
  // inherited copies: the parent still holds its own).
  ShmStatus WaitSent(const Deadline& deadline, bool interruptible);
  void ForgetSent();
  // Whether such records are in flight (a snapshot).
  bool HasSent() const noexcept {
    return npending_.load(std::memory_order_relaxed) != 0;
  }
  // A handle dropped while such records are in flight is kept (its segment
  // and the descriptors its records name) until they are taken, if it is
  // another process's channel (attached(): a Pool task's argument, a
  // forked child's copy): a value put through it, in a process that lives
  // on, still arrives. (The channel's creator, dropping its handle, frees
  // them: the values of a channel nobody else holds would be kept forever.) KeepUntilTaken takes over one
  // reference; every Send and Recv in the process releases the kept
  // handles whose records were taken (ReleaseTaken), and WaitKept waits
  // for all of them (the exit hook), as WaitSent does for one.
  static void KeepUntilTaken(Ref<ProcessChannel> ch);
  static void ReleaseTaken();
  static ShmStatus WaitKept(const Deadline& deadline, bool interruptible);

  bool closed() const;
  uint64_t size() const;  // records queued (a snapshot)
  size_t ring_bytes() const noexcept { return ring_; }
  uint64_t max_items() const noexcept { return max_items_; }
  uint32_t flags() const noexcept { return flags_; }
  int fd() const noexcept { return fd_; }
  // Whether this handle was attached to another's segment (Attach), or is a
  // forked child's copy, rather than made here by Create.
  bool attached() const noexcept {
    return attached_.load(std::memory_order_relaxed);
  }
  // A random number drawn at creation, the same in every handle: tells
  // whether a descriptor reached by number is still this channel's segment.
  uint64_t segment_id() const noexcept { return segment_id_; }
  // The largest record that fits an empty ring (larger values go out of
  // line: Prepare).
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
                     std::span<const uint8_t> tail, OutRecord* held,
                     const Deadline& deadline, bool interruptible,
                     bool no_lock_wait);
  // With the lock held, the record copied into *out: opens the memfds it
  // names into out->files, or copies the out-of-line record it names into
  // out->body. kOk, kLost or kNoMemory (the record is to be consumed all
  // the same) or kResources (it is to stay).
  ShmStatus OpenFiles(RecordBuffer* out);
  // Closes the descriptors of records the head has passed.
  void ReclaimPassed();
  // In a child forked from the process that made this handle: forgets the
  // parent's records in flight and file pool (ForgetSent), whose
  // descriptors are the child's copies; the parent still holds its own and
  // may reuse its files. Called before anything uses them.
  void ForgetIfForked();
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
    uint64_t head, tail, count, ool_bytes;
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
  // With the lock held, after EOWNERDEAD: re-derives count and ool_bytes
  // from the records.
  bool Recover();
  // Copies `len` bytes of the ring from absolute offset `off` (wrapping).
  void CopyOut(uint64_t off, size_t len, uint8_t* dst) const;

  int fd_;
  uint8_t* base_;
  size_t ring_;          // read once at attach, never again from the segment
  uint64_t max_items_;   // likewise
  uint32_t flags_;
  uint64_t segment_id_;  // likewise
  // What this handle's records in flight name: released once the head
  // reaches `end`, the ring offset past the record (a descriptor closed, a
  // file put back in pool_).
  struct Pending {
    uint64_t end;
    int fd;             // or -1
    Ref<MemFile> file;  // or null
  };
  std::mutex pending_mu_;
  std::vector<Pending> pending_;
  std::vector<Ref<MemFile>> pool_;  // guarded by pending_mu_ too
  std::atomic<size_t> npending_{0};  // pending_.size(), read without the mutex
  std::atomic<pid_t> owner_;  // the process pending_ and pool_ belong to
  std::atomic<bool> attached_{false};
};

}  // namespace xchannels

#endif  // XCHANNELS_PROCESS_CHANNEL_H_
