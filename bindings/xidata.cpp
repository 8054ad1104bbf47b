// bindings/xidata.cpp: Channel, ProcessChannel and SharedBuffer as CPython
// cross-interpreter data (the registry glue is xidata_registry.c; the seam
// is xidata.h).
//
// What travels is one reference to the core object, which belongs to no
// interpreter: the receiver wraps the same channel or buffer in its own
// type, exactly as a Channel message carrying a handle does. Nothing of the
// sender's interpreter is kept, so releasing the data needs no interpreter.
#include <new>

#include "state.h"
#include "xidata.h"

namespace xchannels::py {
namespace {

struct Shared {
  enum class Kind { kChannel, kProcessChannel, kSharedBuffer } kind;
  Ref<RefCounted> ref;
};

}  // namespace

bool RegisterXIData(ModuleState* st) {
  PyTypeObject* types[] = {st->ChannelType, st->ProcessChannelType,
                           st->SharedBufferType};
  for (PyTypeObject* t : types) {
    int rc = xchannels_xidata_register(t);
    if (rc < 0) return false;
    if (rc == 0) break;  // no registry in this Python: nothing registered
  }
  return true;
}

}  // namespace xchannels::py

using xchannels::Ref;
using xchannels::RefCounted;
using xchannels::py::Shared;

extern "C" void* xchannels_xidata_share(PyObject* obj) {
  using namespace xchannels::py;
  ModuleState* st = StateOfType(reinterpret_cast<PyObject*>(Py_TYPE(obj)));
  if (st == nullptr) return nullptr;
  auto* s = new (std::nothrow) Shared{};
  if (s == nullptr) {
    PyErr_NoMemory();
    return nullptr;
  }
  PyTypeObject* t = Py_TYPE(obj);
  if (t == st->ChannelType) {
    s->kind = Shared::Kind::kChannel;
    s->ref = Ref<RefCounted>::Share(reinterpret_cast<PyChannel*>(obj)->ch);
  } else if (t == st->SharedBufferType) {
    s->kind = Shared::Kind::kSharedBuffer;
    s->ref = Ref<RefCounted>::Share(reinterpret_cast<PySharedBuffer*>(obj)->buf);
  } else if (t == st->ProcessChannelType) {
    s->kind = Shared::Kind::kProcessChannel;
    s->ref = Ref<RefCounted>::Share(ProcessChannelOf(obj));
  } else {
    // Registered for exactly these three types (subclassing them is not
    // allowed), so this is unreachable; say so rather than crash.
    delete s;
    PyErr_Format(PyExc_TypeError, "xchannels: %s is not a shareable handle",
                 t->tp_name);
    return nullptr;
  }
  return s;
}

extern "C" PyObject* xchannels_xidata_make(void* shared) {
  using namespace xchannels;
  using namespace xchannels::py;
  auto* s = static_cast<Shared*>(shared);
  // The receiving interpreter's module (imported here if it has not yet):
  // its state holds the types to wrap in. sys.modules keeps it alive.
  PyObject* mod = PyImport_ImportModule("xchannels._xchannels");
  if (mod == nullptr) return nullptr;
  ModuleState* st = StateOfModule(mod);
  Py_DECREF(mod);
  RefCounted* p = s->ref.get();
  switch (s->kind) {
    case Shared::Kind::kChannel:
      return WrapChannel(st, Ref<ItemChannel>::Share(static_cast<ItemChannel*>(p)));
    case Shared::Kind::kSharedBuffer:
      return WrapSharedBuffer(st, Ref<SharedBuffer>::Share(static_cast<SharedBuffer*>(p)));
    case Shared::Kind::kProcessChannel:
      return WrapProcessChannel(st, Ref<ProcessChannel>::Share(static_cast<ProcessChannel*>(p)));
  }
  PyErr_SetString(PyExc_SystemError, "xchannels: unknown shared handle");
  return nullptr;
}

extern "C" void xchannels_xidata_drop(void* shared) {
  delete static_cast<Shared*>(shared);  // drops the core reference
}
