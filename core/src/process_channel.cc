// core/src/process_channel.cc: the segment, its locking and waiting. See
// process_channel.h for the design, the segment layout and the invariants,
// process_channel_segment.h for the header page's fields, and
// process_channel_large.cc for what carries large values (out-of-line
// records, descriptors held until taken).
#include "xchannels/process_channel.h"
#include "xchannels/detail/mutex.h"  // XCHANNELS_TSAN
#include "process_channel_segment.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <new>
#include <string>
#include <time.h>
#include <mutex>
#include <vector>

namespace xchannels {

namespace {

// A waiter's count goes down by one, never below zero (a scribbler may have
// zeroed it).
void Unregister(std::atomic<uint32_t>* waiters) {
  uint32_t n = waiters->load(std::memory_order_relaxed);
  while (n > 0 &&
         !waiters->compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
}

constexpr uint64_t kMagic = 0x314e4843'4d485358ull;  // "XSHMCHN1"
constexpr uint32_t kVersion = 2;  // 2: out-of-line records (flat_form.h)
// How long a waiter watches the seq word before it sleeps. The other side
// is a process on another core (a Python put or get takes a microsecond or
// two): a futex sleep and wake-up cost more than that, so a stream or a
// ping-pong should never sleep. Not on a single CPU, where spinning only
// delays the process that would make progress.
constexpr int64_t kSpinNanos = 30'000;

// A sleeper wakes at least every detail::kSignalRecheck to look again
// (detail::CappedForRecheck): a process killed just after a put's single
// wake-up reached it would otherwise leave the record to sleepers that
// nobody wakes until the next put or close.

bool SpinUntilChanged(const std::atomic<uint32_t>& word, uint32_t seq) {
  static const bool multi_cpu = sysconf(_SC_NPROCESSORS_ONLN) > 1;
  const int64_t budget = multi_cpu ? kSpinNanos : 0;
  const auto start = Clock::now();
  for (int i = 1;; ++i) {
    if (word.load(std::memory_order_acquire) != seq) return true;
    detail::CpuRelax();
    if ((i & 31) == 0 &&
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() -
                                                             start)
                .count() >= budget) {
      return false;
    }
  }
}

static_assert(std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free,
              "atomics in shared memory must be lock-free (address-free)");

// FUTEX_WAIT on a shared word (no FUTEX_PRIVATE_FLAG: the waker may be
// another process). Returns 0, or the errno (EAGAIN, EINTR, ETIMEDOUT).
int FutexWaitShared(std::atomic<uint32_t>* word, uint32_t expected,
                    const Deadline& deadline) {
  timespec ts{};
  if (deadline.has_value() && !detail::TimeLeft(*deadline, &ts)) {
    return ETIMEDOUT;
  }
  const long r = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word),
                         FUTEX_WAIT, expected,
                         deadline.has_value() ? &ts : nullptr, nullptr, 0);
  return r == 0 ? 0 : errno;
}

void FutexWakeShared(std::atomic<uint32_t>* word, int n) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, n,
          nullptr, nullptr, 0);
}

bool DeadlinePassed(const Deadline& d) {
  return d.has_value() && Clock::now() >= *d;
}

// How long a put or get waits for the mutex (ProcessChannel::Lock): a call
// that does not wait (deadline min()) as long as it takes, since the mutex
// is held for a copy at a time; a call with a timeout until 250 ms past its
// deadline, so that a busy mutex never turns into a spurious Full or Empty.
// (Stateless: an interruptible call re-enters after every signal check.)
Deadline LockDeadline(const Deadline& deadline) {
  if (!deadline.has_value() || *deadline == Clock::time_point::min()) {
    return Deadline();
  }
  return *deadline + detail::kSignalRecheck;
}

}  // namespace

ProcessChannel::Header* ProcessChannel::header() const noexcept {
  static_assert(sizeof(Header) <= kHeaderBytes);
  return reinterpret_cast<Header*>(base_);
}

ProcessChannel::ProcessChannel(int fd, uint8_t* base, size_t ring,
                               uint64_t max_items, uint32_t flags,
                               uint64_t segment_id)
    : fd_(fd), base_(base), ring_(ring), max_items_(max_items),
      flags_(flags), segment_id_(segment_id), owner_(getpid()) {}

ProcessChannel::~ProcessChannel() {
  // Records still queued lose their memfds with this handle (if it sent
  // them): nothing outlives the handles.
  for (const Pending& p : pending_) {
    if (p.fd >= 0) close(p.fd);
  }
  munmap(base_, kHeaderBytes + ring_);
  close(fd_);
}

Ref<ProcessChannel> ProcessChannel::Create(size_t ring_bytes,
                                           uint64_t max_items, uint32_t flags,
                                           std::string* error) {
  if (ring_bytes < kMinRingBytes || ring_bytes > kMaxRingBytes) {
    *error = "capacity must be between 64 bytes and 1 TiB";
    return nullptr;
  }
  const size_t ring = RoundUp8(ring_bytes);
  const int fd = static_cast<int>(syscall(
      SYS_memfd_create, "xchannels", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd < 0) {
    *error = std::string("memfd_create: ") + std::strerror(errno);
    return nullptr;
  }
  auto fail = [&](const char* what) {
    *error = std::string(what) + ": " + std::strerror(errno);
    close(fd);
    return nullptr;
  };
  if (fchmod(fd, 0600) != 0) return fail("fchmod");
  if (ftruncate(fd, static_cast<off_t>(kHeaderBytes + ring)) != 0) {
    return fail("ftruncate");
  }
  // Sealed at its size: a process holding a descriptor cannot shrink the
  // segment under the others' mappings (that would be SIGBUS for them).
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return fail("fcntl(F_ADD_SEALS)");
  }
  void* p = mmap(nullptr, kHeaderBytes + ring, PROT_READ | PROT_WRITE,
                 MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("mmap");
  auto* h = new (p) Header();
  h->magic = kMagic;
  h->version = kVersion;
  h->flags = flags;
  if (getrandom(&h->segment_id, sizeof h->segment_id, 0) !=
      static_cast<ssize_t>(sizeof h->segment_id)) {
    h->segment_id = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                    (static_cast<uint64_t>(getpid()) << 40);
  }
  h->ring_bytes = ring;
  h->max_items = max_items;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const int rc = pthread_mutex_init(&h->mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    munmap(p, kHeaderBytes + ring);
    errno = rc;
    return fail("pthread_mutex_init");
  }
  auto* ch = new (std::nothrow) ProcessChannel(
      fd, static_cast<uint8_t*>(p), ring, max_items, flags, h->segment_id);
  if (ch == nullptr) {
    munmap(p, kHeaderBytes + ring);
    close(fd);
    *error = "out of memory";
    return nullptr;
  }
  return Ref<ProcessChannel>::Adopt(ch);
}

Ref<ProcessChannel> ProcessChannel::Attach(int fd, std::string* error) {
  auto fail = [&](const std::string& what) {
    *error = what;
    close(fd);
    return nullptr;
  };
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    return fail(std::string("fstat: ") + std::strerror(errno));
  }
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return fail("not a ProcessChannel segment (not a sealed memfd)");
  }
  const auto size = static_cast<uint64_t>(sb.st_size);
  if (size < kHeaderBytes + kMinRingBytes ||
      size > kHeaderBytes + kMaxRingBytes || size % 8 != 0) {
    return fail("not a ProcessChannel segment (size " + std::to_string(size) +
                ")");
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return fail(std::string("mmap: ") + std::strerror(errno));
  }
  const auto* h = static_cast<const Header*>(p);
  const size_t ring = size - kHeaderBytes;
  if (h->magic == kMagic && h->version != kVersion) {
    const uint32_t version = h->version;
    munmap(p, size);
    return fail("the ProcessChannel segment has layout version " +
                std::to_string(version) + ", this xchannels reads version " +
                std::to_string(kVersion) +
                ": every process sharing a channel needs the same xchannels");
  }
  if (h->magic != kMagic || h->ring_bytes != ring) {
    munmap(p, size);
    return fail("not a ProcessChannel segment (bad header)");
  }
  auto* ch = new (std::nothrow)
      ProcessChannel(fd, static_cast<uint8_t*>(p), ring, h->max_items,
                     h->flags, h->segment_id);
  if (ch == nullptr) {
    munmap(p, size);
    return fail("out of memory");
  }
  ch->attached_.store(true, std::memory_order_relaxed);
  return Ref<ProcessChannel>::Adopt(ch);
}

ProcessChannel::Locked ProcessChannel::Lock(const Deadline& until,
                                            bool interruptible,
                                            bool no_wait) {
  Header* h = header();
  int rc = pthread_mutex_trylock(&h->mutex);
  while (rc == EBUSY) {
    if (no_wait) return Locked::kBusy;
    // pthread_mutex_timedlock takes CLOCK_REALTIME: only the length of a
    // slice depends on it (a clock stepped back stretches one slice);
    // `until` is checked on the monotonic clock. pthread_mutex_clocklock
    // would take CLOCK_MONOTONIC, but TSan (clang 14) does not intercept it.
    const auto left = std::max(
        *detail::CappedForRecheck(until) - Clock::now(), Clock::duration{0});
    timespec abs{};
    clock_gettime(CLOCK_REALTIME, &abs);
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(left).count() +
        abs.tv_nsec;
    abs.tv_sec += static_cast<time_t>(ns / 1000000000);
    abs.tv_nsec = static_cast<long>(ns % 1000000000);
    rc = pthread_mutex_timedlock(&h->mutex, &abs);
#ifdef XCHANNELS_TSAN
    // TSan's timedlock interceptor records the lock on 0 only, not on
    // EOWNERDEAD (its lock and trylock interceptors record both).
    if (rc == EOWNERDEAD) {
      __tsan_mutex_pre_lock(&h->mutex, __tsan_mutex_try_lock);
      __tsan_mutex_post_lock(&h->mutex, __tsan_mutex_try_lock, 0);
    }
#endif
    if (rc != ETIMEDOUT) break;
    if (DeadlinePassed(until)) return Locked::kTimedOut;
    if (interruptible) return Locked::kInterrupted;
    rc = EBUSY;
  }
  if (rc == 0) {
    if (h->corrupt.load(std::memory_order_relaxed) != 0) {
      pthread_mutex_unlock(&h->mutex);
      return Locked::kCorrupt;
    }
    return Locked::kYes;
  }
  if (rc == EOWNERDEAD) {
    // The owner died inside a call; repair what it may have left half done.
    if (!Recover()) h->corrupt.store(1, std::memory_order_relaxed);
    pthread_mutex_consistent(&h->mutex);
    // Whatever the dead process was waiting for or about to wake, wake
    // everyone: they re-check.
    h->data_seq.fetch_add(1, std::memory_order_relaxed);
    h->space_seq.fetch_add(1, std::memory_order_relaxed);
    FutexWakeShared(&h->data_seq, INT_MAX);
    FutexWakeShared(&h->space_seq, INT_MAX);
    if (h->corrupt.load(std::memory_order_relaxed) != 0) {
      pthread_mutex_unlock(&h->mutex);
      return Locked::kCorrupt;
    }
    return Locked::kYes;
  }
  return Locked::kCorrupt;  // ENOTRECOVERABLE, or a mutex word overwritten with junk
}

void ProcessChannel::Unlock() { pthread_mutex_unlock(&header()->mutex); }

bool ProcessChannel::StateValid(State* out) const {
  // One read of each field: another process may change them at any time,
  // so only the values checked here may be used afterwards.
  const Header* h = header();
  const uint64_t head = h->head.load(std::memory_order_relaxed);
  const uint64_t tail = h->tail.load(std::memory_order_relaxed);
  const uint64_t count = h->count.load(std::memory_order_relaxed);
  const uint64_t ool = h->ool_bytes.load(std::memory_order_relaxed);
  if (!(tail >= head && tail - head <= ring_ && head % 8 == 0 &&
        tail % 8 == 0 && count <= (tail - head) / 8 &&
        (count == 0) == (tail == head) && (count != 0 || ool == 0))) {
    return false;
  }
  *out = State{head, tail, count, ool};
  return true;
}

ShmStatus ProcessChannel::CorruptUnlock() {
  // Every later call fails too: wake the sleepers so they learn it now.
  Header* h = header();
  h->corrupt.store(1, std::memory_order_relaxed);
  h->data_seq.fetch_add(1, std::memory_order_release);
  h->space_seq.fetch_add(1, std::memory_order_release);
  Unlock();
  FutexWakeShared(&h->data_seq, INT_MAX);
  FutexWakeShared(&h->space_seq, INT_MAX);
  return ShmStatus::kCorrupt;
}

bool ProcessChannel::Recover() {
  Header* h = header();
  const uint64_t head = h->head.load(std::memory_order_relaxed);
  const uint64_t tail = h->tail.load(std::memory_order_relaxed);
  if (tail < head || tail - head > ring_ || head % 8 || tail % 8) return false;
  uint64_t n = 0, ool = 0;
  for (uint64_t off = head; off < tail;) {
    uint32_t hdr[2];
    std::memcpy(hdr, ring() + off % ring_, 8);
    if (hdr[1] != ~hdr[0] || hdr[0] > tail - off - 8) return false;
    if (hdr[0] == kOutOfLineRecordBytes) {
      uint8_t rec[kOutOfLineRecordBytes];
      CopyOut(off + 8, sizeof rec, rec);
      ool += OutOfLineBytes(rec);
    }
    off += 8 + RoundUp8(hdr[0]);
    ++n;
  }
  h->count.store(n, std::memory_order_relaxed);
  h->ool_bytes.store(ool, std::memory_order_relaxed);
  return true;
}

ShmStatus ProcessChannel::LockState(State* st, const Deadline& lock_until,
                                    bool interruptible, bool no_lock_wait,
                                    ShmStatus timed_out) {
  switch (Lock(lock_until, interruptible, no_lock_wait)) {
    case Locked::kYes: break;
    case Locked::kBusy: return ShmStatus::kBusy;
    case Locked::kTimedOut: return timed_out;
    case Locked::kInterrupted: return ShmStatus::kInterrupted;
    case Locked::kCorrupt: return ShmStatus::kCorrupt;
  }
  return StateValid(st) ? ShmStatus::kOk : CorruptUnlock();
}

void ProcessChannel::CopyOut(uint64_t off, size_t len, uint8_t* dst) const {
  const size_t pos = off % ring_;
  const size_t first = std::min<size_t>(len, ring_ - pos);
  if (first > 0) std::memcpy(dst, ring() + pos, first);
  if (len > first) std::memcpy(dst + first, ring(), len - first);
}

ShmStatus ProcessChannel::SendImpl(std::span<const uint8_t> head_part,
                                   std::span<const uint8_t> tail_part,
                                   OutRecord* held, const Deadline& deadline,
                                   bool interruptible, bool no_lock_wait) {
  const size_t size = head_part.size() + tail_part.size();
  const size_t need = 8 + RoundUp8(size);
  if (size > UINT32_MAX || need > ring_) return ShmStatus::kTooLarge;
  // What the record holds out of line (read from the record itself, as
  // Recover and the receiver read it).
  const uint64_t weight =
      tail_part.empty() ? OutOfLineBytes(head_part) : 0;
  ReclaimPassed();
  ReleaseTaken();
  Header* h = header();
  const Deadline lock_until = LockDeadline(deadline);
  for (;;) {
    State st;
    if (const ShmStatus s = LockState(&st, lock_until, interruptible,
                                      no_lock_wait, ShmStatus::kFull);
        s != ShmStatus::kOk) {
      return s;
    }
    if (h->closed.load(std::memory_order_relaxed) != 0) {
      Unlock();
      return ShmStatus::kClosed;
    }
    const uint64_t head = st.head, tail = st.tail, count = st.count;
    // The ring must hold the record; and what is queued, out-of-line bytes
    // included, must stay within the capacity, except that an empty
    // channel takes one value of any size.
    const bool fits = tail - head + need <= ring_ &&
                      (count == 0 ||
                       (st.ool_bytes <= ring_ && weight <= ring_ &&
                        tail - head + need + st.ool_bytes + weight <= ring_));
    if (fits && (max_items_ == 0 || count < max_items_)) {
      std::unique_lock<std::mutex> pending;
      if (held != nullptr && (!held->fds.empty() || held->file)) {
        pending = std::unique_lock<std::mutex>(pending_mu_);
        try {
          pending_.reserve(pending_.size() + held->fds.size() + 1);
        } catch (const std::bad_alloc&) {
          Unlock();
          throw;
        }
      }
      // Copy beyond tail, then publish by advancing tail (the commit).
      const uint32_t len = static_cast<uint32_t>(size);
      const uint32_t hdr[2] = {len, ~len};
      const size_t pos = tail % ring_;
      std::memcpy(ring() + pos, hdr, 8);
      size_t at = (pos + 8) % ring_;
      for (std::span<const uint8_t> part : {head_part, tail_part}) {
        const size_t first = std::min(part.size(), ring_ - at);
        if (first > 0) std::memcpy(ring() + at, part.data(), first);
        if (part.size() > first) {
          std::memcpy(ring(), part.data() + first, part.size() - first);
        }
        at = (at + part.size()) % ring_;
      }
      h->tail.store(tail + need, std::memory_order_release);
      h->count.store(count + 1, std::memory_order_release);
      h->ool_bytes.store(st.ool_bytes + weight, std::memory_order_relaxed);
      h->data_seq.fetch_add(1, std::memory_order_release);
      if (pending.owns_lock()) {
        for (int fd : held->fds.Release()) {
          pending_.push_back(Pending{tail + need, fd, nullptr});
        }
        if (held->file) {
          pending_.push_back(Pending{tail + need, -1, std::move(held->file)});
        }
        npending_.store(pending_.size(), std::memory_order_relaxed);
        pending.unlock();
      }
      const bool wake = h->recv_waiters.load(std::memory_order_relaxed) > 0;
      Unlock();
      if (wake) FutexWakeShared(&h->data_seq, 1);
      return ShmStatus::kOk;
    }
    if (DeadlinePassed(deadline)) {
      Unlock();
      return ShmStatus::kFull;
    }
    const ShmStatus w =
        AwaitChange(&h->space_seq, &h->send_waiters, deadline, lock_until,
                    interruptible);
    if (w != ShmStatus::kOk) return w;
  }
}

ShmStatus ProcessChannel::RecvImpl(RecordBuffer* out, const Deadline& deadline,
                                   bool interruptible, bool no_lock_wait) {
  ReclaimPassed();
  ReleaseTaken();
  out->files.clear();
  out->body = nullptr;
  Header* h = header();
  const Deadline lock_until = LockDeadline(deadline);
  for (;;) {
    State st;
    if (const ShmStatus s = LockState(&st, lock_until, interruptible,
                                      no_lock_wait, ShmStatus::kEmpty);
        s != ShmStatus::kOk) {
      return s;
    }
    const uint64_t head = st.head, tail = st.tail;
    if (tail != head) {
      uint32_t hdr[2];
      CopyOut(head, 8, reinterpret_cast<uint8_t*>(hdr));
      const uint32_t len = hdr[0];
      if (hdr[1] != ~len || len > tail - head - 8) return CorruptUnlock();
      ShmStatus result;
      try {
        out->resize(len);
        // (resize may move the bytes: take the pointer after it.)
        CopyOut(head + 8, len, out->data());
        // Before the head moves on: the sender holds the memfds till then.
        result = OpenFiles(out);
      } catch (const std::bad_alloc&) {
        out->files.clear();
        out->body = nullptr;
        Unlock();
        throw;
      }
      if (result == ShmStatus::kResources) {
        Unlock();  // the record stays for a reader that can open it
        return result;
      }
      const uint64_t count = st.count;
      const uint64_t weight = OutOfLineBytes(out->span());
      h->head.store(head + 8 + RoundUp8(len), std::memory_order_release);
      h->count.store(count - 1, std::memory_order_release);
      h->ool_bytes.store(count == 1 || weight > st.ool_bytes
                             ? 0
                             : st.ool_bytes - weight,
                         std::memory_order_relaxed);
      h->space_seq.fetch_add(1, std::memory_order_release);
      const bool wake_sender =
          h->send_waiters.load(std::memory_order_relaxed) > 0;
      // Items left and readers asleep: pass the turn on (see the header).
      const bool wake_reader =
          count > 1 && h->recv_waiters.load(std::memory_order_relaxed) > 0;
      Unlock();
      if (wake_sender) FutexWakeShared(&h->space_seq, 1);
      if (wake_reader) FutexWakeShared(&h->data_seq, 1);
      ReleaseTaken();  // this process's kept handle may have sent it
      return result;
    }
    if (h->closed.load(std::memory_order_relaxed) != 0) {
      Unlock();
      return ShmStatus::kClosed;
    }
    if (DeadlinePassed(deadline)) {
      Unlock();
      return ShmStatus::kEmpty;
    }
    const ShmStatus w =
        AwaitChange(&h->data_seq, &h->recv_waiters, deadline, lock_until,
                    interruptible);
    if (w != ShmStatus::kOk) return w;
  }
}

ShmStatus ProcessChannel::AwaitChange(std::atomic<uint32_t>* word,
                                      std::atomic<uint32_t>* waiters,
                                      const Deadline& deadline,
                                      const Deadline& lock_until,
                                      bool interruptible) {
  const uint32_t seq = word->load(std::memory_order_relaxed);
  Unlock();
  // Spin a little first (see kSpinNanos).
  if (SpinUntilChanged(*word, seq)) return ShmStatus::kOk;
  switch (Lock(lock_until, interruptible)) {
    case Locked::kYes: break;
    case Locked::kInterrupted: return ShmStatus::kInterrupted;
    case Locked::kCorrupt: return ShmStatus::kCorrupt;
    default: return ShmStatus::kOk;  // the caller's Lock times out again
  }
  const int err = SleepOn(word, waiters, seq, deadline);
  // The periodic re-check (ETIMEDOUT) returns to the caller's signal
  // check too: a signal that arrived while this thread was between two
  // sleeps interrupted no system call, and would otherwise be noticed never.
  return interruptible && (err == EINTR || err == ETIMEDOUT)
             ? ShmStatus::kInterrupted
             : ShmStatus::kOk;
}

int ProcessChannel::SleepOn(std::atomic<uint32_t>* word,
                            std::atomic<uint32_t>* waiters, uint32_t seq,
                            const Deadline& deadline) {
  if (word->load(std::memory_order_relaxed) != seq) {
    Unlock();
    return 0;
  }
  waiters->fetch_add(1, std::memory_order_relaxed);
  Unlock();
  const int err =
      FutexWaitShared(word, seq, detail::CappedForRecheck(deadline));
  // Without the mutex: a sleeper no longer needs waking once awake, and
  // waiting for the mutex here would hold the caller past its deadline
  // (or its signal check) behind a stopped holder.
  Unregister(waiters);
  return err;
}

bool ProcessChannel::Close() {
  Header* h = header();
  if (Lock() != Locked::kYes) {
    // Even a corrupt segment can be closed: waiters must not sleep forever.
    h->closed.store(1, std::memory_order_relaxed);
    h->data_seq.fetch_add(1);
    h->space_seq.fetch_add(1);
    FutexWakeShared(&h->data_seq, INT_MAX);
    FutexWakeShared(&h->space_seq, INT_MAX);
    return true;
  }
  const bool was = h->closed.exchange(1, std::memory_order_relaxed) != 0;
  h->data_seq.fetch_add(1, std::memory_order_release);
  h->space_seq.fetch_add(1, std::memory_order_release);
  Unlock();
  FutexWakeShared(&h->data_seq, INT_MAX);
  FutexWakeShared(&h->space_seq, INT_MAX);
  return !was;
}

ShmStatus ProcessChannel::Select(std::span<ProcessChannel* const> chans,
                                 RecordBuffer* out, size_t* index,
                                 const Deadline& deadline, bool interruptible) {
  const size_t n = chans.size();
  if (n == 0 || n > FUTEX_WAITV_MAX) return ShmStatus::kUnsupported;
  static thread_local uint32_t rotation = 0;
  const size_t start = rotation++ % n;
  std::vector<futex_waitv> waits(n);
  std::vector<uint8_t> open(n);
  for (;;) {
    size_t nopen = 0;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (start + k) % n;
      const ShmStatus s = chans[i]->TryRecv(out);
      if (s == ShmStatus::kOk || s == ShmStatus::kCorrupt ||
          s == ShmStatus::kLost || s == ShmStatus::kResources ||
          s == ShmStatus::kNoMemory) {
        *index = i;
        return s;
      }
      open[i] = s != ShmStatus::kClosed;
      nopen += open[i];
    }
    if (nopen == 0) return ShmStatus::kClosed;
    if (DeadlinePassed(deadline)) return ShmStatus::kEmpty;
    // Register on every open channel, reading its data word under its
    // mutex; a record that arrived meanwhile sends us round again.
    size_t registered = 0;
    bool ready = false;
    ShmStatus failure = ShmStatus::kOk;
    for (size_t i = 0; i < n && !ready; ++i) {
      if (!open[i]) continue;
      ProcessChannel* c = chans[i];
      Header* h = c->header();
      if (c->Lock() != Locked::kYes) {
        failure = ShmStatus::kCorrupt;
        *index = i;
        break;
      }
      if (h->tail.load(std::memory_order_relaxed) !=
              h->head.load(std::memory_order_relaxed) ||
          h->closed.load(std::memory_order_relaxed) != 0) {
        ready = true;
      } else {
        h->recv_waiters.fetch_add(1, std::memory_order_relaxed);
        waits[registered].val = h->data_seq.load(std::memory_order_relaxed);
        waits[registered].uaddr = reinterpret_cast<uintptr_t>(&h->data_seq);
        waits[registered].flags = FUTEX_32;  // shared: no FUTEX_PRIVATE_FLAG
        waits[registered].__reserved = 0;
        open[i] = 2;  // registered
        ++registered;
      }
      c->Unlock();
    }
    int err = 0;
    if (!ready && failure == ShmStatus::kOk) {
      // futex_waitv takes an absolute CLOCK_MONOTONIC time, the clock
      // behind steady_clock; capped so the selector looks again
      // (detail::kSignalRecheck).
      const Deadline until = detail::CappedForRecheck(deadline);
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          until->time_since_epoch())
                          .count();
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      timespec* tsp = &ts;
      const long r = syscall(SYS_futex_waitv, waits.data(),
                             static_cast<unsigned>(registered), 0u, tsp,
                             CLOCK_MONOTONIC);
      err = r >= 0 ? 0 : errno;
    }
    // Unregister without the mutex, as SleepOn does; pass a wake-up on
    // where records wait for other readers (a snapshot is enough for that).
    for (size_t i = 0; i < n; ++i) {
      if (open[i] != 2) continue;
      Header* h = chans[i]->header();
      Unregister(&h->recv_waiters);
      const bool pass_on = h->tail.load(std::memory_order_acquire) !=
                               h->head.load(std::memory_order_acquire) &&
                           h->recv_waiters.load(std::memory_order_relaxed) > 0;
      if (pass_on) FutexWakeShared(&h->data_seq, 1);
    }
    if (failure != ShmStatus::kOk) return failure;
    // ENOSYS (before Linux 5.16), EPERM (a seccomp filter), anything else
    // unexpected: never spin on it.
    if (err != 0 && err != EAGAIN && err != ETIMEDOUT && err != EINTR) {
      return ShmStatus::kUnsupported;
    }
    if (interruptible && (err == EINTR || err == ETIMEDOUT)) {
      return ShmStatus::kInterrupted;  // see AwaitChange
    }
  }
}

uint32_t ProcessChannel::Seq(bool data) const {
  const Header* h = header();
  return (data ? h->data_seq : h->space_seq).load(std::memory_order_acquire);
}

ShmStatus ProcessChannel::WaitSeq(bool data, uint32_t seq,
                                  const Deadline& deadline,
                                  bool interruptible) {
  Header* h = header();
  switch (Lock(LockDeadline(deadline), interruptible)) {
    case Locked::kYes: break;
    case Locked::kTimedOut: return ShmStatus::kEmpty;
    case Locked::kInterrupted: return ShmStatus::kInterrupted;
    default: return ShmStatus::kCorrupt;
  }
  const int err = SleepOn(data ? &h->data_seq : &h->space_seq,
                          data ? &h->recv_waiters : &h->send_waiters, seq,
                          deadline);
  if (err == EINTR && interruptible) return ShmStatus::kInterrupted;
  // A re-check (detail::kSignalRecheck) returns kOk too: the caller looks
  // again.
  return DeadlinePassed(deadline) ? ShmStatus::kEmpty : ShmStatus::kOk;
}

void ProcessChannel::Nudge() {
  Header* h = header();
  h->data_seq.fetch_add(1, std::memory_order_release);
  h->space_seq.fetch_add(1, std::memory_order_release);
  FutexWakeShared(&h->data_seq, INT_MAX);
  FutexWakeShared(&h->space_seq, INT_MAX);
}

bool ProcessChannel::closed() const {
  return header()->closed.load(std::memory_order_acquire) != 0;
}

uint64_t ProcessChannel::size() const {
  return header()->count.load(std::memory_order_acquire);
}

}  // namespace xchannels
