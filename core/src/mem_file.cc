// core/src/mem_file.cc: sealed memfds; see mem_file.h for the layout and
// the checks.
#include "xchannels/mem_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>

namespace xchannels {

namespace {

constexpr uint64_t kMagic = 0x31454c49'464d4358ull;  // "XCMFILE1"
constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

struct FileHeader {
  uint64_t magic;
  uint64_t id;
  uint64_t size;
};

std::atomic<int64_t> g_live{0};

std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

OwnedFds& OwnedFds::operator=(OwnedFds&& o) noexcept {
  if (this != &o) {
    Reset();
    fds_ = std::move(o.fds_);
    o.fds_.clear();
  }
  return *this;
}

void OwnedFds::Reset() noexcept {
  for (int fd : fds_) close(fd);
  fds_.clear();
}

MemFile::MemFile(int fd, uint8_t* map, size_t size, uint64_t id, bool sealed)
    : fd_(fd), map_(map), size_(size), id_(id), sealed_(sealed) {
  g_live.fetch_add(1, std::memory_order_relaxed);
}

MemFile::~MemFile() {
  munmap(map_, kHeaderBytes + size_);
  close(fd_);
  g_live.fetch_sub(1, std::memory_order_relaxed);
}

int64_t MemFile::LiveCountForTesting() {
  return g_live.load(std::memory_order_relaxed);
}

Ref<MemFile> MemFile::Create(size_t size, bool populate, std::string* error) {
  if (size > (size_t{1} << 46)) {
    *error = "a value of " + std::to_string(size) + " bytes is too large";
    return nullptr;
  }
  const int fd = static_cast<int>(syscall(
      SYS_memfd_create, "xchannels-value", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd < 0) {
    *error = Errno("memfd_create");
    return nullptr;
  }
  const size_t total = kHeaderBytes + size;
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, static_cast<off_t>(total)) != 0) {
    *error = Errno("ftruncate");
    close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                 MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
  if (p == MAP_FAILED) {
    *error = Errno("mmap");
    close(fd);
    return nullptr;
  }
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) {
    id = reinterpret_cast<uintptr_t>(p) ^ (static_cast<uint64_t>(getpid()) << 32);
  }
  auto* f = new (std::nothrow)
      MemFile(fd, static_cast<uint8_t*>(p), size, id, false);
  if (f == nullptr) {
    munmap(p, total);
    close(fd);
    *error = "out of memory";
    return nullptr;
  }
  return Ref<MemFile>::Adopt(f);
}

bool MemFile::WriteAt(size_t at, const void* p, size_t n) noexcept {
  if (sealed_ || at > size_ || n > size_ - at) {
    errno = EINVAL;
    return false;
  }
  const auto* src = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = pwrite(fd_, src, n, static_cast<off_t>(kHeaderBytes + at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    src += w;
    at += static_cast<size_t>(w);
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool MemFile::Seal(std::string* error) {
  if (sealed_) return true;
  const size_t total = kHeaderBytes + size_;
  const FileHeader h{kMagic, id_, size_};
  std::memcpy(map_, &h, sizeof h);
  // The write seal needs every writable shared mapping gone.
  munmap(map_, total);
  map_ = nullptr;
  void* p = MAP_FAILED;
  if (fcntl(fd_, F_ADD_SEALS, kSeals | F_SEAL_SEAL) != 0) {
    *error = Errno("fcntl(F_ADD_SEALS)");
  } else {
    // Private and read-only: the same pages (nothing ever writes them), and
    // a shared mapping of a write-sealed memfd through a writable
    // descriptor is refused before Linux 6.7.
    p = mmap(nullptr, total, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) *error = Errno("mmap");
  }
  if (p == MAP_FAILED) {
    // Keep the object destructible: map something of the right length.
    p = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    map_ = static_cast<uint8_t*>(p == MAP_FAILED ? nullptr : p);
    sealed_ = true;
    return false;
  }
  map_ = static_cast<uint8_t*>(p);
  sealed_ = true;
  return true;
}

bool MemFile::Publish(size_t size, std::string* error) {
  if (sealed_ || size > size_) {
    *error = "not a reusable file of that size";
    return false;
  }
  if (getrandom(&id_, sizeof id_, 0) != static_cast<ssize_t>(sizeof id_)) {
    id_ ^= (id_ << 13) ^ static_cast<uint64_t>(size) ^ 0x9e3779b97f4a7c15ull;
  }
  const FileHeader h{kMagic, id_, size};
  std::memcpy(map_, &h, sizeof h);
  if (fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    *error = Errno("fcntl(F_ADD_SEALS)");
    return false;
  }
  return true;
}

MemFile::Open MemFile::OpenPeerFd(pid_t pid, int fd, int* mine, int* err) {
  *err = 0;
  if (fd < 0 || pid <= 0) return Open::kRefused;
  if (pid == getpid()) {
    *mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  } else {
    const std::string path =
        "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    // Not blocking: the descriptor may be anything, a FIFO with no writer
    // included (Check refuses what is not a regular file).
    *mine = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  }
  if (*mine >= 0) return Open::kOk;
  *err = errno;
  if (*err == EMFILE || *err == ENFILE || *err == ENOMEM) {
    return Open::kResources;
  }
  return *err == ENOENT || *err == ESRCH || *err == EBADF ? Open::kGone
                                                          : Open::kRefused;
}

bool MemFile::Check(int fd, uint64_t id, uint64_t size, bool sealed_write,
                    bool exact) {
  if (size > (uint64_t{1} << 46)) return false;
  const int want = F_SEAL_SHRINK | F_SEAL_GROW | (sealed_write ? F_SEAL_WRITE : 0);
  const int seals = fcntl(fd, F_GET_SEALS);
  struct stat sb;
  if (seals < 0 || (seals & want) != want || fstat(fd, &sb) != 0 ||
      !S_ISREG(sb.st_mode)) {
    return false;
  }
  const auto have = static_cast<uint64_t>(sb.st_size);
  if (exact ? have != kHeaderBytes + size : have < kHeaderBytes + size) {
    return false;
  }
  FileHeader h;
  if (pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) {
    return false;
  }
  return h.magic == kMagic && h.id == id && h.size == size;
}

MemFile::Open MemFile::OpenPeer(pid_t pid, int fd, uint64_t id, uint64_t size,
                                bool populate, Ref<MemFile>* out, int* err) {
  int mine = -1;
  if (const Open o = OpenPeerFd(pid, fd, &mine, err); o != Open::kOk) return o;
  if (!Check(mine, id, size, /*sealed_write=*/true, /*exact=*/true)) {
    close(mine);
    return Open::kRefused;
  }
  const size_t total = kHeaderBytes + static_cast<size_t>(size);
  // Populated: one call instead of a fault per page. Private (see Seal).
  const int flags =
      MAP_PRIVATE | (populate && total <= (size_t{1} << 30) ? MAP_POPULATE : 0);
  void* p = mmap(nullptr, total, PROT_READ, flags, mine, 0);
  if (p == MAP_FAILED) {
    *err = errno;
    close(mine);
    return *err == ENOMEM ? Open::kResources : Open::kRefused;
  }
  auto* f = new (std::nothrow)
      MemFile(mine, static_cast<uint8_t*>(p), static_cast<size_t>(size), id,
              true);
  if (f == nullptr) {
    munmap(p, total);
    close(mine);
    *err = ENOMEM;
    return Open::kResources;
  }
  *out = Ref<MemFile>::Adopt(f);
  return Open::kOk;
}

}  // namespace xchannels
