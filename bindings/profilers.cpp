// bindings/profilers.cpp: sys._current_frames() and sys._current_exceptions()
// that walk only the calling interpreter's threads, put in sys in place of
// CPython's own on the Pythons whose versions walk every interpreter's
// (cpython gh-158364).
//
// Why: CPython's versions (3.12, 3.13, 3.14 before 3.14.8, 3.15 before
// 3.15.0rc3) walk the thread states of *every* interpreter and make, for
// each thread, the frame object of its running frame with the *calling*
// interpreter's allocator. That frame object then belongs to a frame of the
// other interpreter, which frees it with its own allocator when the
// function returns: `free(): invalid pointer`, and the process is gone.
// (sys._current_exceptions() likewise hands out, and counts references on,
// the exceptions of threads running under another GIL.) Sampling profilers
// call sys._current_frames() every few milliseconds (Dask's, on by default
// in every worker), so a process that runs worker interpreters dies within
// seconds; so does a worker interpreter that calls it once while the main
// thread runs Python code.
//
// What the replacements do: CPython's walk, over the calling interpreter's
// threads only, which is what CPython itself does since its fix. Frames of
// other interpreters' threads are not returned: they could never be used
// safely. A thread that is running code in another interpreter (a pool
// worker's host thread) is listed with the frame it runs in this one.
//
// The walk is safe because:
// - The caller holds this interpreter's GIL, and nothing in the walk runs
//   Python code or lets the GIL go: making a frame object, an int or a dict
//   entry only allocates, and since 3.12 an allocation never runs the
//   garbage collector (it schedules it for the eval loop). So no thread of
//   this interpreter moves its frames while the walk is on, and none can
//   free its thread state: a thread unlinks its state with the GIL held.
//   (CPython's walk holds the runtime's thread-list lock as well, which is
//   not public; what it adds is protection against a C thread that makes or
//   deletes a thread state of this interpreter without the GIL.)
// - Each frame object is made by this interpreter's allocator for a frame
//   of this interpreter, which is what CPython's walk does in a process
//   with one interpreter.
// - Not in the free-threaded build: there the threads of one interpreter
//   run while the walk is on (CPython stops the world for it), and the
//   public report of the bug found CPython's own function safe there (not
//   tested here: no such build). The replacements are not built there.
//
// When: at each import of the module, that is in each interpreter that
// imports xchannels, if the running Python needs it (GuardNeeded: the
// first fixed release of each minor version, checked against the Python
// that runs, not the headers built against) and if sys still holds
// CPython's own function (whatever else replaced it is left alone). It
// then stays for the interpreter's life. Why not only while worker
// interpreters are alive: while this interpreter is the only one, the
// replacement returns what CPython's returns, and installing it earlier
// leaves no window in which a profiler thread that fetched CPython's
// function just before the first worker started still calls it.
#include "state.h"

namespace xchannels::py {
namespace {

#ifndef Py_GIL_DISABLED

// Py_Version of the first release of each minor version whose own
// sys._current_frames() walks only the caller's interpreter (0: no fixed
// release known). Minor versions above the table branched after the fix
// and are never guarded; add a row when a fixed release of an older one
// is known (tests/python/test_profilers.py checks both directions).
struct FixedIn {
  unsigned long minor;        // PY_VERSION_HEX >> 16: 0x030C is 3.12
  unsigned long first_fixed;  // PY_VERSION_HEX of that release
};
constexpr FixedIn kFramesFixedIn[] = {
    {0x030C, 0},           // 3.12: none (security fixes only)
    {0x030D, 0},           // 3.13: none known
    {0x030E, 0x030E08F0},  // 3.14.8
    {0x030F, 0x030F00C3},  // 3.15.0rc3
};

// Whether the Python that runs (not the one built against) needs the
// replacements.
bool GuardNeeded() {
  const unsigned long minor = Py_Version >> 16;
  for (const FixedIn& f : kFramesFixedIn) {
    if (f.minor == minor) return f.first_fixed == 0 || Py_Version < f.first_fixed;
  }
  return false;
}

// result[thread id of t] = value. False with an exception set.
bool SetForThread(PyObject* result, PyThreadState* t, PyObject* value) {
  PyObject* id = PyLong_FromUnsignedLong(t->thread_id);
  if (id == nullptr) return false;
  const int rc = PyDict_SetItem(result, id, value);
  Py_DECREF(id);
  return rc == 0;
}

// The exception thread `t` is handling: its innermost exc_info entry that
// holds one, None if none does (CPython's _PyErr_GetTopmostException, which
// 3.13 stopped exporting).
PyObject* HandledException(PyThreadState* t) {
  _PyErr_StackItem* info = t->exc_info;
  while ((info->exc_value == nullptr || info->exc_value == Py_None) &&
         info->previous_item != nullptr) {
    info = info->previous_item;
  }
  return info->exc_value != nullptr ? info->exc_value : Py_None;
}

// Thread-safe (see the top of the file). Returns a new dict or nullptr with
// an exception set.
PyObject* CurrentFrames(PyObject*, PyObject*) {
  // The audit hook runs Python code: before the walk, not inside it.
  if (PySys_Audit("sys._current_frames", nullptr) < 0) return nullptr;
  PyObject* result = PyDict_New();
  if (result == nullptr) return nullptr;
  for (PyThreadState* t = PyInterpreterState_ThreadHead(PyInterpreterState_Get());
       t != nullptr; t = PyThreadState_Next(t)) {
    // A new reference, made by this interpreter's allocator; nullptr if the
    // thread runs no Python code here (or the frame object could not be
    // made: CPython clears that error).
    PyObject* frame = reinterpret_cast<PyObject*>(PyThreadState_GetFrame(t));
    if (frame == nullptr) continue;
    const bool ok = SetForThread(result, t, frame);
    Py_DECREF(frame);  // the frame keeps its object alive: no code runs
    if (!ok) {
      Py_DECREF(result);
      return nullptr;
    }
  }
  return result;
}

PyObject* CurrentExceptions(PyObject*, PyObject*) {
  if (PySys_Audit("sys._current_exceptions", nullptr) < 0) return nullptr;
  PyObject* result = PyDict_New();
  if (result == nullptr) return nullptr;
  for (PyThreadState* t = PyInterpreterState_ThreadHead(PyInterpreterState_Get());
       t != nullptr; t = PyThreadState_Next(t)) {
    if (t->exc_info == nullptr) continue;
    if (!SetForThread(result, t, HandledException(t))) {
      Py_DECREF(result);
      return nullptr;
    }
  }
  return result;
}

PyMethodDef kWalkers[] = {
    {"_current_frames", CurrentFrames, METH_NOARGS,
     "_current_frames($module, /)\n--\n\n"
     "Return a dict mapping each thread's identifier to the topmost stack "
     "frame currently active in that thread, for the threads of the calling "
     "interpreter.\n\n"
     "xchannels puts it in sys in place of CPython's own on the Pythons whose "
     "version walks every interpreter's threads and crashes the process "
     "(cpython gh-158364); see the limitations page."},
    {"_current_exceptions", CurrentExceptions, METH_NOARGS,
     "_current_exceptions($module, /)\n--\n\n"
     "Return a dict mapping each thread's identifier to its current raised "
     "exception, for the threads of the calling interpreter.\n\n"
     "xchannels puts it in sys in place of CPython's own on the Pythons whose "
     "version walks every interpreter's threads (cpython gh-158364)."},
    {nullptr, nullptr, 0, nullptr},
};

// Puts `fn` in sys as `name` if sys still holds CPython's own function
// there (a built-in bound to the sys module), keeping the original in the
// module as `_sys<name>`. False with an exception set.
bool Replace(PyObject* module, PyObject* sys, const char* name, PyObject* fn) {
  PyObject* current = PySys_GetObject(name);  // borrowed; no error if absent
  if (current == nullptr || !PyCFunction_Check(current) ||
      PyCFunction_GET_SELF(current) != sys) {
    return true;
  }
  std::string stash = std::string("_sys") + name;
  if (PyModule_AddObjectRef(module, stash.c_str(), current) < 0) return false;
  return PySys_SetObject(name, fn) == 0;
}

#endif  // Py_GIL_DISABLED

}  // namespace

bool InitProfilers(PyObject* module) {
#ifdef Py_GIL_DISABLED
  return PyModule_AddObjectRef(module, "_frames_guard", Py_False) == 0;
#else
  const bool needed = GuardNeeded();
  if (PyModule_AddObjectRef(module, "_frames_guard", needed ? Py_True : Py_False) < 0) {
    return false;
  }
  if (!AddModuleFunctions(module, kWalkers)) return false;
  if (!needed) return true;
  PyObject* sys = PyImport_ImportModule("sys");
  if (sys == nullptr) return false;
  bool ok = true;
  for (PyMethodDef* def = kWalkers; ok && def->ml_name != nullptr; ++def) {
    PyObject* fn = PyObject_GetAttrString(module, def->ml_name);
    ok = fn != nullptr && Replace(module, sys, def->ml_name, fn);
    Py_XDECREF(fn);
  }
  Py_DECREF(sys);
  return ok;
#endif
}

}  // namespace xchannels::py
