// core/src/flat_form.cc: writing and reading the flat form of an Item; see
// flat_form.h for the grammar and the invariants.
#include "xchannels/flat_form.h"

#include <cstring>
#include <string>
#include <string_view>

namespace xchannels {

// ---- writing ----------------------------------------------------------------

namespace {

void PutVarint(RecordBuffer* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out->push_back(static_cast<uint8_t>(v));
}

void PutBuffer(RecordBuffer* out, const SharedBuffer& b) {
  const BufferLayout& l = b.layout();
  PutVarint(out, l.format.size());
  out->append(l.format.data(), l.format.size());
  PutVarint(out, l.itemsize);
  PutVarint(out, l.shape.size());
  for (int64_t e : l.shape) PutVarint(out, static_cast<uint64_t>(e));
  PutVarint(out, b.size());
  out->append(b.data(), b.size());
}

}  // namespace

bool FlattenItem(const Item& item, RecordBuffer* out) {
  std::span<const uint8_t> payload;
  if (!FlattenItem(item, out, &payload)) return false;
  out->append(payload.data(), payload.size());
  return true;
}

bool FlattenItem(const Item& item, RecordBuffer* out,
                 std::span<const uint8_t>* payload) {
  *payload = {};
  const auto kind = [out](FlatKind k) {
    out->push_back(static_cast<uint8_t>(k));
  };
  switch (item.kind()) {
    case Item::Kind::kNone:
      kind(FlatKind::kNone);
      return true;
    case Item::Kind::kFalse:
      kind(FlatKind::kFalse);
      return true;
    case Item::Kind::kTrue:
      kind(FlatKind::kTrue);
      return true;
    case Item::Kind::kInt:
    case Item::Kind::kFloat: {
      kind(item.kind() == Item::Kind::kInt ? FlatKind::kInt : FlatKind::kFloat);
      const int64_t v = item.AsInt();  // the raw 64 bits either way
      out->append(&v, 8);
      return true;
    }
    case Item::Kind::kBuffer:
      kind(FlatKind::kBuffer);
      PutBuffer(out, *static_cast<const SharedBuffer*>(item.AsRef()));
      return true;
    case Item::Kind::kMessage: {
      const Message* m = item.AsMessage();
      for (const MessageRef& ref : m->refs()) {
        if (ref.kind != RefKind::kBuffer) return false;  // a channel
      }
      kind(FlatKind::kMessage);
      PutVarint(out, m->refs().size());
      for (const MessageRef& ref : m->refs()) {
        PutBuffer(out, *static_cast<const SharedBuffer*>(ref.object));
      }
      *payload = m->payload();
      return true;
    }
    case Item::Kind::kChannel:
    case Item::Kind::kEmpty:
      break;
  }
  return false;
}

// ---- reading: every read checked (a record is untrusted) ---------------------

namespace {

// Reads a record front to back; every read checks the bytes left (the
// record is untrusted: see flat_form.h).
struct Reader {
  std::span<const uint8_t> in;
  size_t pos = 0;
  bool Byte(uint8_t* b) {
    if (pos >= in.size()) return false;
    *b = in[pos++];
    return true;
  }
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      r |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return r < (uint64_t{1} << 63);
      }
    }
    return false;
  }
  bool Bytes(size_t n, const uint8_t** p) {
    if (n > in.size() - pos) return false;
    *p = in.data() + pos;
    pos += n;
    return true;
  }
};

// For a format that CPython's memoryview unpacks itself (one type code,
// after an optional byte-order mark), the size the code implies must be
// the item size: memoryview trusts an exporter's format and would read past
// each item otherwise. Other formats are not unpacked by memoryview.
bool FormatFitsItemsize(const std::string& format, size_t itemsize) {
  std::string_view f = format;
  bool native = true;
  if (!f.empty() && std::strchr("@=<>!", f[0]) != nullptr) {
    native = f[0] == '@';
    f.remove_prefix(1);
  }
  if (f.size() != 1) return true;
  size_t n;
  switch (f[0]) {
    case 'c': case 'b': case 'B': case '?': case 'x': n = 1; break;
    case 'h': case 'H': case 'e': n = 2; break;
    case 'i': case 'I': case 'f': n = 4; break;
    case 'l': case 'L': n = native ? sizeof(long) : 4; break;
    case 'q': case 'Q': case 'd': n = 8; break;
    case 'n': case 'N': case 'P':
      if (!native) return false;  // native-only codes
      n = sizeof(void*);
      break;
    default:
      return true;
  }
  return n == itemsize;
}

// Returns nullptr on a malformed buffer (*oom set if memory ran out).
Ref<SharedBuffer> GetBuffer(Reader* r, bool* oom) {
  uint64_t flen, itemsize, ndim, nbytes;
  const uint8_t* p;
  if (!r->Varint(&flen) || flen > 255 || !r->Bytes(flen, &p)) return nullptr;
  BufferLayout layout;
  layout.format.assign(reinterpret_cast<const char*>(p), flen);
  if (!r->Varint(&itemsize) || !r->Varint(&ndim) || ndim > 64) return nullptr;
  layout.itemsize = itemsize;
  for (uint64_t i = 0; i < ndim; ++i) {
    uint64_t e;
    if (!r->Varint(&e)) return nullptr;
    layout.shape.push_back(static_cast<int64_t>(e));
  }
  if (!r->Varint(&nbytes) || !r->Bytes(nbytes, &p)) return nullptr;
  if (!layout.Fits(nbytes) ||
      !FormatFitsItemsize(layout.format, layout.itemsize)) {
    return nullptr;
  }
  Ref<SharedBuffer> b = SharedBuffer::Copy(p, nbytes, std::move(layout));
  if (!b) *oom = true;
  return b;
}

}  // namespace

bool UnflattenItem(std::span<const uint8_t> record, FlatItem* out, bool* oom) {
  *oom = false;
  Reader r{record};
  uint8_t kind;
  if (!r.Byte(&kind)) return false;
  switch (static_cast<FlatKind>(kind)) {
    case FlatKind::kNone:
      out->scalar = Item::None();
      return r.pos == record.size();
    case FlatKind::kFalse:
    case FlatKind::kTrue:
      out->scalar = Item::Bool(static_cast<FlatKind>(kind) == FlatKind::kTrue);
      return r.pos == record.size();
    case FlatKind::kInt:
    case FlatKind::kFloat: {
      const uint8_t* p;
      if (!r.Bytes(8, &p) || r.pos != record.size()) return false;
      int64_t v;
      std::memcpy(&v, p, 8);
      if (static_cast<FlatKind>(kind) == FlatKind::kInt) {
        out->scalar = Item::Int(v);
      } else {
        double d;
        std::memcpy(&d, p, 8);
        out->scalar = Item::Float(d);
      }
      return true;
    }
    case FlatKind::kBuffer: {
      Ref<SharedBuffer> b = GetBuffer(&r, oom);
      if (!b || r.pos != record.size()) return false;
      out->buffers.push_back(std::move(b));
      out->is_buffer = true;
      return true;
    }
    case FlatKind::kMessage: {
      uint64_t nrefs;
      // Each buffer takes at least 4 bytes, which bounds nrefs.
      if (!r.Varint(&nrefs) || nrefs > (record.size() - r.pos) / 4) {
        return false;
      }
      out->buffers.reserve(nrefs);
      out->refs.reserve(nrefs);
      for (uint64_t i = 0; i < nrefs; ++i) {
        Ref<SharedBuffer> b = GetBuffer(&r, oom);
        if (!b) return false;
        out->refs.push_back(MessageRef{b.get(), RefKind::kBuffer});
        out->buffers.push_back(std::move(b));
      }
      out->payload = record.subspan(r.pos);
      return true;
    }
  }
  return false;  // an unknown kind
}

}  // namespace xchannels
