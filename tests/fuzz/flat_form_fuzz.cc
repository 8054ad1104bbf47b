// tests/fuzz/flat_form_fuzz.cc: libFuzzer target over the flat form's parser
// (flat_form.h), the bytes a ProcessChannel record holds, which another
// process may have written anything into.
//
// The input's first byte says how the rest is read:
//   even  the rest is one ring record, parsed with four copies of one small
//         sealed memfd made at startup as its `files` (the fdrefs of its
//         buffers: libFuzzer learns the memfd's id and size from the
//         comparisons), and a valid 12-byte record as the `body` a
//         kOutOfLine record names (with bit 1 set too, the record's fdrefs
//         are made to name that memfd: its id and size written over
//         theirs, so that the parser gets past the checks at once);
//   odd   the rest is the body, the copy of the record a kOutOfLine record
//         names (what a large value's receiver parses: its buffers become
//         views of the body).
// ScanFdRefs runs on every record. UnflattenItem must never crash, read out
// of bounds or leak (buffers, memfds, descriptors), whatever the bytes; a
// record it accepts scans too, names no more memfds than it was given, and
// must flatten again into records it accepts with the same parts: inline
// (a message from its parts), 64-aligned, and with buffers that live in a
// memfd passed by descriptor. A message's payload itself is the decoder's
// (decoder_fuzz.cc). Build: cmake -DXCHANNELS_FUZZ=ON with clang.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "xchannels/flat_form.h"
#include "xchannels/mem_file.h"
#include "xchannels/message.h"

using xchannels::FdRef;
using xchannels::FlatItem;
using xchannels::FlattenOptions;
using xchannels::Item;
using xchannels::MemFile;
using xchannels::OwnedFds;
using xchannels::RecordBuffer;
using xchannels::Ref;
using xchannels::RefCounted;
using xchannels::SharedBuffer;

namespace {

// A sealed memfd holding `bytes`, or nullptr.
Ref<MemFile> Sealed(std::span<const uint8_t> bytes) {
  std::string err;
  Ref<MemFile> f = MemFile::Create(bytes.size(), /*populate=*/false, &err);
  if (!f) return nullptr;
  if (!bytes.empty()) std::memcpy(f->writable(), bytes.data(), bytes.size());
  if (!f->Seal(&err)) return nullptr;
  return f;
}

// What a receiver does: opens the memfds `record` names (all this
// process's own here).
bool OpenAll(std::span<const uint8_t> record, std::vector<Ref<MemFile>>* out) {
  std::vector<FdRef> refs;
  if (!xchannels::ScanFdRefs(record, &refs)) return false;
  for (const FdRef& r : refs) {
    Ref<MemFile> f;
    int err = 0;
    if (MemFile::OpenPeer(static_cast<pid_t>(r.pid), static_cast<int>(r.fd),
                          r.id, r.size, false, &f, &err) !=
        MemFile::Open::kOk) {
      return false;
    }
    out->push_back(std::move(f));
  }
  return true;
}

// Flattens what was read again with `options` (the head from the parts,
// then the payload) and parses the result: it must be accepted, with the
// same parts.
void RoundTrip(const FlatItem& f, FlattenOptions options) {
  OwnedFds pass;
  if (options.by_fd) options.pass = &pass;
  RecordBuffer again;
  std::span<const uint8_t> payload;
  bool ok;
  if (f.is_buffer) {
    const Item item =
        Item::FromRef(Item::Kind::kBuffer,
                      Ref<RefCounted>(Ref<SharedBuffer>(f.buffers[0])));
    ok = xchannels::FlattenItem(item, &again, &payload, options);
  } else if (f.scalar.kind() != Item::Kind::kEmpty) {
    ok = xchannels::FlattenItem(f.scalar, &again, &payload, options);
  } else {
    // A message: its buffers, then the payload unchanged.
    xchannels::MessageWriter w;
    for (const auto& b : f.buffers) {
      if (!w.RefValue(xchannels::Tag::kBufferRef, xchannels::RefKind::kBuffer,
                      Ref<RefCounted>(Ref<SharedBuffer>(b)))) {
        return;  // out of memory
      }
    }
    xchannels::MessagePtr m = w.Finish();
    if (m == nullptr) return;
    const Item item = Item::FromMessage(std::move(m));
    ok = xchannels::FlattenItem(item, &again, &payload, options);
  }
  if (!ok) __builtin_trap();
  again.append(f.payload.data(), f.payload.size());
  // By descriptor: one passed descriptor per buffer that lives in a memfd.
  size_t in_files = 0;
  for (const auto& b : f.buffers) in_files += b->file() != nullptr;
  if (pass.size() != (options.by_fd ? in_files : 0)) __builtin_trap();
  std::vector<Ref<MemFile>> files;
  if (!OpenAll(again.span(), &files) || files.size() != pass.size()) {
    __builtin_trap();
  }
  FlatItem g;
  bool oom = false;
  if (!xchannels::UnflattenItem(again.span(), &g, &oom, files)) {
    if (oom) return;
    __builtin_trap();
  }
  if (g.is_buffer != f.is_buffer || g.buffers.size() != f.buffers.size() ||
      g.payload.size() != f.payload.size() ||
      (!f.payload.empty() &&
       std::memcmp(g.payload.data(), f.payload.data(), f.payload.size()) != 0)) {
    __builtin_trap();
  }
  for (size_t i = 0; i < f.buffers.size(); ++i) {
    const SharedBuffer& a = *f.buffers[i];
    const SharedBuffer& b = *g.buffers[i];
    if (a.size() != b.size() || a.layout().format != b.layout().format ||
        a.shape() != b.shape() ||
        (a.size() > 0 && std::memcmp(a.data(), b.data(), a.size()) != 0)) {
      __builtin_trap();
    }
    // What went by descriptor comes back as a view of the opened file.
    if (options.by_fd && a.file() != nullptr && b.file() == nullptr) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One small memfd for the whole run; its data is a valid lone-buffer
  // record ("abcd"), so a record may name it either way.
  static MemFile* shared = [] {
    const uint8_t record[] = {7, 1, 'B', 1, 0, 4, 0, 0, 'a', 'b', 'c', 'd'};
    return Sealed(record).Release();
  }();
  if (shared == nullptr) __builtin_trap();
  const int64_t live = MemFile::LiveCountForTesting();
  if (size == 0) return 0;
  const bool out_of_line = (data[0] & 1) != 0;
  std::span<const uint8_t> rest(data + 1, size - 1);
  {
    std::vector<Ref<MemFile>> files;
    Ref<SharedBuffer> body;
    RecordBuffer ool;
    std::vector<uint8_t> patched;
    std::span<const uint8_t> record = rest;
    if (out_of_line) {
      body = SharedBuffer::Copy(rest.data(), rest.size());
      if (!body) return 0;  // out of memory
      xchannels::FlattenOutOfLine(
          FdRef{static_cast<uint32_t>(getpid()), 3, 1, rest.size()}, &ool);
      record = ool.span();
    } else {
      files.assign(4, Ref<MemFile>::Share(shared));
      body = SharedBuffer::Copy(shared->data(), shared->size());
      if (!body) return 0;
      if ((data[0] & 2) != 0) {
        std::vector<FdRef> named;
        if (xchannels::ScanFdRefs(rest, &named) && !named.empty()) {
          patched.assign(rest.begin(), rest.end());
          for (const FdRef& r : named) {
            uint8_t raw[xchannels::kFdRefBytes];
            std::memcpy(raw, &r.pid, 4);
            std::memcpy(raw + 4, &r.fd, 4);
            std::memcpy(raw + 8, &r.id, 8);
            std::memcpy(raw + 16, &r.size, 8);
            const auto at = std::search(patched.begin(), patched.end(), raw,
                                        raw + sizeof raw);
            if (at == patched.end()) continue;
            const uint64_t id = shared->id(), n = shared->size();
            std::memcpy(&*at + 8, &id, 8);
            std::memcpy(&*at + 16, &n, 8);
          }
          record = patched;
        }
      }
    }
    std::vector<FdRef> refs;
    const bool scanned = xchannels::ScanFdRefs(record, &refs);
    FlatItem f;
    bool oom = false;
    if (xchannels::UnflattenItem(record, &f, &oom, files, body)) {
      if (oom) __builtin_trap();  // set only with false
      if (!scanned) __builtin_trap();
      const bool whole = !refs.empty() && refs[0].whole_record;
      if (!whole && refs.size() > files.size()) __builtin_trap();
      if (whole != static_cast<bool>(f.body) ||
          (whole && (refs.size() != 1 || f.body.get() != body.get() ||
                     refs[0].size != body->size()))) {
        __builtin_trap();
      }
      for (size_t i = 0; i < refs.size() && !whole; ++i) {
        if (refs[i].id != files[i]->id() || refs[i].size != files[i]->size()) {
          __builtin_trap();
        }
      }
      // The buffers of an out-of-line record are views of the body.
      for (const auto& b : f.buffers) {
        if (whole && b->root() != body.get()) __builtin_trap();
      }
      FlattenOptions inline_form, aligned, by_fd;
      aligned.align = true;
      by_fd.by_fd = true;
      RoundTrip(f, inline_form);
      RoundTrip(f, aligned);
      RoundTrip(f, by_fd);
    }
  }
  // Every memfd opened for this input is gone (descriptors too).
  if (MemFile::LiveCountForTesting() != live) __builtin_trap();
  return 0;
}
