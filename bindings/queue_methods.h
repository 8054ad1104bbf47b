// bindings/queue_methods.h: the methods Channel and ProcessChannel share,
// written once as a template over each type's operations.
//
// A type supplies a traits struct `Q` (channel.cpp: ChannelOps;
// process_channel.cpp: ProcessOps) with its own parts only:
//   Self                 the Python object struct (PyObject_HEAD, then
//                        `ModuleState* state`, the core channel `ch`, ...,
//                        `PyObject* weakreflist`);
//   Encoded, Received    what a put sends and what a get takes;
//   EncodeValue(self, obj, &enc) -> bool    Python value -> Encoded (false
//                        with an exception set);
//   DecodeValue(self, rec) -> PyObject*     Received -> a new object;
//   TrySend / TryRecv(self, x) -> Status    never waits for the item or room;
//                        Status is the core's enum (kOk, kEmpty, kFull,
//                        kClosed, kInterrupted, maybe more);
//   Send / Recv(self, x, deadline, intr)    waits, without the GIL;
//   Busy(status) -> bool the try could not even look (another process holds
//                        the segment's lock): wait without the GIL, even for
//                        a non-blocking call;
//   Raise(self, status, what, const Encoded* or nullptr)    the type's
//                        status -> exception mapping (not kOk, kInterrupted);
//   Size, MaxItems (0: no limit), Closed, Pickle, ExitClose, Release;
//   kNames               a QueueNames: what __next__'s errors name, and
//                        xchannels._aio's coroutines.
// What is here: argument parsing of put / put_nowait / get / get_nowait,
// the try-then-wait protocol (a try with the GIL held; only if the call
// must wait, the GIL released through BlockingCall), iteration, the async
// forwards, qsize / empty / full, the context manager, the shared getters,
// the weakref member, dealloc, and the method table and type spec that
// hold them. Each type's file keeps what is its own:
// its constructor, close, repr, pickling, select, and the docstrings that
// differ (QueueDocs).
//
// Invariants: every method either returns a new reference or sets an
// exception and returns nullptr (NoExcept turns a C++ exception into
// MemoryError / SystemError); no Python code runs between a successful
// receive and its decoding, so an item taken is never lost to an exception
// other than the decoding's own.
#ifndef XCHANNELS_BINDINGS_QUEUE_METHODS_H_
#define XCHANNELS_BINDINGS_QUEUE_METHODS_H_

#include <cstddef>
#include <initializer_list>
#include <utility>
#include <vector>

#include "state.h"

namespace xchannels::py {

// The names a type gives its iteration's errors and its coroutines.
struct QueueNames {
  const char* next_what;  // the operation __next__'s errors name
  const char* get_async;  // xchannels._aio's coroutines
  const char* put_async;
};

// The docstrings of the shared methods that differ between the types.
struct QueueDocs {
  const char* put;
  const char* get;
  const char* get_async;
  const char* put_async;
  const char* qsize;
  const char* empty;
  const char* full;
};

template <class Q>
struct QueueMethods {
  using Self = typename Q::Self;
  using Encoded = typename Q::Encoded;
  using Received = typename Q::Received;
  using Status = decltype(Q::TrySend(nullptr, std::declval<Encoded&>()));

  static Self* AsSelf(PyObject* op) { return reinterpret_cast<Self*>(op); }

  // ---- the protocol, for the type's own methods too (put_many, get_many)

  // Sends `enc` as `ba` says: kOk or a failure status with no exception
  // set, or kInterrupted with one set. `fixed`, if given, is the deadline of
  // a blocking call (put_many shares one across its items); otherwise it is
  // computed only once the call must wait.
  static Status Send(Self* self, Encoded& enc, const BlockArgs& ba,
                     const Deadline* fixed = nullptr) {
    Status s = Q::TrySend(self, enc);
    if (!Q::Busy(s) && !(s == Status::kFull && ba.block)) return s;
    const Deadline deadline = !ba.block ? Deadline(Clock::time_point::min())
                              : fixed != nullptr ? *fixed
                                                 : ba.deadline();
    return BlockingCall(self->state, [&](bool intr) {
      return Q::Send(self, enc, deadline, intr);
    });
  }

  // Receives into `out` as `ba` says; statuses as for Send.
  static Status Recv(Self* self, Received& out, const BlockArgs& ba) {
    Status s = Q::TryRecv(self, out);
    if (!Q::Busy(s) && !(s == Status::kEmpty && ba.block)) return s;
    const Deadline deadline =
        ba.block ? ba.deadline() : Deadline(Clock::time_point::min());
    return BlockingCall(self->state, [&](bool intr) {
      return Q::Recv(self, out, deadline, intr);
    });
  }

  static PyObject* PutValue(Self* self, PyObject* obj, const BlockArgs& ba,
                            const char* what) {
    Encoded enc;
    if (!Q::EncodeValue(self, obj, &enc)) return nullptr;
    const Status s = Send(self, enc, ba);
    if (s == Status::kOk) {
      if constexpr (requires { Q::Sent(self, enc); }) {
        if (!Q::Sent(self, enc)) return nullptr;
      }
      Py_RETURN_NONE;
    }
    if (s != Status::kInterrupted) Q::Raise(self, s, what, &enc);
    return nullptr;
  }

  static PyObject* GetValue(Self* self, const BlockArgs& ba,
                            const char* what) {
    Received rec;
    const Status s = Recv(self, rec, ba);
    if (s == Status::kOk) return Q::DecodeValue(self, rec);
    if (s != Status::kInterrupted) Q::Raise(self, s, what, nullptr);
    return nullptr;
  }

  // ---- methods ----------------------------------------------------------------

  static constexpr const char* kPutNames[] = {"item", "block", "timeout"};
  static constexpr const char* kGetNames[] = {"block", "timeout"};

  // put(item, block=True, timeout=None)
  static PyObject* Put(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) {
    PyObject* a[3] = {nullptr, Py_True, Py_None};
    if (nargs == 1 && kwnames == nullptr) {
      a[0] = args[0];
    } else if (!ParseArgs("put", args, nargs, kwnames, kPutNames, 3, 3, 1, a)) {
      return nullptr;
    }
    BlockArgs ba;
    if (!ParseBlock(a[1], a[2], &ba)) return nullptr;
    return PutValue(AsSelf(op), a[0], ba, "put");
  }

  // put_nowait(item)
  static PyObject* PutNowait(PyObject* op, PyObject* const* args,
                             Py_ssize_t nargs, PyObject* kwnames) {
    PyObject* obj = nullptr;
    if (nargs == 1 && kwnames == nullptr) {
      obj = args[0];
    } else if (!ParseArgs("put_nowait", args, nargs, kwnames, kPutNames, 1, 1,
                          1, &obj)) {
      return nullptr;
    }
    BlockArgs ba;
    ba.block = false;
    return PutValue(AsSelf(op), obj, ba, "put_nowait");
  }

  // get(block=True, timeout=None)
  static PyObject* Get(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) {
    BlockArgs ba;
    if (nargs != 0 || kwnames != nullptr) {
      PyObject* a[2] = {Py_True, Py_None};
      if (!ParseArgs("get", args, nargs, kwnames, kGetNames, 2, 2, 0, a) ||
          !ParseBlock(a[0], a[1], &ba)) {
        return nullptr;
      }
    }
    return GetValue(AsSelf(op), ba, "get");
  }

  static PyObject* GetNowait(PyObject* op, PyObject*) {
    BlockArgs ba;
    ba.block = false;
    return GetValue(AsSelf(op), ba, "get_nowait");
  }

  // Iteration: get() until the channel is closed and drained, which ends
  // it without making ChannelClosed (on 3.13+ that would import queue).
  static PyObject* Next(PyObject* op) {
    Self* self = AsSelf(op);
    Received rec;
    const Status s = Recv(self, rec, BlockArgs());
    if (s == Status::kOk) return Q::DecodeValue(self, rec);
    if (s == Status::kClosed) return nullptr;  // StopIteration
    if (s != Status::kInterrupted) Q::Raise(self, s, Q::kNames.next_what, nullptr);
    return nullptr;
  }

  // get_async / put_async: coroutines of xchannels._aio.
  static PyObject* GetAsync(PyObject* op, PyObject* const* args,
                            Py_ssize_t nargs, PyObject* kwnames) {
    return CallAio(AsSelf(op)->state, Q::kNames.get_async, op, args, nargs, kwnames);
  }
  static PyObject* PutAsync(PyObject* op, PyObject* const* args,
                            Py_ssize_t nargs, PyObject* kwnames) {
    return CallAio(AsSelf(op)->state, Q::kNames.put_async, op, args, nargs, kwnames);
  }

  static PyObject* Qsize(PyObject* op, PyObject*) {
    return PyLong_FromUnsignedLongLong(Q::Size(AsSelf(op)));
  }
  static PyObject* Empty(PyObject* op, PyObject*) {
    return PyBool_FromLong(Q::Size(AsSelf(op)) == 0);
  }
  static PyObject* Full(PyObject* op, PyObject*) {
    Self* self = AsSelf(op);
    const unsigned long long max = Q::MaxItems(self);
    return PyBool_FromLong(max > 0 && Q::Size(self) >= max);
  }

  static PyObject* Enter(PyObject* op, PyObject*) { return Py_NewRef(op); }
  static PyObject* Exit(PyObject* op, PyObject* const*, Py_ssize_t) {
    Q::ExitClose(AsSelf(op));
    Py_RETURN_NONE;
  }

  // ---- getters, members, dealloc -------------------------------------------

  static PyObject* GetClosed(PyObject* op, void*) {
    return PyBool_FromLong(Q::Closed(AsSelf(op)));
  }
  // A getter of an unsigned number the core channel reports: F is a member
  // function of the core type, as &ProcessChannel::max_items.
  template <auto F>
  static PyObject* GetUnsigned(PyObject* op, void*) {
    return PyLong_FromUnsignedLongLong((AsSelf(op)->ch->*F)());
  }
  static PyObject* GetFallback(PyObject* op, void*) {
    if (!Q::Pickle(AsSelf(op))) Py_RETURN_NONE;
    return PyUnicode_FromString("pickle");
  }

  static inline PyMemberDef kMembers[] = {
      {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(Self, weakreflist),
       Py_READONLY, nullptr},
      {nullptr, 0, 0, 0, nullptr},
  };

  static void Dealloc(PyObject* op) {
    Self* self = AsSelf(op);
    PyTypeObject* tp = Py_TYPE(op);
    if (self->weakreflist != nullptr) PyObject_ClearWeakRefs(op);
    Q::Release(self);
    tp->tp_free(op);
    Py_DECREF(tp);
  }

  // The type's method table: the shared methods, then `own` (the type's
  // own rows). Made once per process and never freed (a method table must
  // outlive every interpreter that made the type from it).
  static PyMethodDef* MethodTable(const QueueDocs& d,
                                  std::initializer_list<PyMethodDef> own) {
    auto* t = new std::vector<PyMethodDef>{
        {"put", FASTKW(NoExcept<Put>::Call), METH_FASTCALL | METH_KEYWORDS,
         d.put},
        {"put_nowait", FASTKW(NoExcept<PutNowait>::Call),
         METH_FASTCALL | METH_KEYWORDS,
         "put_nowait($self, /, item)\n--\n\nput(item, block=False)."},
        {"get", FASTKW(NoExcept<Get>::Call), METH_FASTCALL | METH_KEYWORDS,
         d.get},
        {"get_nowait", NoExcept<GetNowait>::Call, METH_NOARGS,
         "get_nowait($self, /)\n--\n\nget(block=False)."},
        {"get_async", FASTKW(NoExcept<GetAsync>::Call),
         METH_FASTCALL | METH_KEYWORDS, d.get_async},
        {"put_async", FASTKW(NoExcept<PutAsync>::Call),
         METH_FASTCALL | METH_KEYWORDS, d.put_async},
        {"qsize", NoExcept<Qsize>::Call, METH_NOARGS, d.qsize},
        {"empty", NoExcept<Empty>::Call, METH_NOARGS, d.empty},
        {"full", NoExcept<Full>::Call, METH_NOARGS, d.full},
        {"__enter__", Enter, METH_NOARGS, nullptr},
        {"__exit__", FASTKW(Exit), METH_FASTCALL, nullptr},
    };
    t->insert(t->end(), own);
    t->push_back({nullptr, nullptr, 0, nullptr});
    return t->data();
  }

  // The type's spec: the shared slots (dealloc, iteration, the weakref
  // member), then `own` (doc, new, repr, methods, getset, ...). Made once
  // per process and never freed, as the method table.
  static PyType_Spec* TypeSpec(const char* name,
                               std::initializer_list<PyType_Slot> own) {
    auto* slots = new std::vector<PyType_Slot>{
        {Py_tp_dealloc, reinterpret_cast<void*>(Dealloc)},
        {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
        {Py_tp_iternext, reinterpret_cast<void*>(NoExcept<Next>::Call)},
        {Py_tp_members, kMembers},
    };
    slots->insert(slots->end(), own);
    slots->push_back({0, nullptr});
    return new PyType_Spec{name, static_cast<int>(sizeof(Self)), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
                           slots->data()};
  }
};

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_QUEUE_METHODS_H_
