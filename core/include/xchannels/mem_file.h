// core/include/xchannels/mem_file.h: a sealed memfd that carries bytes to
// another process without a copy: a value too large for a ProcessChannel's
// ring, or the storage of a SharedBuffer made for processes.
//
// Layout of the file (what another process checks before it reads it):
//   [0, kHeaderBytes)           FileHeader: magic, a random id, the data size
//   [kHeaderBytes, +size)       the data (page-aligned in every mapping)
//
// Lifetime follows the kernel's: the file lives while a descriptor or a
// mapping of it does, in any process, so no process can leak it by dying
// and nothing is ever named in /dev/shm.
//
// Invariants:
//   - A file is written once, through writable(), then Seal()ed: shrink,
//     grow, write and further seals are refused by the kernel from then on,
//     for every process. Only a sealed file is mapped by a reader, so its
//     bytes cannot change under a parser (no double fetch).
//   - A file opened from another process (OpenPeer) is untrusted: it is
//     adopted only if it is a memfd sealed that way, of exactly
//     kHeaderBytes + size bytes, whose header carries the expected magic,
//     id and size. Its mapping is read-only.
//
// Thread safety: a MemFile is immutable once sealed and may be shared by
// any threads (its reference count is atomic); Create/writable/Seal are used
// by one thread before the file is shared.
#ifndef XCHANNELS_MEM_FILE_H_
#define XCHANNELS_MEM_FILE_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "xchannels/refcount.h"

namespace xchannels {

class MemFile final : public RefCounted {
 public:
  static constexpr size_t kHeaderBytes = 4096;

  // A new, unsealed file for `size` data bytes, mapped writable. With
  // `populate`, its pages are allocated at once (one call instead of a
  // fault per page); without, the file stays sparse until written. Returns
  // nullptr with *error set (an errno text) on failure.
  static Ref<MemFile> Create(size_t size, bool populate, std::string* error);
  // The data, writable until Seal().
  uint8_t* writable() noexcept { return sealed_ ? nullptr : map_ + kHeaderBytes; }
  // Until Seal(): writes n bytes at data offset `at` with pwrite (for large
  // pieces: the kernel fills fresh pages without faulting them in first).
  // False (errno set) on failure.
  bool WriteAt(size_t at, const void* p, size_t n) noexcept;
  // Writes the header, seals the file and maps it again read-only.
  bool Seal(std::string* error);
  // For a file reused by its writer (ProcessChannel's out-of-line values):
  // once the value's `size` bytes are written at data offset 0, gives the
  // file a new id and writes the header {magic, id, size}; seals it against
  // shrinking and growing, not against writes, so a reader copies it out
  // (ProcessChannel reads it under the segment's mutex, before the head
  // moves on and the writer may reuse it) before it parses it.
  bool Publish(size_t size, std::string* error);

  // How opening another process's descriptor went.
  enum class Open : uint8_t {
    kOk,
    kGone,       // no such process or descriptor (the sender exited)
    kRefused,    // not a sealed xchannels memfd of that id and size
    kResources,  // this process is out of descriptors or memory (errno in *err)
  };
  // Opens descriptor `fd` of process `pid` (/proc/PID/fd/N; a duplicate
  // when it is this process), checks it and maps it read-only; with
  // `populate`, its pages mapped at once (for a file to be read through;
  // ignored above 1 GiB).
  static Open OpenPeer(pid_t pid, int fd, uint64_t id, uint64_t size,
                       bool populate, Ref<MemFile>* out, int* err);
  // The first step of OpenPeer: a descriptor of our own (*mine) for
  // descriptor `fd` of process `pid`, not yet checked.
  static Open OpenPeerFd(pid_t pid, int fd, int* mine, int* err);
  // The checks of a file opened so: a memfd sealed against shrinking and
  // growing (and writes, if `sealed_write`), of exactly (or, if not
  // `exact`, at least) kHeaderBytes + size bytes, whose header has the
  // magic, `id` and `size`.
  static bool Check(int fd, uint64_t id, uint64_t size, bool sealed_write,
                    bool exact);

  const uint8_t* data() const noexcept { return map_ + kHeaderBytes; }
  size_t size() const noexcept { return size_; }
  uint64_t id() const noexcept { return id_; }
  int fd() const noexcept { return fd_; }

  // Live files in this process, for leak tests.
  static int64_t LiveCountForTesting();

 private:
  MemFile(int fd, uint8_t* map, size_t size, uint64_t id, bool sealed);
  ~MemFile() override;

  int fd_;
  uint8_t* map_;  // the whole file, kHeaderBytes + size_
  size_t size_;
  uint64_t id_;
  bool sealed_;
};

// Descriptors owned by one record in flight: closed with the object unless
// released. Move-only.
class OwnedFds {
 public:
  OwnedFds() = default;
  OwnedFds(OwnedFds&& o) noexcept : fds_(std::move(o.fds_)) { o.fds_.clear(); }
  OwnedFds& operator=(OwnedFds&& o) noexcept;
  OwnedFds(const OwnedFds&) = delete;
  OwnedFds& operator=(const OwnedFds&) = delete;
  ~OwnedFds() { Reset(); }

  void Add(int fd) { fds_.push_back(fd); }  // takes ownership
  bool empty() const noexcept { return fds_.empty(); }
  size_t size() const noexcept { return fds_.size(); }
  int operator[](size_t i) const noexcept { return fds_[i]; }
  // Closes every descriptor.
  void Reset() noexcept;
  // Gives the descriptors up to the caller.
  std::vector<int> Release() noexcept { return std::exchange(fds_, {}); }

 private:
  std::vector<int> fds_;
};

}  // namespace xchannels

#endif  // XCHANNELS_MEM_FILE_H_
