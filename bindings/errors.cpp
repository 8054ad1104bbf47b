// bindings/errors.cpp: the module's exception classes (made per
// interpreter, two of them on first use) and RaiseStatus, the one mapping
// from a core status to a Python exception. Contracts in errors.h.
#include "errors.h"

#include <cstdarg>
#include <string>

#include "state.h"

namespace xchannels::py {
namespace {

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

}  // namespace

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

PyObject* ChannelFullType(ModuleState* st) {
  return MakeLazyException(st, &st->ChannelFull, "ChannelFull",
                           kChannelFullDoc, "Full");
}

PyObject* ChannelClosedType(ModuleState* st) {
  return MakeLazyException(st, &st->ChannelClosed, "ChannelClosed",
                           kChannelClosedDoc,
                           kClosedNeedsQueue ? "ShutDown" : nullptr);
}

PyObject* LazyModuleAttr(ModuleState* st, const std::string& name) {
  if (name == "ChannelFull") return ChannelFullType(st);
  if (name == "ChannelClosed") return ChannelClosedType(st);
  PyErr_Format(PyExc_AttributeError,
               "module 'xchannels._xchannels' has no attribute '%s'",
               name.c_str());
  return nullptr;
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

}  // namespace xchannels::py
