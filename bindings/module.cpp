// bindings/module.cpp: the module xchannels._xchannels and its
// per-interpreter state: the module definition, its body, the state's
// lifecycle, the module functions (select, is_shareable) and the helpers
// that find the state.
//
// Declared with multi-phase init and per-interpreter GIL support, so every
// own-GIL sub-interpreter imports its own copy; the body below runs once per
// interpreter (possibly concurrently) and keeps everything it makes in that
// interpreter's ModuleState. The rooms it calls: errors.cpp (the exception
// classes), args.cpp (argument parsing), each type's file (its Init*), and
// the private functions (task_claims.cpp, testing.cpp: private_api.h).
//
// Invariants: the state slot holds the ModuleState from the first line of
// ModuleExec until ModuleFree, also when the body fails half-way (ModuleFree
// then deletes what was made). g_main_thread_ident is written only by the
// main interpreter's import and is a plain integer.
#include <pybind11/pybind11.h>

#include <string>

#include "private_api.h"
#include "state.h"
#include "xidata.h"

namespace xchannels::py {

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

PyObject* ImportAttr(const char* module, const char* attr) {
  PyObject* mod = PyImport_ImportModule(module);
  if (mod == nullptr) return nullptr;
  PyObject* v = PyObject_GetAttrString(mod, attr);
  Py_DECREF(mod);
  return v;
}

namespace {

// Module functions a program may call per item are raw METH_FASTCALL
// functions, like the Channel methods: pybind11's call path costs 8-12 ns
// more a call at the least, on calls of 13-16 ns (docs/design.md, "What
// pybind11 is for"). Their `self` is the module, whose state slot holds
// the ModuleState.

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
        PyObject* lazy = LazyModuleAttr(st, name);
        if (lazy == nullptr) throw pyb::error_already_set();
        return pyb::reinterpret_borrow<pyb::object>(lazy);
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
  DefineTaskClaims(m);
  DefineTestHelpers(m);
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
