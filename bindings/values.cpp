// bindings/values.cpp: Python objects <-> Items and Messages, no pickle
// (pickle only on channels that opted in with fallback='pickle').
//
// Encoding runs with the sender's GIL: one walk over the value tree
// (Encoder<true>) writes the wire format of core/include/xchannels/message.h
// into a MessageWriter (an inline buffer that spills to the heap), and the
// finished message is one exactly-sized allocation. A value that cannot
// travel raises before anything is enqueued, naming its place in the user's
// value. Top-level scalars and references skip the Message and travel inside
// the Item. Decoding runs with the receiver's GIL and builds new objects
// owned by the receiver. Classify() is the one place that decides what kind
// of value an object is (encoder, is_shareable, typed channels).
//
// One exception to "nothing is shared with the sender": large bytes put by
// the main interpreter are lent, not copied (see Loans below).
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "state.h"
#include "xchannels/detail/mutex.h"

namespace xchannels::py {
namespace {

// ---- lent bytes ---------------------------------------------------------------
//
// A bytes object of kBytesRefThreshold bytes or more, put by the main
// interpreter, is lent instead of copied: its SharedBuffer points into the
// object, which holds one extra reference until the buffer goes. bytes are
// immutable (and resizing needs a reference count of 1), so the receiver
// reads the same bytes a copy would hold, without the main interpreter's
// GIL. This saves the copy and, above all, the page faults of fresh memory
// when many large payloads are in flight (a Pool map of 48 x 1 MiB: the
// caller's 48 MiB of fresh blocks cost about 24 ms of faults).
//
// Giving the reference back needs the main interpreter's GIL. The last
// holder of the buffer is often a worker thread, so:
//   - on a thread that holds the main interpreter's GIL: Py_DECREF at once;
//   - elsewhere: the object joins the Loans list, under a mutex of its own,
//     and nothing else happens on that thread: no call into CPython (a
//     Py_AddPendingCall may release the caller's GIL on 3.13, mid-way
//     through whatever it is doing). The main interpreter drops the list's
//     references whenever one of its threads lends, receives (Decode,
//     DecodeFlat: get, get_many, get_async, select) or returns from a wait
//     of a blocking call (a main thread parked in get() at least every
//     250 ms), and when its module goes.
// Only exact bytes are lent: their deallocation runs no Python code, so a
// decref inside a channel operation is safe. Sub-interpreters copy: their
// objects cannot outlive them, and nothing would drain their list once they
// are gone. Once the main interpreter's last module state is gone (at
// finalization), returned objects are left alone: the process is exiting.
// fork(): the list's mutex is taken around it (pthread_atfork), so the
// child never inherits it locked.
//
// That mutex is a pthread mutex that the child makes anew, not an
// absl::Mutex: absl's Unlock in a child whose parent had another thread
// waiting on the mutex at the fork goes to wake that thread, which the child
// does not have, and spun forever on an internal lock (test_values.py's
// fork test hung in a fresh-clone make test, and in 1 of 26 runs of its
// script).
class ABSL_LOCKABLE ForkSafeMutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_mutex_lock(&mu_); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { pthread_mutex_unlock(&mu_); }
  // In a fork() child, for the mutex the forking thread held across fork().
  void RemakeInChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    pthread_mutex_init(&mu_, nullptr);
  }

 private:
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
};

class ABSL_SCOPED_LOCKABLE ForkSafeLock {
 public:
  explicit ForkSafeLock(ForkSafeMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ~ForkSafeLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  ForkSafeLock(const ForkSafeLock&) = delete;
  ForkSafeLock& operator=(const ForkSafeLock&) = delete;

 private:
  ForkSafeMutex* const mu_;
};

class Loans {
 public:
  // Any thread, any GIL or none. Never calls into CPython.
  void Give(PyObject* obj) noexcept {
    ForkSafeLock lock(&mu_);
    if (users_ == 0) return;  // the main interpreter is gone: exiting
    try {
      returned_.push_back(obj);
    } catch (...) {
      return;  // out of memory: keep the object rather than crash
    }
    waiting_.store(true, std::memory_order_release);
  }
  // The main interpreter, GIL held.
  void Drain() {
    if (!waiting_.load(std::memory_order_acquire)) return;  // the common case
    std::vector<PyObject*> out;
    {
      ForkSafeLock lock(&mu_);
      waiting_.store(false, std::memory_order_relaxed);
      out.swap(returned_);
    }
    for (PyObject* obj : out) Py_DECREF(obj);
  }
  // A module state of the main interpreter is made / goes (GIL held).
  void Open() {
    ForkSafeLock lock(&mu_);
    ++users_;
  }
  void Close() {
    Drain();
    ForkSafeLock lock(&mu_);
    if (users_ > 0 && --users_ == 0) {
      waiting_.store(false, std::memory_order_relaxed);
      returned_.clear();  // only objects returned since the Drain: left
    }
  }
  size_t PendingForTesting() {
    ForkSafeLock lock(&mu_);
    return returned_.size();
  }
  void BeforeFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.Lock(); }
  void AfterForkParent() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.Unlock(); }
  void AfterForkChild() { mu_.RemakeInChild(); }

 private:
  ForkSafeMutex mu_;
  std::atomic<bool> waiting_{false};  // returned_ may be non-empty
  std::vector<PyObject*> returned_ ABSL_GUARDED_BY(mu_);
  int users_ ABSL_GUARDED_BY(mu_) = 0;  // live main-interpreter module states
};

Loans& TheLoans() {
  static Loans* loans = [] {
    auto* l = new Loans();  // never destroyed: safe at exit
    pthread_atfork([] { TheLoans().BeforeFork(); },
                   [] { TheLoans().AfterForkParent(); },
                   [] { TheLoans().AfterForkChild(); });
    return l;
  }();
  return *loans;
}

std::atomic<int64_t> g_lent{0};  // live lent objects, for tests

PyThreadState* AttachedThreadState() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

void ReturnLoan(void* context) noexcept {
  auto* obj = static_cast<PyObject*>(context);
  g_lent.fetch_sub(1, std::memory_order_relaxed);
  PyThreadState* ts = AttachedThreadState();
  if (ts != nullptr &&
      PyThreadState_GetInterpreter(ts) == PyInterpreterState_Main()) {
    Py_DECREF(obj);  // exact bytes: frees memory, runs no Python code
    return;
  }
  TheLoans().Give(obj);
}

// A SharedBuffer over the exact bytes `obj` (main interpreter, GIL held).
Ref<SharedBuffer> LendBytes(PyObject* obj) {
  TheLoans().Drain();
  Py_INCREF(obj);
  Ref<SharedBuffer> b = SharedBuffer::Borrow(
      PyBytes_AS_STRING(obj), static_cast<size_t>(PyBytes_GET_SIZE(obj)),
      &ReturnLoan, obj);
  if (!b) {
    Py_DECREF(obj);
    return b;
  }
  g_lent.fetch_add(1, std::memory_order_relaxed);
  return b;
}


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

// Replaces the pending exception by `cls("<where>: <what>: <original>")`
// with the original as __cause__. MemoryError is left alone, and so is
// what is not an Exception (KeyboardInterrupt, SystemExit): they are not
// about the value.
//
// `where` is a callable giving the place: rendering it may call repr() on
// a dict key, which runs Python code and must not run with an exception
// set (a Py_DEBUG build asserts, and the key's repr could clear or replace
// the pending exception), so it is called only once the original is
// fetched.
template <class Where>
void ChainAs(PyObject* cls, Where&& where, const std::string& what) {
  if (PyErr_Occurred() && (!PyErr_ExceptionMatches(PyExc_Exception) ||
                           PyErr_ExceptionMatches(PyExc_MemoryError))) {
    return;
  }
  PyObject* cause = PyErr_GetRaisedException();
  // From here on no exception is set: repr() and str() may run.
  std::string place = where();
  PyObject* text = cause != nullptr ? PyObject_Str(cause) : nullptr;
  if (text == nullptr) PyErr_Clear();
  const char* msg = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
  if (msg == nullptr) {
    PyErr_Clear();
    msg = "";
  }
  std::string full = place.empty() ? what : place + ": " + what;
  if (msg[0] != '\0') full += std::string(": ") + msg;
  Py_XDECREF(text);
  PyErr_SetString(cls, full.c_str());
  if (cause != nullptr) {
    PyObject* exc = PyErr_GetRaisedException();
    PyException_SetCause(exc, cause);  // steals cause
    PyErr_SetRaisedException(exc);
  }
}

// A place known up front (no Python code to run).
inline auto At(std::string where) {
  return [w = std::move(where)] { return w; };
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
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p),
                                     static_cast<Py_ssize_t>(n));
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

}  // namespace

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

namespace {

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

bool IsShareable(ModuleState* st, PyObject* obj) {
  // The encoder's walk without writing (exporters are exported, not
  // copied; nothing is pickled).
  Encoder<false> check(st, nullptr, false);
  if (check.Value(obj, 0)) return true;
  PyErr_Clear();
  return false;
}

bool EncodeFlat(ModuleState* st, PyObject* obj, bool pickle_fallback,
                Item* item, RecordBuffer* head,
                std::span<const uint8_t>* payload) {
  *item = Encode(st, obj, pickle_fallback);
  if (item->kind() == Item::Kind::kEmpty) return false;
  if (!FlattenItem(*item, head, payload)) {
    PyErr_SetString(st->NotShareableError,
                    "a Channel cannot travel to another process: it lives in "
                    "this process's memory (send values, or use a "
                    "ProcessChannel)");
    return false;
  }
  return true;
}

PyObject* DecodeFlat(ModuleState* st, std::span<const uint8_t> record,
                     bool allow_pickle) {
  if (st->main_interpreter) DrainLoans();  // as in Decode
  FlatItem flat;
  bool oom = false;
  if (!UnflattenItem(record, &flat, &oom)) {
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

// ---- lent bytes: the module's side (see Loans) ------------------------------

void OpenLoans() { TheLoans().Open(); }

void CloseLoans() { TheLoans().Close(); }

void DrainLoans() { TheLoans().Drain(); }

int64_t LentForTesting() { return g_lent.load(std::memory_order_relaxed); }

size_t ReturnedForTesting() { return TheLoans().PendingForTesting(); }

}  // namespace xchannels::py
