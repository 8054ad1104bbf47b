// bindings/values.cpp: Python objects -> Items and Messages, no pickle
// (pickle only on channels that opted in with fallback='pickle'); the
// sending half of the values room (values_decode.cpp builds the objects
// back; values_common.h is what the halves share).
//
// Encoding runs with the sender's GIL: one walk over the value tree
// (Encoder<true>) writes the wire format of core/include/xchannels/message.h
// into a MessageWriter (an inline buffer that spills to the heap), and the
// finished message is one exactly-sized allocation. A value that cannot
// travel raises before anything is enqueued, naming its place in the user's
// value. Top-level scalars and references skip the Message and travel inside
// the Item. Classify() is the one place that decides what kind
// of value an object is (encoder, is_shareable, typed channels).
//
// One exception to "nothing is shared with the sender": large bytes put by
// the main interpreter are lent, not copied (lent_bytes.h: LendBytes, and
// every receive of the main interpreter takes back what was returned).
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "lent_bytes.h"
#include "state.h"
#include "values_common.h"

namespace xchannels::py {
namespace {

// bytes of at least this size travel as a SharedBuffer reference instead of
// being copied into the message (keeps messages small; measured in
// benchmarks/python/bench_values.py).
constexpr Py_ssize_t kBytesRefThreshold = 64 * 1024;

// Where the walk is in the value tree, for error messages: a fixed stack
// (containers never nest deeper than kMaxDepth), so the hot path never
// allocates. Rendered from the user's value: "item [2]['name'][0]".
struct Step {
  enum Kind : uint8_t { kIndex, kKey, kValue, kMember } kind;
  Py_ssize_t index;
  PyObject* key;  // borrowed, for kValue (alive while the walk is there)
};

std::string KeyText(PyObject* key) {
  PyObject* r = PyObject_Repr(key);
  if (r == nullptr) {
    PyErr_Clear();
    return "?";
  }
  const char* text = PyUnicode_AsUTF8(r);
  std::string out = text != nullptr ? text : "?";
  Py_DECREF(r);
  if (out.size() > 40) out = out.substr(0, 37) + "...";
  return out;
}

std::string RenderPath(const Step* steps, int depth) {
  if (depth == 0) return "";
  std::string s = "item ";
  for (int d = 0; d < depth; ++d) {
    if (depth > 16 && d == 8) {  // a deep place: its start and its end
      s += "...(" + std::to_string(depth) + " levels)...";
      d = depth - 4;
    }
    const Step& st = steps[d];
    switch (st.kind) {
      case Step::kIndex:
        s += "[" + std::to_string(st.index) + "]";
        break;
      case Step::kValue:
        s += "[" + KeyText(st.key) + "]";
        break;
      case Step::kKey:
        s += ".keys()[" + std::to_string(st.index) + "]";
        break;
      case Step::kMember:
        s += "{#" + std::to_string(st.index) + "}";
        break;
    }
  }
  return s;
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

// numpy.generic in the type's MRO, found by name: xchannels never imports
// NumPy, and a NumPy scalar's type is NumPy's own.
bool IsNumpyScalarType(PyTypeObject* t) {
  PyObject* mro = t->tp_mro;
  if (mro == nullptr || !PyTuple_Check(mro)) return false;
  for (Py_ssize_t i = 1; i < PyTuple_GET_SIZE(mro); ++i) {
    auto* base = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, i));
    if (std::strcmp(base->tp_name, "numpy.generic") == 0) return true;
  }
  return false;
}

bool IsBuiltinKind(ValueKind k) {
  return k <= ValueKind::kFrozenSet;
}

const char* TagName(Tag t) {
  switch (t) {
    case Tag::kTuple: return "tuple";
    case Tag::kList: return "list";
    case Tag::kDict: return "dict";
    case Tag::kSet: return "set";
    case Tag::kFrozenSet: return "frozenset";
    default: return "value";
  }
}

// The encoder: one walk over the value tree, writing as it goes (Write) or
// only checking (is_shareable: exporters are exported, not copied; nothing
// is pickled). Python code can run during the walk (an __index__, a NumPy
// scalar's item(), a buffer export, a pickle) and may change a container
// being walked: every container is re-checked and a change raises
// RuntimeError, as iterating a changed dict does; the writer never writes
// past what it holds.
template <bool Write>
class Encoder {
 public:
  Encoder(ModuleState* st, MessageWriter* w, bool fallback)
      : st_(st), w_(w), fallback_(fallback) {}

  bool Value(PyObject* obj, int depth) { return ValueOf(obj, Classify(st_, obj), depth); }

  std::string Where(int depth) const { return RenderPath(path_, depth); }

 private:
  // An item of a container: exact scalars are written here, without a
  // recursive call (the hot loop of lists, dicts and tuples) and without
  // holding a reference (writing them runs no code that could drop them);
  // anything else goes through ValueOf, holding a reference when the
  // container is mutable (`hold`), since code run while encoding it could
  // remove it from the container.
  [[gnu::always_inline]] bool Item(PyObject* item, int depth, bool hold) {
    ValueClass c = Classify(st_, item);
    if (c.exact) {
      switch (c.kind) {
        case ValueKind::kStr: return Str(item);
        case ValueKind::kInt: return Long(item);
        case ValueKind::kFloat: return Ok(!Write || w_->Float(PyFloat_AS_DOUBLE(item)));
        case ValueKind::kNone: return Ok(!Write || w_->Scalar(Tag::kNone));
        case ValueKind::kBool:
          return Ok(!Write || w_->Scalar(item == Py_True ? Tag::kTrue : Tag::kFalse));
        default: break;
      }
    }
    if (!hold) return ValueOf(item, c, depth);
    Py_INCREF(item);
    bool ok = ValueOf(item, c, depth);
    Py_DECREF(item);
    return ok;
  }

  bool ValueOf(PyObject* obj, ValueClass c, int depth) {
    if (!c.exact && fallback_ && IsBuiltinKind(c.kind)) {
      // The subclass rule: on a channel with the pickle fallback, a
      // subclass of a built-in keeps its class (pickled).
      return Pickle(obj, depth);
    }
    switch (c.kind) {
      case ValueKind::kNone:
        return Ok(!Write || w_->Scalar(Tag::kNone));
      case ValueKind::kBool:
        return Ok(!Write || w_->Scalar(obj == Py_True ? Tag::kTrue : Tag::kFalse));
      case ValueKind::kInt:
        return Long(obj);
      case ValueKind::kFloat:
        return Ok(!Write || w_->Float(PyFloat_AS_DOUBLE(obj)));
      case ValueKind::kComplex: {
        Py_complex v = reinterpret_cast<PyComplexObject*>(obj)->cval;
        return Ok(!Write || w_->Complex(v.real, v.imag));
      }
      case ValueKind::kStr:
        return Str(obj);
      case ValueKind::kBytes:
        return Bytes(obj);
      case ValueKind::kTuple:
        return Tuple(obj, depth);
      case ValueKind::kList:
        return List(obj, depth);
      case ValueKind::kDict:
        return c.exact ? Dict(obj, depth) : Mapping(obj, depth);
      case ValueKind::kSet:
      case ValueKind::kFrozenSet:
        return Set(obj, c.kind == ValueKind::kSet ? Tag::kSet : Tag::kFrozenSet, depth);
      case ValueKind::kSharedBuffer: {
        if constexpr (Write) {
          SharedBuffer* b = reinterpret_cast<PySharedBuffer*>(obj)->buf;
          b->AddRef();
          return Ok(w_->RefValue(Tag::kBufferRef, RefKind::kBuffer, Ref<RefCounted>::Adopt(b)));
        }
        return true;
      }
      case ValueKind::kChannel: {
        if constexpr (Write) {
          ItemChannel* ch = reinterpret_cast<PyChannel*>(obj)->ch;
          ch->AddRef();
          return Ok(w_->RefValue(Tag::kChannelRef, RefKind::kChannel, Ref<RefCounted>::Adopt(ch)));
        }
        return true;
      }
      case ValueKind::kNumpyScalar:
        return NumpyScalar(obj, depth);
      case ValueKind::kIndex: {
        PyObject* i = PyNumber_Index(obj);
        if (i == nullptr) {
          ChainAs(st_->NotShareableError, [&] { return Where(depth); },
                  std::string(Py_TYPE(obj)->tp_name) + ".__index__() failed");
          return false;
        }
        bool ok = Long(i);
        Py_DECREF(i);
        return ok;
      }
      case ValueKind::kExporter:
        return Exporter(obj, depth);
      case ValueKind::kOther:
        if (fallback_) return Pickle(obj, depth);
        RaiseNotShareable(obj, depth);
        return false;
    }
    RaiseNotShareable(obj, depth);
    return false;
  }

  // A failed write: memory ran out, or the encoding passed the size limit.
  bool Ok(bool written) {
    if (written) return true;
    if (w_ != nullptr && w_->too_large()) {
      PyErr_Format(st_->NotShareableError,
                   "the value's encoding is larger than the limit of %llu bytes "
                   "(send large data as bytes or a SharedBuffer)",
                   static_cast<unsigned long long>(kMaxPayloadBytes));
    } else {
      PyErr_NoMemory();
    }
    return false;
  }

  void RaiseNotShareable(PyObject* obj, int depth) {
    std::string where = Where(depth);
    if (!where.empty()) where += ": ";
    PyErr_Format(st_->NotShareableError,
                 "%s%s is not shareable (pass fallback='pickle' to send it pickled)",
                 where.c_str(), Py_TYPE(obj)->tp_name);
  }

  bool Enter(int depth, Tag t) {
    if (depth < kMaxDepth) return true;
    std::string where = Where(depth);
    if (!where.empty()) where += ": ";
    PyErr_Format(st_->NotShareableError,
                 "%s%s nested deeper than %d levels is not shareable "
                 "(does it contain itself?)",
                 where.c_str(), TagName(t), kMaxDepth);
    return false;
  }

  bool Changed(PyObject* obj, int depth) {
    std::string where = Where(depth);
    if (!where.empty()) where += ": ";
    PyErr_Format(PyExc_RuntimeError, "%s%s changed size while it was being sent",
                 where.c_str(), Py_TYPE(obj)->tp_name);
    return false;
  }

  bool Long(PyObject* obj) {
    if (Py_IS_TYPE(obj, &PyLong_Type) &&
        PyUnstable_Long_IsCompact(reinterpret_cast<PyLongObject*>(obj))) {
      return Ok(!Write || w_->Int64(PyUnstable_Long_CompactValue(
                              reinterpret_cast<PyLongObject*>(obj))));
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return false;
    if (overflow == 0) return Ok(!Write || w_->Int64(v));
    if constexpr (Write) {
      size_t n = BigIntBytes(obj);
      uint8_t* dst = w_->BigInt(n);
      if (dst == nullptr) return Ok(false);
      return WriteBigInt(obj, dst, n);
    }
    return true;
  }

  bool Str(PyObject* obj) {
    if constexpr (Write) {
      int kind = PyUnicode_KIND(obj);
      size_t len = static_cast<size_t>(PyUnicode_GET_LENGTH(obj));
      uint8_t* dst = w_->Str(kind, len);
      if (dst == nullptr) return Ok(false);
      std::memcpy(dst, PyUnicode_DATA(obj), len * static_cast<size_t>(kind));
    }
    return true;
  }

  bool Bytes(PyObject* obj) {
    if constexpr (Write) {
      Py_ssize_t n = PyBytes_GET_SIZE(obj);
      if (n >= kBytesRefThreshold) {
        Ref<SharedBuffer> b =
            st_->main_interpreter && PyBytes_CheckExact(obj)
                ? LendBytes(obj)
                : SharedBuffer::Copy(PyBytes_AS_STRING(obj), static_cast<size_t>(n));
        if (!b) return Ok(false);
        return Ok(w_->RefValue(Tag::kBytesRef, RefKind::kBuffer, Ref<RefCounted>(std::move(b))));
      }
      uint8_t* dst = w_->Bytes(static_cast<size_t>(n));
      if (dst == nullptr) return Ok(false);
      std::memcpy(dst, PyBytes_AS_STRING(obj), static_cast<size_t>(n));
    }
    return true;
  }

  bool Header(Tag t, Py_ssize_t n) {
    return Ok(!Write || w_->Container(t, static_cast<size_t>(n)));
  }

  bool Tuple(PyObject* obj, int depth) {
    if (!Enter(depth, Tag::kTuple)) return false;
    Py_ssize_t n = PyTuple_GET_SIZE(obj);  // immutable: nothing to re-check
    if (!Header(Tag::kTuple, n)) return false;
    path_[depth].kind = Step::kIndex;
    for (Py_ssize_t i = 0; i < n; ++i) {
      path_[depth].index = i;
      if (!Item(PyTuple_GET_ITEM(obj, i), depth + 1, /*hold=*/false)) return false;
    }
    return true;
  }

  bool List(PyObject* obj, int depth) {
    if (!Enter(depth, Tag::kList)) return false;
    Py_ssize_t n = PyList_GET_SIZE(obj);
    if (!Header(Tag::kList, n)) return false;
    path_[depth].kind = Step::kIndex;
    for (Py_ssize_t i = 0; i < n; ++i) {
      if (i >= PyList_GET_SIZE(obj)) return Changed(obj, depth);
      path_[depth].index = i;
      if (!Item(PyList_GET_ITEM(obj, i), depth + 1, /*hold=*/true)) return false;
    }
    if (PyList_GET_SIZE(obj) != n) return Changed(obj, depth);
    return true;
  }

  bool Pair(PyObject* key, PyObject* value, Py_ssize_t i, int depth) {
    path_[depth] = Step{Step::kKey, i, nullptr};
    if (Py_IS_TYPE(key, &PyUnicode_Type) || Py_IS_TYPE(key, &PyLong_Type)) {
      // The common keys: written without holding anything.
      if (!Item(key, depth + 1, /*hold=*/false)) return false;
      path_[depth] = Step{Step::kValue, i, key};
      // The value may run code that drops the pair: hold the key too (the
      // path names it).
      Py_INCREF(key);
      bool ok = Item(value, depth + 1, /*hold=*/true);
      Py_DECREF(key);
      return ok;
    }
    Py_INCREF(key);
    Py_INCREF(value);
    bool ok = Value(key, depth + 1);
    if (ok) {
      path_[depth] = Step{Step::kValue, i, key};
      ok = Value(value, depth + 1);
    }
    Py_DECREF(key);
    Py_DECREF(value);
    return ok;
  }

  bool Dict(PyObject* obj, int depth) {
    if (!Enter(depth, Tag::kDict)) return false;
    Py_ssize_t n = PyDict_GET_SIZE(obj);
    if (!Header(Tag::kDict, n)) return false;
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    while (PyDict_Next(obj, &pos, &key, &value)) {
      if (i == n) return Changed(obj, depth);
      if (!Pair(key, value, i, depth)) return false;
      ++i;
    }
    if (i != n || PyDict_GET_SIZE(obj) != n) return Changed(obj, depth);
    return true;
  }

  // A dict subclass (OrderedDict, defaultdict, Counter): its own items(),
  // which keeps an OrderedDict's order.
  bool Mapping(PyObject* obj, int depth) {
    if (!Enter(depth, Tag::kDict)) return false;
    PyObject* items = PyMapping_Items(obj);
    if (items == nullptr) return false;
    Py_ssize_t n = PyList_GET_SIZE(items);
    bool ok = Header(Tag::kDict, n);
    for (Py_ssize_t i = 0; ok && i < n; ++i) {
      PyObject* kv = PyList_GET_ITEM(items, i);
      if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
        PyErr_Format(st_->NotShareableError, "%s.items() did not give pairs",
                     Py_TYPE(obj)->tp_name);
        ok = false;
        break;
      }
      ok = Pair(PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1), i, depth);
    }
    Py_DECREF(items);
    return ok;
  }

  bool Set(PyObject* obj, Tag tag, int depth) {
    if (!Enter(depth, tag)) return false;
    Py_ssize_t n = PySet_GET_SIZE(obj);
    if (!Header(tag, n)) return false;
    PyObject* it = PyObject_GetIter(obj);
    if (it == nullptr) return false;
    Py_ssize_t i = 0;
    bool ok = true;
    PyObject* item;
    while (ok && (item = PyIter_Next(it)) != nullptr) {
      if (i == n) {
        Py_DECREF(item);
        ok = Changed(obj, depth);
        break;
      }
      path_[depth] = Step{Step::kMember, i, nullptr};
      ok = Item(item, depth + 1, /*hold=*/false);  // the iterator holds it
      Py_DECREF(item);
      ++i;
    }
    Py_DECREF(it);
    if (!ok || PyErr_Occurred()) return false;
    if (i != n) return Changed(obj, depth);
    return true;
  }

  bool NumpyScalar(PyObject* obj, int depth) {
    // The Python scalar NumPy gives for it: np.int64 -> int, np.float32 ->
    // float (exact), np.bool_ -> bool, np.complex64 -> complex, np.str_ ->
    // str. A .item() that is not a travelling value (datetime64 gives a
    // datetime) or is NumPy's own again (longdouble: a float would lose
    // precision) is refused, never rounded.
    PyObject* v = PyObject_CallMethod(obj, "item", nullptr);
    if (v == nullptr) {
      ChainAs(st_->NotShareableError, [&] { return Where(depth); },
              std::string(Py_TYPE(obj)->tp_name) + ".item() failed");
      return false;
    }
    ValueClass c = Classify(st_, v);
    bool ok;
    if (c.kind == ValueKind::kNumpyScalar || c.kind == ValueKind::kOther ||
        !IsBuiltinKind(c.kind)) {
      std::string where = Where(depth);
      if (!where.empty()) where += ": ";
      if (fallback_) {
        ok = Pickle(obj, depth);
      } else {
        PyErr_Format(st_->NotShareableError,
                     "%s%s is not shareable: its .item() is %s, which would not be exact "
                     "or does not travel (pass fallback='pickle' to send it pickled)",
                     where.c_str(), Py_TYPE(obj)->tp_name, Py_TYPE(v)->tp_name);
        ok = false;
      }
    } else {
      ok = Value(v, depth);
    }
    Py_DECREF(v);
    return ok;
  }

  bool Exporter(PyObject* obj, int depth) {
    if constexpr (Write) {
      Ref<SharedBuffer> copy = CopyExporter(st_, obj);
      if (!copy) {
        ChainAs(st_->NotShareableError, [&] { return Where(depth); },
                std::string(Py_TYPE(obj)->tp_name) + " cannot be shared as a buffer");
        return false;
      }
      return Ok(w_->RefValue(Tag::kBufferRef, RefKind::kBuffer, Ref<RefCounted>(std::move(copy))));
    } else {
      Py_buffer view;
      if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0) return false;
      PyBuffer_Release(&view);
      return true;
    }
  }

  bool Pickle(PyObject* obj, int depth) {
    if constexpr (!Write) {
      RaiseNotShareable(obj, depth);
      return false;
    } else {
      if (!LoadPickle(st_)) return false;
      PyObject* data = PyObject_CallFunction(st_->pickle_dumps, "Oi", obj, 5);
      if (data == nullptr) {
        ChainAs(st_->NotShareableError, [&] { return Where(depth); },
                std::string(Py_TYPE(obj)->tp_name) + " cannot be pickled");
        return false;
      }
      if (!PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "pickle.dumps did not return bytes");
        return false;
      }
      size_t n = static_cast<size_t>(PyBytes_GET_SIZE(data));
      uint8_t* dst = w_->Pickled(n);
      if (dst != nullptr) std::memcpy(dst, PyBytes_AS_STRING(data), n);
      Py_DECREF(data);
      return Ok(dst != nullptr);
    }
  }

  ModuleState* st_;
  MessageWriter* w_;
  bool fallback_;
  Step path_[kMaxDepth];
};

Item EncodeMessage(ModuleState* st, PyObject* obj, bool fallback) {
  MessageWriter w;
  Encoder<true> enc(st, &w, fallback);
  if (!enc.Value(obj, 0)) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_SystemError, "xchannels: encoding failed");
    }
    return Item();
  }
  MessagePtr m = w.Finish();
  if (!m) {
    PyErr_NoMemory();
    return Item();
  }
  return Item::FromMessage(std::move(m));
}

}  // namespace

// Imports pickle's dumps and loads into the state on first use.
bool LoadPickle(ModuleState* st) {
  if (st->pickle_dumps != nullptr) return true;
  PyObject* pickle = PyImport_ImportModule("pickle");
  if (pickle == nullptr) return false;
  PyObject* dumps = PyObject_GetAttrString(pickle, "dumps");
  PyObject* loads = dumps != nullptr ? PyObject_GetAttrString(pickle, "loads") : nullptr;
  Py_DECREF(pickle);
  if (loads == nullptr) {
    Py_XDECREF(dumps);
    return false;
  }
  // The import may have let another thread of this interpreter load them
  // first: keep one pair (PublishOnce), never leak the other.
  PublishOnce(&st->pickle_dumps, dumps);
  PublishOnce(&st->pickle_loads, loads);
  return true;
}

ValueClass ClassifyOther(ModuleState* st, PyObject* obj) {
  // Classify() (state.h) has tried the commonest exact types already.
  PyTypeObject* t = Py_TYPE(obj);
  if (t == &PyComplex_Type) return {ValueKind::kComplex, true};
  if (t == &PySet_Type) return {ValueKind::kSet, true};
  if (t == &PyFrozenSet_Type) return {ValueKind::kFrozenSet, true};
  if (t == st->SharedBufferType) return {ValueKind::kSharedBuffer, true};
  if (t == st->ChannelType) return {ValueKind::kChannel, true};
  // NumPy scalars before the subclass checks: np.float64 is a float
  // subclass, np.str_ a str subclass, and all of them export buffers.
  if (IsNumpyScalarType(t)) return {ValueKind::kNumpyScalar, true};
  // Subclasses of the built-ins travel as the built-in (or pickled, on a
  // channel with the fallback): bool cannot be subclassed.
  if (PyLong_Check(obj)) return {ValueKind::kInt, false};
  if (PyFloat_Check(obj)) return {ValueKind::kFloat, false};
  if (PyUnicode_Check(obj)) return {ValueKind::kStr, false};
  if (PyTuple_Check(obj)) return {ValueKind::kTuple, false};
  if (PyList_Check(obj)) return {ValueKind::kList, false};
  if (PyDict_Check(obj)) return {ValueKind::kDict, false};
  if (PyBytes_Check(obj)) return {ValueKind::kBytes, false};
  if (PyComplex_Check(obj)) return {ValueKind::kComplex, false};
  if (PyFrozenSet_Check(obj)) return {ValueKind::kFrozenSet, false};
  if (PySet_Check(obj)) return {ValueKind::kSet, false};
  if (IsChannel(st, obj)) return {ValueKind::kChannel, true};
  // Buffer exporters (bytearray, memoryview, array.array, NumPy arrays,
  // which also have __index__) travel as a SharedBuffer copy.
  if (PyObject_CheckBuffer(obj)) return {ValueKind::kExporter, true};
  // Integers of other libraries: __index__ is the lossless conversion to
  // int (every numbers.Integral has it; Fraction and Decimal do not).
  if (t->tp_as_number != nullptr && t->tp_as_number->nb_index != nullptr) {
    return {ValueKind::kIndex, true};
  }
  return {ValueKind::kOther, true};
}

Item Encode(ModuleState* st, PyObject* obj, bool pickle_fallback) {
  ValueClass c = Classify(st, obj);
  // Top-level scalars and references travel inside the Item, no message.
  if (c.exact || !pickle_fallback) {
    switch (c.kind) {
      case ValueKind::kInt: {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (v == -1 && PyErr_Occurred()) return Item();
        if (overflow == 0) return Item::Int(v);
        break;
      }
      case ValueKind::kFloat:
        return Item::Float(PyFloat_AS_DOUBLE(obj));
      case ValueKind::kNone:
        return Item::None();
      case ValueKind::kBool:
        return Item::Bool(obj == Py_True);
      case ValueKind::kSharedBuffer: {
        SharedBuffer* b = reinterpret_cast<PySharedBuffer*>(obj)->buf;
        b->AddRef();
        return Item::FromRef(Item::Kind::kBuffer, Ref<RefCounted>::Adopt(b));
      }
      case ValueKind::kChannel: {
        ItemChannel* ch = reinterpret_cast<PyChannel*>(obj)->ch;
        ch->AddRef();
        return Item::FromRef(Item::Kind::kChannel, Ref<RefCounted>::Adopt(ch));
      }
      case ValueKind::kExporter: {
        // A lone buffer exporter travels as a SharedBuffer item.
        Ref<SharedBuffer> copy = CopyExporter(st, obj);
        if (!copy) {
          ChainAs(st->NotShareableError, At(""),
                  std::string(Py_TYPE(obj)->tp_name) + " cannot be shared as a buffer");
          return Item();
        }
        return Item::FromRef(Item::Kind::kBuffer, Ref<RefCounted>(std::move(copy)));
      }
      default:
        break;
    }
  }
  return EncodeMessage(st, obj, pickle_fallback);
}

bool IsShareable(ModuleState* st, PyObject* obj) {
  // The encoder's walk without writing (exporters are exported, not
  // copied; nothing is pickled).
  Encoder<false> check(st, nullptr, false);
  if (check.Value(obj, 0)) return true;
  PyErr_Clear();
  return false;
}

bool EncodeFlat(ModuleState* st, PyObject* obj, bool pickle_fallback,
                ProcessChannel& ch, Item* item, OutRecord* out) {
  *item = Encode(st, obj, pickle_fallback);
  if (item->kind() == Item::Kind::kEmpty) return false;
  std::string error;
  bool ok = false;
  bool oom = false;
  try {
    ok = ch.Prepare(*item, out, &error, /*inline_only=*/true);
  } catch (const std::bad_alloc&) {
    oom = true;
  }
  if (ok && out->head.empty()) {
    // A large value: its memfd is written without the GIL.
    Py_BEGIN_ALLOW_THREADS
    try {
      ok = ch.Prepare(*item, out, &error);
    } catch (const std::bad_alloc&) {
      oom = true;
    }
    Py_END_ALLOW_THREADS
  }
  if (oom) {
    PyErr_NoMemory();
    return false;
  }
  if (!ok && !error.empty()) {
    PyErr_Format(PyExc_OSError,
                 "ProcessChannel: no memfd for a large value: %s",
                 error.c_str());
    return false;
  }
  if (!ok) {
    PyErr_SetString(st->NotShareableError,
                    "a Channel cannot travel to another process: it lives in "
                    "this process's memory (send values, or use a "
                    "ProcessChannel)");
    return false;
  }
  return true;
}

}  // namespace xchannels::py
