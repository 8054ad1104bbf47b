// bindings/state.h: the per-interpreter module state and the declarations
// the binding files share.
//
// Every interpreter that imports xchannels._xchannels gets its own
// ModuleState, created in the module body (module.cpp's ModuleExec, run
// once per interpreter). Nothing here is ever a C++ static: Python objects belong to
// one interpreter. The module's state slot holds the ModuleState; each heap
// type made from the module keeps the module alive (PyType_FromModuleAndSpec),
// and each instance its type, so the state outlives every instance. A type
// finds it with PyType_GetModuleByDef, a module function through `self`.
#ifndef XCHANNELS_BINDINGS_STATE_H_
#define XCHANNELS_BINDINGS_STATE_H_

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <string>
#include <vector>

#include "xchannels/channel.h"
#include "xchannels/registry.h"
#include "xchannels/select.h"
#include "xchannels/item.h"
#include "xchannels/process_channel.h"
#include "xchannels/shared_buffer.h"

#include "args.h"
#include "errors.h"
#include "lent_bytes.h"  // BlockingCall drains the loans

namespace xchannels::py {

using ItemChannel = Channel<Item>;

struct TypeSpec;  // typespec.h

struct ModuleState {
  // Exceptions (new references, owned).
  PyObject* ChannelError = nullptr;
  PyObject* ChannelClosed = nullptr;
  PyObject* ChannelEmpty = nullptr;
  PyObject* ChannelFull = nullptr;
  PyObject* ChannelNotFoundError = nullptr;
  PyObject* NotShareableError = nullptr;
  // Heap types (borrowed: the module owns them, and they hold the module,
  // so they live as long as this state).
  PyTypeObject* SharedBufferType = nullptr;
  PyTypeObject* ChannelType = nullptr;
  PyTypeObject* AioHubType = nullptr;     // aio.cpp
  PyTypeObject* AioWaiterType = nullptr;  // aio.cpp
  PyTypeObject* ProcessChannelType = nullptr;  // process_channel.cpp
  // Cached helpers for rebuilding type specs (owned).
  PyObject* UnionType = nullptr;  // types.UnionType
  PyObject* aio = nullptr;  // xchannels._aio, imported on first use (owned)
  // pickle.dumps / pickle.loads, imported on first use by the fallback
  // (owned).
  PyObject* pickle_dumps = nullptr;
  PyObject* pickle_loads = nullptr;
  // Short ASCII dict keys decoded lately (values.cpp): a stream of records
  // repeats its keys, and a cached key costs no allocation and keeps its
  // hash. Owned references; allocated on first use.
  static constexpr size_t kKeyCacheSlots = 512;
  PyObject** key_cache = nullptr;
  bool main_interpreter = false;
  bool loans_open = false;  // this state counts in the lent-bytes users

  ~ModuleState();
  // The module's m_traverse / m_clear: visits every owned reference; drops
  // the caches (made again on use), which is what may lead back to the
  // module.
  int Traverse(visitproc visit, void* arg) const;
  void ClearCaches();
};

// ---- SharedBuffer (shared_buffer.cpp) --------------------------------------
struct PySharedBuffer {
  PyObject_HEAD
  ModuleState* state;
  SharedBuffer* buf;  // one reference, owned
  Py_ssize_t* shape;  // ndim entries, for the buffer protocol
  Py_ssize_t* strides;
  int ndim;
  Py_hash_t hash;     // -1 until computed
  PyObject* weakreflist;
};
bool InitSharedBufferType(PyObject* module, ModuleState* st);
// Wraps a reference (taken over) in a new Python SharedBuffer.
PyObject* WrapSharedBuffer(ModuleState* st, Ref<SharedBuffer> buf);
// Copies any buffer exporter once into a SharedBuffer (C-contiguous, format,
// itemsize and shape kept); `in_file`: into a sealed memfd (mem_file.h).
// Sets an exception and returns nullptr on failure.
Ref<SharedBuffer> CopyExporter(ModuleState* st, PyObject* obj,
                               bool in_file = false);
inline bool IsSharedBuffer(ModuleState* st, PyObject* o) {
  return Py_TYPE(o) == st->SharedBufferType;
}

// ---- Channel (channel.cpp) --------------------------------------------------
struct PyChannel {
  PyObject_HEAD
  ModuleState* state;
  ItemChannel* ch;  // one reference, owned
  std::shared_ptr<const TypeSpec>* spec;  // nullptr when untyped
  bool pickle;  // fallback='pickle': what does not travel natively is pickled
  PyObject* weakreflist;
};
bool InitChannelType(PyObject* module, ModuleState* st);
// Raises join()'s TimeoutError (the blocking call and join_async share it).
void RaiseJoinTimeout(ItemChannel* ch);
PyObject* WrapChannel(ModuleState* st, Ref<ItemChannel> ch);
inline bool IsChannel(ModuleState* st, PyObject* o) {
  return PyObject_TypeCheck(o, st->ChannelType);
}
// select(channels, timeout=None) -> (channel, item)
PyObject* Select(ModuleState* st, PyObject* channels, PyObject* timeout);

// ---- asyncio (aio.cpp) -------------------------------------------------------
// Adds _AioHub, _AioWaiter and _aio_timeout to the module.
bool InitAioTypes(PyObject* module, ModuleState* st);
// Calls xchannels._aio.<name>(self, *args, **kwargs) with a METH_FASTCALL
// method's arguments (the module cached in the state on first use): the
// coroutine methods of Channel and ProcessChannel (queue_methods.h).
PyObject* CallAio(ModuleState* st, const char* name, PyObject* self,
                  PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames);
// Channel.join_async (METH_FASTCALL|METH_KEYWORDS) and __anext__: forward
// to xchannels._aio.
PyObject* ChannelJoinAsync(PyObject* self, PyObject* const* args,
                           Py_ssize_t nargs, PyObject* kwnames);
PyObject* ChannelANext(PyObject* self);

// ---- values (values.cpp encodes, values_decode.cpp decodes) ----------------
// What kind of value an object is: the one place that decides it, used by
// the encoder, is_shareable and the typed-channel check. Exact built-in types
// are recognised first (by identity: cheap), then NumPy scalars (a type whose
// MRO holds numpy.generic), then subclasses of the built-ins, then objects
// with __index__ (integers of other libraries), then buffer exporters.
enum class ValueKind : uint8_t {
  kNone, kBool, kInt, kFloat, kComplex, kStr, kBytes,
  kTuple, kList, kDict, kSet, kFrozenSet,
  kSharedBuffer, kChannel,
  kNumpyScalar,  // travels as its .item()
  kIndex,        // travels as int(__index__())
  kExporter,     // travels as a SharedBuffer (a copy)
  kOther,        // not shareable (pickled where the channel opted in)
};
struct ValueClass {
  ValueKind kind;
  bool exact;  // the built-in type itself, not a subclass
};
// Everything but the exact built-ins (values.cpp).
ValueClass ClassifyOther(ModuleState* st, PyObject* obj);
// Exact built-in types first, by identity (inline: the encoder's hot path):
// PyLong_Check and friends walk the MRO for every object not of their type.
inline ValueClass Classify(ModuleState* st, PyObject* obj) {
  PyTypeObject* t = Py_TYPE(obj);
  if (t == &PyUnicode_Type) return {ValueKind::kStr, true};
  if (t == &PyLong_Type) return {ValueKind::kInt, true};
  if (t == &PyTuple_Type) return {ValueKind::kTuple, true};
  if (t == &PyFloat_Type) return {ValueKind::kFloat, true};
  if (obj == Py_None) return {ValueKind::kNone, true};
  if (t == &PyBool_Type) return {ValueKind::kBool, true};
  if (t == &PyList_Type) return {ValueKind::kList, true};
  if (t == &PyDict_Type) return {ValueKind::kDict, true};
  if (t == &PyBytes_Type) return {ValueKind::kBytes, true};
  return ClassifyOther(st, obj);
}

// Encodes a Python value into an Item. With pickle_fallback, what does not
// travel natively (and subclasses of the built-ins) is pickled. On failure
// sets an exception (NotShareableError, MemoryError, ...) and returns an
// empty Item.
Item Encode(ModuleState* st, PyObject* obj, bool pickle_fallback = false);
// Decodes an Item into a new Python object owned by the caller's
// interpreter. Consumes the item. Returns nullptr with an exception set.
// With `failures` (lenient decoding, for the pool's own channels): a pickled
// value that cannot be unpickled does not fail the decoding; the exception
// its unpickling raised stands in its place, and *failures becomes a new
// list of those exceptions (left null when there are none).
PyObject* Decode(ModuleState* st, Item&& item, PyObject** failures = nullptr);
// The record for a ProcessChannel (xchannels/process_channel.h): Encode
// into *item, then ch->Prepare (inline, or out of line in a memfd): *out
// views *item. A Channel inside raises NotShareableError; a memfd that
// cannot be made, OSError.
bool EncodeFlat(ModuleState* st, PyObject* obj, bool pickle_fallback,
                ProcessChannel& ch, Item* item, OutRecord* out);
// Decodes a record read from a ProcessChannel (with the memfds it names,
// record.files): untrusted bytes, so a malformed record raises
// ChannelError, and so does a pickled value unless the channel opted in
// (allow_pickle).
PyObject* DecodeFlat(ModuleState* st, const RecordBuffer& record,
                     bool allow_pickle);
// Deep check, never raises for an unshareable value.
bool IsShareable(ModuleState* st, PyObject* obj);

// ---- helpers (module.cpp) ---------------------------------------------------
// The module's definition (one for every interpreter).
PyModuleDef* ModuleDef();
// Makes a heap type from `spec` bound to `module` (PEP 573), adds it to the
// module as `name` and sets *out (borrowed: the module owns the type).
bool AddHeapType(PyObject* module, PyType_Spec* spec, const char* name,
                 PyTypeObject** out);
// The state of a module made from ModuleDef().
ModuleState* StateOfModule(PyObject* module);
// The state of the interpreter that made `type` or its base (see
// AddHeapType), found by PyType_GetModuleByDef. Sets TypeError and returns
// nullptr if the type has none.
ModuleState* StateOfType(PyObject* type);
// module.<attr> after importing `module` (new reference; nullptr with an
// exception set).
PyObject* ImportAttr(const char* module, const char* attr);
// Whether a blocked call on this thread should wake for signals (only the
// main thread of the main interpreter runs Python signal handlers).
bool CallerHandlesSignals(ModuleState* st);

// Wraps a CPython entry point so no C++ exception ever reaches Python:
// std::bad_alloc becomes MemoryError, anything else SystemError. Zero cost
// unless something throws.
template <auto F>
struct NoExcept;
template <class R, class... A, R (*F)(A...)>
struct NoExcept<F> {
  static R Call(A... args) noexcept {
    try {
      return F(args...);
    } catch (const std::bad_alloc&) {
      PyErr_NoMemory();
    } catch (const std::exception& e) {
      PyErr_Format(PyExc_SystemError, "xchannels internal error: %s",
                   e.what());
    } catch (...) {
      PyErr_SetString(PyExc_SystemError, "xchannels internal error");
    }
    if constexpr (std::is_same_v<R, PyObject*>) {
      return nullptr;
    } else {
      return static_cast<R>(-1);
    }
  }
};

// Stores `made` (a new reference) in the empty state slot `*slot` and returns
// true; if another thread of this interpreter filled the slot meanwhile,
// drops `made` and returns false: *slot holds the one that counts.
//
// Every state slot made on first use goes through here: making the value
// (an import, a class) runs Python code, which may switch threads, so two
// threads of one interpreter can both find the slot empty. The check and
// the store run no Python code between them, so under the GIL exactly one
// value is ever published and none leaks. (The Py_DECREF of a loser runs no
// code that could see it: nobody else has it.)
inline bool PublishOnce(PyObject** slot, PyObject* made) {
  if (*slot != nullptr) {
    Py_DECREF(made);
    return false;
  }
  *slot = made;
  return true;
}

// A METH_FASTCALL (| METH_KEYWORDS) function as the PyCFunction a
// PyMethodDef holds.
#define FASTKW(f) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f))

// Runs a blocking core call with the GIL released, restarting it after
// signals that raise nothing. Returns the final status (OpStatus or
// ShmStatus); kInterrupted means a signal handler raised (the exception is
// set).
// A C++ exception from the call (std::bad_alloc) is caught while the GIL
// is released and raised once it is held again (kInterrupted, with the
// exception set): it must not unwind past Py_END_ALLOW_THREADS.
template <class F>
auto BlockingCall(ModuleState* st, F&& call) {
  using Status = decltype(call(false));
  const bool interruptible = CallerHandlesSignals(st);
  for (;;) {
    Status s = Status::kInterrupted;
    int thrown = 0;  // 1: bad_alloc, 2: anything else
    Py_BEGIN_ALLOW_THREADS
    try {
      s = call(interruptible);
    } catch (const std::bad_alloc&) {
      thrown = 1;
    } catch (...) {
      thrown = 2;
    }
    Py_END_ALLOW_THREADS
    if (st->main_interpreter) DrainLoans();  // returned while we waited
    if (thrown != 0) {
      if (thrown == 1) {
        PyErr_NoMemory();
      } else {
        PyErr_SetString(PyExc_SystemError, "xchannels internal error");
      }
      return Status::kInterrupted;
    }
    if (s != Status::kInterrupted) return s;
    if (PyErr_CheckSignals() < 0) return Status::kInterrupted;
  }
}

// ---- ProcessChannel (process_channel.cpp) ------------------------------------
bool InitProcessChannelType(PyObject* module, ModuleState* st);
// The core channel of a ProcessChannel handle (borrowed: the handle owns it).
ProcessChannel* ProcessChannelOf(PyObject* obj);
// Wraps a reference (taken over) in a new Python ProcessChannel.
PyObject* WrapProcessChannel(ModuleState* st, Ref<ProcessChannel> ch);

// Adds each function of a METH_FASTCALL/METH_O table (nullptr-terminated) to
// the module, its `self` the module (module.cpp). False with an exception set.
bool AddModuleFunctions(PyObject* module, PyMethodDef* table);

// ---- profilers (profilers.cpp) -----------------------------------------------
// Adds _current_frames, _current_exceptions (the calling interpreter's
// threads only) and _frames_guard to the module, and puts the two in sys in
// place of CPython's own where this Python's versions walk every interpreter's
// threads (cpython gh-158364). False with an exception set on failure.
bool InitProfilers(PyObject* module);

// ---- cross-interpreter data (xidata.cpp) ------------------------------------
// Registers Channel, ProcessChannel and SharedBuffer with CPython's
// cross-interpreter data registry where this build knows it (3.13-3.15).
// False with an exception set on failure.
bool RegisterXIData(ModuleState* st);
// select() over a sequence (PySequence_Fast) whose first item is a
// ProcessChannel: every item must be one. Returns (channel, item).
PyObject* SelectProcessChannels(ModuleState* st, PyObject* seq,
                                PyObject* timeout);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_STATE_H_
