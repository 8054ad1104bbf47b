// core/include/xchannels/flat_form.h: the flat form of an Item, the bytes one
// record of a ProcessChannel holds: what an Item says, with every pointer
// replaced by the bytes it points at, so that another process can read it.
//
// Grammar (little-endian, read only by the same xchannels version: a change
// here is a change of ProcessChannel's layout version, kVersion in
// core/src/process_channel.cc):
//   record  := kind:u8 body                 kind is a FlatKind
//   kNone | kFalse | kTrue   no body
//   kInt | kFloat            8 bytes: the int64, or the double's bit pattern
//   kBuffer                  buffer         a lone SharedBuffer
//   kMessage                 varint nrefs, nrefs buffers, payload
//                            payload: the rest of the record, the message's
//                            wire form (message.h) unchanged; its ref table
//                            is the nrefs buffers, in order
//   buffer  := varint flen (<= 255), flen format bytes, varint itemsize,
//              varint ndim (<= 64), ndim varints (the extents),
//              varint nbytes, nbytes bytes
//   varint  := LEB128, at most 10 bytes, value < 2**63
//
// Invariants:
//   - Only buffers leave a process: a message's refs must all be buffers
//     (kBufferRef / kBytesRef); an Item that holds a channel, or a message
//     that refers to one, has no flat form (FlattenItem says false).
//   - A record is untrusted input (another process wrote it into shared
//     memory, and may be buggy or hostile): UnflattenItem reads any byte
//     string without undefined behaviour. Every length and count is checked
//     against the bytes left before it is used, a buffer's layout must fit
//     its bytes and its format its item size (CPython's memoryview trusts a
//     format), and nothing is allocated on a count the record cannot hold.
//     A message's payload is checked later, by message.h's Decoder.
//     tests/fuzz/flat_form_fuzz.cc and segment_fuzz.cc rely on this.
//   - Unflattening copies every buffer out of the record; only the payload
//     stays a view of it.
//
// To add a record kind: a FlatKind value (never reuse one), its writer in
// FlattenItem, its reader in UnflattenItem (a case that checks every read),
// what it yields in FlatItem; tests in tests/cpp/flat_form_test.cc.
//
// Thread safety: no shared state; a RecordBuffer or FlatItem is used by one
// thread at a time.
#ifndef XCHANNELS_FLAT_FORM_H_
#define XCHANNELS_FLAT_FORM_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "xchannels/item.h"
#include "xchannels/message.h"
#include "xchannels/refcount.h"
#include "xchannels/shared_buffer.h"

namespace xchannels {

// A byte buffer with 2 KiB inline, so a small record costs no
// allocation. Grows on the heap (uninitialised) beyond that.
class RecordBuffer {
 public:
  RecordBuffer() = default;
  RecordBuffer(const RecordBuffer&) = delete;
  RecordBuffer& operator=(const RecordBuffer&) = delete;

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  uint8_t* data() noexcept { return heap_ ? heap_.get() : inline_; }
  const uint8_t* data() const noexcept { return heap_ ? heap_.get() : inline_; }
  std::span<const uint8_t> span() const noexcept { return {data(), size_}; }
  operator std::span<const uint8_t>() const noexcept { return span(); }
  void clear() noexcept { size_ = 0; }
  // Keeps the first min(size(), n) bytes; the rest is uninitialised.
  // Throws std::bad_alloc.
  void resize(size_t n) {
    if (n > capacity()) Grow(n);
    size_ = n;
  }
  void push_back(uint8_t b) {
    resize(size_ + 1);
    data()[size_ - 1] = b;
  }
  void append(const void* p, size_t n) {
    const size_t at = size_;
    resize(size_ + n);
    if (n > 0) std::memcpy(data() + at, p, n);
  }

 private:
  static constexpr size_t kInline = 2048;
  size_t capacity() const noexcept { return heap_ ? heap_cap_ : kInline; }
  void Grow(size_t n) {
    const size_t cap = std::max(n, 2 * capacity());
    std::unique_ptr<uint8_t[]> bigger(new uint8_t[cap]);
    std::memcpy(bigger.get(), data(), size_);
    heap_ = std::move(bigger);
    heap_cap_ = cap;
  }
  uint8_t inline_[kInline];
  std::unique_ptr<uint8_t[]> heap_;
  size_t heap_cap_ = 0;
  size_t size_ = 0;
};

// The first byte of a record. The numbers are the wire's, fixed; they
// happen to be Item::Kind's for the kinds that have a flat form.
enum class FlatKind : uint8_t {
  kNone = 1,
  kFalse = 2,
  kTrue = 3,
  kInt = 4,
  kFloat = 5,
  kMessage = 6,
  kBuffer = 7,
};

// Appends the flat form of `item` to *out, except a message's payload,
// which *payload then views (valid while `item` lives): the record is *out
// followed by *payload. Returns false (out unchanged) if the item holds a
// channel. Throws std::bad_alloc.
bool FlattenItem(const Item& item, RecordBuffer* out,
                 std::span<const uint8_t>* payload);
// The same, whole, into *out.
bool FlattenItem(const Item& item, RecordBuffer* out);

// The parsed flat form: scalars are returned as an Item; a buffer or message
// comes with its buffers (copied out of the record) and, for a message, the
// payload (a view into the record) and the ref table to decode it with.
struct FlatItem {
  Item scalar;                             // kNone .. kFloat, or kEmpty
  std::vector<Ref<SharedBuffer>> buffers;  // owned
  std::vector<MessageRef> refs;            // views of `buffers`
  bool is_buffer = false;                  // a lone SharedBuffer (buffers[0])
  std::span<const uint8_t> payload;        // kMessage: the wire payload
};
// Parses `record`; every length is checked. Returns false on a malformed
// record (or when memory runs out: *oom is then set).
bool UnflattenItem(std::span<const uint8_t> record, FlatItem* out, bool* oom);

}  // namespace xchannels

#endif  // XCHANNELS_FLAT_FORM_H_
