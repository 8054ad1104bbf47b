// bindings/module.cpp: the module xchannels._xchannels: per-interpreter state,
// exceptions, module functions and the helpers the binding files share.
//
// Declared with multi-phase init and per-interpreter GIL support, so every
// own-GIL sub-interpreter imports its own copy; the body below runs once per
// interpreter (possibly concurrently) and keeps everything it makes in that
// interpreter's ModuleState.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdarg>
#include <cstring>
#include <limits>
#include <string>

#include "state.h"
#include "xchannels/detail/barrier.h"
#include "xidata.h"
#include "xchannels/task_claims.h"

namespace pyb = pybind11;

namespace xchannels::py {

namespace {

// The task ids of a list or tuple of ints, for the claim table.
std::vector<uint64_t> TaskIds(pyb::handle seq) {
  PyObject* fast = PySequence_Fast(seq.ptr(), "task ids must be a sequence");
  if (fast == nullptr) throw pyb::error_already_set();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  std::vector<uint64_t> ids;
  ids.reserve(static_cast<size_t>(n));
  PyObject** items = PySequence_Fast_ITEMS(fast);
  for (Py_ssize_t i = 0; i < n; ++i) {
    const unsigned long long id = PyLong_AsUnsignedLongLong(items[i]);
    if (id == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      Py_DECREF(fast);
      throw pyb::error_already_set();
    }
    ids.push_back(id);
  }
  Py_DECREF(fast);
  return ids;
}

void DefineTaskClaims(pyb::module_& m) {
  // The pool's arbiter between cancel() in the caller and a worker about to
  // run a task (core/include/xchannels/task_claims.h). Private: used by
  // xchannels._pool and xchannels._bootstrap.
  m.def(
      "_task_start",
      [](uint64_t table, pyb::handle tasks) -> pyb::object {
        std::vector<uint64_t> ids = TaskIds(tasks);
        std::vector<uint64_t> cancelled;
        TaskClaims::Global().Start(table, ids, &cancelled);
        if (cancelled.empty()) return pyb::none();
        pyb::tuple out(cancelled.size());
        for (size_t i = 0; i < cancelled.size(); ++i) out[i] = pyb::int_(cancelled[i]);
        return out;
      },
      pyb::arg("table"), pyb::arg("tasks"),
      "_task_start(table, tasks) -> tuple | None\n\nA worker claims these "
      "tasks to run them: None, or the ids of those already cancelled (not "
      "to be run).");
  m.def(
      "_task_cancel",
      [](uint64_t table, uint64_t task) { return TaskClaims::Global().Cancel(table, task); },
      pyb::arg("table"), pyb::arg("task"),
      "_task_cancel(table, task) -> bool\n\nCancel a task no worker has "
      "started: True if it is cancelled, False if a worker started it.");
  m.def(
      "_task_running",
      [](uint64_t table, uint64_t task) { return TaskClaims::Global().Running(table, task); },
      pyb::arg("table"), pyb::arg("task"),
      "_task_running(table, task) -> bool\n\nWhether a worker started the "
      "task and the caller has not yet forgotten it.");
  m.def(
      "_task_forget",
      [](uint64_t table, pyb::handle tasks) {
        std::vector<uint64_t> ids = TaskIds(tasks);
        TaskClaims::Global().Forget(table, ids);
      },
      pyb::arg("table"), pyb::arg("tasks"),
      "_task_forget(table, tasks) -> None\n\nDrop the entries of tasks "
      "whose outcome the caller has.");
  m.def(
      "_task_forget_table",
      [](uint64_t table) { TaskClaims::Global().ForgetTable(table); }, pyb::arg("table"),
      "_task_forget_table(table) -> None\n\nDrop every entry of a pool.");
  m.def(
      "_task_claims", []() { return TaskClaims::Global().size(); },
      "Entries in the task claim table (for leak tests).");
}

}  // namespace

ModuleState::~ModuleState() {
  // Runs when the module object dies (m_free), with that interpreter's GIL
  // held.
  Py_XDECREF(ChannelError);
  Py_XDECREF(ChannelClosed);
  Py_XDECREF(ChannelEmpty);
  Py_XDECREF(ChannelFull);
  Py_XDECREF(ChannelNotFoundError);
  Py_XDECREF(NotShareableError);
  Py_XDECREF(UnionType);
  ClearCaches();
  if (loans_open) CloseLoans();
}

void ModuleState::ClearCaches() {
  Py_CLEAR(aio);
  Py_CLEAR(pickle_dumps);
  Py_CLEAR(pickle_loads);
  if (key_cache != nullptr) {
    for (size_t i = 0; i < kKeyCacheSlots; ++i) Py_CLEAR(key_cache[i]);
    delete[] key_cache;
    key_cache = nullptr;
  }
}

int ModuleState::Traverse(visitproc visit, void* arg) const {
  Py_VISIT(ChannelError);
  Py_VISIT(ChannelClosed);
  Py_VISIT(ChannelEmpty);
  Py_VISIT(ChannelFull);
  Py_VISIT(ChannelNotFoundError);
  Py_VISIT(NotShareableError);
  Py_VISIT(UnionType);
  Py_VISIT(aio);
  Py_VISIT(pickle_dumps);
  Py_VISIT(pickle_loads);
  if (key_cache != nullptr) {
    for (size_t i = 0; i < kKeyCacheSlots; ++i) Py_VISIT(key_cache[i]);
  }
  return 0;
}

void RaiseStatus(ModuleState* st, OpStatus s, const char* what) {
  switch (s) {
    case OpStatus::kClosed: {
      PyObject* closed = ChannelClosedType(st);
      if (closed != nullptr) PyErr_Format(closed, "%s: channel is closed", what);
      return;
    }
    case OpStatus::kEmpty:
      PyErr_Format(st->ChannelEmpty, "%s: channel is empty", what);
      return;
    case OpStatus::kFull: {
      PyObject* full = ChannelFullType(st);
      if (full != nullptr) PyErr_Format(full, "%s: channel is full", what);
      return;
    }
    case OpStatus::kInterrupted:
      if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
      return;
    case OpStatus::kOk:
      break;
  }
  PyErr_Format(PyExc_SystemError, "%s: unexpected status", what);
}

void FormatFromCause(PyObject* cls, const char* format, ...) {
  PyObject* cause = PyErr_GetRaisedException();
  va_list va;
  va_start(va, format);
  PyObject* msg = PyUnicode_FromFormatV(format, va);
  va_end(va);
  if (msg == nullptr) {  // that error stands, chained to the original
    if (cause != nullptr) {
      PyObject* exc = PyErr_GetRaisedException();
      PyException_SetContext(exc, cause);  // steals cause
      PyErr_SetRaisedException(exc);
    }
    return;
  }
  PyErr_SetObject(cls, msg);
  Py_DECREF(msg);
  if (cause != nullptr) {
    PyObject* exc = PyErr_GetRaisedException();
    PyException_SetCause(exc, cause);  // steals cause
    PyErr_SetRaisedException(exc);
  }
}

bool TimeoutSeconds(PyObject* timeout, double* secs) {
  if (timeout == Py_None) {
    *secs = std::numeric_limits<double>::infinity();
    return true;
  }
  double v = PyFloat_AsDouble(timeout);
  if (v == -1.0 && PyErr_Occurred()) {
    // Not a number: say so, keeping float()'s own error as the cause. What
    // a number raised itself (a huge int's OverflowError, a __float__ that
    // failed, KeyboardInterrupt) goes through unchanged.
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
      FormatFromCause(PyExc_TypeError,
                      "timeout must be a number or None, not %s",
                      Py_TYPE(timeout)->tp_name);
    }
    return false;
  }
  if (std::isnan(v) || v < 0) {
    PyErr_SetString(PyExc_ValueError,
                    "timeout must be a non-negative number or None");
    return false;
  }
  *secs = v;
  return true;
}

Deadline DeadlineAfter(double secs) {
  // Beyond ~292 years a deadline overflows the clock: treat as forever.
  if (secs > 9.0e9) return Deadline();
  const auto after = std::chrono::duration<double>(secs);
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(after);
}

bool ParseTimeout(PyObject* timeout, Deadline* out) {
  double secs;
  if (!TimeoutSeconds(timeout, &secs)) return false;
  *out = DeadlineAfter(secs);
  return true;
}

bool ParseArgs(const char* fname, PyObject* const* args, Py_ssize_t nargs,
               PyObject* kwnames, const char* const* names, int nnames,
               int npositional, int nrequired, PyObject** out) {
  if (nargs > npositional) {
    PyErr_Format(PyExc_TypeError,
                 "%s() takes at most %d positional arguments (%zd given)",
                 fname, npositional, nargs);
    return false;
  }
  bool seen[8] = {};
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    out[i] = args[i];
    seen[i] = true;
  }
  if (kwnames != nullptr) {
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      int found = -1;
      for (int j = 0; j < nnames; ++j) {
        if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
          found = j;
          break;
        }
      }
      if (found < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got an unexpected keyword argument %R", fname, key);
        return false;
      }
      if (seen[found]) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got multiple values for argument '%s'", fname,
                     names[found]);
        return false;
      }
      out[found] = args[nargs + k];
      seen[found] = true;
    }
  }
  for (int j = 0; j < nrequired; ++j) {
    if (!seen[j]) {
      PyErr_Format(PyExc_TypeError,
                   "%s() missing required argument '%s'", fname, names[j]);
      return false;
    }
  }
  return true;
}

bool AddHeapType(PyObject* module, PyType_Spec* spec, const char* name,
                 PyTypeObject** out) {
  PyObject* type = PyType_FromModuleAndSpec(module, spec, nullptr);
  if (type == nullptr) return false;
  *out = reinterpret_cast<PyTypeObject*>(type);
  int rc = PyModule_AddObjectRef(module, name, type);
  Py_DECREF(type);  // the module keeps it alive
  return rc == 0;
}

ModuleState* StateOfModule(PyObject* module) {
  return *static_cast<ModuleState**>(PyModule_GetState(module));
}

ModuleState* StateOfType(PyObject* type) {
  PyObject* module = PyType_GetModuleByDef(
      reinterpret_cast<PyTypeObject*>(type), ModuleDef());
  return module == nullptr ? nullptr : StateOfModule(module);
}

namespace {
// Set once, by the main interpreter's import: the thread that runs Python
// signal handlers. A plain integer, not a Python object.
unsigned long g_main_thread_ident = 0;
}  // namespace

bool CallerHandlesSignals(ModuleState* st) {
  return st->main_interpreter &&
         PyThread_get_thread_ident() == g_main_thread_ident;
}

namespace {

PyObject* ImportAttr(const char* module, const char* attr) {
  PyObject* mod = PyImport_ImportModule(module);
  if (mod == nullptr) return nullptr;
  PyObject* v = PyObject_GetAttrString(mod, attr);
  Py_DECREF(mod);
  return v;
}

PyObject* NewException(const char* name, const char* doc, PyObject* bases) {
  return PyErr_NewExceptionWithDoc(name, doc, bases, nullptr);
}

// ChannelFull derives from queue.Full, and ChannelClosed (on 3.13+) from
// queue.ShutDown; importing queue (threading, collections, heapq) costs
// 7-10 ms in a fresh interpreter on this machine, more than importing
// xchannels itself, and pool workers start many. So unless queue is
// imported already, each class is made on first use: the first status that
// raises it, or the first lookup of the module attribute (through the
// module's __getattr__). queue.Empty is _queue.Empty, which is cheap.
constexpr const char kChannelFullDoc[] =
    "put found no room (non-blocking, or the timeout passed). A queue.Full.";
#if PY_VERSION_HEX >= 0x030D0000
constexpr bool kClosedNeedsQueue = true;
constexpr const char kChannelClosedDoc[] =
    "put on a closed channel, or get on a closed and drained one. A "
    "queue.ShutDown.";
#else
constexpr bool kClosedNeedsQueue = false;
constexpr const char kChannelClosedDoc[] =
    "put on a closed channel, or get on a closed and drained one.";
#endif

// Makes `name` (xchannels.<name>) deriving from ChannelError and, if
// queue_attr is set, queue.<queue_attr>; caches it in *slot and as the
// module attribute. Borrowed result.
//
// One class per interpreter, whatever the threads do: importing queue and
// making the class run Python code, which may let another thread of this
// interpreter take the GIL and come here too. Each thread makes its own
// candidate, and PublishOnce keeps the first one stored; the store and the
// module attribute happen with no Python code between them, so the slot,
// the attribute and what RaiseStatus raises are one object.
PyObject* MakeLazyException(ModuleState* st, PyObject** slot, const char* name,
                            const char* doc, const char* queue_attr) {
  if (*slot != nullptr) return *slot;
  PyObject* bases;
  if (queue_attr != nullptr) {
    PyObject* base = ImportAttr("queue", queue_attr);
    if (base == nullptr) return nullptr;
    bases = PyTuple_Pack(2, st->ChannelError, base);
    Py_DECREF(base);
  } else {
    bases = PyTuple_Pack(1, st->ChannelError);
  }
  if (bases == nullptr) return nullptr;
  std::string qualname = std::string("xchannels.") + name;
  PyObject* made = NewException(qualname.c_str(), doc, bases);
  Py_DECREF(bases);
  if (made == nullptr) return nullptr;
  if (!PublishOnce(slot, made)) return *slot;  // another thread was first
  // Cache it as the module attribute too (the module's __getattr__ is then
  // not consulted again). Only the thread that published sets it.
  PyObject* modname = PyUnicode_FromString("xchannels._xchannels");
  PyObject* mod = modname != nullptr ? PyImport_GetModule(modname) : nullptr;
  Py_XDECREF(modname);
  if (mod != nullptr) {
    if (PyObject_SetAttrString(mod, name, *slot) < 0) {
      PyErr_Clear();  // only a cache
    }
    Py_DECREF(mod);
  }
  PyErr_Clear();  // PyImport_GetModule found nothing: fine
  return *slot;
}

bool MakeExceptions(ModuleState* st, PyObject* m) {
  PyObject* empty = ImportAttr("_queue", "Empty");
  if (empty == nullptr) return false;
  st->ChannelError = NewException(
      "xchannels.ChannelError", "Base class of the channel errors.",
      PyExc_Exception);
  PyObject* b;
  b = PyTuple_Pack(2, st->ChannelError, empty);
  st->ChannelEmpty = NewException(
      "xchannels.ChannelEmpty",
      "get found nothing (non-blocking, or the timeout passed). A "
      "queue.Empty.",
      b);
  Py_XDECREF(b);
  b = PyTuple_Pack(2, st->ChannelError, PyExc_LookupError);
  st->ChannelNotFoundError = NewException(
      "xchannels.ChannelNotFoundError",
      "No live channel has that id. A LookupError.", b);
  Py_XDECREF(b);
  st->NotShareableError = NewException(
      "xchannels.NotShareableError",
      "The value cannot travel between interpreters (a TypeError); the "
      "message names the type and where it sits.",
      PyExc_TypeError);
  Py_DECREF(empty);
  PyObject* all[] = {st->ChannelError, st->ChannelEmpty,
                     st->ChannelNotFoundError, st->NotShareableError};
  const char* names[] = {"ChannelError", "ChannelEmpty",
                         "ChannelNotFoundError", "NotShareableError"};
  for (int i = 0; i < 4; ++i) {
    if (all[i] == nullptr) return false;
    if (PyModule_AddObjectRef(m, names[i], all[i]) < 0) return false;
  }
  // queue already imported (or not needed): no reason to wait.
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  const bool have_queue = PyDict_GetItemString(modules, "queue") != nullptr;
  if (have_queue || !kClosedNeedsQueue) {
    PyObject* closed = ChannelClosedType(st);
    if (closed == nullptr ||
        PyModule_AddObjectRef(m, "ChannelClosed", closed) < 0) {
      return false;
    }
  }
  if (have_queue) {
    PyObject* full = ChannelFullType(st);
    if (full == nullptr || PyModule_AddObjectRef(m, "ChannelFull", full) < 0) {
      return false;
    }
  }
  return true;
}


}  // namespace

PyObject* ChannelFullType(ModuleState* st) {
  return MakeLazyException(st, &st->ChannelFull, "ChannelFull",
                           kChannelFullDoc, "Full");
}

PyObject* ChannelClosedType(ModuleState* st) {
  return MakeLazyException(st, &st->ChannelClosed, "ChannelClosed",
                           kChannelClosedDoc,
                           kClosedNeedsQueue ? "ShutDown" : nullptr);
}

namespace {

PyObject* EncodeDecodeImpl(PyObject* module, PyObject* obj) {
  ModuleState* st = StateOfModule(module);
  Item it = Encode(st, obj);
  if (it.kind() == Item::Kind::kEmpty) return nullptr;
  return Decode(st, std::move(it));
}
PyObject* EncodeDecode(PyObject* module, PyObject* obj) {
  return NoExcept<EncodeDecodeImpl>::Call(module, obj);
}

}  // namespace
}  // namespace xchannels::py

namespace xchannels::py {
namespace {

// Module functions a program may call per item are raw METH_FASTCALL
// functions, like the Channel methods: pybind11's call path costs about
// 170 ns a call (is_shareable(1): 234 ns through it, 63 ns raw). Their
// `self` is the module, whose state slot holds the ModuleState.

const char* const kSelectNames[] = {"channels", "timeout"};

PyObject* SelectFn(PyObject* module, PyObject* const* args, Py_ssize_t nargs,
                   PyObject* kwnames) {
  PyObject* a[2] = {nullptr, Py_None};
  if (!ParseArgs("select", args, nargs, kwnames, kSelectNames, 2, 2, 1, a)) {
    return nullptr;
  }
  return Select(StateOfModule(module), a[0], a[1]);
}

const char* const kIsShareableNames[] = {"obj"};

PyObject* IsShareableFn(PyObject* module, PyObject* const* args,
                        Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* obj = nullptr;
  if (nargs == 1 && kwnames == nullptr) {
    obj = args[0];
  } else if (!ParseArgs("is_shareable", args, nargs, kwnames,
                        kIsShareableNames, 1, 1, 1, &obj)) {
    return nullptr;
  }
  return PyBool_FromLong(IsShareable(StateOfModule(module), obj));
}

PyMethodDef kStateFunctions[] = {
    {"select", FASTKW(NoExcept<SelectFn>::Call), METH_FASTCALL | METH_KEYWORDS,
     "select(channels, timeout=None)\n--\n\n"
     "Wait until one of the channels has an item and take it; returns\n"
     "(channel, item). Fair: no ready channel starves. Closed channels are\n"
     "skipped while others are open; raises ChannelClosed when all are\n"
     "closed and drained, and ChannelEmpty when the timeout passes."},
    {"is_shareable", FASTKW(NoExcept<IsShareableFn>::Call),
     METH_FASTCALL | METH_KEYWORDS,
     "is_shareable(obj)\n--\n\nWhether obj can travel through a Channel "
     "(a deep check)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool AddModuleFunctions(PyObject* module, PyMethodDef* table) {
  PyObject* modname = PyModule_GetNameObject(module);
  if (modname == nullptr) return false;
  for (PyMethodDef* def = table; def->ml_name != nullptr; ++def) {
    PyObject* fn = PyCFunction_NewEx(def, module, modname);
    if (fn == nullptr || PyModule_AddObjectRef(module, def->ml_name, fn) < 0) {
      Py_XDECREF(fn);
      Py_DECREF(modname);
      return false;
    }
    Py_DECREF(fn);
  }
  Py_DECREF(modname);
  return true;
}

}  // namespace xchannels::py

namespace xchannels::py {
namespace {

// The module body: runs once per interpreter that imports the module, with
// `st` already in the module's state slot.
void InitModule(pyb::module_& m, ModuleState* st) {
  m.doc() = "xchannels core bindings: channels and shared buffers for "
            "own-GIL sub-interpreters. Use the xchannels package.";
  st->main_interpreter = PyInterpreterState_Get() == PyInterpreterState_Main();
  if (st->main_interpreter) {
    OpenLoans();
    st->loans_open = true;
    // The main interpreter's import may run on any thread; ask threading
    // which one handles signals.
    PyObject* main_thread = ImportAttr("threading", "main_thread");
    if (main_thread == nullptr) throw pyb::error_already_set();
    PyObject* t = PyObject_CallNoArgs(main_thread);
    Py_DECREF(main_thread);
    if (t == nullptr) throw pyb::error_already_set();
    PyObject* ident = PyObject_GetAttrString(t, "ident");
    Py_DECREF(t);
    if (ident == nullptr) throw pyb::error_already_set();
    const unsigned long main_ident = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    // Not an int (threading patched): fail the import here rather than go
    // on with the exception set.
    if (main_ident == static_cast<unsigned long>(-1) && PyErr_Occurred()) {
      throw pyb::error_already_set();
    }
    g_main_thread_ident = main_ident;
  }

  PyObject* mod = m.ptr();
  if (!MakeExceptions(st, mod) || !InitSharedBufferType(mod, st) ||
      !InitChannelType(mod, st) || !InitAioTypes(mod, st) ||
      !InitProcessChannelType(mod, st) || !RegisterXIData(st) ||
      !InitProfilers(mod)) {
    throw pyb::error_already_set();
  }
  m.def(
      "__getattr__",
      [st](const std::string& name) -> pyb::object {
        PyObject* lazy = nullptr;
        if (name == "ChannelFull") {
          lazy = ChannelFullType(st);
        } else if (name == "ChannelClosed") {
          lazy = ChannelClosedType(st);
        } else {
          throw pyb::attribute_error(
              "module 'xchannels._xchannels' has no attribute '" + name +
              "'");
        }
        if (lazy == nullptr) throw pyb::error_already_set();
        return pyb::reinterpret_borrow<pyb::object>(lazy);
        throw pyb::attribute_error(
            "module 'xchannels._xchannels' has no attribute '" + name + "'");
      },
      "Module attributes made on first use (ChannelFull, and ChannelClosed "
      "on 3.13+: they derive from classes of the queue module).");
  // types.UnionType, without importing types (a fresh interpreter's import
  // time counts: pool workers): the type of int | str.
  PyObject* int_or_str =
      PyNumber_Or(reinterpret_cast<PyObject*>(&PyLong_Type),
                  reinterpret_cast<PyObject*>(&PyUnicode_Type));
  if (int_or_str == nullptr) throw pyb::error_already_set();
  st->UnionType = Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(int_or_str)));
  Py_DECREF(int_or_str);

  if (!AddModuleFunctions(mod, kStateFunctions)) throw pyb::error_already_set();
#if defined(__clang__)
  m.attr("__compiler__") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("__compiler__") = "gcc " __VERSION__;
#else
  m.attr("__compiler__") = "unknown";
#endif
#ifndef XCHANNELS_BUILD_TYPE
#define XCHANNELS_BUILD_TYPE "unknown"
#define XCHANNELS_ABSL_VERSION "unknown"
#define XCHANNELS_CQ_VERSION "unknown"
#endif
  {
    pyb::dict build;
    build["compiler"] = m.attr("__compiler__");
    build["build_type"] = XCHANNELS_BUILD_TYPE;
    build["abseil"] = XCHANNELS_ABSL_VERSION;
    build["concurrentqueue"] = XCHANNELS_CQ_VERSION;
    // CPython's cross-interpreter data registry that Channel,
    // ProcessChannel and SharedBuffer are registered with (None: none).
    const char* xid = xchannels_xidata_api();
    build["xidata"] = xid != nullptr ? pyb::object(pyb::str(xid)) : pyb::object(pyb::none());
    build["pybind11"] = std::to_string(PYBIND11_VERSION_MAJOR) + "." +
                        std::to_string(PYBIND11_VERSION_MINOR) + "." +
                        std::to_string(PYBIND11_VERSION_PATCH);
    m.attr("__build__") = build;
  }
  // A raw METH_O function (self: the module), so benchmarks measure
  // the codec and not pybind11's call overhead.
  static PyMethodDef encode_decode_def = {
      "_encode_decode", EncodeDecode, METH_O,
      "_encode_decode(obj)\n--\n\nEncode obj into a message and decode it "
      "again, without a channel (for benchmarks and tests)."};
  PyObject* fn = PyCFunction_NewEx(&encode_decode_def, mod, mod);
  if (fn == nullptr) throw pyb::error_already_set();
  int rc = PyModule_AddObjectRef(mod, "_encode_decode", fn);
  Py_DECREF(fn);
  if (rc < 0) throw pyb::error_already_set();
  m.def(
      "_live_channels",
      []() { return xchannels::Registry::Global().size(); },
      "Channels alive in the process (for leak tests).");
  DefineTaskClaims(m);
  m.def(
      "_live_buffers",
      []() { return xchannels::SharedBuffer::LiveCountForTesting(); },
      "SharedBuffers alive in the process (for leak tests).");
  m.def(
      "_lent_bytes",
      []() {
        return pyb::make_tuple(LentForTesting(), ReturnedForTesting());
      },
      "(lent, returned): large bytes objects of the main interpreter that "
      "messages borrow, and those given back that wait for the main "
      "interpreter to drop them (for leak tests).");
  m.def(
      "_asymmetric_barriers",
      []() {
        xchannels::detail::InitBarriers();
        return xchannels::detail::AsymmetricBarriers();
      },
      "True if channels use membarrier(2) (asymmetric barriers); False if "
      "they use fences (membarrier missing, or "
      "XCHANNELS_SYMMETRIC_BARRIERS=1).");
}

// Multi-phase init (PEP 489) written out rather than PYBIND11_MODULE, whose
// module definition has no state slot (m_size 0): the ModuleState pointer
// lives in the module's state, so a type finds it with
// PyType_GetModuleByDef (PEP 573) and the GC sees what it owns.
int ModuleExec(PyObject* pm) {
  try {
    pyb::detail::ensure_internals();
    auto* st = new ModuleState();
    // Owned by the module from here on (ModuleFree), even if the body fails.
    *static_cast<ModuleState**>(PyModule_GetState(pm)) = st;
    auto m = pyb::reinterpret_borrow<pyb::module_>(pm);
    InitModule(m, st);
    return 0;
  } catch (pyb::error_already_set& e) {
    e.restore();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_Format(PyExc_ImportError, "xchannels._xchannels: %s", e.what());
  }
  return -1;
}

ModuleState** StateSlot(PyObject* module) {
  return static_cast<ModuleState**>(PyModule_GetState(module));
}

int ModuleTraverse(PyObject* module, visitproc visit, void* arg) {
  ModuleState** slot = StateSlot(module);
  return slot != nullptr && *slot != nullptr ? (*slot)->Traverse(visit, arg)
                                             : 0;
}

// Clears what may lead back to the module (the cached xchannels._aio holds
// it through its globals) and the other caches, all of which are made again
// on use. The exceptions stay until ModuleFree: a late call may still raise
// them.
int ModuleClear(PyObject* module) {
  ModuleState** slot = StateSlot(module);
  if (slot != nullptr && *slot != nullptr) (*slot)->ClearCaches();
  return 0;
}

void ModuleFree(void* module) {
  ModuleState** slot = StateSlot(static_cast<PyObject*>(module));
  if (slot == nullptr) return;
  delete *slot;
  *slot = nullptr;
}

}  // namespace

PyModuleDef* ModuleDef() {
  static PyModuleDef_Slot slots[] = {
      {Py_mod_exec, reinterpret_cast<void*>(ModuleExec)},
      {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#if defined(Py_mod_gil) && defined(Py_GIL_DISABLED)
      {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
      {0, nullptr},
  };
  static PyModuleDef def = {
      PyModuleDef_HEAD_INIT,
      "_xchannels",
      nullptr,
      sizeof(ModuleState*),
      nullptr,
      slots,
      ModuleTraverse,
      ModuleClear,
      ModuleFree,
  };
  return &def;
}

}  // namespace xchannels::py

PYBIND11_PLUGIN_IMPL(_xchannels) {
  PYBIND11_CHECK_PYTHON_VERSION
  return PyModuleDef_Init(xchannels::py::ModuleDef());
}
