// bindings/channel.cpp: the Python Channel type and select(), over the core
// Channel<Item>.
//
// A heap type made per interpreter, with raw METH_FASTCALL methods on the hot
// path (put, get and friends). A blocking call first tries without releasing
// the GIL; only if it must wait does it release the GIL and park in the core
// (a futex wait, no polling). In the main thread of the main interpreter the
// wait returns on EINTR so Ctrl-C raises KeyboardInterrupt with nothing lost.
//
// The methods Channel shares with ProcessChannel (put, get, their nowait and
// async forms, iteration, qsize / empty / full, the context manager) are
// QueueMethods<ChannelOps> (queue_methods.h); this file holds ChannelOps and
// what only a Channel has: put_many, get_many, close and close_after, the
// task counts, from_id, typed channels, select().
#include <cmath>
#include <string>
#include <vector>

#include "queue_methods.h"
#include "state.h"
#include "typespec.h"

namespace xchannels::py {

namespace {

using SpecPtr = std::shared_ptr<const TypeSpec>;

PyChannel* AsCh(PyObject* o) { return reinterpret_cast<PyChannel*>(o); }

// Channel's own operations for the shared methods (queue_methods.h).
struct ChannelOps {
  using Self = PyChannel;
  using Encoded = Item;
  using Received = Item;
  static constexpr QueueNames kNames = {"get", "get_async", "put_async"};

  static bool EncodeValue(PyChannel* self, PyObject* obj, Item* out) {
    if (!CheckChannelType(self, obj)) return false;
    *out = Encode(self->state, obj, self->pickle);
    return out->kind() != Item::Kind::kEmpty;
  }
  static PyObject* DecodeValue(PyChannel* self, Item& it) {
    return Decode(self->state, std::move(it));
  }
  static OpStatus TrySend(PyChannel* self, Item& it) {
    return self->ch->try_send(it);
  }
  static OpStatus Send(PyChannel* self, Item& it, const Deadline& deadline,
                       bool intr) {
    return self->ch->send(it, deadline, intr);
  }
  static OpStatus TryRecv(PyChannel* self, Item& out) {
    return self->ch->try_recv(out);
  }
  static OpStatus Recv(PyChannel* self, Item& out, const Deadline& deadline,
                       bool intr) {
    return self->ch->recv(out, deadline, intr);
  }
  static bool Busy(OpStatus) { return false; }  // the core never is
  static void Raise(PyChannel* self, OpStatus s, const char* what,
                    const Item*) {
    RaiseStatus(self->state, s, what);
  }
  static size_t Size(PyChannel* self) { return self->ch->size(); }
  static size_t MaxItems(PyChannel* self) { return self->ch->capacity(); }
  static bool Closed(PyChannel* self) { return self->ch->closed(); }
  static bool Pickle(PyChannel* self) { return self->pickle; }
  static void ExitClose(PyChannel* self) { self->ch->counted_close(); }
  static void Release(PyChannel* self) {
    delete self->spec;
    if (self->ch != nullptr) self->ch->Unref();
  }
};

using Methods = QueueMethods<ChannelOps>;

// ---- Channel's own methods -------------------------------------------------

const char* const kPutManyNames[] = {"items", "block", "timeout"};

void SetSent(Py_ssize_t sent) {
  PyObject* exc = PyErr_GetRaisedException();
  PyObject* n = PyLong_FromSsize_t(sent);
  if (n != nullptr) {
    if (PyObject_SetAttrString(exc, "sent", n) < 0) PyErr_Clear();
    Py_DECREF(n);
  }
  PyErr_SetRaisedException(exc);
}

PyObject* ChannelPutMany(PyObject* op, PyObject* const* args,
                         Py_ssize_t nargs, PyObject* kwnames) {
  PyChannel* self = AsCh(op);
  PyObject* a[3] = {nullptr, Py_True, Py_None};
  if (!ParseArgs("put_many", args, nargs, kwnames, kPutManyNames, 3, 3, 1,
                 a)) {
    return nullptr;
  }
  BlockArgs ba;
  if (!ParseBlock(a[1], a[2], &ba)) return nullptr;
  // Encode everything first: a bad item raises before anything is sent.
  PyObject* seq = PySequence_Fast(a[0], "put_many() needs an iterable");
  if (seq == nullptr) return nullptr;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  std::vector<Item> items;
  items.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* obj = PySequence_Fast_GET_ITEM(seq, i);
    if (!CheckChannelType(self, obj, i)) {
      Py_DECREF(seq);
      return nullptr;
    }
    items.push_back(Encode(self->state, obj, self->pickle));
    if (items.back().kind() == Item::Kind::kEmpty) {
      if (PyErr_ExceptionMatches(self->state->NotShareableError)) {
        PyObject* exc = PyErr_GetRaisedException();
        PyObject* msg = PyObject_Str(exc);
        if (msg != nullptr) {
          PyErr_Format(self->state->NotShareableError,
                       "put_many: items[%zd]: %U (nothing was sent)", i, msg);
          Py_DECREF(msg);
          // Keep what caused the original (an exporter's or pickle's own
          // error): the new exception says the same with the index added.
          PyObject* cause = PyException_GetCause(exc);
          if (cause != nullptr) {
            PyObject* now = PyErr_GetRaisedException();
            PyException_SetCause(now, cause);  // steals cause
            PyErr_SetRaisedException(now);
          }
          Py_DECREF(exc);
        } else {
          PyErr_SetRaisedException(exc);
        }
      }
      Py_DECREF(seq);
      return nullptr;
    }
  }
  Py_DECREF(seq);
  if (items.empty() && self->ch->closed()) {
    // Nothing to send, but a closed channel refuses puts all the same.
    RaiseStatus(self->state, OpStatus::kClosed, "put_many");
    SetSent(0);
    return nullptr;
  }
  const Deadline deadline = ba.deadline();
  for (size_t i = 0; i < items.size(); ++i) {
    OpStatus s = Methods::Send(self, items[i], ba, &deadline);
    if (s != OpStatus::kOk) {
      if (s != OpStatus::kInterrupted) RaiseStatus(self->state, s, "put_many");
      SetSent(static_cast<Py_ssize_t>(i));
      return nullptr;
    }
  }
  return PyLong_FromSsize_t(n);
}

const char* const kGetManyNames[] = {"max_items", "block", "timeout"};

// get_many's and _get_batch's max_items: an int >= 1.
bool ParseMaxItems(const char* fname, PyObject* obj, Py_ssize_t* out) {
  *out = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
  if (*out == -1 && PyErr_Occurred()) return false;
  if (*out < 1) {
    PyErr_Format(PyExc_ValueError, "%s: max_items must be >= 1", fname);
    return false;
  }
  return true;
}

// (*failures)[index] = tuple(bad); makes the dict on first use. Steals `bad`.
bool AddFailures(PyObject** failures, size_t index, PyObject* bad) {
  PyObject* t = PyList_AsTuple(bad);
  Py_DECREF(bad);
  if (t == nullptr) return false;
  if (*failures == nullptr && (*failures = PyDict_New()) == nullptr) {
    Py_DECREF(t);
    return false;
  }
  PyObject* key = PyLong_FromSize_t(index);
  int rc = key != nullptr ? PyDict_SetItem(*failures, key, t) : -1;
  Py_XDECREF(key);
  Py_DECREF(t);
  return rc == 0;
}

// get_many's work: the first item waits as `ba` says, then what is queued.
// With closed_is_none, a closed and drained channel returns None instead of
// raising ChannelClosed (the pool worker's loop: raising ChannelClosed would
// make the class, importing queue, in every worker at shutdown). With
// `failures`, items are decoded leniently (see Decode) and *failures
// becomes None or a dict {index: tuple of the exceptions standing in that
// item}: one item's bad pickle never costs the others.
PyObject* GetMany(PyChannel* self, Py_ssize_t max_items, const BlockArgs& ba,
                  bool closed_is_none, PyObject** failures = nullptr) {
  Item first;
  OpStatus s = Methods::Recv(self, first, ba);
  if (s != OpStatus::kOk) {
    if (s == OpStatus::kClosed && closed_is_none) Py_RETURN_NONE;
    if (s != OpStatus::kInterrupted) RaiseStatus(self->state, s, "get_many");
    return nullptr;
  }
  // Take what is already there, without waiting, then decode.
  std::vector<Item> items;
  items.push_back(std::move(first));
  while (static_cast<Py_ssize_t>(items.size()) < max_items) {
    Item it;
    if (self->ch->try_recv(it) != OpStatus::kOk) break;
    items.push_back(std::move(it));
  }
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(items.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < items.size(); ++i) {
    PyObject* bad = nullptr;
    PyObject* v = Decode(self->state, std::move(items[i]),
                         failures != nullptr ? &bad : nullptr);
    if (v == nullptr) {
      Py_DECREF(list);
      if (failures != nullptr) Py_CLEAR(*failures);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), v);
    if (bad != nullptr && !AddFailures(failures, i, bad)) {
      Py_DECREF(list);
      Py_CLEAR(*failures);
      return nullptr;
    }
  }
  return list;
}

PyObject* ChannelGetMany(PyObject* op, PyObject* const* args,
                         Py_ssize_t nargs, PyObject* kwnames) {
  PyChannel* self = AsCh(op);
  PyObject* a[3] = {nullptr, Py_True, Py_None};
  if (!ParseArgs("get_many", args, nargs, kwnames, kGetManyNames, 3, 3, 1,
                 a)) {
    return nullptr;
  }
  Py_ssize_t max_items;
  if (!ParseMaxItems("get_many", a[0], &max_items)) return nullptr;
  BlockArgs ba;
  if (!ParseBlock(a[1], a[2], &ba)) return nullptr;
  return GetMany(self, max_items, ba, /*closed_is_none=*/false);
}

// close(immediate=False) and its queue spelling shutdown(immediate=False).
const char* const kCloseNames[] = {"immediate"};

PyObject* CloseImpl(const char* fname, PyObject* op, PyObject* const* args,
                    Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* immediate_obj = Py_False;
  if ((nargs != 0 || kwnames != nullptr) &&
      !ParseArgs(fname, args, nargs, kwnames, kCloseNames, 1, 1, 0,
                 &immediate_obj)) {
    return nullptr;
  }
  const int immediate = PyObject_IsTrue(immediate_obj);
  if (immediate < 0) return nullptr;
  ItemChannel* ch = AsCh(op)->ch;
  if (immediate) {
    // Dropping may free many messages: no Python object is touched.
    Py_BEGIN_ALLOW_THREADS
    ch->close_and_drop();
    Py_END_ALLOW_THREADS
  } else {
    ch->counted_close();
  }
  Py_RETURN_NONE;
}

// _get_batch(max_items, block=True) -> (list, failures) | None: for the
// pool's own loops (a worker's task loop, the caller's collector).
// get_many(max_items, block), but None once the channel is closed and
// drained, and decoded leniently: a pickled value that cannot be unpickled
// fails no other value; the exception its unpickling raised stands in its
// place, and `failures` is None or {index in the list: those exceptions}.
PyObject* ChannelGetBatch(PyObject* op, PyObject* const* args,
                          Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError,
                 "_get_batch expected 1 or 2 arguments, got %zd", nargs);
    return nullptr;
  }
  Py_ssize_t max_items;
  if (!ParseMaxItems("_get_batch", args[0], &max_items)) return nullptr;
  BlockArgs ba;
  if (nargs == 2 && !ParseBlock(args[1], Py_None, &ba)) return nullptr;
  PyObject* failures = nullptr;
  PyObject* list = GetMany(AsCh(op), max_items, ba, /*closed_is_none=*/true,
                           &failures);
  if (list == nullptr || list == Py_None) return list;
  return Py_BuildValue("(NN)", list,
                       failures != nullptr ? failures : Py_NewRef(Py_None));
}

PyObject* ChannelClose(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) {
  return CloseImpl("close", op, args, nargs, kwnames);
}

PyObject* ChannelShutdown(PyObject* op, PyObject* const* args,
                          Py_ssize_t nargs, PyObject* kwnames) {
  return CloseImpl("shutdown", op, args, nargs, kwnames);
}

PyObject* ChannelCloseAfter(PyObject* op, PyObject* arg) {
  PyChannel* self = AsCh(op);
  if (!PyIndex_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "close_after: n must be an int, not %s",
                 Py_TYPE(arg)->tp_name);
    return nullptr;
  }
  Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
  if (n == -1 && PyErr_Occurred()) return nullptr;
  if (n < 1) {
    PyErr_Format(PyExc_ValueError, "close_after: n must be >= 1, not %zd", n);
    return nullptr;
  }
  if (!self->ch->close_after(static_cast<uint64_t>(n))) {
    if (self->ch->closed()) {
      RaiseStatus(self->state, OpStatus::kClosed, "close_after");
    } else {
      PyErr_SetString(PyExc_OverflowError, "close_after: too many closes");
    }
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* ChannelTaskDone(PyObject* op, PyObject*) {
  if (!AsCh(op)->ch->task_done()) {
    // queue.Queue's message.
    PyErr_SetString(PyExc_ValueError, "task_done() called too many times");
    return nullptr;
  }
  Py_RETURN_NONE;
}

const char* const kJoinNames[] = {"timeout"};

PyObject* ChannelJoin(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames) {
  PyChannel* self = AsCh(op);
  PyObject* timeout = Py_None;
  if ((nargs != 0 || kwnames != nullptr) &&
      !ParseArgs("join", args, nargs, kwnames, kJoinNames, 1, 1, 0,
                 &timeout)) {
    return nullptr;
  }
  Deadline deadline;
  if (!ParseTimeout(timeout, &deadline)) return nullptr;
  ItemChannel* ch = self->ch;
  if (ch->unfinished_tasks() == 0) Py_RETURN_NONE;
  OpStatus s = BlockingCall(self->state, [&](bool intr) {
    return ch->join(deadline, intr);
  });
  switch (s) {
    case OpStatus::kOk:
      Py_RETURN_NONE;
    case OpStatus::kEmpty:
      RaiseJoinTimeout(ch);
      return nullptr;
    default:
      RaiseStatus(self->state, s, "join");
      return nullptr;
  }
}

PyObject* ChannelFromId(PyObject* type, PyObject* arg) {
  ModuleState* st = StateOfType(type);
  if (st == nullptr) return nullptr;
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "channel id must be an int, not %s",
                 Py_TYPE(arg)->tp_name);
    return nullptr;
  }
  unsigned long long id = PyLong_AsUnsignedLongLong(arg);
  if (id == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    PyErr_Format(st->ChannelNotFoundError, "no channel with id %R", arg);
    return nullptr;
  }
  Ref<ItemChannel> ch = ItemChannel::FromBase(Registry::Global().Find(id));
  if (!ch) {
    PyErr_Format(st->ChannelNotFoundError,
                 "no channel with id %llu (never created, or every handle "
                 "to it is gone)",
                 id);
    return nullptr;
  }
  return WrapChannel(st, std::move(ch));
}

PyObject* ChannelReduce(PyObject* op, PyObject*) {
  PyObject* from_id = PyObject_GetAttrString(
      reinterpret_cast<PyObject*>(Py_TYPE(op)), "from_id");
  if (from_id == nullptr) return nullptr;
  return Py_BuildValue("(N(K))", from_id,
                       static_cast<unsigned long long>(AsCh(op)->ch->id()));
}

// The maxsize the channel was made with: its capacity, or 0 or the
// negative number given for an unbounded one (queue.Queue keeps it too).
long long MaxsizeOf(ItemChannel* ch) {
  if (ch->capacity() == 0) {
    auto config = std::static_pointer_cast<const ChannelConfig>(ch->attachment());
    return config ? config->negative_maxsize : 0;
  }
  return static_cast<long long>(ch->capacity());
}

PyObject* GetMaxsize(PyObject* op, void*) {
  return PyLong_FromLongLong(MaxsizeOf(AsCh(op)->ch));
}
PyObject* GetType(PyObject* op, void*) {
  PyChannel* self = AsCh(op);
  if (self->spec == nullptr) Py_RETURN_NONE;
  return TypeSpecToPython(self->state, **self->spec);
}

PyObject* ChannelRepr(PyObject* op) {
  PyChannel* self = AsCh(op);
  std::string type;
  if (self->spec != nullptr) type = " type=" + (*self->spec)->name;
  if (self->pickle) type += " fallback=pickle";
  return PyUnicode_FromFormat(
      "<xchannels.Channel id=%llu maxsize=%lld%s qsize=%zu %s>",
      static_cast<unsigned long long>(self->ch->id()), MaxsizeOf(self->ch),
      type.c_str(), self->ch->size(), self->ch->closed() ? "closed" : "open");
}

Py_hash_t ChannelHash(PyObject* op) {
  Py_hash_t h = static_cast<Py_hash_t>(AsCh(op)->ch->id());
  return h == -1 ? -2 : h;
}

PyObject* ChannelRichCompare(PyObject* a, PyObject* b, int op) {
  PyChannel* self = AsCh(a);
  if ((op != Py_EQ && op != Py_NE) || !IsChannel(self->state, b)) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  bool same = self->ch == AsCh(b)->ch;
  return PyBool_FromLong((op == Py_EQ) == same);
}

PyObject* ChannelNew(PyTypeObject* type, PyObject* args, PyObject* kw) {
  ModuleState* st = StateOfType(reinterpret_cast<PyObject*>(type));
  if (st == nullptr) return nullptr;
  static const char* kwlist[] = {"maxsize", "type", "fallback", nullptr};
  PyObject* maxsize_obj = nullptr;
  PyObject* type_obj = Py_None;
  PyObject* fallback_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$OO:Channel",
                                   const_cast<char**>(kwlist), &maxsize_obj,
                                   &type_obj, &fallback_obj)) {
    return nullptr;
  }
  bool pickle = false;
  if (!ParseFallback(fallback_obj, &pickle)) return nullptr;
  size_t maxsize = 0;
  int64_t negative_maxsize = 0;
  if (maxsize_obj != nullptr) {
    if (!PyIndex_Check(maxsize_obj)) {
      PyErr_Format(PyExc_TypeError, "maxsize must be an int, not %s",
                   Py_TYPE(maxsize_obj)->tp_name);
      return nullptr;
    }
    Py_ssize_t m = PyNumber_AsSsize_t(maxsize_obj, PyExc_OverflowError);
    if (m == -1 && PyErr_Occurred()) return nullptr;
    // As queue.Queue: maxsize <= 0 means unbounded.
    maxsize = m > 0 ? static_cast<size_t>(m) : 0;
    if (m < 0) negative_maxsize = m;
  }
  SpecPtr spec;
  if (type_obj != Py_None) {
    spec = ParseTypeSpec(st, type_obj);
    if (!spec) return nullptr;
  }
  Ref<ItemChannel> ch = ItemChannel::Create(maxsize);
  if (!ch) return PyErr_NoMemory();
  if (spec || pickle || negative_maxsize != 0) {
    auto config = std::make_shared<ChannelConfig>();
    config->spec = std::move(spec);
    config->pickle = pickle;
    config->negative_maxsize = negative_maxsize;
    ch->set_attachment(std::move(config));
  }
  return WrapChannel(st, std::move(ch));
}

const QueueDocs kChannelDocs = {
    /*put=*/"put($self, /, item, block=True, timeout=None)\n--\n\n"
     "Send item. On a bounded channel, wait for room if block is true (at\n"
     "most timeout seconds, then raise ChannelFull). Raises ChannelClosed\n"
     "once the channel is closed, NotShareableError (nothing sent) for a\n"
     "value that cannot travel, TypeError for a typed channel's mismatch.",
    /*get=*/"get($self, /, block=True, timeout=None)\n--\n\n"
     "Receive the next item, waiting if block is true (at most timeout\n"
     "seconds, then raise ChannelEmpty). Raises ChannelClosed once the\n"
     "channel is closed and drained.",
    /*get_async=*/"get_async($self, /, timeout=None)\n--\n\n"
     "Coroutine: receive the next item without blocking the event loop\n"
     "(await ch.get_async()). Waits at most timeout seconds, then raises\n"
     "ChannelEmpty; raises ChannelClosed once the channel is closed and\n"
     "drained. Cancelling it consumes nothing. Returns at once, without\n"
     "yielding to the loop, when an item is already there.",
    /*put_async=*/"put_async($self, /, item, timeout=None)\n--\n\n"
     "Coroutine: send item; on a full bounded channel, wait for room without\n"
     "blocking the event loop (at most timeout seconds, then raise\n"
     "ChannelFull). Raises ChannelClosed, NotShareableError or TypeError\n"
     "(typed channel) like put(), before anything is sent.",
    /*qsize=*/"qsize($self, /)\n--\n\nApproximate number of queued items.",
    /*empty=*/"empty($self, /)\n--\n\nqsize() == 0 (approximate, like queue.Queue).",
    /*full=*/"full($self, /)\n--\n\nTrue when bounded and qsize() >= maxsize (approximate).",
};

PyMethodDef* const kChannelMethods = Methods::MethodTable(kChannelDocs, {
    {"put_many", FASTKW(NoExcept<ChannelPutMany>::Call), METH_FASTCALL | METH_KEYWORDS,
     "put_many($self, /, items, block=True, timeout=None)\n--\n\n"
     "Send every item in order and return how many were sent. All items are\n"
     "checked and encoded first, so a bad one raises before any is sent. If\n"
     "the channel fills past the timeout or closes midway, the exception\n"
     "carries .sent, the number already sent."},
    {"get_many", FASTKW(NoExcept<ChannelGetMany>::Call), METH_FASTCALL | METH_KEYWORDS,
     "get_many($self, /, max_items, block=True, timeout=None)\n--\n\n"
     "Wait like get() for the first item, then take up to max_items - 1\n"
     "more that are already queued, without waiting. Returns a non-empty\n"
     "list."},
    {"_get_batch", FASTKW(NoExcept<ChannelGetBatch>::Call), METH_FASTCALL,
     "_get_batch($self, max_items, block=True, /)\n--\n\nInternal (the "
     "pool's loops): get_many(max_items, block) as\n(items, failures), or "
     "None once closed and drained. Lenient: a\npickled value that cannot "
     "be unpickled is replaced by the exception\nits unpickling raised, and "
     "failures is None or {index: those exceptions}."},
    {"close", FASTKW(NoExcept<ChannelClose>::Call), METH_FASTCALL | METH_KEYWORDS,
     "close($self, /, immediate=False)\n--\n\nClose the channel (idempotent). Later puts raise\n"
     "ChannelClosed; gets drain what is queued, then raise ChannelClosed;\n"
     "every blocked caller, in every interpreter, wakes at once.\n\n"
     "immediate=True also drops every queued item (releasing it) and marks\n"
     "its task done, which may let join() return: queue.Queue's\n"
     "shutdown(immediate=True). After close_after(n), a call without\n"
     "immediate counts one producer done and only the last one closes."},
    {"shutdown", FASTKW(NoExcept<ChannelShutdown>::Call), METH_FASTCALL | METH_KEYWORDS,
     "shutdown($self, /, immediate=False)\n--\n\nqueue.Queue's name for close(immediate)."},
    {"close_after", NoExcept<ChannelCloseAfter>::Call, METH_O,
     "close_after($self, n, /)\n--\n\nFor n producers: the channel closes on the n-th close() (or exit\n"
     "from a `with ch:` block) from now on, counted across interpreters.\n"
     "Calls add up. close(immediate=True) still closes at once. Raises\n"
     "ValueError for n < 1 and ChannelClosed if the channel is closed."},
    {"task_done", NoExcept<ChannelTaskDone>::Call, METH_NOARGS,
     "task_done($self, /)\n--\n\nMark one item taken from the channel as processed (from any\n"
     "interpreter), as queue.Queue.task_done. Raises ValueError if called\n"
     "more times than items were put."},
    {"join", FASTKW(NoExcept<ChannelJoin>::Call), METH_FASTCALL | METH_KEYWORDS,
     "join($self, /, timeout=None)\n--\n\nWait until every item ever put has been marked done with\n"
     "task_done() (in any interpreter), as queue.Queue.join. Raises\n"
     "TimeoutError if timeout seconds pass first. Works on a closed channel\n"
     "too (it waits for the items already taken)."},
    {"join_async", FASTKW(ChannelJoinAsync), METH_FASTCALL | METH_KEYWORDS,
     "join_async($self, /, timeout=None)\n--\n\n"
     "Coroutine: join() without blocking the event loop. Raises\n"
     "TimeoutError if timeout seconds pass first."},
    {"from_id", NoExcept<ChannelFromId>::Call, METH_O | METH_CLASS,
     "from_id($type, id, /)\n--\n\nA handle on the existing channel with this id, from "
     "any interpreter.\nRaises ChannelNotFoundError if there is none."},
    {"__reduce__", ChannelReduce, METH_NOARGS, nullptr},
});

PyGetSetDef kChannelGetSet[] = {
    {"closed", Methods::GetClosed, nullptr, "Whether the channel is closed.",
     nullptr},
    {"is_shutdown", Methods::GetClosed, nullptr,
     "queue.Queue's name for closed.", nullptr},
    {"unfinished_tasks", Methods::GetUnsigned<&ItemChannel::unfinished_tasks>, nullptr,
     "Items put and not yet marked done by task_done() (nor dropped by\n"
     "close(immediate=True)), counted across interpreters.", nullptr},
    {"close_pending", Methods::GetUnsigned<&ItemChannel::close_pending>, nullptr,
     "close() calls still needed before the channel closes (see\n"
     "close_after); 0 when a close() closes at once.", nullptr},
    {"id", Methods::GetUnsigned<&ItemChannel::id>, nullptr, "Process-unique id; see Channel.from_id.", nullptr},
    {"maxsize", GetMaxsize, nullptr,
     "Capacity, fixed at creation; 0 or less (as given) means unbounded.", nullptr},
    {"type", GetType, nullptr,
     "The type= expression the channel checks, or None.", nullptr},
    {"fallback", Methods::GetFallback, nullptr,
     "'pickle' if values that do not travel natively are pickled, else None.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

const char kChannelDoc[] =
    "Channel(maxsize=0, *, type=None, fallback=None)\n--\n\n"
    "A blocking multi-producer, multi-consumer channel shared by every\n"
    "interpreter of the process.\n\n"
    "maxsize: the capacity; 0 or less for unbounded (as queue.Queue).\n"
    "type: None, or a type expression (int, str, tuple[int, ...], list[str],\n"
    "dict[str, int], int | None, ...) that every put is checked against.\n"
    "fallback: None, or 'pickle' to send what does not travel natively\n"
    "(and subclasses of the built-ins, which then keep their class) pickled.\n\n"
    "Values travel without pickle; see the documentation for what is\n"
    "shareable. FIFO holds per producer. A handle may be sent through\n"
    "another channel, passed by id (Channel.from_id) or pickled.";

PyType_Spec* const kChannelSpec = Methods::TypeSpec("xchannels.Channel", {
    {Py_tp_doc, const_cast<char*>(kChannelDoc)},
    {Py_tp_new, reinterpret_cast<void*>(NoExcept<ChannelNew>::Call)},
    {Py_tp_repr, reinterpret_cast<void*>(NoExcept<ChannelRepr>::Call)},
    {Py_tp_hash, reinterpret_cast<void*>(ChannelHash)},
    {Py_tp_richcompare, reinterpret_cast<void*>(ChannelRichCompare)},
    {Py_am_aiter, reinterpret_cast<void*>(PyObject_SelfIter)},  // aio.cpp
    {Py_am_anext, reinterpret_cast<void*>(ChannelANext)},
    {Py_tp_methods, kChannelMethods},
    {Py_tp_getset, kChannelGetSet},
});

}  // namespace

void RaiseJoinTimeout(ItemChannel* ch) {
  PyErr_Format(PyExc_TimeoutError,
               "join: %llu task(s) still unfinished when the timeout passed",
               static_cast<unsigned long long>(ch->unfinished_tasks()));
}

bool InitChannelType(PyObject* module, ModuleState* st) {
  return AddHeapType(module, kChannelSpec, "Channel", &st->ChannelType);
}

PyObject* WrapChannel(ModuleState* st, Ref<ItemChannel> ch) {
  PyTypeObject* tp = st->ChannelType;
  auto* self = reinterpret_cast<PyChannel*>(tp->tp_alloc(tp, 0));
  if (self == nullptr) return nullptr;
  self->state = st;
  self->weakreflist = nullptr;
  auto config = std::static_pointer_cast<const ChannelConfig>(ch->attachment());
  self->spec = config && config->spec ? new SpecPtr(config->spec) : nullptr;
  self->pickle = config && config->pickle;
  self->ch = ch.Release();
  return reinterpret_cast<PyObject*>(self);
}

PyObject* Select(ModuleState* st, PyObject* channels, PyObject* timeout) {
  // A tuple of our own: another thread may change a list argument while
  // this one waits without the GIL.
  PyObject* seq = PySequence_Tuple(channels);
  if (seq == nullptr) {
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_SetString(PyExc_TypeError, "select() needs a sequence of channels");
    }
    return nullptr;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0) {
    Py_DECREF(seq);
    PyErr_SetString(PyExc_ValueError, "select() needs at least one channel");
    return nullptr;
  }
  if (Py_TYPE(PySequence_Fast_GET_ITEM(seq, 0)) == st->ProcessChannelType) {
    PyObject* r = SelectProcessChannels(st, seq, timeout);
    Py_DECREF(seq);
    return r;
  }
  std::vector<Ref<ItemChannel>> refs;
  std::vector<ItemChannel*> raw;
  refs.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* o = PySequence_Fast_GET_ITEM(seq, i);
    if (!IsChannel(st, o)) {
      PyErr_Format(PyExc_TypeError,
                   "select(): channels[%zd] is %s, not a Channel (select() "
                   "takes Channels, or ProcessChannels, not a mix)", i,
                   Py_TYPE(o)->tp_name);
      Py_DECREF(seq);
      return nullptr;
    }
    refs.push_back(Ref<ItemChannel>::Share(AsCh(o)->ch));
    raw.push_back(AsCh(o)->ch);
  }
  Deadline deadline;
  if (timeout != Py_None && !ParseTimeout(timeout, &deadline)) {
    Py_DECREF(seq);
    return nullptr;
  }
  size_t index = 0;
  Item it;
  std::span<ItemChannel* const> span(raw.data(), raw.size());
  OpStatus s = Select<Item>(span, &index, it, Deadline{std::chrono::steady_clock::now()});
  if (s == OpStatus::kEmpty && !(deadline && *deadline <= Clock::now())) {
    s = BlockingCall(st, [&](bool intr) {
      return Select<Item>(span, &index, it, deadline, intr);
    });
  }
  if (s != OpStatus::kOk) {
    Py_DECREF(seq);
    if (s != OpStatus::kInterrupted) RaiseStatus(st, s, "select");
    return nullptr;
  }
  PyObject* value = Decode(st, std::move(it));
  if (value == nullptr) {
    Py_DECREF(seq);
    return nullptr;
  }
  PyObject* ch = Py_NewRef(PySequence_Fast_GET_ITEM(seq, static_cast<Py_ssize_t>(index)));
  Py_DECREF(seq);
  return Py_BuildValue("(NN)", ch, value);
}

}  // namespace xchannels::py
