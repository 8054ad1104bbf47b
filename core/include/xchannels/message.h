// core/include/xchannels/message.h: the encoded, immutable form of one value
// tree (None, bool, int of any size, float, complex, str, bytes, tuples,
// lists, dicts, sets and frozensets nested in any mix, references to shared
// buffers and channels, and pickled values where a channel opted in): its
// grammar, the Message that holds one, its writer (MessageWriter) and its
// decoder (Decoder). The Item that a channel carries is item.h's; the form
// a value takes between processes is flat_form.h's (a payload inside it is
// this grammar unchanged).
//
// Wire format (little-endian, never persisted; it leaves a process only
// inside the flat form, read by the same xchannels version):
//   value   := tag payload
//   kNone | kFalse | kTrue             no payload
//   kInt64                             8 bytes, two's complement
//   kBigInt   varint n, n bytes        little-endian two's complement, n >= 9
//   kFloat                             8 bytes, IEEE-754 bit pattern
//   kComplex                           16 bytes: real, then imaginary part
//   kStr1/2/4 varint len, len*k bytes  code units of width k (1, 2 or 4):
//                                      every code point, lone surrogates too
//   kBytes    varint n, n bytes
//   kTuple | kList | kSet | kFrozenSet  varint n, n values
//   kDict     varint n, n pairs: key value (in the sender's order)
//   kPickled  varint n, n bytes        a pickle (the opt-in fallback): the
//                                      receiver unpickles it
//   kBufferRef | kBytesRef | kChannelRef  varint i: index into the ref table;
//             kBytesRef is a large bytes payload held by a SharedBuffer and is
//             decoded as bytes again.
//   varint    := LEB128, at most 9 bytes, value < 2**63
//
// Containers nest at most kMaxDepth deep (a value that contains itself
// reaches that limit); a payload is at most kMaxPayloadBytes.
//
// Invariants:
//   - A Message is one allocation: header, ref table, payload. It never
//     changes after MessageWriter::Finish, and owns one reference to each
//     object in its ref table, dropped by Message::Destroy.
//   - Decoder accepts any byte string without undefined behaviour: every
//     length, index, tag and ref kind is checked, and nesting is limited to
//     kMaxDepth. tests/fuzz/decoder_fuzz.cc relies on this.
//   - A Message holds no interpreter's object, so it may be destroyed on any
//     thread without a GIL.
#ifndef XCHANNELS_MESSAGE_H_
#define XCHANNELS_MESSAGE_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "xchannels/refcount.h"
#include "xchannels/shared_buffer.h"

namespace xchannels {

static_assert(std::endian::native == std::endian::little,
              "the message format assumes a little-endian machine");

// Containers nested deeper than this are refused by the encoder and the
// decoder.
inline constexpr int kMaxDepth = 1000;
// The encoder refuses a value whose encoding would be larger (large bytes
// and buffers travel by reference and do not count).
inline constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 32;

enum class Tag : uint8_t {
  kNone = 0,
  kFalse = 1,
  kTrue = 2,
  kInt64 = 3,
  kBigInt = 4,
  kFloat = 5,
  kStr1 = 6,
  kStr2 = 7,
  kStr4 = 8,
  kBytes = 9,
  kTuple = 10,
  kBufferRef = 11,
  kBytesRef = 12,
  kChannelRef = 13,
  kComplex = 14,
  kList = 15,
  kDict = 16,
  kSet = 17,
  kFrozenSet = 18,
  kPickled = 19,
};

enum class RefKind : uint8_t { kBuffer = 1, kChannel = 2 };

struct MessageRef {
  RefCounted* object;  // a SharedBuffer or a ChannelBase, by kind
  RefKind kind;
};

class Message {
 public:
  // Thread-safe (no shared state). Drops the ref table's references and
  // frees the one allocation. Accepts nullptr.
  static void Destroy(Message* m) noexcept;

  std::span<const uint8_t> payload() const noexcept {
    return {reinterpret_cast<const uint8_t*>(refs_begin() + nrefs_), size_};
  }
  std::span<const MessageRef> refs() const noexcept {
    return {refs_begin(), nrefs_};
  }

 private:
  friend class MessageWriter;  // the one way to make a Message
  Message() = default;
  MessageRef* refs_begin() const noexcept {
    return reinterpret_cast<MessageRef*>(
        const_cast<Message*>(this) + 1);
  }
  size_t size_ = 0;
  uint32_t nrefs_ = 0;
};
static_assert(sizeof(Message) % alignof(MessageRef) == 0);

struct MessageDeleter {
  void operator()(Message* m) const noexcept { Message::Destroy(m); }
};
using MessagePtr = std::unique_ptr<Message, MessageDeleter>;

// Writes a value tree of unknown size in one walk (the encoder of the
// bindings): into an inline buffer first, then a heap buffer that doubles,
// with the references in a growing table; Finish() copies the payload into
// one exactly-sized Message. One walk means the value is read once: code the
// walk runs (a Python __index__, a pickle) cannot make a second walk
// disagree with the first. Every write checks the room and the size limit
// (kMaxPayloadBytes) and returns false (or nullptr) when memory ran out or
// the limit would be passed (too_large() then says which); the writer is
// then spent. Not thread-safe; one writer per message.
class MessageWriter {
 public:
  MessageWriter() = default;
  ~MessageWriter();
  MessageWriter(const MessageWriter&) = delete;
  MessageWriter& operator=(const MessageWriter&) = delete;

  bool Scalar(Tag t) { return Byte(static_cast<uint8_t>(t)); }
  bool Int64(int64_t v) { return Fixed(Tag::kInt64, &v, 8); }
  bool Float(double v) { return Fixed(Tag::kFloat, &v, 8); }
  bool Complex(double re, double im) {
    double both[2] = {re, im};
    return Fixed(Tag::kComplex, both, 16);
  }
  // Each returns where the payload's bytes go, or nullptr.
  uint8_t* BigInt(size_t nbytes) { return Blob(Tag::kBigInt, nbytes, nbytes); }
  uint8_t* Str(int kind, size_t len) {
    Tag t = kind == 1 ? Tag::kStr1 : kind == 2 ? Tag::kStr2 : Tag::kStr4;
    if (len > (SIZE_MAX >> 3)) return Overflow();
    return Blob(t, len, len * static_cast<size_t>(kind));
  }
  uint8_t* Bytes(size_t nbytes) { return Blob(Tag::kBytes, nbytes, nbytes); }
  uint8_t* Pickled(size_t nbytes) { return Blob(Tag::kPickled, nbytes, nbytes); }
  // A container's header: t is kTuple, kList, kDict, kSet or kFrozenSet;
  // n values (n pairs for kDict) follow.
  bool Container(Tag t, size_t n) {
    return Byte(static_cast<uint8_t>(t)) && Varint(n);
  }
  // Takes over the reference `object` holds, even on failure.
  bool RefValue(Tag t, RefKind kind, Ref<RefCounted> object);

  // Bytes written so far.
  size_t size() const { return size_; }
  // True if a write failed because the payload would pass kMaxPayloadBytes
  // (else a failure is out of memory).
  bool too_large() const { return too_large_; }

  // The message (the writer is spent), or nullptr if memory ran out.
  MessagePtr Finish();

 private:
  static constexpr size_t kInline = 512;

  uint8_t* Room(size_t n) {
    if (n <= cap_ - size_) {
      uint8_t* at = data_ + size_;
      size_ += n;
      return at;
    }
    return Grow(n);
  }
  uint8_t* Grow(size_t n);  // out of line: the slow path
  uint8_t* Overflow() {
    too_large_ = true;
    return nullptr;
  }
  bool Byte(uint8_t b) {
    uint8_t* at = Room(1);
    if (at == nullptr) return false;
    *at = b;
    return true;
  }
  bool Fixed(Tag t, const void* v, size_t n) {
    uint8_t* at = Room(1 + n);
    if (at == nullptr) return false;
    *at = static_cast<uint8_t>(t);
    std::memcpy(at + 1, v, n);
    return true;
  }
  bool Varint(uint64_t v) {
    while (v >= 0x80) {
      if (!Byte(static_cast<uint8_t>(v | 0x80))) return false;
      v >>= 7;
    }
    return Byte(static_cast<uint8_t>(v));
  }
  uint8_t* Blob(Tag t, size_t count, size_t nbytes) {
    if (!Byte(static_cast<uint8_t>(t)) || !Varint(count)) return nullptr;
    return Room(nbytes);
  }

  uint8_t inline_[kInline];
  uint8_t* data_ = inline_;
  size_t size_ = 0;
  size_t cap_ = kInline;
  bool too_large_ = false;
  MessageRef* refs_ = nullptr;  // owned references, malloc'd
  uint32_t nrefs_ = 0;
  uint32_t refs_cap_ = 0;
};

enum class DecodeError : uint8_t {
  kOk = 0,
  kTruncated,    // a length or payload runs past the end
  kBadTag,       // an unknown tag byte
  kBadRef,       // ref index out of range, or of the wrong kind
  kTooDeep,      // tuples nested deeper than kMaxDepth
  kTrailing,     // bytes left over after the top-level value
  kBadValue,     // e.g. a big int encoded in fewer than 9 bytes
  kVisitor,      // the visitor reported a failure (e.g. out of memory)
};

std::string_view DecodeErrorName(DecodeError e);

// Decodes `payload` against `refs`, calling the visitor to build values.
// The visitor defines `using Value = ...;` (a handle, with a null state) and:
//   Value None(); Value Bool(bool); Value Int64(int64_t);
//   Value BigInt(const uint8_t* le_twos_complement, size_t n);
//   Value Float(double); Value Str(int kind, const uint8_t* data, size_t len);
//   Value Bytes(const uint8_t* data, size_t n);
//   Value Complex(double real, double imag);
//   Value Tuple(size_t n);              // an empty n-tuple to fill
//   bool SetItem(Value& tuple, size_t i, Value item);  // takes `item`
//   Value List(size_t n);               // an empty n-list to fill
//   bool SetListItem(Value& list, size_t i, Value item);  // takes `item`
//   Value Dict(size_t n);               // an empty dict for n pairs
//   bool SetDictItem(Value& dict, Value key, Value value);  // takes both
//   void BeginKey(); void EndKey();     // around the decoding of a dict key
//   Value Set(size_t n, bool frozen);   // an empty set (frozenset) to fill
//   bool AddSetItem(Value& set, Value item);  // takes `item`
//   Value Pickled(const uint8_t* data, size_t n);
//   Value Buffer(SharedBuffer*); Value BytesFromBuffer(SharedBuffer*);
//   Value Channel(RefCounted* channel_base);
//   void Discard(Value);                // drops a partly built value
//   static bool IsNull(const Value&);
template <class Visitor>
class Decoder {
 public:
  using Value = typename Visitor::Value;
  Decoder(std::span<const uint8_t> payload, std::span<const MessageRef> refs,
          Visitor& v)
      : p_(payload.data()), end_(payload.data() + payload.size()), refs_(refs),
        v_(v) {}

  // Decodes the whole payload as one value. On failure returns a null Value
  // and sets error().
  Value Run() {
    Value out = One(0);
    if (Visitor::IsNull(out)) return out;
    if (p_ != end_) {
      v_.Discard(std::move(out));
      error_ = DecodeError::kTrailing;
      return Value{};
    }
    return out;
  }
  DecodeError error() const { return error_; }

  // Where the visitor first failed (kVisitor), from the top-level value down:
  // one entry per container, the item's index (for a dict, the pair's index,
  // with kDictValue set when it was the pair's value). Empty at the top level
  // or for other errors.
  static constexpr uint32_t kDictKey = 1u << 30;
  static constexpr uint32_t kDictValue = 1u << 31;
  std::span<const uint32_t> failure_path() const {
    return {path_, fail_depth_ < 0 ? size_t{0} : static_cast<size_t>(fail_depth_)};
  }

 private:
  Value Fail(DecodeError e) {
    error_ = e;
    return Value{};
  }
  bool ReadVarint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 63; shift += 7) {
      if (p_ == end_) return false;
      uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (v >> 63) return false;
        *out = v;
        return true;
      }
    }
    return false;
  }
  bool Need(uint64_t n) const {
    return n <= static_cast<uint64_t>(end_ - p_);
  }
  Value Check(Value v, int depth) {
    if (Visitor::IsNull(v)) [[unlikely]] {
      error_ = DecodeError::kVisitor;
      if (fail_depth_ < 0) fail_depth_ = depth;
    }
    return v;
  }
  const MessageRef* RefAt(RefKind kind) {
    uint64_t i;
    if (!ReadVarint(&i) || i >= refs_.size() || refs_[i].kind != kind ||
        refs_[i].object == nullptr) {
      return nullptr;
    }
    return &refs_[i];
  }

  Value One(int depth) {
    if (p_ == end_) return Fail(DecodeError::kTruncated);
    Tag tag = static_cast<Tag>(*p_++);
    switch (tag) {
      case Tag::kNone:
        return Check(v_.None(), depth);
      case Tag::kFalse:
      case Tag::kTrue:
        return Check(v_.Bool(tag == Tag::kTrue), depth);
      case Tag::kInt64: {
        if (!Need(8)) return Fail(DecodeError::kTruncated);
        int64_t x;
        std::memcpy(&x, p_, 8);
        p_ += 8;
        return Check(v_.Int64(x), depth);
      }
      case Tag::kFloat: {
        if (!Need(8)) return Fail(DecodeError::kTruncated);
        double x;
        std::memcpy(&x, p_, 8);
        p_ += 8;
        return Check(v_.Float(x), depth);
      }
      case Tag::kBigInt:
      case Tag::kBytes: {
        uint64_t n;
        if (!ReadVarint(&n) || !Need(n)) return Fail(DecodeError::kTruncated);
        const uint8_t* at = p_;
        p_ += n;
        if (tag == Tag::kBigInt) {
          if (n < 9) return Fail(DecodeError::kBadValue);
          return Check(v_.BigInt(at, n), depth);
        }
        return Check(v_.Bytes(at, n), depth);
      }
      case Tag::kStr1:
      case Tag::kStr2:
      case Tag::kStr4: {
        int kind = tag == Tag::kStr1 ? 1 : tag == Tag::kStr2 ? 2 : 4;
        uint64_t len;
        if (!ReadVarint(&len) || len > (UINT64_MAX >> 3) ||
            !Need(len * static_cast<uint64_t>(kind))) {
          return Fail(DecodeError::kTruncated);
        }
        const uint8_t* at = p_;
        p_ += len * static_cast<uint64_t>(kind);
        return Check(v_.Str(kind, at, len), depth);
      }
      case Tag::kComplex: {
        if (!Need(16)) return Fail(DecodeError::kTruncated);
        double re, im;
        std::memcpy(&re, p_, 8);
        std::memcpy(&im, p_ + 8, 8);
        p_ += 16;
        return Check(v_.Complex(re, im), depth);
      }
      case Tag::kPickled: {
        uint64_t n;
        if (!ReadVarint(&n) || !Need(n)) return Fail(DecodeError::kTruncated);
        const uint8_t* at = p_;
        p_ += n;
        return Check(v_.Pickled(at, n), depth);
      }
      case Tag::kTuple:
      case Tag::kList:
      case Tag::kSet:
      case Tag::kFrozenSet:
      case Tag::kDict: {
        uint64_t n;
        if (!ReadVarint(&n)) return Fail(DecodeError::kTruncated);
        // Every value takes at least one byte (a dict's pair two): refuse
        // impossible counts before allocating.
        const uint64_t per = tag == Tag::kDict ? 2 : 1;
        if (n > (UINT64_MAX >> 1) || !Need(n * per)) {
          return Fail(DecodeError::kTruncated);
        }
        if (depth >= kMaxDepth) return Fail(DecodeError::kTooDeep);
        return Container(tag, static_cast<size_t>(n), depth);
      }
      case Tag::kBufferRef:
      case Tag::kBytesRef: {
        const MessageRef* r = RefAt(RefKind::kBuffer);
        if (r == nullptr) return Fail(DecodeError::kBadRef);
        auto* buf = static_cast<SharedBuffer*>(r->object);
        return Check(tag == Tag::kBufferRef ? v_.Buffer(buf)
                                            : v_.BytesFromBuffer(buf),
                     depth);
      }
      case Tag::kChannelRef: {
        const MessageRef* r = RefAt(RefKind::kChannel);
        if (r == nullptr) return Fail(DecodeError::kBadRef);
        return Check(v_.Channel(r->object), depth);
      }
    }
    return Fail(DecodeError::kBadTag);
  }

  // The n items of a container (tag: kTuple, kList, kSet, kFrozenSet or
  // kDict), each decoded and handed to the visitor in order.
  Value Container(Tag tag, size_t n, int depth) {
    Value c;
    switch (tag) {
      case Tag::kTuple: c = v_.Tuple(n); break;
      case Tag::kList: c = v_.List(n); break;
      case Tag::kDict: c = v_.Dict(n); break;
      default: c = v_.Set(n, tag == Tag::kFrozenSet); break;
    }
    c = Check(std::move(c), depth);
    if (Visitor::IsNull(c)) return c;
    const uint32_t key_bit = tag == Tag::kDict ? kDictKey : 0;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t at = static_cast<uint32_t>(std::min<size_t>(i, kDictKey - 1));
      path_[depth] = at | key_bit;
      if (tag == Tag::kDict) v_.BeginKey();
      Value item = One(depth + 1);
      if (tag == Tag::kDict) v_.EndKey();
      bool ok = !Visitor::IsNull(item);
      if (ok && tag == Tag::kDict) {
        path_[depth] = at | kDictValue;
        Value value = One(depth + 1);
        if (Visitor::IsNull(value)) {
          v_.Discard(std::move(item));
          ok = false;
        } else {
          ok = v_.SetDictItem(c, std::move(item), std::move(value));
        }
      } else if (ok) {
        switch (tag) {
          case Tag::kTuple: ok = v_.SetItem(c, i, std::move(item)); break;
          case Tag::kList: ok = v_.SetListItem(c, i, std::move(item)); break;
          default: ok = v_.AddSetItem(c, std::move(item)); break;
        }
      }
      if (!ok) {
        if (error_ == DecodeError::kOk) error_ = DecodeError::kVisitor;
        if (fail_depth_ < 0) fail_depth_ = depth + 1;
        v_.Discard(std::move(c));
        return Value{};
      }
    }
    return c;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  std::span<const MessageRef> refs_;
  Visitor& v_;
  DecodeError error_ = DecodeError::kOk;
  int fail_depth_ = -1;  // depth of the value whose visitor call failed first
  uint32_t path_[kMaxDepth];
};

}  // namespace xchannels

#endif  // XCHANNELS_MESSAGE_H_
