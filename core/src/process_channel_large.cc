// core/src/process_channel_large.cc: what carries a ProcessChannel's large
// values: the record that carries an Item (Prepare: inline, or out of line
// in a reused memfd), the descriptors a sender holds until its records are
// taken (ReclaimPassed, WaitSent, KeepUntilTaken), and the receiver's side
// (OpenFiles: open, check and copy under the segment's mutex). The
// lifetime argument is in process_channel.h's header comment.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "process_channel_segment.h"
#include "xchannels/process_channel.h"

namespace xchannels {

bool ProcessChannel::Prepare(const Item& item, OutRecord* out,
                             std::string* error, bool inline_only) {
  error->clear();
  out->head.clear();
  out->fds.Reset();
  out->file = nullptr;
  // Inline when it fits: count first (no bytes are copied), so a large
  // value is never flattened twice.
  FlattenOptions ring_form;
  ring_form.by_fd = true;
  RecordBuffer counter(RecordBuffer::Counting{});
  std::span<const uint8_t> tail;
  if (!FlattenItem(item, &counter, &tail, ring_form)) return false;
  const size_t inline_size = counter.size() + tail.size();
  if (inline_size <= kInlineMax && 8 + RoundUp8(inline_size) <= ring_) {
    ring_form.pass = &out->fds;
    const bool ok = FlattenItem(item, &out->head, &out->tail, ring_form);
    if (!out->fds.empty()) ForgetIfForked();  // before it holds any
    return ok;
  }
  if (inline_only) return true;  // no record: the caller calls again
  ForgetIfForked();
  // Out of line: the whole record, written once into a file of the pool
  // (or a new one); inline buffers 64-aligned, memfd buffers still by
  // descriptor.
  FlattenOptions file_form;
  file_form.align = true;
  file_form.by_fd = true;
  RecordBuffer sized(RecordBuffer::Counting{});
  FlattenItem(item, &sized, &tail, file_form);
  const size_t size = sized.size() + tail.size();
  Ref<MemFile> file;
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    size_t best = pool_.size();
    for (size_t i = 0; i < pool_.size(); ++i) {
      if (pool_[i]->size() >= size &&
          (best == pool_.size() || pool_[i]->size() < pool_[best]->size())) {
        best = i;
      }
    }
    if (best < pool_.size()) {
      file = std::move(pool_[best]);
      pool_.erase(pool_.begin() + static_cast<std::ptrdiff_t>(best));
    }
  }
  if (!file) {
    // Rounded up to 1 MiB, so that a slightly larger value reuses it.
    const size_t mib = size_t{1} << 20;
    file = MemFile::Create((size + mib - 1) / mib * mib, /*populate=*/false,
                           error);
    if (!file) return false;
  }
  RecordBuffer into(file.get(), sized.size());
  file_form.pass = &out->fds;
  FlattenItem(item, &into, &tail, file_form);
  if (into.size() != sized.size()) {
    // A descriptor could not be duplicated: the buffer went inline.
    *error = "no file descriptor left to send a memfd SharedBuffer";
    return false;
  }
  if (into.write_failed() ||
      (!tail.empty() && !file->WriteAt(into.size(), tail.data(), tail.size()))) {
    *error = std::string("write: ") + std::strerror(errno);
    return false;
  }
  if (!file->Publish(size, error)) return false;
  FlattenOutOfLine(FdRef{static_cast<uint32_t>(getpid()),
                         static_cast<uint32_t>(file->fd()), file->id(), size},
                   &out->head);
  out->tail = {};
  out->file = std::move(file);
  return true;
}

namespace {

// The handles kept by KeepUntilTaken (never destroyed: safe at exit).
struct Kept {
  std::mutex mu;
  std::vector<Ref<ProcessChannel>> chans;
  std::atomic<size_t> count{0};
};
Kept& KeptHandles() {
  static Kept* kept = new Kept();
  return *kept;
}

}  // namespace

void ProcessChannel::KeepUntilTaken(Ref<ProcessChannel> ch) {
  Kept& k = KeptHandles();
  std::lock_guard<std::mutex> lock(k.mu);
  k.chans.push_back(std::move(ch));
  k.count.store(k.chans.size(), std::memory_order_relaxed);
}

void ProcessChannel::ReleaseTaken() {
  Kept& k = KeptHandles();
  if (k.count.load(std::memory_order_relaxed) == 0) return;
  std::vector<Ref<ProcessChannel>> done;  // destroyed after the mutex
  {
    std::lock_guard<std::mutex> lock(k.mu);
    size_t kept = 0;
    for (Ref<ProcessChannel>& ch : k.chans) {
      ch->ReclaimPassed();
      ch->ForgetIfForked();  // a child's copies are not its to keep
      if (ch->HasSent()) {
        k.chans[kept++] = std::move(ch);
      } else {
        done.push_back(std::move(ch));
      }
    }
    k.chans.resize(kept);
    k.count.store(kept, std::memory_order_relaxed);
  }
}

ShmStatus ProcessChannel::WaitKept(const Deadline& deadline,
                                   bool interruptible) {
  for (;;) {
    ReleaseTaken();
    Ref<ProcessChannel> first;
    {
      Kept& k = KeptHandles();
      std::lock_guard<std::mutex> lock(k.mu);
      if (k.chans.empty()) return ShmStatus::kOk;
      first = Ref<ProcessChannel>::Share(k.chans.front().get());
    }
    const ShmStatus s = first->WaitSent(deadline, interruptible);
    if (s != ShmStatus::kOk) return s;
  }
}

void ProcessChannel::ForgetIfForked() {
  const pid_t me = getpid();
  if (owner_.load(std::memory_order_relaxed) == me) return;
  ForgetSent();
  owner_.store(me, std::memory_order_relaxed);
  attached_.store(true, std::memory_order_relaxed);
}

void ProcessChannel::ReclaimPassed() {
  if (npending_.load(std::memory_order_relaxed) == 0) return;
  ForgetIfForked();
  // A snapshot is enough: the head only moves forward, and past a record
  // only once its receiver has opened (or copied) what it names.
  const uint64_t head = header()->head.load(std::memory_order_acquire);
  std::vector<Ref<MemFile>> dropped;  // released after the mutex
  std::lock_guard<std::mutex> lock(pending_mu_);
  size_t kept = 0;
  for (Pending& p : pending_) {
    if (p.end > head) {
      pending_[kept++] = std::move(p);
      continue;
    }
    if (p.fd >= 0) close(p.fd);
    if (!p.file) continue;
    if (pool_.size() < kPoolFiles && p.file->size() <= kPoolFileMax) {
      pool_.push_back(std::move(p.file));
    } else {
      dropped.push_back(std::move(p.file));
    }
  }
  pending_.resize(kept);
  npending_.store(kept, std::memory_order_relaxed);
}

ShmStatus ProcessChannel::WaitSent(const Deadline& deadline,
                                   bool interruptible) {
  Header* h = header();
  ForgetIfForked();
  for (;;) {
    ReclaimPassed();
    uint64_t last = 0;
    {
      std::lock_guard<std::mutex> lock(pending_mu_);
      for (const Pending& p : pending_) last = std::max(last, p.end);
    }
    if (last == 0) return ShmStatus::kOk;
    // The space word moves whenever a record is taken: read it, then look
    // at the head, then sleep while it has not moved (no wake-up is lost).
    const uint32_t seq = h->space_seq.load(std::memory_order_acquire);
    if (h->head.load(std::memory_order_acquire) >= last) continue;
    if (h->corrupt.load(std::memory_order_relaxed) != 0) {
      return ShmStatus::kCorrupt;
    }
    const ShmStatus s = WaitSeq(false, seq, deadline, interruptible);
    if (s == ShmStatus::kEmpty) return ShmStatus::kFull;
    if (s != ShmStatus::kOk) return s;
  }
}

void ProcessChannel::ForgetSent() {
  std::vector<Pending> gone;
  std::vector<Ref<MemFile>> pool;
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    gone.swap(pending_);
    pool.swap(pool_);
    npending_.store(0, std::memory_order_relaxed);
  }
  for (const Pending& p : gone) {
    if (p.fd >= 0) close(p.fd);
  }
}

namespace {

// Copies the out-of-line record `r` names into *out (see the header: under
// the mutex, from a file its sender may write at any time). kOk, kLost,
// kResources (no descriptor: the record stays) or kNoMemory (no memory for
// a copy of that size: the record is consumed, or it would block the
// channel for every reader).
ShmStatus CopyOutOfLine(const FdRef& r, Ref<SharedBuffer>* out) {
  int fd = -1, err = 0;
  switch (MemFile::OpenPeerFd(static_cast<pid_t>(r.pid),
                              static_cast<int>(r.fd), &fd, &err)) {
    case MemFile::Open::kOk: break;
    case MemFile::Open::kResources: return ShmStatus::kResources;
    default: return ShmStatus::kLost;
  }
  ShmStatus result = ShmStatus::kLost;
  uint8_t* dst = nullptr;
  Ref<SharedBuffer> buf;
  // More than the machine's memory is not even tried.
  static const uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                              static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (MemFile::Check(fd, r.id, r.size, /*sealed_write=*/false,
                     /*exact=*/false)) {
    if (r.size <= ram) {
      buf = SharedBuffer::Allocate(static_cast<size_t>(r.size), &dst);
    }
    result = buf ? ShmStatus::kOk : ShmStatus::kNoMemory;
  }
  if (buf && r.size >= (size_t{2} << 20)) {
    // Fresh memory, faulted in 2 MiB at a time by the read below.
    const auto lo = (reinterpret_cast<uintptr_t>(dst) + 4095) & ~uintptr_t{4095};
    const auto hi = (reinterpret_cast<uintptr_t>(dst) + r.size) & ~uintptr_t{4095};
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
  }
  for (uint64_t at = 0; buf && at < r.size;) {
    const ssize_t n = pread(fd, dst + at, static_cast<size_t>(r.size - at),
                            static_cast<off_t>(MemFile::kHeaderBytes + at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // shorter than it said: the sender is faulty
      result = ShmStatus::kLost;
      break;
    }
    at += static_cast<uint64_t>(n);
  }
  if (result == ShmStatus::kOk) *out = std::move(buf);
  close(fd);
  return result;
}

}  // namespace

ShmStatus ProcessChannel::OpenFiles(RecordBuffer* out) {
  std::vector<FdRef> refs;
  // A malformed record opens nothing: its reader reports it.
  if (!ScanFdRefs(out->span(), &refs) || refs.empty()) return ShmStatus::kOk;
  ShmStatus s = ShmStatus::kOk;
  if (refs[0].whole_record) {
    // The record is out of line: copy it, then open what its buffers name.
    s = CopyOutOfLine(refs[0], &out->body);
    if (s == ShmStatus::kOk &&
        !ScanFdRefs({out->body->data(), out->body->size()}, &refs)) {
      refs.clear();  // malformed: UnflattenItem says so
    }
  }
  out->files.reserve(refs.size());
  for (size_t i = 0; i < refs.size() && s == ShmStatus::kOk; ++i) {
    const FdRef& r = refs[i];
    if (r.whole_record) break;  // nested: UnflattenItem refuses it
    Ref<MemFile> file;
    int err = 0;
    switch (MemFile::OpenPeer(static_cast<pid_t>(r.pid),
                              static_cast<int>(r.fd), r.id, r.size,
                              /*populate=*/false, &file, &err)) {
      case MemFile::Open::kOk: out->files.push_back(std::move(file)); break;
      case MemFile::Open::kResources: s = ShmStatus::kResources; break;
      default: s = ShmStatus::kLost; break;
    }
  }
  if (s != ShmStatus::kOk) {
    out->files.clear();
    out->body = nullptr;
  }
  return s;
}

}  // namespace xchannels
