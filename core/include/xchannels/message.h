// core/include/xchannels/message.h: the encoded, immutable form of one value
// tree (None, bool, int of any size, float, str, bytes, nested tuples, and
// references to shared buffers and channels), and the Item that a channel
// carries.
//
// Wire format (in-process only, little-endian, never persisted):
//   value   := tag payload
//   kNone | kFalse | kTrue             no payload
//   kInt64                             8 bytes, two's complement
//   kBigInt   varint n, n bytes        little-endian two's complement, n >= 9
//   kFloat                             8 bytes, IEEE-754 bit pattern
//   kStr1/2/4 varint len, len*k bytes  code units of width k (1, 2 or 4):
//                                      every code point, lone surrogates too
//   kBytes    varint n, n bytes
//   kTuple    varint n, n values
//   kBufferRef | kBytesRef | kChannelRef  varint i: index into the ref table;
//             kBytesRef is a large bytes payload held by a SharedBuffer and is
//             decoded as bytes again.
//   varint    := LEB128, at most 10 bytes, value < 2**63
//
// Invariants:
//   - A Message is one allocation: header, ref table, payload. It never
//     changes after MessageBuilder::Finish, and owns one reference to each
//     object in its ref table, dropped by Message::Destroy.
//   - Decode() accepts any byte string without undefined behaviour: every
//     length, index, tag and ref kind is checked, and nesting is limited to
//     kMaxDepth. The fuzz target relies on this.
//   - A Message holds no interpreter's object, so it may be destroyed on any
//     thread without a GIL.
#ifndef XCHANNELS_MESSAGE_H_
#define XCHANNELS_MESSAGE_H_

#include <bit>
#include <cassert>
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

// Tuples nested deeper than this are refused by the encoder and the decoder.
inline constexpr int kMaxDepth = 1000;

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
  friend class MessageBuilder;
  Message() = default;
  MessageRef* refs_begin() const noexcept {
    return reinterpret_cast<MessageRef*>(
        const_cast<Message*>(this) + 1);
  }
  size_t size_ = 0;
  uint32_t nrefs_ = 0;
  uint32_t refs_written_ = 0;
};
static_assert(sizeof(Message) % alignof(MessageRef) == 0);

struct MessageDeleter {
  void operator()(Message* m) const noexcept { Message::Destroy(m); }
};
using MessagePtr = std::unique_ptr<Message, MessageDeleter>;

// Counts the bytes and references a value tree needs (pass 1 of encoding).
class MessageSizer {
 public:
  void Scalar(Tag) { bytes_ += 1; }
  void Int64() { bytes_ += 9; }
  void Float() { bytes_ += 9; }
  void Blob(size_t nbytes) { bytes_ += 1 + VarintSize(nbytes) + nbytes; }
  void Str(int kind, size_t len) {
    bytes_ += 1 + VarintSize(len) + static_cast<size_t>(kind) * len;
  }
  void Tuple(size_t n) { bytes_ += 1 + VarintSize(n); }
  void RefValue() {
    bytes_ += 1 + VarintSize(refs_);
    refs_ += 1;
  }
  size_t bytes() const { return bytes_; }
  uint32_t refs() const { return refs_; }
  static size_t VarintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }

 private:
  size_t bytes_ = 0;
  uint32_t refs_ = 0;
};

// Writes a value tree into one exactly-sized Message (pass 2 of encoding).
// Not thread-safe; one builder per message. Calls must add up to the sizes
// given to the constructor; Finish() checks that.
class MessageBuilder {
 public:
  // Allocates; returns with ok() false if memory ran out.
  MessageBuilder(size_t bytes, uint32_t refs);
  ~MessageBuilder() { Message::Destroy(msg_); }
  MessageBuilder(const MessageBuilder&) = delete;
  MessageBuilder& operator=(const MessageBuilder&) = delete;

  bool ok() const { return msg_ != nullptr; }
  void Scalar(Tag t) { Byte(static_cast<uint8_t>(t)); }
  void Int64(int64_t v) {
    Byte(static_cast<uint8_t>(Tag::kInt64));
    Raw(&v, 8);
  }
  void Float(double v) {
    Byte(static_cast<uint8_t>(Tag::kFloat));
    Raw(&v, 8);
  }
  // Returns where the n bytes of a big int's two's complement go.
  uint8_t* BigInt(size_t nbytes) { return Blob(Tag::kBigInt, nbytes, nbytes); }
  uint8_t* Str(int kind, size_t len) {
    Tag t = kind == 1 ? Tag::kStr1 : kind == 2 ? Tag::kStr2 : Tag::kStr4;
    return Blob(t, len, len * static_cast<size_t>(kind));
  }
  uint8_t* Bytes(size_t nbytes) { return Blob(Tag::kBytes, nbytes, nbytes); }
  void Tuple(size_t n) {
    Byte(static_cast<uint8_t>(Tag::kTuple));
    Varint(n);
  }
  // Takes over the reference `object` holds (the builder owns it from here,
  // even if the message is never finished).
  void RefValue(Tag t, RefKind kind, Ref<RefCounted> object);

  // The finished message, or nullptr if the writes did not match the sizes.
  MessagePtr Finish();

  // A message with no references whose payload is a copy of `payload` (an
  // encoding already written elsewhere, e.g. by the single-pass encoder into
  // a stack buffer). nullptr if memory ran out.
  static MessagePtr CopyOf(std::span<const uint8_t> payload);

 private:
  void Byte(uint8_t b) {
    assert(cursor_ < end_ && "MessageBuilder: writes exceed the sized bytes");
    *cursor_++ = b;
  }
  void Raw(const void* p, size_t n) {
    assert(n <= static_cast<size_t>(end_ - cursor_));
    std::memcpy(cursor_, p, n);
    cursor_ += n;
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      Byte(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    Byte(static_cast<uint8_t>(v));
  }
  uint8_t* Blob(Tag t, size_t count, size_t nbytes) {
    Byte(static_cast<uint8_t>(t));
    Varint(count);
    assert(nbytes <= static_cast<size_t>(end_ - cursor_));
    uint8_t* at = cursor_;
    cursor_ += nbytes;
    return at;
  }

  Message* msg_ = nullptr;
  uint8_t* cursor_ = nullptr;
  uint8_t* end_ = nullptr;
};

// Writes the payload of a message without references into a caller's buffer
// (pass-less encoding: the single-pass encoder fills a stack buffer with it
// and copies the result into a message with MessageBuilder::CopyOf). Every
// call checks the room left and returns false (or nullptr) instead of
// writing past the end; the buffer's contents are then unspecified and the
// caller falls back to MessageSizer + MessageBuilder. Not thread-safe.
class BoundedWriter {
 public:
  BoundedWriter(uint8_t* begin, size_t capacity)
      : begin_(begin), cursor_(begin), end_(begin + capacity) {}

  bool Scalar(Tag t) { return Byte(static_cast<uint8_t>(t)); }
  bool Int64(int64_t v) { return Fixed(Tag::kInt64, &v); }
  bool Float(double v) { return Fixed(Tag::kFloat, &v); }
  uint8_t* Str(int kind, size_t len) {
    Tag t = kind == 1 ? Tag::kStr1 : kind == 2 ? Tag::kStr2 : Tag::kStr4;
    if (len > (SIZE_MAX >> 3)) return nullptr;
    return Blob(t, len, len * static_cast<size_t>(kind));
  }
  uint8_t* Bytes(size_t nbytes) { return Blob(Tag::kBytes, nbytes, nbytes); }
  bool Tuple(size_t n) {
    return Byte(static_cast<uint8_t>(Tag::kTuple)) && Varint(n);
  }
  std::span<const uint8_t> written() const {
    return {begin_, static_cast<size_t>(cursor_ - begin_)};
  }

 private:
  size_t room() const { return static_cast<size_t>(end_ - cursor_); }
  bool Byte(uint8_t b) {
    if (cursor_ == end_) return false;
    *cursor_++ = b;
    return true;
  }
  template <class T>
  bool Fixed(Tag t, const T* v) {
    if (room() < 1 + sizeof(T)) return false;
    *cursor_++ = static_cast<uint8_t>(t);
    std::memcpy(cursor_, v, sizeof(T));
    cursor_ += sizeof(T);
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
    if (!Byte(static_cast<uint8_t>(t)) || !Varint(count) || room() < nbytes) {
      return nullptr;
    }
    uint8_t* at = cursor_;
    cursor_ += nbytes;
    return at;
  }

  uint8_t* begin_;
  uint8_t* cursor_;
  uint8_t* end_;
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
//   Value Tuple(size_t n);              // an empty n-tuple to fill
//   bool SetItem(Value& tuple, size_t i, Value item);  // takes `item`
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
  Value Check(Value v) {
    if (Visitor::IsNull(v)) error_ = DecodeError::kVisitor;
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
        return Check(v_.None());
      case Tag::kFalse:
      case Tag::kTrue:
        return Check(v_.Bool(tag == Tag::kTrue));
      case Tag::kInt64: {
        if (!Need(8)) return Fail(DecodeError::kTruncated);
        int64_t x;
        std::memcpy(&x, p_, 8);
        p_ += 8;
        return Check(v_.Int64(x));
      }
      case Tag::kFloat: {
        if (!Need(8)) return Fail(DecodeError::kTruncated);
        double x;
        std::memcpy(&x, p_, 8);
        p_ += 8;
        return Check(v_.Float(x));
      }
      case Tag::kBigInt:
      case Tag::kBytes: {
        uint64_t n;
        if (!ReadVarint(&n) || !Need(n)) return Fail(DecodeError::kTruncated);
        const uint8_t* at = p_;
        p_ += n;
        if (tag == Tag::kBigInt) {
          if (n < 9) return Fail(DecodeError::kBadValue);
          return Check(v_.BigInt(at, n));
        }
        return Check(v_.Bytes(at, n));
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
        return Check(v_.Str(kind, at, len));
      }
      case Tag::kTuple: {
        uint64_t n;
        if (!ReadVarint(&n)) return Fail(DecodeError::kTruncated);
        // Every item takes at least one byte: refuse impossible counts
        // before allocating.
        if (!Need(n)) return Fail(DecodeError::kTruncated);
        if (depth >= kMaxDepth) return Fail(DecodeError::kTooDeep);
        Value t = Check(v_.Tuple(n));
        if (Visitor::IsNull(t)) return t;
        for (uint64_t i = 0; i < n; ++i) {
          Value item = One(depth + 1);
          if (Visitor::IsNull(item) || !v_.SetItem(t, i, std::move(item))) {
            if (error_ == DecodeError::kOk) error_ = DecodeError::kVisitor;
            v_.Discard(std::move(t));
            return Value{};
          }
        }
        return t;
      }
      case Tag::kBufferRef:
      case Tag::kBytesRef: {
        const MessageRef* r = RefAt(RefKind::kBuffer);
        if (r == nullptr) return Fail(DecodeError::kBadRef);
        auto* buf = static_cast<SharedBuffer*>(r->object);
        return Check(tag == Tag::kBufferRef ? v_.Buffer(buf)
                                            : v_.BytesFromBuffer(buf));
      }
      case Tag::kChannelRef: {
        const MessageRef* r = RefAt(RefKind::kChannel);
        if (r == nullptr) return Fail(DecodeError::kBadRef);
        return Check(v_.Channel(r->object));
      }
    }
    return Fail(DecodeError::kBadTag);
  }

  const uint8_t* p_;
  const uint8_t* end_;
  std::span<const MessageRef> refs_;
  Visitor& v_;
  DecodeError error_ = DecodeError::kOk;
};

}  // namespace xchannels

#endif  // XCHANNELS_MESSAGE_H_
