// bindings/process_channel.cpp: xchannels.ProcessChannel, a channel between
// processes over a shared-memory segment (core: xchannels/process_channel.h).
//
// Values travel as the flat form of an encoded Item (values.cpp: EncodeFlat /
// DecodeFlat): everything a Channel carries natively except channels, and
// the pickle fallback where the channel opted in. A handle pickles (for
// multiprocessing) through xchannels._process, which passes the segment's
// file descriptor with multiprocessing's own machinery.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "state.h"

namespace xchannels::py {
namespace {

struct PyProcessChannel {
  PyObject_HEAD
  ModuleState* state;
  ProcessChannel* ch;  // one reference, owned
  PyObject* weakreflist;
};

PyProcessChannel* AsPc(PyObject* o) {
  return reinterpret_cast<PyProcessChannel*>(o);
}

PyObject* Wrap(ModuleState* st, PyTypeObject* tp, Ref<ProcessChannel> ch) {
  auto* self = reinterpret_cast<PyProcessChannel*>(tp->tp_alloc(tp, 0));
  if (self == nullptr) return nullptr;
  self->state = st;
  self->weakreflist = nullptr;
  self->ch = ch.Release();
  return reinterpret_cast<PyObject*>(self);
}

// Raises the exception for a failed status (not kOk, not kInterrupted).
void RaiseShm(PyProcessChannel* self, ShmStatus s, const char* what,
              size_t record_bytes = 0) {
  ModuleState* st = self->state;
  switch (s) {
    case ShmStatus::kEmpty:
      RaiseStatus(st, OpStatus::kEmpty, what);
      return;
    case ShmStatus::kFull:
      RaiseStatus(st, OpStatus::kFull, what);
      return;
    case ShmStatus::kClosed:
      RaiseStatus(st, OpStatus::kClosed, what);
      return;
    case ShmStatus::kInterrupted:
      RaiseStatus(st, OpStatus::kInterrupted, what);
      return;
    case ShmStatus::kTooLarge:
      PyErr_Format(PyExc_ValueError,
                   "%s: the value takes %zu bytes encoded, more than this "
                   "ProcessChannel can ever hold (capacity=%zu bytes, at most "
                   "%zu per item); make the channel with a larger capacity",
                   what, record_bytes, self->ch->ring_bytes(),
                   self->ch->max_record_bytes());
      return;
    case ShmStatus::kCorrupt:
      PyErr_Format(st->ChannelError,
                   "%s: the ProcessChannel's shared segment is corrupted "
                   "(written by a faulty or hostile process)",
                   what);
      return;
    case ShmStatus::kOk:
    case ShmStatus::kUnsupported:
    case ShmStatus::kBusy:
      break;
  }
  PyErr_SetString(PyExc_SystemError, "xchannels: unexpected status");
}

// ProcessChannel(maxsize=0, *, capacity=1048576, fallback=None)
PyObject* PcNew(PyTypeObject* type, PyObject* args, PyObject* kw) {
  ModuleState* st = StateOfType(reinterpret_cast<PyObject*>(type));
  if (st == nullptr) return nullptr;
  static const char* kwlist[] = {"maxsize", "capacity", "fallback", nullptr};
  Py_ssize_t maxsize = 0;
  Py_ssize_t capacity = Py_ssize_t{1} << 20;
  PyObject* fallback = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|n$nO:ProcessChannel",
                                   const_cast<char**>(kwlist), &maxsize,
                                   &capacity, &fallback)) {
    return nullptr;
  }
  uint32_t flags = 0;
  if (fallback != Py_None) {
    if (!PyUnicode_Check(fallback) ||
        PyUnicode_CompareWithASCIIString(fallback, "pickle") != 0) {
      PyErr_Format(PyExc_ValueError,
                   "fallback must be None or 'pickle', not %R", fallback);
      return nullptr;
    }
    flags |= ProcessChannel::kFlagPickle;
  }
  if (capacity < static_cast<Py_ssize_t>(ProcessChannel::kMinRingBytes)) {
    PyErr_Format(PyExc_ValueError,
                 "capacity must be at least %zu bytes, not %zd",
                 ProcessChannel::kMinRingBytes, capacity);
    return nullptr;
  }
  std::string err;
  Ref<ProcessChannel> ch = ProcessChannel::Create(
      static_cast<size_t>(capacity),
      maxsize > 0 ? static_cast<uint64_t>(maxsize) : 0, flags, &err);
  if (!ch) {
    PyErr_Format(PyExc_OSError, "ProcessChannel: %s", err.c_str());
    return nullptr;
  }
  return Wrap(st, type, std::move(ch));
}

// ProcessChannel._from_fd(fd): a new handle on the segment behind `fd` (the
// descriptor is duplicated; the caller keeps its own).
PyObject* PcFromFd(PyObject* type, PyObject* arg) {
  ModuleState* st = StateOfType(type);
  if (st == nullptr) return nullptr;
  const int fd = PyObject_AsFileDescriptor(arg);
  if (fd < 0) return nullptr;
  const int mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (mine < 0) return PyErr_SetFromErrno(PyExc_OSError);
  std::string err;
  Ref<ProcessChannel> ch = ProcessChannel::Attach(mine, &err);
  if (!ch) {
    PyErr_Format(PyExc_ValueError, "ProcessChannel._from_fd: %s", err.c_str());
    return nullptr;
  }
  return Wrap(st, reinterpret_cast<PyTypeObject*>(type), std::move(ch));
}

const char* const kPutNames[] = {"item", "block", "timeout"};

PyObject* PcPutImpl(PyProcessChannel* self, PyObject* obj,
                    const BlockArgs& ba, const char* what) {
  Item item;
  RecordBuffer head;  // on the stack: a small record allocates nothing
  std::span<const uint8_t> payload;
  if (!EncodeFlat(self->state, obj,
                  (self->ch->flags() & ProcessChannel::kFlagPickle) != 0,
                  &item, &head, &payload)) {
    return nullptr;
  }
  ProcessChannel* ch = self->ch;
  // First try with the GIL held, without waiting for the segment's mutex:
  // another process may hold it stopped (SIGSTOP, a debugger), and waiting
  // for it here would freeze every thread of this interpreter. If it is
  // held, or if a blocking put finds the ring full, wait without the GIL.
  ShmStatus s = ch->TrySendNoLockWait(head, payload);
  if (s == ShmStatus::kBusy || (s == ShmStatus::kFull && ba.block)) {
    const Deadline deadline =
        ba.block ? ba.deadline() : Deadline(Clock::time_point::min());
    s = BlockingCall(self->state, [&](bool intr) {
      return ch->Send(head, payload, deadline, intr);
    });
  }
  if (s == ShmStatus::kOk) Py_RETURN_NONE;
  if (s != ShmStatus::kInterrupted) {
    RaiseShm(self, s, what, head.size() + payload.size());
  }
  return nullptr;
}

PyObject* PcPut(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                PyObject* kwnames) {
  PyObject* a[3] = {nullptr, Py_True, Py_None};
  if (nargs == 1 && kwnames == nullptr) {
    a[0] = args[0];
  } else if (!ParseArgs("put", args, nargs, kwnames, kPutNames, 3, 3, 1, a)) {
    return nullptr;
  }
  BlockArgs ba;
  if (!ParseBlock(a[1], a[2], &ba)) return nullptr;
  return PcPutImpl(AsPc(op), a[0], ba, "put");
}

PyObject* PcPutNowait(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames) {
  PyObject* obj = nullptr;
  if (nargs == 1 && kwnames == nullptr) {
    obj = args[0];
  } else if (!ParseArgs("put_nowait", args, nargs, kwnames, kPutNames, 1, 1, 1,
                        &obj)) {
    return nullptr;
  }
  BlockArgs ba;
  ba.block = false;
  return PcPutImpl(AsPc(op), obj, ba, "put_nowait");
}

const char* const kGetNames[] = {"block", "timeout"};

PyObject* PcGetImpl(PyProcessChannel* self, const BlockArgs& ba,
                    const char* what) {
  ProcessChannel* ch = self->ch;
  RecordBuffer rec;
  // As in put: the mutex is waited for without the GIL.
  ShmStatus s = ch->TryRecvNoLockWait(&rec);
  if (s == ShmStatus::kBusy || (s == ShmStatus::kEmpty && ba.block)) {
    const Deadline deadline =
        ba.block ? ba.deadline() : Deadline(Clock::time_point::min());
    s = BlockingCall(self->state, [&](bool intr) {
      return ch->Recv(&rec, deadline, intr);
    });
  }
  if (s == ShmStatus::kOk) return DecodeFlat(self->state, rec.span(),
                                          (ch->flags() & ProcessChannel::kFlagPickle) != 0);
  if (s != ShmStatus::kInterrupted) RaiseShm(self, s, what);
  return nullptr;
}

PyObject* PcGet(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                PyObject* kwnames) {
  BlockArgs ba;
  if (nargs != 0 || kwnames != nullptr) {
    PyObject* a[2] = {Py_True, Py_None};
    if (!ParseArgs("get", args, nargs, kwnames, kGetNames, 2, 2, 0, a) ||
        !ParseBlock(a[0], a[1], &ba)) {
      return nullptr;
    }
  }
  return PcGetImpl(AsPc(op), ba, "get");
}

PyObject* PcGetNowait(PyObject* op, PyObject*) {
  BlockArgs ba;
  ba.block = false;
  return PcGetImpl(AsPc(op), ba, "get_nowait");
}

PyObject* PcClose(PyObject* op, PyObject*) {
  return PyBool_FromLong(AsPc(op)->ch->Close());
}

PyObject* PcQsize(PyObject* op, PyObject*) {
  return PyLong_FromUnsignedLongLong(AsPc(op)->ch->size());
}

PyObject* PcEmpty(PyObject* op, PyObject*) {
  return PyBool_FromLong(AsPc(op)->ch->size() == 0);
}

PyObject* PcFull(PyObject* op, PyObject*) {
  ProcessChannel* ch = AsPc(op)->ch;
  return PyBool_FromLong(ch->max_items() > 0 && ch->size() >= ch->max_items());
}

PyObject* PcFileno(PyObject* op, PyObject*) {
  return PyLong_FromLong(AsPc(op)->ch->fd());
}

PyObject* PcReduce(PyObject* op, PyObject*) {
  PyObject* mod = PyImport_ImportModule("xchannels._process");
  if (mod == nullptr) return nullptr;
  PyObject* r = PyObject_CallMethod(mod, "_reduce", "O", op);
  Py_DECREF(mod);
  return r;
}

PyObject* PcEnter(PyObject* op, PyObject*) { return Py_NewRef(op); }

PyObject* PcExit(PyObject* op, PyObject* const*, Py_ssize_t) {
  AsPc(op)->ch->Close();
  Py_RETURN_NONE;
}

PyObject* PcNext(PyObject* op) {
  PyProcessChannel* self = AsPc(op);
  BlockArgs ba;
  PyObject* v = PcGetImpl(self, ba, "__next__");
  // A closed and drained channel ends the iteration. Only the class made
  // already can be the pending exception: ChannelClosedType() would make it
  // now (importing queue on 3.13+), running Python code with the exception
  // set (and losing it if that import failed).
  PyObject* closed = self->state->ChannelClosed;
  if (v == nullptr && closed != nullptr && PyErr_ExceptionMatches(closed)) {
    PyErr_Clear();
  }
  return v;
}

// _seq(data) -> int: the data (True) or space (False) word now.
PyObject* PcSeq(PyObject* op, PyObject* arg) {
  const int data = PyObject_IsTrue(arg);
  if (data < 0) return nullptr;
  return PyLong_FromUnsignedLong(AsPc(op)->ch->Seq(data != 0));
}

// _wait_seq(data, seq, timeout) -> bool: waits (GIL released) until the
// word differs from seq; False if the timeout passed first.
PyObject* PcWaitSeq(PyObject* op, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "_wait_seq(data, seq, timeout)");
    return nullptr;
  }
  PyProcessChannel* self = AsPc(op);
  const int data = PyObject_IsTrue(args[0]);
  if (data < 0) return nullptr;
  const unsigned long seq = PyLong_AsUnsignedLong(args[1]);
  if (seq == static_cast<unsigned long>(-1) && PyErr_Occurred()) return nullptr;
  Deadline deadline;
  if (args[2] != Py_None && !ParseTimeout(args[2], &deadline)) return nullptr;
  ProcessChannel* ch = self->ch;
  const ShmStatus s = BlockingCall(self->state, [&](bool intr) {
    return ch->WaitSeq(data != 0, static_cast<uint32_t>(seq), deadline, intr);
  });
  if (s == ShmStatus::kOk) Py_RETURN_TRUE;
  if (s == ShmStatus::kEmpty) Py_RETURN_FALSE;
  if (s != ShmStatus::kInterrupted) RaiseShm(self, s, "_wait_seq");
  return nullptr;
}

PyObject* PcNudge(PyObject* op, PyObject*) {
  AsPc(op)->ch->Nudge();
  Py_RETURN_NONE;
}

// get_async / put_async: coroutines of xchannels._aio (process_get_async,
// process_put_async: Channel's wait loop with a thread as the park).
PyObject* ForwardAsync(const char* fn, PyObject* self, PyObject* const* args,
                       Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* mod = PyImport_ImportModule("xchannels._aio");
  if (mod == nullptr) return nullptr;
  PyObject* f = PyObject_GetAttrString(mod, fn);
  Py_DECREF(mod);
  if (f == nullptr) return nullptr;
  const Py_ssize_t n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  std::vector<PyObject*> all(static_cast<size_t>(n) + 2);
  all[1] = self;
  for (Py_ssize_t i = 0; i < n; ++i) all[static_cast<size_t>(i) + 2] = args[i];
  PyObject* r = PyObject_Vectorcall(f, all.data() + 1,
                                    (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                    kwnames);
  Py_DECREF(f);
  return r;
}

PyObject* PcGetAsync(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames) {
  return ForwardAsync("process_get_async", op, args, nargs, kwnames);
}

PyObject* PcPutAsync(PyObject* op, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames) {
  return ForwardAsync("process_put_async", op, args, nargs, kwnames);
}

PyObject* PcClosed(PyObject* op, void*) {
  return PyBool_FromLong(AsPc(op)->ch->closed());
}
PyObject* PcMaxsize(PyObject* op, void*) {
  return PyLong_FromUnsignedLongLong(AsPc(op)->ch->max_items());
}
PyObject* PcCapacity(PyObject* op, void*) {
  return PyLong_FromSize_t(AsPc(op)->ch->ring_bytes());
}
PyObject* PcSegmentId(PyObject* op, void*) {
  return PyLong_FromUnsignedLongLong(AsPc(op)->ch->segment_id());
}
PyObject* PcFallback(PyObject* op, void*) {
  if (AsPc(op)->ch->flags() & ProcessChannel::kFlagPickle) {
    return PyUnicode_FromString("pickle");
  }
  Py_RETURN_NONE;
}

PyObject* PcRepr(PyObject* op) {
  ProcessChannel* ch = AsPc(op)->ch;
  return PyUnicode_FromFormat(
      "<xchannels.ProcessChannel fd=%d maxsize=%llu capacity=%zu qsize=%llu%s>",
      ch->fd(), static_cast<unsigned long long>(ch->max_items()),
      ch->ring_bytes(), static_cast<unsigned long long>(ch->size()),
      ch->closed() ? " closed" : "");
}

void PcDealloc(PyObject* op) {
  PyProcessChannel* self = AsPc(op);
  PyTypeObject* tp = Py_TYPE(op);
  if (self->weakreflist != nullptr) PyObject_ClearWeakRefs(op);
  if (self->ch != nullptr) self->ch->Unref();
  tp->tp_free(op);
  Py_DECREF(tp);
}

PyMethodDef kPcMethods[] = {
    {"put", FASTKW(NoExcept<PcPut>::Call), METH_FASTCALL | METH_KEYWORDS,
     "put($self, /, item, block=True, timeout=None)\n--\n\n"
     "Copy item into the shared segment; blocks while the channel is full.\n"
     "Raises ChannelClosed, ChannelFull (timeout or block=False),\n"
     "NotShareableError, or ValueError for a value larger than the capacity."},
    {"put_nowait", FASTKW(NoExcept<PcPutNowait>::Call),
     METH_FASTCALL | METH_KEYWORDS,
     "put_nowait($self, /, item)\n--\n\nput(item, block=False)."},
    {"get", FASTKW(NoExcept<PcGet>::Call), METH_FASTCALL | METH_KEYWORDS,
     "get($self, /, block=True, timeout=None)\n--\n\n"
     "Take the next item, waiting for one; ChannelClosed once closed and\n"
     "drained, ChannelEmpty on timeout or block=False."},
    {"get_nowait", NoExcept<PcGetNowait>::Call, METH_NOARGS,
     "get_nowait($self, /)\n--\n\nget(block=False)."},
    {"close", NoExcept<PcClose>::Call, METH_NOARGS,
     "close($self, /)\n--\n\nClose the channel for every process and wake "
     "every waiter.\nReturns False if it was closed already."},
    {"qsize", NoExcept<PcQsize>::Call, METH_NOARGS,
     "qsize($self, /)\n--\n\nItems queued (a snapshot)."},
    {"empty", NoExcept<PcEmpty>::Call, METH_NOARGS,
     "empty($self, /)\n--\n\nqsize() == 0 (a snapshot)."},
    {"full", NoExcept<PcFull>::Call, METH_NOARGS,
     "full($self, /)\n--\n\nWhether maxsize items are queued (a snapshot)."},
    {"fileno", NoExcept<PcFileno>::Call, METH_NOARGS,
     "fileno($self, /)\n--\n\nThe segment's file descriptor (a memfd)."},
    {"_from_fd", NoExcept<PcFromFd>::Call, METH_O | METH_CLASS,
     "_from_fd($type, fd, /)\n--\n\nA new handle on the segment behind fd (duplicated)."},
    {"get_async", FASTKW(NoExcept<PcGetAsync>::Call), METH_FASTCALL | METH_KEYWORDS,
     "get_async($self, /, timeout=None)\n--\n\n"
     "Awaitable get(): waits without blocking the event loop (a helper\n"
     "thread sleeps on the segment meanwhile). ChannelEmpty on timeout."},
    {"put_async", FASTKW(NoExcept<PcPutAsync>::Call), METH_FASTCALL | METH_KEYWORDS,
     "put_async($self, /, item, timeout=None)\n--\n\n"
     "Awaitable put(): waits for room without blocking the event loop.\n"
     "ChannelFull on timeout."},
    {"_seq", NoExcept<PcSeq>::Call, METH_O,
     "_seq($self, data, /)\n--\n\nThe data (True) or space (False) word now."},
    {"_wait_seq", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(
                      NoExcept<PcWaitSeq>::Call)),
     METH_FASTCALL,
     "_wait_seq($self, data, seq, timeout, /)\n--\n\n"
     "Wait until the word moves from seq; False on timeout."},
    {"_nudge", NoExcept<PcNudge>::Call, METH_NOARGS,
     "_nudge($self, /)\n--\n\nMove both words and wake every waiter."},
    {"__reduce__", NoExcept<PcReduce>::Call, METH_NOARGS, nullptr},
    {"__enter__", PcEnter, METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(PcExit)),
     METH_FASTCALL, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kPcGetSet[] = {
    {"closed", PcClosed, nullptr, "Whether close() was called (by any process).",
     nullptr},
    {"maxsize", PcMaxsize, nullptr, "The item limit (0: none).", nullptr},
    {"capacity", PcCapacity, nullptr, "The bytes the segment holds for items.",
     nullptr},
    {"fallback", PcFallback, nullptr, "'pickle' or None.", nullptr},
    {"_segment_id", PcSegmentId, nullptr,
     "A random number drawn at creation, the same in every handle.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef kPcMembers[] = {
    {"__weaklistoffset__", Py_T_PYSSIZET,
     offsetof(PyProcessChannel, weakreflist), Py_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot kPcSlots[] = {
    {Py_tp_doc, const_cast<char*>(
        "ProcessChannel(maxsize=0, *, capacity=1048576, fallback=None)\n--\n\n"
        "A channel between processes: items are copied into a shared-memory\n"
        "segment (a memfd) of `capacity` bytes, at most `maxsize` of them\n"
        "(0: no item limit). Pass it to multiprocessing.Process / Pool\n"
        "(fork, spawn, forkserver) like a multiprocessing.Queue.")},
    {Py_tp_new, reinterpret_cast<void*>(NoExcept<PcNew>::Call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(PcDealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(NoExcept<PcRepr>::Call)},
    {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(NoExcept<PcNext>::Call)},
    {Py_tp_methods, kPcMethods},
    {Py_tp_getset, kPcGetSet},
    {Py_tp_members, kPcMembers},
    {0, nullptr},
};

PyType_Spec kPcSpec = {
    "xchannels.ProcessChannel",
    sizeof(PyProcessChannel),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    kPcSlots,
};

}  // namespace

PyObject* SelectProcessChannels(ModuleState* st, PyObject* seq,
                                PyObject* timeout) {
  // `seq` is a tuple (the caller made it): another thread may change the
  // caller's list while this one waits without the GIL, so the channels are
  // held by references of our own, and the tuple holds the Python objects.
  const Py_ssize_t n = PyTuple_GET_SIZE(seq);
  std::vector<Ref<ProcessChannel>> refs;
  std::vector<ProcessChannel*> raw;
  refs.reserve(static_cast<size_t>(n));
  raw.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* o = PyTuple_GET_ITEM(seq, i);
    if (Py_TYPE(o) != st->ProcessChannelType) {
      PyErr_Format(PyExc_TypeError,
                   "select(): channels[%zd] is %s, not a ProcessChannel "
                   "(select() takes Channels, or ProcessChannels, not a mix)",
                   i, Py_TYPE(o)->tp_name);
      return nullptr;
    }
    refs.push_back(Ref<ProcessChannel>::Share(AsPc(o)->ch));
    raw.push_back(AsPc(o)->ch);
  }
  Deadline deadline;
  if (timeout != Py_None && !ParseTimeout(timeout, &deadline)) return nullptr;
  RecordBuffer rec;
  size_t index = 0;
  const std::span<ProcessChannel* const> span(raw.data(), raw.size());
  ShmStatus s = ProcessChannel::Select(
      span, &rec, &index, Deadline(Clock::time_point::min()), false);
  if (s == ShmStatus::kEmpty && !(deadline && *deadline <= Clock::now())) {
    s = BlockingCall(st, [&](bool intr) {
      return ProcessChannel::Select(span, &rec, &index, deadline, intr);
    });
  }
  if (s == ShmStatus::kUnsupported) {
    PyErr_Format(PyExc_OSError,
                 "select() over %zd ProcessChannels needs futex_waitv (Linux "
                 "5.16 or later, not blocked by a seccomp filter) and at most "
                 "128 channels",
                 n);
    return nullptr;
  }
  if (s != ShmStatus::kOk) {
    if (s != ShmStatus::kInterrupted) {
      RaiseShm(AsPc(PyTuple_GET_ITEM(seq, static_cast<Py_ssize_t>(
                        s == ShmStatus::kCorrupt ? index : 0))),
               s, "select");
    }
    return nullptr;
  }
  PyObject* ch = PyTuple_GET_ITEM(seq, static_cast<Py_ssize_t>(index));
  PyObject* value = DecodeFlat(
      st, rec.span(),
      (raw[index]->flags() & ProcessChannel::kFlagPickle) != 0);
  if (value == nullptr) return nullptr;
  PyObject* pair = PyTuple_Pack(2, ch, value);
  Py_DECREF(value);
  return pair;
}

ProcessChannel* ProcessChannelOf(PyObject* obj) { return AsPc(obj)->ch; }

PyObject* WrapProcessChannel(ModuleState* st, Ref<ProcessChannel> ch) {
  return Wrap(st, st->ProcessChannelType, std::move(ch));
}

bool InitProcessChannelType(PyObject* module, ModuleState* st) {
  return AddHeapType(module, &kPcSpec, "ProcessChannel",
                     &st->ProcessChannelType);
}

}  // namespace xchannels::py
