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
//   kOutOfLine               fdref          the record is the data of a
//                            memfd (mem_file.h, MemFile::Publish) that its
//                            sender reuses once the record is taken: a
//                            record of fdref.size bytes, not kOutOfLine,
//                            which the receiver copies out before the
//                            record leaves the ring (and opens the memfds
//                            its buffers name). Only in a ProcessChannel's
//                            ring.
//   buffer  := varint flen (<= 255), flen format bytes, varint itemsize,
//              varint ndim (<= 64), ndim varints (the extents),
//              varint nbytes, where:u8, then
//                where 0: varint npad (< 64), npad bytes, nbytes bytes
//                         (the padding aligns the bytes to 64 from the
//                         record's start in an out-of-line record)
//                where 1: fdref, varint offset: the bytes are
//                         [offset, offset + nbytes) of that memfd's data
//   fdref   := u32 pid, u32 fd, u64 id, u64 size   a sealed memfd (mem_file.h)
//                         that process `pid` holds as descriptor `fd`
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
//   - Unflattening copies every inline buffer out of a ring record; only the
//     payload stays a view of it. The buffers of an out-of-line record are
//     views of the copy the receiver made of it (RecordBuffer::body); the
//     buffers sent by descriptor are views of their sealed memfd (a
//     SharedBuffer over it, SharedBuffer::InFile), never copied.
//   - The descriptors a record names are opened (and an out-of-line record
//     copied) by the receiver (ScanFdRefs lists them, in order) before the
//     record leaves the ring, while the sender still holds them; the sender
//     holds each (FlattenOptions::pass, or its reused file) until the record
//     has been taken.
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
#include <new>
#include <span>
#include <vector>

#include "xchannels/item.h"
#include "xchannels/mem_file.h"
#include "xchannels/message.h"
#include "xchannels/refcount.h"
#include "xchannels/shared_buffer.h"

namespace xchannels {

// A byte buffer with 2 KiB inline, so a small record costs no
// allocation. Grows on the heap (uninitialised) beyond that. Two other
// modes serve the out-of-line records (process_channel.cc): a counting
// buffer only counts what is written to it (data() must not be used), and
// a file one writes into the data of an unsealed MemFile and cannot grow:
// large pieces with pwrite (no page faults: a fresh page costs more to
// fault in than to fill), the rest through its mapping.
class RecordBuffer {
 public:
  RecordBuffer() = default;
  RecordBuffer(const RecordBuffer&) = delete;
  RecordBuffer& operator=(const RecordBuffer&) = delete;
  struct Counting {};
  explicit RecordBuffer(Counting) : counting_(true) {}
  RecordBuffer(MemFile* file, size_t capacity)
      : external_(file->writable()), external_cap_(capacity), file_(file) {}

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  uint8_t* data() noexcept {
    return external_ ? external_ : heap_ ? heap_.get() : inline_;
  }
  const uint8_t* data() const noexcept {
    return external_ ? external_ : heap_ ? heap_.get() : inline_;
  }
  std::span<const uint8_t> span() const noexcept { return {data(), size_}; }
  operator std::span<const uint8_t>() const noexcept { return span(); }
  void clear() noexcept {
    size_ = 0;
    files.clear();
    body = nullptr;
  }
  // Keeps the first min(size(), n) bytes; the rest is uninitialised.
  // Throws std::bad_alloc. A file buffer cannot grow: past its end it
  // counts on and writes nothing (write_failed() says so).
  void resize(size_t n) {
    if (n > capacity() && !counting_) {
      if (file_ != nullptr) {
        write_failed_ = true;
      } else {
        Grow(n);
      }
    }
    size_ = n;
  }
  void push_back(uint8_t b) {
    resize(size_ + 1);
    if (!counting_ && !write_failed_) data()[size_ - 1] = b;
  }
  void append(const void* p, size_t n) {
    const size_t at = size_;
    resize(size_ + n);
    if (n == 0 || counting_ || write_failed_) return;
    if (file_ != nullptr && n >= kWriteMin) {
      if (!file_->WriteAt(at, p, n)) write_failed_ = true;
      return;
    }
    std::memcpy(data() + at, p, n);
  }
  void append_zeros(size_t n) {
    const size_t at = size_;
    resize(size_ + n);
    if (n > 0 && !counting_ && !write_failed_) std::memset(data() + at, 0, n);
  }

  // Received records: the memfds the record's buffers name (fdrefs), opened
  // by ProcessChannel::Recv while the record was still queued, in
  // ScanFdRefs' order; and, for a kOutOfLine record, the copy of the record
  // it names.
  std::vector<Ref<MemFile>> files;
  Ref<SharedBuffer> body;
  // A file buffer: whether a write failed (the file is then unusable).
  bool write_failed() const noexcept { return write_failed_; }

 private:
  static constexpr size_t kWriteMin = 64 * 1024;
  static constexpr size_t kInline = 2048;
  size_t capacity() const noexcept {
    return external_ ? external_cap_ : heap_ ? heap_cap_ : kInline;
  }
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
  bool counting_ = false;
  uint8_t* external_ = nullptr;
  size_t external_cap_ = 0;
  MemFile* file_ = nullptr;
  bool write_failed_ = false;
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
  kOutOfLine = 8,
};

// A sealed memfd named in a record: held by process `pid` as descriptor
// `fd`, with `size` data bytes and a random `id` (mem_file.h's header).
struct FdRef {
  uint32_t pid;
  uint32_t fd;
  uint64_t id;
  uint64_t size;
  // Not on the wire (ScanFdRefs sets it): the memfd holds a whole record,
  // to be read through, rather than a buffer the receiver may only view.
  bool whole_record = false;
};
inline constexpr size_t kFdRefBytes = 24;
// The size of a kOutOfLine record.
inline constexpr size_t kOutOfLineRecordBytes = 1 + kFdRefBytes;

// How FlattenItem writes buffers.
struct FlattenOptions {
  // Pad every inline buffer's bytes to 64 from the record's start (a record
  // written at the start of a memfd's data, whose buffers are then aligned
  // views).
  bool align = false;
  // A buffer that lives in a MemFile goes by descriptor (where 1): a
  // duplicate of its descriptor is added to *pass, for the sender to hold
  // until the record is taken (with no `pass`, to a counting buffer: the
  // size only). Otherwise, or when no descriptor is left, inline.
  bool by_fd = false;
  OwnedFds* pass = nullptr;
};

// The data bytes a kOutOfLine record holds out of line; 0 for any other
// record (what a ProcessChannel counts against its capacity beyond the
// record itself).
uint64_t OutOfLineBytes(std::span<const uint8_t> record);

// Appends the kOutOfLine record naming `ref` (a sealed memfd whose data is
// a record) to *out.
void FlattenOutOfLine(const FdRef& ref, RecordBuffer* out);

// Appends the flat form of `item` to *out, except a message's payload,
// which *payload then views (valid while `item` lives): the record is *out
// followed by *payload. Returns false (out unchanged) if the item holds a
// channel. Throws std::bad_alloc.
bool FlattenItem(const Item& item, RecordBuffer* out,
                 std::span<const uint8_t>* payload,
                 const FlattenOptions& options = {});
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
  Ref<SharedBuffer> body;  // kOutOfLine: the record `payload` views
};
// Lists the descriptors `record` names (its fdrefs, in order: the one of a
// kOutOfLine record, or those of its buffers; those of an out-of-line
// record's buffers are in its copy, scanned in turn). Returns false on a
// malformed record; *out is then unspecified.
bool ScanFdRefs(std::span<const uint8_t> record, std::vector<FdRef>* out);
// Parses `record`; every length is checked. `files` are the memfds its
// buffers' fdrefs name (for a kOutOfLine record, its copy's buffers'),
// opened and checked (MemFile::OpenPeer), in ScanFdRefs' order; `body`,
// for a kOutOfLine record, the copy of the record it names. Returns false on a malformed record (or when memory runs
// out: *oom is then set).
bool UnflattenItem(std::span<const uint8_t> record, FlatItem* out, bool* oom,
                   std::span<const Ref<MemFile>> files = {},
                   const Ref<SharedBuffer>& body = nullptr);

}  // namespace xchannels

#endif  // XCHANNELS_FLAT_FORM_H_
