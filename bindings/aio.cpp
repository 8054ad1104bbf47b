// bindings/aio.cpp: asyncio support: the Python types over the core's
// EventHub (event_hub.h: the eventfd and ready list) and detail::Waiter
// (waiter.h), the external waiter behind get_async / put_async /
// select_async / join_async, and CallAio, through which the Channel and
// ProcessChannel coroutine methods forward to xchannels._aio.
//
// How a waiting coroutine sleeps without a thread: an _AioWaiter links one
// core wait-list node per channel whose Parker carries a detail::Notifier.
// A sender (any thread, any interpreter) that would wake a parked thread
// calls Notify() instead, under the wait-list lock: the waiter goes on its
// hub's ready list and, if that list was empty, the hub's eventfd is
// written. The event loop watches the eventfd (loop.add_reader); its reader
// callback (xchannels._aio, in the loop's thread, with the GIL) calls
// drain(), which returns the callbacks of the ready waiters; each resolves
// its coroutine's future, and the coroutine disarms and retries the
// non-blocking operation. No Python object is touched outside the loop's
// thread; Notify() only links C++ structures and writes 8 bytes.
//
// Invariants:
//   - A waiter is "armed" between arm() and disarm(): its nodes are linked
//     (until a notifier unlinks one) and it holds its hub and callback.
//     Outside that span nobody can call its Notify(), it is on no ready
//     list, and it holds neither.
//   - A waiter is on its hub's ready list only while armed: disarm() takes
//     it off before returning. So drain() never sees a waiter that is being
//     freed (both run with the GIL). The list's own rules (at most once; the
//     eventfd written when it becomes non-empty; the lock order after a
//     wait-list lock) are EventHub's.
//   - The lost-wake-up protocol is the core's (detail/waiter.h): arm() is
//     its register and barrier, the Python caller's try_op() its re-probe,
//     the event loop its park, disarm() its remove and pass_on() its pass
//     on. The Python caller calls pass_on() whenever it leaves (got its
//     item, timed out, cancelled); when it disarms only to retry, it
//     re-arms and re-checks instead, which uses the notification.
//
// Memory ordering: that of the core (waiter.h's barrier pair; the wait-list
// lock orders Notify() before the waiter's Remove). The hub's mutex orders
// the ready list.
#include <cerrno>
#include <memory>
#include <vector>

#include "state.h"
#include "typespec.h"
#include "xchannels/detail/mutex.h"
#include "xchannels/detail/waiter.h"
#include "xchannels/event_hub.h"

namespace xchannels::py {
namespace {

enum class AioKind : int { kGet = 0, kPut = 1, kSelect = 2, kJoin = 3 };

const char* KindName(AioKind k) {
  switch (k) {
    case AioKind::kGet: return "get_async";
    case AioKind::kPut: return "put_async";
    case AioKind::kSelect: return "select_async";
    case AioKind::kJoin: return "join_async";
  }
  return "?";
}

// The C++ half of an _AioWaiter: a detail::Waiter (waiter.h: the protocol)
// over its channels' targets, whose Parker notifies this object instead of
// waking a thread.
struct WaiterCore final : detail::Notifier, EventHub::Entry {
  AioKind kind = AioKind::kGet;
  std::vector<Ref<ItemChannel>> channels;
  detail::Parker parker;  // before the waiter: it outlives the waiter's nodes
  std::vector<detail::WaitTarget> targets;  // one per channel, fixed
  std::unique_ptr<detail::Waiter> waiter;   // over `targets`
  Item item;          // kPut: the encoded value, until sent
  bool sent = false;  // kPut
  // While armed (see the invariants); callback is owned, touched only with
  // the GIL. The hub is shared with the Python _AioHub, so a notifier never
  // reaches a freed hub.
  std::shared_ptr<EventHub> hub;
  PyObject* callback = nullptr;

  WaiterCore() { parker.notifier = this; }

  // Once the channels are set: one target per channel, by kind.
  void SetTargets() {
    for (auto& ch : channels) {
      switch (kind) {
        case AioKind::kPut: targets.push_back(ch->send_target()); break;
        case AioKind::kJoin: targets.push_back(ch->join_target()); break;
        case AioKind::kGet:
        case AioKind::kSelect: targets.push_back(ch->recv_target()); break;
      }
    }
    waiter = std::make_unique<detail::Waiter>(targets, &parker);
  }

  bool armed() const { return waiter->linked(); }

  // Any thread, under a wait-list lock, while armed.
  void Notify() noexcept override { hub->Push(this); }

  // With the GIL. Links every node, then issues one HeavyBarrier for all of
  // them, so the caller's next try_op() is the Dekker re-check.
  void Arm(std::shared_ptr<EventHub> h, PyObject* cb) {
    hub = std::move(h);
    callback = Py_NewRef(cb);
    parker.Rearm();
    waiter->Link();
  }

  // With the GIL. Idempotent. Unlinks every node (the waiter records which a
  // notifier had taken, for PassOn), leaves the ready list, drops hub and
  // callback. Returns whether any node had been notified.
  bool Disarm() {
    if (!armed()) return false;
    const bool any = waiter->Unlink();
    hub->Remove(this);
    hub.reset();
    Py_CLEAR(callback);
    return any;
  }

  // Any time. Passes on every notification recorded by Disarm.
  void PassOn() { waiter->PassOn(); }
};

// ---- _AioHub ------------------------------------------------------------------

struct PyAioHub {
  PyObject_HEAD
  std::shared_ptr<EventHub>* core;
};

EventHub& Core(PyAioHub* h) { return **h->core; }

PyObject* HubNew(PyTypeObject* type, PyObject* args, PyObject* kw) {
  if (PyTuple_GET_SIZE(args) != 0 || (kw != nullptr && PyDict_GET_SIZE(kw))) {
    PyErr_SetString(PyExc_TypeError, "_AioHub() takes no arguments");
    return nullptr;
  }
  auto* self = reinterpret_cast<PyAioHub*>(type->tp_alloc(type, 0));
  if (self == nullptr) return nullptr;
  self->core = new std::shared_ptr<EventHub>(std::make_shared<EventHub>());
  return reinterpret_cast<PyObject*>(self);
}

void HubDealloc(PyObject* op) {
  auto* self = reinterpret_cast<PyAioHub*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  delete self->core;  // armed waiters keep the EventHub (and its fd) alive
  tp->tp_free(op);
  Py_DECREF(tp);
}

PyObject* HubOpen(PyObject* op, PyObject*) {
  const int fd = Core(reinterpret_cast<PyAioHub*>(op)).Open();
  if (fd < 0) {
    errno = -fd;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return PyLong_FromLong(fd);
}

PyObject* HubClose(PyObject* op, PyObject*) {
  Core(reinterpret_cast<PyAioHub*>(op)).Close();
  Py_RETURN_NONE;
}

PyObject* HubFileno(PyObject* op, PyObject*) {
  return PyLong_FromLong(Core(reinterpret_cast<PyAioHub*>(op)).fd());
}

PyObject* HubDrain(PyObject* op, PyObject*) {
  std::vector<EventHub::Entry*> ready;
  Core(reinterpret_cast<PyAioHub*>(op)).Drain(ready);  // may throw: kept
  // Every entry is an armed waiter, which only the GIL holder (us) can
  // disarm, so its callback is alive.
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(ready.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < ready.size(); ++i) {
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i),
                    Py_NewRef(static_cast<WaiterCore*>(ready[i])->callback));
  }
  return list;
}

PyMethodDef kHubMethods[] = {
    {"open", NoExcept<HubOpen>::Call, METH_NOARGS,
     "open($self, /) -> int\n--\n\nCreate the eventfd if there is none; return it."},
    {"close", NoExcept<HubClose>::Call, METH_NOARGS,
     "close($self, /)\n--\n\nClose the eventfd (call only with no armed waiter)."},
    {"fileno", NoExcept<HubFileno>::Call, METH_NOARGS,
     "fileno($self, /) -> int\n--\n\nThe eventfd, or -1 when closed."},
    {"drain", NoExcept<HubDrain>::Call, METH_NOARGS,
     "drain($self, /) -> list\n--\n\nReset the eventfd and take the ready list: the "
     "callbacks of the\nwaiters that were notified, in order."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot kHubSlots[] = {
    {Py_tp_doc, const_cast<char*>(
                    "_AioHub()\n--\n\nInternal: one event loop's wake-up "
                    "eventfd and ready list (see xchannels._aio).")},
    {Py_tp_new, reinterpret_cast<void*>(NoExcept<HubNew>::Call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(HubDealloc)},
    {Py_tp_methods, kHubMethods},
    {0, nullptr},
};

PyType_Spec kHubSpec = {
    "xchannels._AioHub",
    sizeof(PyAioHub),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    kHubSlots,
};

// ---- _AioWaiter -----------------------------------------------------------------

struct PyAioWaiter {
  PyObject_HEAD
  ModuleState* state;
  WaiterCore* core;
  PyObject* channels;  // tuple of the Channel objects given (for select)
};

PyAioWaiter* AsW(PyObject* o) { return reinterpret_cast<PyAioWaiter*>(o); }


// _AioWaiter(kind, channels, obj=None)
PyObject* WaiterNew(PyTypeObject* type, PyObject* args, PyObject* kw) {
  ModuleState* st = StateOfType(reinterpret_cast<PyObject*>(type));
  if (st == nullptr) return nullptr;
  static const char* kwlist[] = {"kind", "channels", "obj", nullptr};
  int kind_int = 0;
  PyObject* channels = nullptr;
  PyObject* obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "iO|O:_AioWaiter",
                                   const_cast<char**>(kwlist), &kind_int,
                                   &channels, &obj)) {
    return nullptr;
  }
  if (kind_int < 0 || kind_int > 3) {
    PyErr_SetString(PyExc_ValueError, "_AioWaiter: bad kind");
    return nullptr;
  }
  const auto kind = static_cast<AioKind>(kind_int);
  const char* name = KindName(kind);
  PyObject* tuple =
      PyTuple_Check(channels) ? Py_NewRef(channels) : nullptr;
  if (tuple == nullptr) {
    tuple = PySequence_Tuple(channels);
    if (tuple == nullptr) {
      // As select(): a TypeError (not iterable) gets the clear message;
      // what the iterable itself raised goes through unchanged.
      if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        FormatFromCause(PyExc_TypeError, "%s() needs a sequence of channels",
                        name);
      }
      return nullptr;
    }
  }
  const Py_ssize_t n = PyTuple_GET_SIZE(tuple);
  if (n == 0 || (kind != AioKind::kSelect && n != 1)) {
    Py_DECREF(tuple);
    PyErr_Format(PyExc_ValueError, "%s() needs at least one channel", name);
    return nullptr;
  }
  auto core = std::make_unique<WaiterCore>();
  core->kind = kind;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* o = PyTuple_GET_ITEM(tuple, i);
    if (!IsChannel(st, o)) {
      PyErr_Format(PyExc_TypeError, "%s(): channels[%zd] is %s, not a Channel",
                   name, i, Py_TYPE(o)->tp_name);
      Py_DECREF(tuple);
      return nullptr;
    }
    core->channels.push_back(
        Ref<ItemChannel>::Share(reinterpret_cast<PyChannel*>(o)->ch));
  }
  core->SetTargets();
  if (kind == AioKind::kPut) {
    // Checked and encoded once, now: a bad value raises before anything is
    // sent, and a retry sends the same bytes.
    auto* ch = reinterpret_cast<PyChannel*>(PyTuple_GET_ITEM(tuple, 0));
    if (!CheckChannelType(ch, obj)) {
      Py_DECREF(tuple);
      return nullptr;
    }
    core->item = Encode(st, obj, ch->pickle);
    if (core->item.kind() == Item::Kind::kEmpty) {
      Py_DECREF(tuple);
      return nullptr;
    }
  }
  auto* self = reinterpret_cast<PyAioWaiter*>(type->tp_alloc(type, 0));
  if (self == nullptr) {
    Py_DECREF(tuple);
    return nullptr;
  }
  self->state = st;
  self->core = core.release();
  self->channels = tuple;
  return reinterpret_cast<PyObject*>(self);
}

int WaiterTraverse(PyObject* op, visitproc visit, void* arg) {
  PyAioWaiter* self = AsW(op);
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->channels);
  if (self->core != nullptr) Py_VISIT(self->core->callback);
  return 0;
}

int WaiterClear(PyObject* op) {
  PyAioWaiter* self = AsW(op);
  if (self->core != nullptr) {
    self->core->Disarm();  // drops the callback, the only possible cycle
    self->core->PassOn();
  }
  Py_CLEAR(self->channels);
  return 0;
}

void WaiterDealloc(PyObject* op) {
  PyTypeObject* tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  WaiterClear(op);
  delete AsW(op)->core;
  tp->tp_free(op);
  Py_DECREF(tp);
}

const char* const kArmNames[] = {"hub", "callback"};

PyObject* WaiterArm(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                    PyObject* kwnames) {
  PyAioWaiter* self = AsW(op);
  PyObject* a[2] = {nullptr, nullptr};
  if (!ParseArgs("arm", args, nargs, kwnames, kArmNames, 2, 2, 2, a)) {
    return nullptr;
  }
  if (!PyObject_TypeCheck(a[0], self->state->AioHubType)) {
    PyErr_SetString(PyExc_TypeError, "arm(): hub must be an _AioHub");
    return nullptr;
  }
  if (!PyCallable_Check(a[1])) {
    PyErr_SetString(PyExc_TypeError, "arm(): callback must be callable");
    return nullptr;
  }
  WaiterCore& w = *self->core;
  if (w.armed()) {
    PyErr_SetString(PyExc_RuntimeError, "arm(): already armed");
    return nullptr;
  }
  if (w.sent) {
    PyErr_SetString(PyExc_RuntimeError, "arm(): already sent");
    return nullptr;
  }
  w.Arm(*reinterpret_cast<PyAioHub*>(a[0])->core, a[1]);
  Py_RETURN_NONE;
}

// The exception the blocking form of this operation raises when its timeout
// passes (one wording, the bindings'): ChannelEmpty (get, select),
// ChannelFull (put), TimeoutError (join).
PyObject* WaiterTimeoutError(PyObject* op, PyObject*) {
  PyAioWaiter* self = AsW(op);
  WaiterCore& w = *self->core;
  switch (w.kind) {
    case AioKind::kGet: RaiseStatus(self->state, OpStatus::kEmpty, "get"); break;
    case AioKind::kPut: RaiseStatus(self->state, OpStatus::kFull, "put"); break;
    case AioKind::kSelect:
      RaiseStatus(self->state, OpStatus::kEmpty, "select");
      break;
    case AioKind::kJoin: RaiseJoinTimeout(w.channels[0].get()); break;
  }
  return PyErr_GetRaisedException();
}

PyObject* WaiterDisarm(PyObject* op, PyObject*) {
  return PyBool_FromLong(AsW(op)->core->Disarm());
}

PyObject* WaiterPassOn(PyObject* op, PyObject*) {
  AsW(op)->core->PassOn();
  Py_RETURN_NONE;
}

// One non-blocking attempt. NotImplemented (which no channel can carry)
// when it would have to wait.
PyObject* WaiterTryOp(PyObject* op, PyObject*) {
  PyAioWaiter* self = AsW(op);
  WaiterCore& w = *self->core;
  ModuleState* st = self->state;
  switch (w.kind) {
    case AioKind::kGet: {
      Item it;
      OpStatus s = w.channels[0]->try_recv(it);
      if (s == OpStatus::kOk) return Decode(st, std::move(it));
      if (s == OpStatus::kEmpty) Py_RETURN_NOTIMPLEMENTED;
      RaiseStatus(st, s, "get");
      return nullptr;
    }
    case AioKind::kPut: {
      if (w.sent) {
        PyErr_SetString(PyExc_RuntimeError, "try_op(): already sent");
        return nullptr;
      }
      OpStatus s = w.channels[0]->try_send(w.item);
      if (s == OpStatus::kOk) {
        w.sent = true;
        Py_RETURN_TRUE;
      }
      if (s == OpStatus::kFull) Py_RETURN_NOTIMPLEMENTED;
      RaiseStatus(st, s, "put");
      return nullptr;
    }
    case AioKind::kJoin:
      if (w.channels[0]->unfinished_tasks() == 0) Py_RETURN_NONE;
      Py_RETURN_NOTIMPLEMENTED;
    case AioKind::kSelect: {
      std::vector<ItemChannel*> raw;
      raw.reserve(w.channels.size());
      for (auto& c : w.channels) raw.push_back(c.get());
      size_t index = 0;
      Item it;
      OpStatus s = Select<Item>(std::span<ItemChannel* const>(raw), &index,
                                it, Deadline{Clock::now()});
      if (s == OpStatus::kEmpty) Py_RETURN_NOTIMPLEMENTED;
      if (s != OpStatus::kOk) {
        RaiseStatus(st, s, "select");
        return nullptr;
      }
      PyObject* value = Decode(st, std::move(it));
      if (value == nullptr) return nullptr;
      PyObject* ch = Py_NewRef(
          PyTuple_GET_ITEM(self->channels, static_cast<Py_ssize_t>(index)));
      return Py_BuildValue("(NN)", ch, value);
    }
  }
  PyErr_SetString(PyExc_SystemError, "try_op(): bad kind");
  return nullptr;
}

PyMethodDef kWaiterMethods[] = {
    {"arm", FASTKW(NoExcept<WaiterArm>::Call), METH_FASTCALL | METH_KEYWORDS,
     "arm($self, /, hub, callback)\n--\n\nLink the waiter in its channels' wait lists "
     "(then a barrier). When a\nsender or close() notifies it, hub.drain() "
     "returns callback. Follow\nwith try_op(): the re-check."},
    {"timeout_error", NoExcept<WaiterTimeoutError>::Call, METH_NOARGS,
     "timeout_error($self, /) -> BaseException\n--\n\nThe exception the blocking "
     "call raises when its timeout passes."},
    {"disarm", NoExcept<WaiterDisarm>::Call, METH_NOARGS,
     "disarm($self, /) -> bool\n--\n\nUnlink (idempotent); True if it had been "
     "notified. Remembers which\nchannels notified it, for pass_on()."},
    {"pass_on", NoExcept<WaiterPassOn>::Call, METH_NOARGS,
     "pass_on($self, /)\n--\n\nWake another waiter on each channel that notified "
     "this one, if items\n(or, for put, slots) remain. Call when leaving."},
    {"try_op", NoExcept<WaiterTryOp>::Call, METH_NOARGS,
     "try_op($self, /)\n--\n\nOne non-blocking attempt: the item (get), True (put), "
     "(channel,\nitem) (select) or None (join: no task unfinished); "
     "NotImplemented if\nit must wait. Raises ChannelClosed."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot kWaiterSlots[] = {
    {Py_tp_doc, const_cast<char*>(
                    "_AioWaiter(kind, channels, obj=None)\n--\n\nInternal: "
                    "one pending get/put/select/join of a coroutine (see "
                    "xchannels._aio).")},
    {Py_tp_new, reinterpret_cast<void*>(NoExcept<WaiterNew>::Call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(WaiterDealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(WaiterTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(WaiterClear)},
    {Py_tp_methods, kWaiterMethods},
    {0, nullptr},
};

PyType_Spec kWaiterSpec = {
    "xchannels._AioWaiter",
    sizeof(PyAioWaiter),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    kWaiterSlots,
};

// ---- module helpers ---------------------------------------------------------------

// _aio_timeout(timeout) -> float | None: timeout checked exactly as the
// blocking calls check it (same errors); None also for "practically never".
PyObject* AioTimeout(PyObject*, PyObject* timeout) {
  // One conversion: a second __float__ could fail (returning a float with
  // that exception set) or answer differently.
  double secs;
  if (!TimeoutSeconds(timeout, &secs)) return nullptr;
  if (!DeadlineAfter(secs).has_value()) Py_RETURN_NONE;
  return PyFloat_FromDouble(secs);
}

PyMethodDef kAioFunctions[] = {
    {"_aio_timeout", AioTimeout, METH_O,
     "_aio_timeout(timeout) -> float | None\n--\n\nInternal: validate a "
     "timeout like get() does."},
    {nullptr, nullptr, 0, nullptr},
};

// xchannels._aio's function `name` (new reference), importing the module on
// first use (per interpreter: cached in the module state).
PyObject* AioFunction(ModuleState* st, const char* name) {
  if (st->aio == nullptr) {
    PyObject* mod = PyImport_ImportModule("xchannels._aio");
    if (mod == nullptr) return nullptr;
    PublishOnce(&st->aio, mod);  // another thread may have been first
  }
  return PyObject_GetAttrString(st->aio, name);
}

// Calls _aio.<name>(self, *args, **kwargs) for a Channel.
PyObject* Forward(const char* name, PyObject* self, PyObject* const* args,
                  Py_ssize_t nargs, PyObject* kwnames) {
  return CallAio(reinterpret_cast<PyChannel*>(self)->state, name, self, args,
                 nargs, kwnames);
}

PyObject* JoinAsyncImpl(PyObject* self, PyObject* const* args,
                        Py_ssize_t nargs, PyObject* kwnames) {
  return Forward("join_async", self, args, nargs, kwnames);
}

PyObject* ANextImpl(PyObject* self) {
  return Forward("_anext", self, nullptr, 0, nullptr);
}


}  // namespace

PyObject* CallAio(ModuleState* st, const char* name, PyObject* self,
                  PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* fn = AioFunction(st, name);
  if (fn == nullptr) return nullptr;
  const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  std::vector<PyObject*> all(static_cast<size_t>(1 + nargs + nkw));
  all[0] = self;
  for (Py_ssize_t i = 0; i < nargs + nkw; ++i) {
    all[static_cast<size_t>(1 + i)] = args[i];
  }
  PyObject* r = PyObject_Vectorcall(fn, all.data(),
                                    static_cast<size_t>(1 + nargs), kwnames);
  Py_DECREF(fn);
  return r;
}

PyObject* ChannelJoinAsync(PyObject* self, PyObject* const* args,
                           Py_ssize_t nargs, PyObject* kwnames) {
  return NoExcept<JoinAsyncImpl>::Call(self, args, nargs, kwnames);
}

PyObject* ChannelANext(PyObject* self) {
  return NoExcept<ANextImpl>::Call(self);
}

bool InitAioTypes(PyObject* module, ModuleState* st) {
  // The operation kinds of _AioWaiter(kind, ...), for xchannels._aio.
  struct {
    const char* name;
    AioKind kind;
  } kinds[] = {{"_AIO_GET", AioKind::kGet},
               {"_AIO_PUT", AioKind::kPut},
               {"_AIO_SELECT", AioKind::kSelect},
               {"_AIO_JOIN", AioKind::kJoin}};
  for (const auto& k : kinds) {
    if (PyModule_AddIntConstant(module, k.name, static_cast<long>(k.kind)) < 0) {
      return false;
    }
  }
  return AddHeapType(module, &kHubSpec, "_AioHub", &st->AioHubType) &&
         AddHeapType(module, &kWaiterSpec, "_AioWaiter",
                 &st->AioWaiterType) &&
         PyModule_AddFunctions(module, kAioFunctions) == 0;
}

}  // namespace xchannels::py
