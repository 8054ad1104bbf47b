// core/src/flat_form.cc: writing and reading the flat form of an Item; see
// flat_form.h for the grammar and the invariants.
#include "xchannels/flat_form.h"

#include <fcntl.h>
#include <unistd.h>

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

void PutFdRef(RecordBuffer* out, const FdRef& r) {
  out->append(&r.pid, 4);
  out->append(&r.fd, 4);
  out->append(&r.id, 8);
  out->append(&r.size, 8);
}

void PutBuffer(RecordBuffer* out, const SharedBuffer& b,
               const FlattenOptions& options) {
  const BufferLayout& l = b.layout();
  PutVarint(out, l.format.size());
  out->append(l.format.data(), l.format.size());
  PutVarint(out, l.itemsize);
  PutVarint(out, l.shape.size());
  for (int64_t e : l.shape) PutVarint(out, static_cast<uint64_t>(e));
  PutVarint(out, b.size());
  if (const MemFile* file = b.file(); file != nullptr && options.by_fd) {
    const int dup =
        options.pass ? fcntl(file->fd(), F_DUPFD_CLOEXEC, 0) : INT32_MAX;
    if (dup >= 0) {
      if (options.pass) options.pass->Add(dup);
      out->push_back(1);
      PutFdRef(out, FdRef{static_cast<uint32_t>(getpid()),
                          static_cast<uint32_t>(dup), file->id(),
                          file->size()});
      PutVarint(out, b.file_offset());
      return;
    }
    // No descriptor to spare: the bytes go inline.
  }
  out->push_back(0);
  // The padding's own varint is one byte (npad < 64): align what follows it.
  const size_t npad =
      options.align ? (64 - (out->size() + 1) % 64) % 64 : 0;
  PutVarint(out, npad);
  out->append_zeros(npad);
  out->append(b.data(), b.size());
}

}  // namespace

uint64_t OutOfLineBytes(std::span<const uint8_t> record) {
  if (record.size() != kOutOfLineRecordBytes ||
      record[0] != static_cast<uint8_t>(FlatKind::kOutOfLine)) {
    return 0;
  }
  uint64_t size;
  std::memcpy(&size, record.data() + 1 + 16, 8);
  return size;
}

void FlattenOutOfLine(const FdRef& ref, RecordBuffer* out) {
  out->push_back(static_cast<uint8_t>(FlatKind::kOutOfLine));
  PutFdRef(out, ref);
}

bool FlattenItem(const Item& item, RecordBuffer* out) {
  std::span<const uint8_t> payload;
  if (!FlattenItem(item, out, &payload)) return false;
  out->append(payload.data(), payload.size());
  return true;
}

bool FlattenItem(const Item& item, RecordBuffer* out,
                 std::span<const uint8_t>* payload,
                 const FlattenOptions& options) {
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
      PutBuffer(out, *static_cast<const SharedBuffer*>(item.AsRef()), options);
      return true;
    case Item::Kind::kMessage: {
      const Message* m = item.AsMessage();
      for (const MessageRef& ref : m->refs()) {
        if (ref.kind != RefKind::kBuffer) return false;  // a channel
      }
      kind(FlatKind::kMessage);
      PutVarint(out, m->refs().size());
      for (const MessageRef& ref : m->refs()) {
        PutBuffer(out, *static_cast<const SharedBuffer*>(ref.object), options);
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

// One buffer as the record states it, before anything is made of it.
struct ParsedBuffer {
  BufferLayout layout;
  uint64_t nbytes = 0;
  const uint8_t* bytes = nullptr;  // where 0: the inline bytes
  bool by_fd = false;              // where 1:
  FdRef ref{};
  uint64_t offset = 0;
};

bool GetFdRef(Reader* r, FdRef* ref) {
  const uint8_t* p;
  if (!r->Bytes(kFdRefBytes, &p)) return false;
  std::memcpy(&ref->pid, p, 4);
  std::memcpy(&ref->fd, p + 4, 4);
  std::memcpy(&ref->id, p + 8, 8);
  std::memcpy(&ref->size, p + 16, 8);
  return true;
}

bool ParseBuffer(Reader* r, ParsedBuffer* b) {
  uint64_t flen, itemsize, ndim;
  const uint8_t* p;
  if (!r->Varint(&flen) || flen > 255 || !r->Bytes(flen, &p)) return false;
  b->layout.format.assign(reinterpret_cast<const char*>(p), flen);
  if (!r->Varint(&itemsize) || !r->Varint(&ndim) || ndim > 64) return false;
  b->layout.itemsize = itemsize;
  for (uint64_t i = 0; i < ndim; ++i) {
    uint64_t e;
    if (!r->Varint(&e)) return false;
    b->layout.shape.push_back(static_cast<int64_t>(e));
  }
  uint8_t where;
  if (!r->Varint(&b->nbytes) || !r->Byte(&where)) return false;
  if (!b->layout.Fits(b->nbytes) ||
      !FormatFitsItemsize(b->layout.format, b->layout.itemsize)) {
    return false;
  }
  if (where == 0) {
    uint64_t npad;
    return r->Varint(&npad) && npad < 64 && r->Bytes(npad, &p) &&
           r->Bytes(b->nbytes, &b->bytes);
  }
  b->by_fd = true;
  return where == 1 && GetFdRef(r, &b->ref) && r->Varint(&b->offset) &&
         b->offset <= b->ref.size && b->nbytes <= b->ref.size - b->offset;
}

// Where a record's buffers come from: the memfds its fdrefs name, in
// order; and, for a record that lives in a memfd's data, that memfd (its
// inline buffers are then views of it).
struct Source {
  std::span<const Ref<MemFile>> files;
  const Ref<SharedBuffer>* body = nullptr;  // for a kOutOfLine record
  size_t next = 0;
  const Ref<SharedBuffer>* home = nullptr;  // the record lives in it
};

// Returns nullptr on a malformed buffer (*oom set if memory ran out).
Ref<SharedBuffer> GetBuffer(Reader* r, Source* src, bool* oom) {
  ParsedBuffer b;
  if (!ParseBuffer(r, &b)) return nullptr;
  Ref<SharedBuffer> out;
  if (b.by_fd) {
    if (src->next >= src->files.size()) return nullptr;
    const Ref<MemFile>& file = src->files[src->next++];
    if (!file || file->id() != b.ref.id || file->size() != b.ref.size) {
      return nullptr;
    }
    out = SharedBuffer::InFile(file, b.offset, b.nbytes, std::move(b.layout));
  } else if (src->home != nullptr) {
    const Ref<SharedBuffer>& home = *src->home;
    out = SharedBuffer::View(home, static_cast<size_t>(b.bytes - home->data()),
                             b.nbytes, std::move(b.layout));
  } else {
    out = SharedBuffer::Copy(b.bytes, b.nbytes, std::move(b.layout));
  }
  if (!out) *oom = true;  // every other failure was checked above
  return out;
}

bool Unflatten(std::span<const uint8_t> record, FlatItem* out, bool* oom,
               Source* src) {
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
      Ref<SharedBuffer> b = GetBuffer(&r, src, oom);
      if (!b || r.pos != record.size()) return false;
      out->buffers.push_back(std::move(b));
      out->is_buffer = true;
      return true;
    }
    case FlatKind::kMessage: {
      uint64_t nrefs;
      // Each buffer takes at least 5 bytes, which bounds nrefs.
      if (!r.Varint(&nrefs) || nrefs > (record.size() - r.pos) / 5) {
        return false;
      }
      out->buffers.reserve(nrefs);
      out->refs.reserve(nrefs);
      for (uint64_t i = 0; i < nrefs; ++i) {
        Ref<SharedBuffer> b = GetBuffer(&r, src, oom);
        if (!b) return false;
        out->refs.push_back(MessageRef{b.get(), RefKind::kBuffer});
        out->buffers.push_back(std::move(b));
      }
      out->payload = record.subspan(r.pos);
      return true;
    }
    case FlatKind::kOutOfLine: {
      FdRef ref;
      if (src->home != nullptr || !GetFdRef(&r, &ref) ||
          r.pos != record.size() || src->body == nullptr || !*src->body) {
        return false;
      }
      const Ref<SharedBuffer>& body = *src->body;
      if (body->size() != ref.size) return false;
      Source inner{src->files};
      inner.home = &body;
      out->body = body;
      return Unflatten({body->data(), body->size()}, out, oom, &inner);
    }
  }
  return false;  // an unknown kind
}

}  // namespace

bool ScanFdRefs(std::span<const uint8_t> record, std::vector<FdRef>* out) {
  out->clear();
  Reader r{record};
  uint8_t kind;
  if (!r.Byte(&kind)) return false;
  uint64_t nbuffers = 0;
  switch (static_cast<FlatKind>(kind)) {
    case FlatKind::kOutOfLine: {
      FdRef ref;
      if (!GetFdRef(&r, &ref) || r.pos != record.size()) return false;
      ref.whole_record = true;
      out->push_back(ref);
      return true;
    }
    case FlatKind::kBuffer:
      nbuffers = 1;
      break;
    case FlatKind::kMessage:
      if (!r.Varint(&nbuffers) || nbuffers > (record.size() - r.pos) / 5) {
        return false;
      }
      break;
    default:
      return true;  // no buffers (UnflattenItem checks the rest)
  }
  for (uint64_t i = 0; i < nbuffers; ++i) {
    ParsedBuffer b;
    if (!ParseBuffer(&r, &b)) return false;
    if (b.by_fd) out->push_back(b.ref);
  }
  return true;
}

bool UnflattenItem(std::span<const uint8_t> record, FlatItem* out, bool* oom,
                   std::span<const Ref<MemFile>> files,
                   const Ref<SharedBuffer>& body) {
  *oom = false;
  Source src{files, &body};
  return Unflatten(record, out, oom, &src);
}

}  // namespace xchannels
