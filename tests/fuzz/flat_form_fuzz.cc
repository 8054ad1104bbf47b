// tests/fuzz/flat_form_fuzz.cc: libFuzzer target over the flat form's parser
// (flat_form.h), the bytes a ProcessChannel record holds, which another
// process may have written anything into.
//
// The input is one record. UnflattenItem must never crash, read out of
// bounds or leak, whatever the bytes; a record it accepts must flatten
// again (a message from its parts) into one it accepts, with the same
// payload. A message's payload itself is the decoder's (decoder_fuzz.cc).
// Build: cmake -DXCHANNELS_FUZZ=ON with clang.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "xchannels/flat_form.h"
#include "xchannels/message.h"

using xchannels::FlatItem;
using xchannels::Item;
using xchannels::RecordBuffer;
using xchannels::Ref;
using xchannels::RefCounted;
using xchannels::SharedBuffer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FlatItem f;
  bool oom = false;
  if (!xchannels::UnflattenItem({data, size}, &f, &oom)) return 0;
  if (oom) __builtin_trap();  // set only with false
  // Flatten what was read again: the head from the parts, then the payload.
  RecordBuffer again;
  bool ok;
  if (f.is_buffer) {
    ok = xchannels::FlattenItem(
        Item::FromRef(Item::Kind::kBuffer,
                      Ref<RefCounted>(Ref<SharedBuffer>(f.buffers[0]))),
        &again);
  } else if (f.scalar.kind() != Item::Kind::kEmpty) {
    ok = xchannels::FlattenItem(f.scalar, &again);
  } else {
    // A message: its buffers, then the payload unchanged.
    xchannels::MessageWriter w;
    for (const auto& b : f.buffers) {
      if (!w.RefValue(xchannels::Tag::kBufferRef, xchannels::RefKind::kBuffer,
                      Ref<RefCounted>(Ref<SharedBuffer>(b)))) {
        return 0;  // out of memory
      }
    }
    xchannels::MessagePtr m = w.Finish();
    if (m == nullptr) return 0;
    const Item item = Item::FromMessage(std::move(m));
    std::span<const uint8_t> none;
    ok = xchannels::FlattenItem(item, &again, &none);
    again.append(f.payload.data(), f.payload.size());
  }
  if (!ok) __builtin_trap();
  FlatItem g;
  if (!xchannels::UnflattenItem(again.span(), &g, &oom)) __builtin_trap();
  if (g.is_buffer != f.is_buffer || g.buffers.size() != f.buffers.size() ||
      g.payload.size() != f.payload.size() ||
      (!f.payload.empty() &&
       std::memcmp(g.payload.data(), f.payload.data(), f.payload.size()) != 0)) {
    __builtin_trap();
  }
  return 0;
}
