// core/include/xchannels/item.h: what one channel slot holds: an immediate
// scalar (None, bool, 64-bit int, float) or an owned reference to a Message,
// a SharedBuffer or a channel. 16 bytes, move-only.
//
// Invariants:
//   - An Item owns what it points at: a kMessage item owns the Message, a
//     kBuffer / kChannel item owns one reference. Moving leaves kEmpty.
//   - Destroying an Item needs no interpreter and no lock.
#ifndef XCHANNELS_ITEM_H_
#define XCHANNELS_ITEM_H_

#include <cstdint>
#include <cstring>
#include <utility>

#include "xchannels/message.h"
#include "xchannels/refcount.h"

namespace xchannels {

class Item {
 public:
  enum class Kind : uint8_t {
    kEmpty = 0,
    kNone,
    kFalse,
    kTrue,
    kInt,
    kFloat,
    kMessage,  // payload: Message*
    kBuffer,   // payload: SharedBuffer* (one reference)
    kChannel,  // payload: ChannelBase* (one reference)
  };

  Item() noexcept = default;
  Item(Item&& o) noexcept : bits_(o.bits_), kind_(o.kind_) {
    o.kind_ = Kind::kEmpty;
  }
  Item& operator=(Item&& o) noexcept {
    if (this != &o) {
      Reset();
      bits_ = o.bits_;
      kind_ = o.kind_;
      o.kind_ = Kind::kEmpty;
    }
    return *this;
  }
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;
  ~Item() { Reset(); }

  static Item None() noexcept { return Item(Kind::kNone, 0); }
  static Item Bool(bool b) noexcept {
    return Item(b ? Kind::kTrue : Kind::kFalse, 0);
  }
  static Item Int(int64_t v) noexcept {
    return Item(Kind::kInt, static_cast<uint64_t>(v));
  }
  static Item Float(double v) noexcept {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    return Item(Kind::kFloat, bits);
  }
  static Item FromMessage(MessagePtr m) noexcept {
    return Item(Kind::kMessage, reinterpret_cast<uintptr_t>(m.release()));
  }
  // Takes over the reference `r` holds. `kind` is kBuffer or kChannel.
  static Item FromRef(Kind kind, Ref<RefCounted> r) noexcept {
    return Item(kind, reinterpret_cast<uintptr_t>(r.Release()));
  }

  Kind kind() const noexcept { return kind_; }
  int64_t AsInt() const noexcept { return static_cast<int64_t>(bits_); }
  double AsFloat() const noexcept {
    double v;
    std::memcpy(&v, &bits_, 8);
    return v;
  }
  const Message* AsMessage() const noexcept {
    return reinterpret_cast<const Message*>(bits_);
  }
  // For kBuffer and kChannel: the object, still owned by the item.
  RefCounted* AsRef() const noexcept {
    return reinterpret_cast<RefCounted*>(bits_);
  }

  void Reset() noexcept {
    if (kind_ == Kind::kMessage) {
      Message::Destroy(reinterpret_cast<Message*>(bits_));
    } else if (kind_ == Kind::kBuffer || kind_ == Kind::kChannel) {
      reinterpret_cast<RefCounted*>(bits_)->Unref();
    }
    kind_ = Kind::kEmpty;
  }

 private:
  Item(Kind k, uint64_t bits) noexcept : bits_(bits), kind_(k) {}
  uint64_t bits_ = 0;
  Kind kind_ = Kind::kEmpty;
};
static_assert(sizeof(Item) == 16);

}  // namespace xchannels

#endif  // XCHANNELS_ITEM_H_
