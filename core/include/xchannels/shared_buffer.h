// core/include/xchannels/shared_buffer.h: an immutable, atomically
// reference-counted byte block that belongs to no interpreter.
//
// Invariants:
//   - The bytes and the layout never change after Create*/Slice returns
//     (the writable pointer of Allocate() is used only before publishing).
//   - A slice holds a reference to its base, so the base's storage outlives
//     every slice; slices of slices point at the root block directly.
//   - Borrowed storage (Borrow) stays its owner's: it is given back through
//     the release function when the buffer goes, never freed here.
//   - layout().shape's product times layout().itemsize == size(), and the data
//     is C-contiguous.
//
// Memory ordering: publishing a buffer to another thread goes through a
// channel (release on send, acquire on receive), which orders the writes made
// through the Allocate() pointer before any read on the receiving side.
#ifndef XCHANNELS_SHARED_BUFFER_H_
#define XCHANNELS_SHARED_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "xchannels/mem_file.h"
#include "xchannels/refcount.h"

namespace xchannels {

// How the bytes are to be read: a struct-module format, the item size and a
// C-contiguous shape. The default is a flat run of unsigned bytes.
struct BufferLayout {
  std::string format = "B";
  size_t itemsize = 1;
  std::vector<int64_t> shape;  // empty means one dimension of size/itemsize

  // True when itemsize > 0, every extent >= 0, and itemsize times the extents
  // equals nbytes (overflow-checked).
  bool Fits(size_t nbytes) const;
};

class SharedBuffer final : public RefCounted {
 public:
  // Thread-safe. Allocates one block of `size` bytes and copies `data` into it.
  // Returns nullptr if `layout` does not fit `size` or memory runs out.
  static Ref<SharedBuffer> Copy(const void* data, size_t size,
                                BufferLayout layout = {});

  // Thread-safe. Allocates an uninitialised block; the caller fills it
  // through *writable before sharing the buffer with anyone. Returns nullptr
  // if `layout` does not fit `size` or memory runs out.
  static Ref<SharedBuffer> Allocate(size_t size, uint8_t** writable,
                                    BufferLayout layout = {});

  // Called once, from whichever thread drops the last reference of a
  // Borrow()ed buffer, with no lock of this library held. Must not block.
  using ReleaseFn = void (*)(void* context) noexcept;

  // Thread-safe. Zero-copy: a buffer over `size` bytes at `data`, flat
  // unsigned bytes, that somebody else owns and keeps unchanged until
  // `release(context)` runs (once, when the last reference goes). Returns
  // nullptr if memory runs out; `release` is then never called and the
  // loan stays the caller's.
  static Ref<SharedBuffer> Borrow(const void* data, size_t size,
                                  ReleaseFn release, void* context);

  // Thread-safe. A buffer over `size` bytes at data offset `offset` of a
  // sealed MemFile (which it keeps alive): its bytes can travel to another
  // process by descriptor, without a copy (flat_form.h). Returns nullptr if
  // `layout` does not fit `size`, the range is outside the file, or memory
  // runs out.
  static Ref<SharedBuffer> InFile(Ref<MemFile> file, size_t offset,
                                  size_t size, BufferLayout layout);
  // Thread-safe. Copies `size` bytes into a new sealed MemFile (InFile over
  // all of it). Returns nullptr with *error set on failure.
  static Ref<SharedBuffer> CopyToFile(const void* data, size_t size,
                                      BufferLayout layout, std::string* error);

  // Thread-safe. Zero-copy view of bytes [offset, offset + length) of
  // `base` read with `layout`. Requires offset + length <= base size;
  // nullptr if `layout` does not fit `length` or memory runs out.
  static Ref<SharedBuffer> View(const Ref<SharedBuffer>& base, size_t offset,
                                size_t length, BufferLayout layout);

  // Thread-safe. Zero-copy view of bytes [offset, offset + length) of `base`,
  // laid out as flat unsigned bytes. Requires offset + length <= base size.
  static Ref<SharedBuffer> Slice(const Ref<SharedBuffer>& base, size_t offset,
                                 size_t length);

  const uint8_t* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  const BufferLayout& layout() const noexcept { return layout_; }
  // The shape, with an empty layout shape expanded to {size / itemsize}.
  std::vector<int64_t> shape() const;
  // The root block this one views (itself if it owns its storage).
  const SharedBuffer* root() const noexcept {
    return base_ ? base_.get() : this;
  }

  // The sealed memfd the bytes live in (the root's), or nullptr; and where
  // in its data they start.
  const MemFile* file() const noexcept { return root()->file_.get(); }
  size_t file_offset() const noexcept {
    return static_cast<size_t>(data_ - root()->file_->data());
  }

  // Live buffers in the process (roots and slices), for leak tests.
  static int64_t LiveCountForTesting();

 private:
  SharedBuffer(const uint8_t* data, size_t size, BufferLayout layout,
               uint8_t* owned, Ref<SharedBuffer> base);
  ~SharedBuffer() override;

  const uint8_t* data_;
  size_t size_;
  BufferLayout layout_;
  uint8_t* owned_;         // storage freed with this object, or nullptr
  size_t capacity_ = 0;    // bytes allocated at owned_
  Ref<SharedBuffer> base_;  // for slices: the root block
  ReleaseFn release_ = nullptr;  // Borrow()ed storage: given back with this
  void* release_context_ = nullptr;
  Ref<MemFile> file_;  // InFile() storage, kept alive with this
};

}  // namespace xchannels

#endif  // XCHANNELS_SHARED_BUFFER_H_
