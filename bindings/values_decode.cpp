// bindings/values_decode.cpp: Items and Messages -> Python objects, the
// receiving half of the values room (values.cpp is the sending half).
//
// Decoding runs with the receiver's GIL and builds new objects owned by the
// receiver's interpreter: strings straight from their code units, ints from
// their two's complement bytes, buffers and channels as new handles on the
// same core objects. A message is trusted (this process wrote it); a
// ProcessChannel's record is not: the flat form and the decoder check every
// byte, a malformed record raises ChannelError, and a pickled value is
// unpickled only on a channel made with fallback='pickle'. Every receive of
// the main interpreter first takes back the lent bytes returned meanwhile
// (lent_bytes.h).
#include <sys/mman.h>

#include <cstring>
#include <new>
#include <span>
#include <string>
#include <utility>

#include "lent_bytes.h"
#include "state.h"
#include "values_common.h"

namespace xchannels::py {
namespace {

// Bytes objects from this size on are made as Bytes() says.
constexpr size_t kLargeBytes = size_t{8} << 20;

// Builds Python objects from a decoded message.
struct PyVisitor {
  using Value = PyObject*;
  ModuleState* st;

  static bool IsNull(const Value& v) { return v == nullptr; }
  Value None() { return Py_NewRef(Py_None); }
  Value Bool(bool b) { return PyBool_FromLong(b); }
  Value Int64(int64_t v) { return PyLong_FromLongLong(v); }
  Value BigInt(const uint8_t* p, size_t n) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromNativeBytes(p, n, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    return _PyLong_FromByteArray(p, n, /*little_endian=*/1, /*is_signed=*/1);
#endif
  }
  Value Float(double v) { return PyFloat_FromDouble(v); }
  void BeginKey() { key_ = true; }
  void EndKey() { key_ = false; }
  bool key_ = false;

  // A dict key: short ASCII keys come from a small per-interpreter cache
  // (same bytes, same str object: str is immutable, so sharing it is
  // invisible), which skips the allocation and keeps the hash computed.
  Value CachedKey(const uint8_t* p, size_t len) {
    if (st->key_cache == nullptr) {
      st->key_cache = new (std::nothrow) PyObject*[ModuleState::kKeyCacheSlots]();
      if (st->key_cache == nullptr) return nullptr;
    }
    uint32_t h = 2166136261u;  // FNV-1a
    for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * 16777619u;
    PyObject*& slot = st->key_cache[h & (ModuleState::kKeyCacheSlots - 1)];
    if (slot != nullptr && static_cast<size_t>(PyUnicode_GET_LENGTH(slot)) == len &&
        std::memcmp(PyUnicode_1BYTE_DATA(slot), p, len) == 0) {
      return Py_NewRef(slot);
    }
    PyObject* s = PyUnicode_New(static_cast<Py_ssize_t>(len), 127);
    if (s == nullptr) return nullptr;
    std::memcpy(PyUnicode_1BYTE_DATA(s), p, len);
    if (PyObject_Hash(s) == -1) PyErr_Clear();  // computed once, kept in s
    Py_XSETREF(slot, Py_NewRef(s));
    return s;
  }

  Value Str(int kind, const uint8_t* p, size_t len) {
    if (key_ && kind == 1 && len > 1 && len <= 32 && IsAscii(p, len)) {
      key_ = false;
      return CachedKey(p, len);
    }
    if (kind == 1 && len > 1 && len <= 256 && IsAscii(p, len)) {
      // Short ASCII text, the common case: one allocation and a copy,
      // without PyUnicode_FromKindAndData's layers (len 0 and 1 still go
      // there, for CPython's shared empty and one-character strings).
      PyObject* s = PyUnicode_New(static_cast<Py_ssize_t>(len), 127);
      if (s != nullptr) std::memcpy(PyUnicode_1BYTE_DATA(s), p, len);
      return s;
    }
    return PyUnicode_FromKindAndData(kind, p, static_cast<Py_ssize_t>(len));
  }
  static bool IsAscii(const uint8_t* p, size_t len) {
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      acc |= w;
    }
    for (; i < len; ++i) acc |= p[i];
    return (acc & 0x8080808080808080ULL) == 0;
  }
  Value Bytes(const uint8_t* p, size_t n) {
    if (n < kLargeBytes) {
      return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p),
                                       static_cast<Py_ssize_t>(n));
    }
    // A large bytes object is fresh memory (malloc maps it): faulting it in
    // 2 MiB at a time costs a fifth of faulting 4 KiB pages, and the copy
    // needs no GIL.
    PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
    if (b == nullptr) return nullptr;
    char* dst = PyBytes_AS_STRING(b);
    const uintptr_t page = 4096;
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(dst) + page - 1) & ~(page - 1);
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(dst) + n) & ~(page - 1);
    Py_BEGIN_ALLOW_THREADS
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
    std::memcpy(dst, p, n);
    Py_END_ALLOW_THREADS
    return b;
  }
  Value Complex(double re, double im) { return PyComplex_FromDoubles(re, im); }
  Value Tuple(size_t n) { return PyTuple_New(static_cast<Py_ssize_t>(n)); }
  bool SetItem(Value& t, size_t i, Value item) {
    PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(i), item);
    return true;
  }
  Value List(size_t n) { return PyList_New(static_cast<Py_ssize_t>(n)); }
  bool SetListItem(Value& l, size_t i, Value item) {
    PyList_SET_ITEM(l, static_cast<Py_ssize_t>(i), item);
    return true;
  }
  Value Dict(size_t n) {
    // Presized for n keys, but never more than the payload could hold (a
    // crafted count is bounded by the message's length anyway).
    return _PyDict_NewPresized(static_cast<Py_ssize_t>(n));
  }
  bool SetDictItem(Value& d, Value key, Value value) {
    // The keys were hashable in the sender and are built-in values here, so
    // hashing them runs no user code (a crafted message's list key fails).
    int rc = PyDict_SetItem(d, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return rc == 0;
  }
  Value Set(size_t, bool frozen) { return frozen ? PyFrozenSet_New(nullptr) : PySet_New(nullptr); }
  bool AddSetItem(Value& s, Value item) {
    int rc = PySet_Add(s, item);  // allowed on a new frozenset too
    Py_DECREF(item);
    return rc == 0;
  }
  Value Pickled(const uint8_t* p, size_t n) {
    if (!allow_pickle) {
      // A record from shared memory on a channel that did not opt in:
      // unpickling it would run whatever code its writer chose.
      PyErr_SetString(st->ChannelError,
                      "ProcessChannel: a pickled value in a record of a channel "
                      "without fallback='pickle' (written by a faulty or hostile "
                      "process); not unpickled");
      return nullptr;
    }
    if (!LoadPickle(st)) return nullptr;
    // A bytes copy, not a view of the message: what loads makes may keep
    // its argument, and the message is freed after decoding.
    PyObject* data = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p),
                                               static_cast<Py_ssize_t>(n));
    if (data == nullptr) return nullptr;
    PyObject* v = PyObject_CallOneArg(st->pickle_loads, data);
    Py_DECREF(data);
    if (v == nullptr) {
      if (failures != nullptr) return StandIn();
      unpickle_failed = true;
    }
    return v;
  }
  // Lenient decoding (failures set): the exception that unpickling raised
  // stands in the value's place, and is appended to *failures, so the rest
  // of the message still decodes and the receiver learns what failed where.
  Value StandIn() {
    PyObject* exc = PyErr_GetRaisedException();
    if (*failures == nullptr) {
      *failures = PyList_New(0);
      if (*failures == nullptr) {
        Py_DECREF(exc);
        return nullptr;
      }
    }
    if (PyList_Append(*failures, exc) < 0) {
      Py_DECREF(exc);
      return nullptr;
    }
    return exc;
  }
  bool unpickle_failed = false;
  // Lenient decoding: where the exceptions of failed unpickling go (a list
  // made on the first one); null for strict decoding.
  PyObject** failures = nullptr;
  // False for records of a ProcessChannel without fallback='pickle'.
  bool allow_pickle = true;
  Value Buffer(SharedBuffer* b) {
    b->AddRef();
    return WrapSharedBuffer(st, Ref<SharedBuffer>::Adopt(b));
  }
  Value BytesFromBuffer(SharedBuffer* b) {
    return Bytes(b->data(), b->size());
  }
  Value Channel(RefCounted* c) {
    auto* ch = static_cast<ItemChannel*>(static_cast<ChannelBase*>(c));
    ch->AddRef();
    return WrapChannel(st, Ref<ItemChannel>::Adopt(ch));
  }
  void Discard(Value v) { Py_XDECREF(v); }
};

std::string DecodePath(std::span<const uint32_t> path) {
  if (path.empty()) return "";
  std::string s = "item ";
  for (uint32_t step : path) {
    using D = Decoder<PyVisitor>;
    uint32_t i = step & ~(D::kDictKey | D::kDictValue);
    if (step & D::kDictValue) {
      s += "[value #" + std::to_string(i) + "]";
    } else if (step & D::kDictKey) {
      s += ".keys()[" + std::to_string(i) + "]";
    } else {
      s += "[" + std::to_string(i) + "]";
    }
  }
  return s;
}

// Decodes a message payload; a malformed one raises `corrupt_exc`.
// With `failures`, decodes leniently (see PyVisitor::StandIn).
PyObject* DecodePayload(ModuleState* st, std::span<const uint8_t> payload,
                        std::span<const MessageRef> refs,
                        PyObject* corrupt_exc, bool allow_pickle = true,
                        PyObject** failures = nullptr) {
  PyVisitor v{st};
  v.allow_pickle = allow_pickle;
  v.failures = failures;
  Decoder<PyVisitor> d(payload, refs, v);
  PyObject* out = d.Run();
  if (out == nullptr) {
    if (failures != nullptr) Py_CLEAR(*failures);
    if (v.unpickle_failed) {
      ChainAs(st->NotShareableError, At(DecodePath(d.failure_path())),
              "a pickled value (sent with fallback='pickle') cannot be unpickled "
              "in this interpreter");
    } else if (!PyErr_Occurred()) {
      PyErr_Format(corrupt_exc, "xchannels: corrupt message (%s)",
                   std::string(DecodeErrorName(d.error())).c_str());
    }
  }
  return out;
}

}  // namespace

PyObject* Decode(ModuleState* st, Item&& item, PyObject** failures) {
  // Every receive of the main interpreter (get, get_many, get_async,
  // select) decodes here: it takes back the lent bytes returned meanwhile
  // (an atomic load when there are none). A receiver that always finds
  // items would otherwise never reach the drain after BlockingCall's wait.
  if (st->main_interpreter) DrainLoans();
  Item it = std::move(item);
  switch (it.kind()) {
    case Item::Kind::kNone:
      return Py_NewRef(Py_None);
    case Item::Kind::kFalse:
      return Py_NewRef(Py_False);
    case Item::Kind::kTrue:
      return Py_NewRef(Py_True);
    case Item::Kind::kInt:
      return PyLong_FromLongLong(it.AsInt());
    case Item::Kind::kFloat:
      return PyFloat_FromDouble(it.AsFloat());
    case Item::Kind::kBuffer: {
      auto* b = static_cast<SharedBuffer*>(it.AsRef());
      b->AddRef();
      return WrapSharedBuffer(st, Ref<SharedBuffer>::Adopt(b));
    }
    case Item::Kind::kChannel: {
      auto* c = static_cast<ItemChannel*>(static_cast<ChannelBase*>(it.AsRef()));
      c->AddRef();
      return WrapChannel(st, Ref<ItemChannel>::Adopt(c));
    }
    case Item::Kind::kMessage: {
      const Message* m = it.AsMessage();
      return DecodePayload(st, m->payload(), m->refs(), PyExc_SystemError,
                           /*allow_pickle=*/true, failures);
    }
    case Item::Kind::kEmpty:
      break;
  }
  PyErr_SetString(PyExc_SystemError, "xchannels: empty item");
  return nullptr;
}

PyObject* DecodeFlat(ModuleState* st, const RecordBuffer& record,
                     bool allow_pickle) {
  if (st->main_interpreter) DrainLoans();  // as in Decode
  FlatItem flat;
  bool oom = false;
  if (!UnflattenItem(record.span(), &flat, &oom, record.files, record.body)) {
    if (oom) return PyErr_NoMemory();
    PyErr_SetString(st->ChannelError,
                    "ProcessChannel: a malformed record in the shared segment "
                    "(written by a faulty or hostile process)");
    return nullptr;
  }
  if (flat.scalar.kind() != Item::Kind::kEmpty) {
    return Decode(st, std::move(flat.scalar));
  }
  if (flat.is_buffer) return WrapSharedBuffer(st, std::move(flat.buffers[0]));
  return DecodePayload(st, flat.payload, flat.refs, st->ChannelError,
                       allow_pickle);
}

}  // namespace xchannels::py
