// core/src/shared_buffer.cc: allocation, slicing and layout checks of
// SharedBuffer.
#include "xchannels/shared_buffer.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "xchannels/detail/mutex.h"

namespace xchannels {
namespace {

std::atomic<int64_t> g_live{0};

// Storage is 64-byte aligned so any element type, and SIMD loads, are happy.
constexpr size_t kAlignment = 64;

// Large blocks come back to a small process-wide cache instead of the OS:
// a fresh multi-megabyte allocation is an mmap whose every page faults on
// first touch, which costs more than copying the bytes. Streaming same-sized
// payloads then reuses warm pages. Bounded: at most kCacheBlocks blocks and
// kCacheBytes bytes are kept; a block serves requests from half its size up.
constexpr size_t kCacheMinBlock = 64 * 1024;
constexpr size_t kCacheBlocks = 8;
constexpr size_t kCacheBytes = 128 * 1024 * 1024;

class BlockCache {
 public:
  uint8_t* Take(size_t size, size_t* capacity) ABSL_LOCKS_EXCLUDED(mu_) {
    detail::MutexLock lock(&mu_);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      Block b = blocks_[i];
      if (b.capacity >= size && b.capacity / 2 <= size) {
        blocks_[i] = blocks_.back();
        blocks_.pop_back();
        bytes_ -= b.capacity;
        *capacity = b.capacity;
        return b.data;
      }
    }
    return nullptr;
  }
  // Returns false if the cache is full: the caller frees the block.
  bool Give(uint8_t* data, size_t capacity) ABSL_LOCKS_EXCLUDED(mu_) {
    if (capacity < kCacheMinBlock) return false;
    detail::MutexLock lock(&mu_);
    if (blocks_.size() >= kCacheBlocks || bytes_ + capacity > kCacheBytes) {
      return false;
    }
    blocks_.push_back(Block{data, capacity});
    bytes_ += capacity;
    return true;
  }

 private:
  struct Block {
    uint8_t* data;
    size_t capacity;
  };
  detail::Mutex mu_;
  std::vector<Block> blocks_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

BlockCache& Cache() {
  static BlockCache* cache = new BlockCache();  // never destroyed: safe at exit
  return *cache;
}

uint8_t* AllocateStorage(size_t size, size_t* capacity) {
  size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < size) return nullptr;  // overflow
  if (rounded == 0) rounded = kAlignment;
  if (rounded >= kCacheMinBlock) {
    if (uint8_t* reused = Cache().Take(rounded, capacity)) return reused;
  }
  *capacity = rounded;
  return static_cast<uint8_t*>(std::aligned_alloc(kAlignment, rounded));
}

}  // namespace

bool BufferLayout::Fits(size_t nbytes) const {
  if (itemsize == 0 || format.empty()) return false;
  if (shape.empty()) return nbytes % itemsize == 0;
  size_t total = itemsize;
  for (int64_t extent : shape) {
    if (extent < 0) return false;
    if (extent != 0 && total > SIZE_MAX / static_cast<size_t>(extent)) {
      return false;
    }
    total *= static_cast<size_t>(extent);
  }
  return total == nbytes;
}

SharedBuffer::SharedBuffer(const uint8_t* data, size_t size,
                           BufferLayout layout, uint8_t* owned,
                           Ref<SharedBuffer> base)
    : data_(data),
      size_(size),
      layout_(std::move(layout)),
      owned_(owned),
      base_(std::move(base)) {
  g_live.fetch_add(1, std::memory_order_relaxed);
}

SharedBuffer::~SharedBuffer() {
  if (owned_ != nullptr && !Cache().Give(owned_, capacity_)) std::free(owned_);
  if (release_ != nullptr) release_(release_context_);
  g_live.fetch_sub(1, std::memory_order_relaxed);
}

Ref<SharedBuffer> SharedBuffer::Allocate(size_t size, uint8_t** writable,
                                         BufferLayout layout) {
  if (!layout.Fits(size)) return nullptr;
  size_t capacity = 0;
  uint8_t* storage = AllocateStorage(size, &capacity);
  if (storage == nullptr) return nullptr;
  *writable = storage;
  auto* buf = new (std::nothrow)
      SharedBuffer(storage, size, std::move(layout), storage, nullptr);
  if (buf == nullptr) {
    std::free(storage);
    return nullptr;
  }
  buf->capacity_ = capacity;
  return Ref<SharedBuffer>::Adopt(buf);
}

Ref<SharedBuffer> SharedBuffer::Copy(const void* data, size_t size,
                                     BufferLayout layout) {
  uint8_t* dst = nullptr;
  Ref<SharedBuffer> buf = Allocate(size, &dst, std::move(layout));
  if (buf && size > 0) std::memcpy(dst, data, size);
  return buf;
}

Ref<SharedBuffer> SharedBuffer::Borrow(const void* data, size_t size,
                                       ReleaseFn release, void* context) {
  auto* buf = new (std::nothrow)
      SharedBuffer(static_cast<const uint8_t*>(data), size, BufferLayout{},
                   nullptr, nullptr);
  if (buf == nullptr) return nullptr;
  buf->release_ = release;
  buf->release_context_ = context;
  return Ref<SharedBuffer>::Adopt(buf);
}

Ref<SharedBuffer> SharedBuffer::InFile(Ref<MemFile> file, size_t offset,
                                       size_t size, BufferLayout layout) {
  if (!file || offset > file->size() || size > file->size() - offset ||
      !layout.Fits(size)) {
    return nullptr;
  }
  auto* buf = new (std::nothrow) SharedBuffer(
      file->data() + offset, size, std::move(layout), nullptr, nullptr);
  if (buf == nullptr) return nullptr;
  buf->file_ = std::move(file);
  return Ref<SharedBuffer>::Adopt(buf);
}

Ref<SharedBuffer> SharedBuffer::CopyToFile(const void* data, size_t size,
                                           BufferLayout layout,
                                           std::string* error) {
  if (!layout.Fits(size)) {
    *error = "the layout does not fit the size";
    return nullptr;
  }
  Ref<MemFile> file = MemFile::Create(size, /*populate=*/false, error);
  if (!file) return nullptr;
  if (size > 0 && !file->WriteAt(0, data, size)) {
    *error = std::string("write: ") + std::strerror(errno);
    return nullptr;
  }
  if (!file->Seal(error)) return nullptr;
  Ref<SharedBuffer> b = InFile(std::move(file), 0, size, std::move(layout));
  if (!b) *error = "out of memory";
  return b;
}

Ref<SharedBuffer> SharedBuffer::View(const Ref<SharedBuffer>& base,
                                     size_t offset, size_t length,
                                     BufferLayout layout) {
  if (!layout.Fits(length)) return nullptr;
  const SharedBuffer* root = base->root();
  auto* buf = new (std::nothrow) SharedBuffer(
      base->data() + offset, length, std::move(layout), nullptr,
      Ref<SharedBuffer>::Share(const_cast<SharedBuffer*>(root)));
  return Ref<SharedBuffer>::Adopt(buf);
}

Ref<SharedBuffer> SharedBuffer::Slice(const Ref<SharedBuffer>& base,
                                      size_t offset, size_t length) {
  const SharedBuffer* root = base->root();
  const uint8_t* start = base->data() + offset;
  auto* buf = new (std::nothrow)
      SharedBuffer(start, length, BufferLayout{}, nullptr,
                   Ref<SharedBuffer>::Share(const_cast<SharedBuffer*>(root)));
  return Ref<SharedBuffer>::Adopt(buf);
}

std::vector<int64_t> SharedBuffer::shape() const {
  if (!layout_.shape.empty()) return layout_.shape;
  return {static_cast<int64_t>(size_ / layout_.itemsize)};
}

int64_t SharedBuffer::LiveCountForTesting() {
  return g_live.load(std::memory_order_relaxed);
}

}  // namespace xchannels
