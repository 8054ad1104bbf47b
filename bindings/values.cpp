// bindings/values.cpp: Python objects <-> Items and Messages, no pickle.
//
// Encoding runs with the sender's GIL. Small trees of exact built-in values
// are written in one walk into a stack buffer (FastValue); everything else in
// two passes over the value tree: the first checks that everything is
// shareable and counts bytes and references (so a bad value raises before
// anything is allocated or enqueued), the second writes one exactly-sized
// Message. Scalars at the top level skip the Message
// and travel inside the Item. Decoding runs with the receiver's GIL and
// builds new objects owned by the receiver; nothing is ever released back in
// the sender's interpreter.
#include <cstring>
#include <string>
#include <vector>

#include "state.h"

namespace xchannels::py {
namespace {

// bytes of at least this size travel as a SharedBuffer reference instead of
// being copied into the message (keeps messages small; measured in
// benchmarks/python/bench_values.py).
constexpr Py_ssize_t kBytesRefThreshold = 64 * 1024;

// Where the encoder is in the value tree, for error messages: a fixed stack
// (tuples never nest deeper than kMaxDepth), so the hot path never allocates.
struct Path {
  Py_ssize_t index[kMaxDepth];
  int depth = 0;
  bool empty() const { return depth == 0; }
  std::string Render() const {
    std::string s = "item ";
    for (int d = 0; d < depth; ++d) s += "[" + std::to_string(index[d]) + "]";
    return s;
  }
};

void RaiseNotShareable(ModuleState* st, const Path& path, PyObject* obj) {
  std::string where = path.empty() ? "" : path.Render() + ": ";
  PyErr_Format(st->NotShareableError, "%s%s is not shareable", where.c_str(),
               Py_TYPE(obj)->tp_name);
}

void RaiseTooDeep(ModuleState* st, const Path& path) {
  (void)path;
  PyErr_Format(st->NotShareableError,
               "tuples nested deeper than %d levels are not shareable",
               kMaxDepth);
}

size_t BigIntBytes(PyObject* obj) {
  // Two's complement needs the magnitude's bits plus a sign bit.
  size_t nbits = _PyLong_NumBits(obj);
  return nbits / 8 + 1;
}

bool WriteBigInt(PyObject* obj, uint8_t* dst, size_t n) {
#if PY_VERSION_HEX >= 0x030D0000
  Py_ssize_t r = PyLong_AsNativeBytes(obj, dst, static_cast<Py_ssize_t>(n),
                                      Py_ASNATIVEBYTES_LITTLE_ENDIAN);
  return r >= 0 && static_cast<size_t>(r) <= n;
#else
  return _PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(obj), dst, n,
                             /*little_endian=*/1, /*is_signed=*/1) == 0;
#endif
}

// One pass of the encoder. Sizing == true: validate and count; false: write.
// Buffer exporters are copied into SharedBuffers during the sizing pass (the
// copy is needed anyway) and handed to the writing pass in order.
template <bool Sizing>
class Encoder {
 public:
  Encoder(ModuleState* st, std::vector<Ref<SharedBuffer>>* copies)
      : st_(st), copies_(copies) {}

  MessageSizer sizer;
  MessageBuilder* builder = nullptr;

  bool Value(PyObject* obj, int depth) {
    PyTypeObject* t = Py_TYPE(obj);
    // Exact built-in types first: PyFloat_Check and friends walk the MRO
    // (PyType_IsSubtype) for every object that is not of their type.
    if (t == &PyUnicode_Type) return Str(obj);
    if (t == &PyLong_Type) return Long(obj);
    if (t == &PyTuple_Type) return Tuple(obj, depth);
    if (t == &PyFloat_Type) return Float(obj);
    if (t == &PyBytes_Type) return Bytes(obj);
    if (obj == Py_None) {
      if constexpr (Sizing) sizer.Scalar(Tag::kNone);
      else builder->Scalar(Tag::kNone);
      return true;
    }
    if (t == &PyBool_Type) {
      Tag tag = obj == Py_True ? Tag::kTrue : Tag::kFalse;
      if constexpr (Sizing) sizer.Scalar(tag);
      else builder->Scalar(tag);
      return true;
    }
    if (PyLong_Check(obj)) return Long(obj);
    if (PyFloat_Check(obj)) return Float(obj);
    if (PyUnicode_Check(obj)) return Str(obj);
    if (PyTuple_Check(obj)) return Tuple(obj, depth);
    if (PyBytes_Check(obj)) return Bytes(obj);
    if (IsSharedBuffer(st_, obj)) {
      if constexpr (Sizing) {
        sizer.RefValue();
      } else {
        SharedBuffer* b = reinterpret_cast<PySharedBuffer*>(obj)->buf;
        b->AddRef();
        builder->RefValue(Tag::kBufferRef, RefKind::kBuffer,
                          Ref<RefCounted>::Adopt(b));
      }
      return true;
    }
    if (IsChannel(st_, obj)) {
      if constexpr (Sizing) {
        sizer.RefValue();
      } else {
        ItemChannel* c = reinterpret_cast<PyChannel*>(obj)->ch;
        c->AddRef();
        builder->RefValue(Tag::kChannelRef, RefKind::kChannel,
                          Ref<RefCounted>::Adopt(c));
      }
      return true;
    }
    if (PyObject_CheckBuffer(obj)) {
      if constexpr (Sizing) {
        if (copies_ == nullptr) {  // check only: export, do not copy
          Py_buffer view;
          if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0) return false;
          PyBuffer_Release(&view);
          sizer.RefValue();
          return true;
        }
        Ref<SharedBuffer> copy = CopyExporter(st_, obj);
        if (!copy) {
          AddPathToError();
          return false;
        }
        copies_->push_back(std::move(copy));
        sizer.RefValue();
      } else {
        Ref<SharedBuffer>& copy = (*copies_)[next_copy_++];
        builder->RefValue(Tag::kBufferRef, RefKind::kBuffer,
                          Ref<RefCounted>(std::move(copy)));
      }
      return true;
    }
    if constexpr (Sizing) RaiseNotShareable(st_, path_, obj);
    return false;
  }

 private:
  bool Float(PyObject* obj) {
    if constexpr (Sizing) sizer.Float();
    else builder->Float(PyFloat_AS_DOUBLE(obj));
    return true;
  }

  bool Str(PyObject* obj) {
    int kind = PyUnicode_KIND(obj);
    Py_ssize_t len = PyUnicode_GET_LENGTH(obj);
    if constexpr (Sizing) {
      sizer.Str(kind, static_cast<size_t>(len));
    } else {
      uint8_t* dst = builder->Str(kind, static_cast<size_t>(len));
      std::memcpy(dst, PyUnicode_DATA(obj),
                  static_cast<size_t>(len) * static_cast<size_t>(kind));
    }
    return true;
  }

  bool Long(PyObject* obj) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return false;
    if (overflow == 0) {
      if constexpr (Sizing) sizer.Int64();
      else builder->Int64(v);
      return true;
    }
    size_t n = BigIntBytes(obj);
    if constexpr (Sizing) {
      sizer.Blob(n);
    } else {
      if (!WriteBigInt(obj, builder->BigInt(n), n)) return false;
    }
    return true;
  }

  bool Bytes(PyObject* obj) {
    Py_ssize_t n = PyBytes_GET_SIZE(obj);
    if (n >= kBytesRefThreshold) {
      if constexpr (Sizing) {
        sizer.RefValue();
      } else {
        Ref<SharedBuffer> b =
            SharedBuffer::Copy(PyBytes_AS_STRING(obj), static_cast<size_t>(n));
        if (!b) {
          PyErr_NoMemory();
          return false;
        }
        builder->RefValue(Tag::kBytesRef, RefKind::kBuffer,
                          Ref<RefCounted>(std::move(b)));
      }
      return true;
    }
    if constexpr (Sizing) {
      sizer.Blob(static_cast<size_t>(n));
    } else {
      std::memcpy(builder->Bytes(static_cast<size_t>(n)),
                  PyBytes_AS_STRING(obj), static_cast<size_t>(n));
    }
    return true;
  }

  bool Tuple(PyObject* obj, int depth) {
    if (depth >= kMaxDepth) {
      if constexpr (Sizing) RaiseTooDeep(st_, path_);
      return false;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(obj);
    if constexpr (Sizing) sizer.Tuple(static_cast<size_t>(n));
    else builder->Tuple(static_cast<size_t>(n));
    if constexpr (Sizing) ++path_.depth;
    for (Py_ssize_t i = 0; i < n; ++i) {
      if constexpr (Sizing) path_.index[depth] = i;
      if (!Value(PyTuple_GET_ITEM(obj, i), depth + 1)) return false;
    }
    if constexpr (Sizing) --path_.depth;
    return true;
  }

  // A buffer exporter failed to export: say where it sits.
  void AddPathToError() {
    if (path_.empty()) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject* msg = PyObject_Str(value);
    if (msg != nullptr) {
      PyErr_Format(type, "%s: %U", path_.Render().c_str(), msg);
      Py_DECREF(msg);
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(tb);
    } else {
      PyErr_Restore(type, value, tb);
    }
  }

  ModuleState* st_;
  std::vector<Ref<SharedBuffer>>* copies_;
  size_t next_copy_ = 0;
  Path path_;
};

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
  Value Str(int kind, const uint8_t* p, size_t len) {
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
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p),
                                     static_cast<Py_ssize_t>(n));
  }
  Value Tuple(size_t n) { return PyTuple_New(static_cast<Py_ssize_t>(n)); }
  bool SetItem(Value& t, size_t i, Value item) {
    PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(i), item);
    return true;
  }
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

// The single-pass encoder, for the common case: a tree of exact built-in
// None, bool, int64-sized int, float, str, bytes and tuple whose encoding
// fits kFastBytes. It writes into a stack buffer in one walk; the message is
// one copy of it. Anything else (references, buffer exporters, subclasses,
// big ints, a value that is not shareable, a long encoding) makes it give up
// with nothing raised and nothing owned, and the two-pass encoder below
// redoes the value (and raises the precise error, with its place).
constexpr size_t kFastBytes = 512;

bool FastValue(BoundedWriter& w, PyObject* obj, int depth) {
  PyTypeObject* t = Py_TYPE(obj);
  if (t == &PyUnicode_Type) {
    size_t len = static_cast<size_t>(PyUnicode_GET_LENGTH(obj));
    int kind = PyUnicode_KIND(obj);
    uint8_t* dst = w.Str(kind, len);
    if (dst == nullptr) return false;
    std::memcpy(dst, PyUnicode_DATA(obj), len * static_cast<size_t>(kind));
    return true;
  }
  if (t == &PyLong_Type) {
    if (PyUnstable_Long_IsCompact(reinterpret_cast<PyLongObject*>(obj))) {
      return w.Int64(PyUnstable_Long_CompactValue(
          reinterpret_cast<PyLongObject*>(obj)));
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow != 0) return false;  // a big int: the two-pass encoder
    return w.Int64(v);
  }
  if (t == &PyTuple_Type) {
    if (depth >= kMaxDepth) return false;
    Py_ssize_t n = PyTuple_GET_SIZE(obj);
    if (!w.Tuple(static_cast<size_t>(n))) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      if (!FastValue(w, PyTuple_GET_ITEM(obj, i), depth + 1)) return false;
    }
    return true;
  }
  if (t == &PyFloat_Type) return w.Float(PyFloat_AS_DOUBLE(obj));
  if (t == &PyBytes_Type) {
    // No room check against kBytesRefThreshold needed: it exceeds kFastBytes.
    static_assert(kBytesRefThreshold > static_cast<Py_ssize_t>(kFastBytes));
    size_t n = static_cast<size_t>(PyBytes_GET_SIZE(obj));
    uint8_t* dst = w.Bytes(n);
    if (dst == nullptr) return false;
    std::memcpy(dst, PyBytes_AS_STRING(obj), n);
    return true;
  }
  if (obj == Py_None) return w.Scalar(Tag::kNone);
  if (t == &PyBool_Type) {
    return w.Scalar(obj == Py_True ? Tag::kTrue : Tag::kFalse);
  }
  return false;
}

Item EncodeMessage(ModuleState* st, PyObject* obj) {
  {
    alignas(16) uint8_t buf[kFastBytes];
    BoundedWriter w(buf, sizeof(buf));
    if (FastValue(w, obj, 0)) {
      MessagePtr m = MessageBuilder::CopyOf(w.written());
      if (!m) {
        PyErr_NoMemory();
        return Item();
      }
      return Item::FromMessage(std::move(m));
    }
  }
  std::vector<Ref<SharedBuffer>> copies;
  Encoder<true> sizing(st, &copies);
  if (!sizing.Value(obj, 0)) return Item();
  MessageBuilder builder(sizing.sizer.bytes(), sizing.sizer.refs());
  if (!builder.ok()) {
    PyErr_NoMemory();
    return Item();
  }
  Encoder<false> writing(st, &copies);
  writing.builder = &builder;
  if (!writing.Value(obj, 0)) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_SystemError, "xchannels: encoding failed");
    }
    return Item();
  }
  MessagePtr m = builder.Finish();
  if (!m) {
    PyErr_SetString(PyExc_SystemError,
                    "xchannels: message size mismatch (a bug: please report)");
    return Item();
  }
  return Item::FromMessage(std::move(m));
}

}  // namespace

Item Encode(ModuleState* st, PyObject* obj) {
  PyTypeObject* t = Py_TYPE(obj);
  if (t == &PyLong_Type) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow == 0) return Item::Int(v);
    return EncodeMessage(st, obj);
  }
  if (t == &PyFloat_Type) return Item::Float(PyFloat_AS_DOUBLE(obj));
  if (obj == Py_None) return Item::None();
  if (t == &PyBool_Type) return Item::Bool(obj == Py_True);
  // Exact containers and strings before the subclass checks below, which
  // walk the type's MRO.
  if (t == &PyTuple_Type || t == &PyUnicode_Type || t == &PyBytes_Type) {
    return EncodeMessage(st, obj);
  }
  if (t == st->SharedBufferType) {
    SharedBuffer* b = reinterpret_cast<PySharedBuffer*>(obj)->buf;
    b->AddRef();
    return Item::FromRef(Item::Kind::kBuffer, Ref<RefCounted>::Adopt(b));
  }
  if (IsChannel(st, obj)) {
    ItemChannel* c = reinterpret_cast<PyChannel*>(obj)->ch;
    c->AddRef();
    return Item::FromRef(Item::Kind::kChannel, Ref<RefCounted>::Adopt(c));
  }
  if (PyLong_Check(obj)) {
    // int subclasses (IntEnum, ...) arrive as int; bool was handled above.
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return Item();
    if (overflow == 0) return Item::Int(v);
    return EncodeMessage(st, obj);
  }
  if (PyFloat_Check(obj)) return Item::Float(PyFloat_AS_DOUBLE(obj));
  if (!PyUnicode_Check(obj) && !PyBytes_Check(obj) && !PyTuple_Check(obj) &&
      PyObject_CheckBuffer(obj)) {
    // A lone buffer exporter travels as a SharedBuffer item, no message.
    Ref<SharedBuffer> copy = CopyExporter(st, obj);
    if (!copy) return Item();
    return Item::FromRef(Item::Kind::kBuffer, Ref<RefCounted>(std::move(copy)));
  }
  return EncodeMessage(st, obj);
}

PyObject* Decode(ModuleState* st, Item&& item) {
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
      PyVisitor v{st};
      Decoder<PyVisitor> d(m->payload(), m->refs(), v);
      PyObject* out = d.Run();
      if (out == nullptr && !PyErr_Occurred()) {
        PyErr_Format(PyExc_SystemError, "xchannels: corrupt message (%s)",
                     std::string(DecodeErrorName(d.error())).c_str());
      }
      return out;
    }
    case Item::Kind::kEmpty:
      break;
  }
  PyErr_SetString(PyExc_SystemError, "xchannels: empty item");
  return nullptr;
}

bool IsShareable(ModuleState* st, PyObject* obj) {
  // The sizing pass is the deep check (exporters are exported, not copied).
  Encoder<true> check(st, nullptr);
  if (check.Value(obj, 0)) return true;
  PyErr_Clear();
  return false;
}

}  // namespace xchannels::py
