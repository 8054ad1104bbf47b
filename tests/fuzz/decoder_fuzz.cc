// tests/fuzz/decoder_fuzz.cc: libFuzzer target over the message decoder.
//
// The input's first byte picks how many references the fake ref table has
// (and of which kinds); the rest is the payload. Decode must never crash, read
// out of bounds, leak or recurse without limit, whatever the bytes. Decoded
// trees are walked and freed. Build: cmake -DXCHANNELS_FUZZ=ON with clang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "xchannels/message.h"
#include "xchannels/shared_buffer.h"

namespace {

using xchannels::MessageRef;
using xchannels::RefCounted;
using xchannels::RefKind;
using xchannels::SharedBuffer;

struct Node {
  std::vector<std::unique_ptr<Node>> items;
  size_t bytes = 0;
};

// Builds a tree and touches every byte it is given, so ASan sees any read
// past the payload.
struct Visitor {
  using Value = std::unique_ptr<Node>;
  static bool IsNull(const Value& v) { return v == nullptr; }
  static Value Leaf(const uint8_t* p, size_t n) {
    auto v = std::make_unique<Node>();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; ++i) sink = sink ^ p[i];
    v->bytes = n;
    return v;
  }
  Value None() { return Leaf(nullptr, 0); }
  Value Bool(bool) { return Leaf(nullptr, 0); }
  Value Int64(int64_t) { return Leaf(nullptr, 0); }
  Value BigInt(const uint8_t* p, size_t n) { return Leaf(p, n); }
  Value Float(double) { return Leaf(nullptr, 0); }
  Value Str(int kind, const uint8_t* p, size_t len) {
    return Leaf(p, len * static_cast<size_t>(kind));
  }
  Value Bytes(const uint8_t* p, size_t n) { return Leaf(p, n); }
  Value Tuple(size_t n) {
    auto v = std::make_unique<Node>();
    v->items.resize(n);
    return v;
  }
  bool SetItem(Value& t, size_t i, Value item) {
    t->items[i] = std::move(item);
    return true;
  }
  Value Complex(double, double) { return Leaf(nullptr, 0); }
  Value List(size_t n) { return Tuple(n); }
  bool SetListItem(Value& t, size_t i, Value item) { return SetItem(t, i, std::move(item)); }
  Value Dict(size_t) { return std::make_unique<Node>(); }
  bool SetDictItem(Value& d, Value k, Value v) {
    d->items.push_back(std::move(k));
    d->items.push_back(std::move(v));
    return true;
  }
  void BeginKey() {}
  void EndKey() {}
  Value Set(size_t, bool) { return std::make_unique<Node>(); }
  bool AddSetItem(Value& s, Value item) {
    s->items.push_back(std::move(item));
    return true;
  }
  Value Pickled(const uint8_t* p, size_t n) { return Leaf(p, n); }
  Value Buffer(SharedBuffer* b) { return Leaf(b->data(), b->size()); }
  Value BytesFromBuffer(SharedBuffer* b) { return Leaf(b->data(), b->size()); }
  Value Channel(RefCounted*) { return Leaf(nullptr, 0); }
  void Discard(Value) {}
};

class FakeChannel final : public RefCounted {};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // Low 2 bits: number of buffers; next 2 bits: number of channels.
  const int nbuf = data[0] & 3;
  const int nch = (data[0] >> 2) & 3;
  std::vector<xchannels::Ref<RefCounted>> owners;
  std::vector<MessageRef> refs;
  for (int i = 0; i < nbuf; ++i) {
    auto b = SharedBuffer::Copy("buffer", 6);
    refs.push_back(MessageRef{b.get(), RefKind::kBuffer});
    owners.emplace_back(std::move(b));
  }
  for (int i = 0; i < nch; ++i) {
    auto c = xchannels::MakeRef<FakeChannel>();
    refs.push_back(MessageRef{c.get(), RefKind::kChannel});
    owners.emplace_back(std::move(c));
  }
  Visitor v;
  xchannels::Decoder<Visitor> d(std::span<const uint8_t>(data + 1, size - 1),
                                refs, v);
  auto tree = d.Run();
  // Either a tree or an error, never both or neither.
  if ((tree == nullptr) != (d.error() != xchannels::DecodeError::kOk)) {
    __builtin_trap();
  }
  return 0;
}
