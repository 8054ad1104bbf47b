// bindings/process_channel.cpp: xchannels.ProcessChannel, a channel between
// processes over a shared-memory segment (core: xchannels/process_channel.h).
//
// Values travel as the flat form of an encoded Item (values.cpp: EncodeFlat;
// values_decode.cpp: DecodeFlat): everything a Channel carries natively
// except channels, and the pickle fallback where the channel opted in. A
// handle pickles (for multiprocessing) through xchannels._process, which
// passes the segment's file descriptor with multiprocessing's own machinery.
//
// The methods shared with Channel are QueueMethods<ProcessOps>
// (queue_methods.h); this file holds ProcessOps, the ShmStatus mapping
// (RaiseShm) and what only a ProcessChannel has: its constructor and
// _from_fd, close, fileno, the futex-word helpers of its asyncio (_seq,
// _wait_seq, _nudge), pickling and select() over ProcessChannels.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "queue_methods.h"
#include "state.h"

namespace xchannels::py {
namespace {

struct PyProcessChannel {
  PyObject_HEAD
  ModuleState* state;
  ProcessChannel* ch;  // one reference, owned
  PyObject* weakreflist;
  bool exit_hooked;  // handed to xchannels._process's exit hook
};

PyProcessChannel* AsPc(PyObject* o) {
  return reinterpret_cast<PyProcessChannel*>(o);
}

PyObject* Wrap(ModuleState* st, PyTypeObject* tp, Ref<ProcessChannel> ch) {
  auto* self = reinterpret_cast<PyProcessChannel*>(tp->tp_alloc(tp, 0));
  if (self == nullptr) return nullptr;
  self->state = st;
  self->weakreflist = nullptr;
  self->exit_hooked = false;
  self->ch = ch.Release();
  return reinterpret_cast<PyObject*>(self);
}

// Raises the exception for a failed status (not kOk, not kInterrupted).
void RaiseShm(PyProcessChannel* self, ShmStatus s, const char* what,
              size_t record_bytes = 0) {
  ModuleState* st = self->state;
  switch (s) {
    case ShmStatus::kEmpty:
    case ShmStatus::kFull:
    case ShmStatus::kClosed:
    case ShmStatus::kInterrupted:  // the statuses both kinds of channel have
      RaiseStatus(st,
                  s == ShmStatus::kEmpty  ? OpStatus::kEmpty
                  : s == ShmStatus::kFull ? OpStatus::kFull
                  : s == ShmStatus::kClosed ? OpStatus::kClosed
                                            : OpStatus::kInterrupted,
                  what);
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
    case ShmStatus::kLost:
      PyErr_Format(st->ChannelError,
                   "%s: a value sent out of line was lost: the process that "
                   "sent it exited (or was killed) before it was received, "
                   "and its memfd went with it; the channel stays usable",
                   what);
      return;
    case ShmStatus::kNoMemory:
      PyErr_Format(PyExc_MemoryError,
                   "%s: no memory for a copy of a large value; it was "
                   "dropped (the channel stays usable)",
                   what);
      return;
    case ShmStatus::kResources:
      PyErr_Format(PyExc_OSError,
                   "%s: cannot open the memfd of a large value (out of file "
                   "descriptors or memory); it stays queued",
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
  static const char* kwlist[] = {"maxsize", "capacity", "fallback", nullptr};
  Py_ssize_t maxsize = 0;
  Py_ssize_t capacity = Py_ssize_t{1} << 20;
  PyObject* fallback = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|n$nO:ProcessChannel",
                                   const_cast<char**>(kwlist), &maxsize,
                                   &capacity, &fallback)) {
    return nullptr;
  }
  ModuleState* st = StateOfType(reinterpret_cast<PyObject*>(type));
  if (st == nullptr) return nullptr;
  bool pickle = false;
  if (!ParseFallback(fallback, &pickle)) return nullptr;
  const uint32_t flags = pickle ? ProcessChannel::kFlagPickle : 0;
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

bool IsPickle(const PyProcessChannel* self) {
  return (self->ch->flags() & ProcessChannel::kFlagPickle) != 0;
}

// What a put sends: the encoded Item and its record (which views `item`;
// its head on the stack: a small record allocates nothing).
struct FlatRecord {
  Item item;
  OutRecord rec;
  bool names_fds = false;  // the record names descriptors this process holds
};

// ProcessChannel's own operations for the shared methods (queue_methods.h).
// The tries do not wait for the segment's mutex: another process may hold
// it stopped (SIGSTOP, a debugger), and waiting for it with the GIL held
// would freeze every thread of this interpreter. A held mutex (kBusy) is
// waited for without the GIL, even by a non-blocking call.
struct ProcessOps {
  using Self = PyProcessChannel;
  using Encoded = FlatRecord;
  using Received = RecordBuffer;
  static constexpr QueueNames kNames = {"__next__", "process_get_async",
                                        "process_put_async"};

  static PyObject* DecodeValue(Self* self, RecordBuffer& rec) {
    return DecodeFlat(self->state, rec, IsPickle(self));
  }
  static bool EncodeValue(Self* self, PyObject* obj, FlatRecord* out) {
    if (!EncodeFlat(self->state, obj, IsPickle(self), *self->ch, &out->item,
                    &out->rec)) {
      return false;
    }
    out->names_fds = !out->rec.fds.empty() || out->rec.file;
    return true;
  }
  // After a put of a record that names descriptors: the first time, this
  // handle joins xchannels._process's exit hook (which waits until such
  // records are taken, as multiprocessing.Queue flushes at exit).
  static bool Sent(Self* self, const FlatRecord& r) {
    if (!r.names_fds || self->exit_hooked) return true;
    PyObject* mod = PyImport_ImportModule("xchannels._process");
    if (mod == nullptr) return false;
    PyObject* res = PyObject_CallMethod(mod, "_sent_out_of_line", "O",
                                        reinterpret_cast<PyObject*>(self));
    Py_DECREF(mod);
    if (res == nullptr) return false;
    Py_DECREF(res);
    self->exit_hooked = true;
    return true;
  }
  static ShmStatus TrySend(Self* self, FlatRecord& r) {
    return self->ch->TrySendNoLockWait(r.rec);
  }
  static ShmStatus Send(Self* self, FlatRecord& r, const Deadline& deadline,
                        bool intr) {
    return self->ch->Send(r.rec, deadline, intr);
  }
  static ShmStatus TryRecv(Self* self, RecordBuffer& rec) {
    return self->ch->TryRecvNoLockWait(&rec);
  }
  static ShmStatus Recv(Self* self, RecordBuffer& rec,
                        const Deadline& deadline, bool intr) {
    return self->ch->Recv(&rec, deadline, intr);
  }
  static bool Busy(ShmStatus s) { return s == ShmStatus::kBusy; }
  static void Raise(Self* self, ShmStatus s, const char* what,
                    const FlatRecord* r) {
    RaiseShm(self, s, what, r != nullptr ? r->rec.size() : 0);
  }
  static uint64_t Size(Self* self) { return self->ch->size(); }
  static uint64_t MaxItems(Self* self) { return self->ch->max_items(); }
  static bool Closed(Self* self) { return self->ch->closed(); }
  static bool Pickle(Self* self) { return IsPickle(self); }
  static void ExitClose(Self* self) { self->ch->Close(); }
  static void Release(Self* self) {
    if (self->ch == nullptr) return;
    Ref<ProcessChannel> ch = Ref<ProcessChannel>::Adopt(self->ch);
    self->ch = nullptr;
    // Values it sent through another's channel that are still queued keep
    // their descriptors alive (ProcessChannel::KeepUntilTaken).
    if (ch->HasSent() && ch->attached()) {
      ProcessChannel::KeepUntilTaken(std::move(ch));
    }
  }
};

using Methods = QueueMethods<ProcessOps>;

// ---- ProcessChannel's own methods ------------------------------------------

PyObject* PcClose(PyObject* op, PyObject*) {
  return PyBool_FromLong(AsPc(op)->ch->Close());
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

// _wait_sent(timeout) -> bool: waits (GIL released) until every record this
// handle sent that names a descriptor has been taken; False on timeout.
PyObject* PcWaitSent(PyObject* op, PyObject* arg) {
  PyProcessChannel* self = AsPc(op);
  Deadline deadline;
  if (arg != Py_None && !ParseTimeout(arg, &deadline)) return nullptr;
  ProcessChannel* ch = self->ch;
  const ShmStatus s = BlockingCall(self->state, [&](bool intr) {
    return ch->WaitSent(deadline, intr);
  });
  if (s == ShmStatus::kOk) Py_RETURN_TRUE;
  if (s == ShmStatus::kFull) Py_RETURN_FALSE;
  if (s != ShmStatus::kInterrupted) RaiseShm(self, s, "_wait_sent");
  return nullptr;
}

// _wait_kept(timeout) -> bool: the same for the handles dropped with values
// in flight (ProcessChannel::KeepUntilTaken).
PyObject* PcWaitKept(PyObject* type, PyObject* arg) {
  ModuleState* st = StateOfType(type);
  if (st == nullptr) return nullptr;
  Deadline deadline;
  if (arg != Py_None && !ParseTimeout(arg, &deadline)) return nullptr;
  const ShmStatus s = BlockingCall(st, [&](bool intr) {
    return ProcessChannel::WaitKept(deadline, intr);
  });
  if (s == ShmStatus::kOk) Py_RETURN_TRUE;
  if (s == ShmStatus::kFull || s == ShmStatus::kCorrupt) Py_RETURN_FALSE;
  return nullptr;  // interrupted: the exception is set
}

PyObject* PcForgetSent(PyObject* op, PyObject*) {
  AsPc(op)->ch->ForgetSent();
  AsPc(op)->exit_hooked = false;
  Py_RETURN_NONE;
}

PyObject* PcNudge(PyObject* op, PyObject*) {
  AsPc(op)->ch->Nudge();
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

const QueueDocs kPcDocs = {
    /*put=*/"put($self, /, item, block=True, timeout=None)\n--\n\n"
     "Copy item into the shared segment; blocks while the channel is full.\n"
     "Raises ChannelClosed, ChannelFull (timeout or block=False),\n"
     "NotShareableError, or ValueError for a value larger than the capacity.",
    /*get=*/"get($self, /, block=True, timeout=None)\n--\n\n"
     "Take the next item, waiting for one; ChannelClosed once closed and\n"
     "drained, ChannelEmpty on timeout or block=False.",
    /*get_async=*/"get_async($self, /, timeout=None)\n--\n\n"
     "Awaitable get(): waits without blocking the event loop (a helper\n"
     "thread sleeps on the segment meanwhile). ChannelEmpty on timeout.",
    /*put_async=*/"put_async($self, /, item, timeout=None)\n--\n\n"
     "Awaitable put(): waits for room without blocking the event loop.\n"
     "ChannelFull on timeout.",
    /*qsize=*/"qsize($self, /)\n--\n\nItems queued (a snapshot).",
    /*empty=*/"empty($self, /)\n--\n\nqsize() == 0 (a snapshot).",
    /*full=*/"full($self, /)\n--\n\nWhether maxsize items are queued (a snapshot).",
};

PyMethodDef* const kPcMethods = Methods::MethodTable(kPcDocs, {
    {"close", NoExcept<PcClose>::Call, METH_NOARGS,
     "close($self, /)\n--\n\nClose the channel for every process and wake "
     "every waiter.\nReturns False if it was closed already."},
    {"fileno", NoExcept<PcFileno>::Call, METH_NOARGS,
     "fileno($self, /)\n--\n\nThe segment's file descriptor (a memfd)."},
    {"_from_fd", NoExcept<PcFromFd>::Call, METH_O | METH_CLASS,
     "_from_fd($type, fd, /)\n--\n\nA new handle on the segment behind fd (duplicated)."},
    {"_seq", NoExcept<PcSeq>::Call, METH_O,
     "_seq($self, data, /)\n--\n\nThe data (True) or space (False) word now."},
    {"_wait_seq", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(
                      NoExcept<PcWaitSeq>::Call)),
     METH_FASTCALL,
     "_wait_seq($self, data, seq, timeout, /)\n--\n\n"
     "Wait until the word moves from seq; False on timeout."},
    {"_wait_sent", NoExcept<PcWaitSent>::Call, METH_O,
     "_wait_sent($self, timeout, /)\n--\n\n"
     "Wait until this handle's large values are taken; False on timeout."},
    {"_wait_kept", NoExcept<PcWaitKept>::Call, METH_O | METH_CLASS,
     "_wait_kept($type, timeout, /)\n--\n\n"
     "Wait until the large values of dropped handles are taken; False on timeout."},
    {"_forget_sent", NoExcept<PcForgetSent>::Call, METH_NOARGS,
     "_forget_sent($self, /)\n--\n\nClose this handle's descriptors of values in flight."},
    {"_nudge", NoExcept<PcNudge>::Call, METH_NOARGS,
     "_nudge($self, /)\n--\n\nMove both words and wake every waiter."},
    {"__reduce__", NoExcept<PcReduce>::Call, METH_NOARGS, nullptr},
});

PyGetSetDef kPcGetSet[] = {
    {"closed", Methods::GetClosed, nullptr, "Whether close() was called (by any process).",
     nullptr},
    {"maxsize", Methods::GetUnsigned<&ProcessChannel::max_items>, nullptr, "The item limit (0: none).", nullptr},
    {"capacity", Methods::GetUnsigned<&ProcessChannel::ring_bytes>, nullptr, "The bytes the segment holds for items.",
     nullptr},
    {"fallback", Methods::GetFallback, nullptr, "'pickle' or None.", nullptr},
    {"_segment_id", Methods::GetUnsigned<&ProcessChannel::segment_id>, nullptr,
     "A random number drawn at creation, the same in every handle.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Spec* const kPcSpec = Methods::TypeSpec("xchannels.ProcessChannel", {
    {Py_tp_doc, const_cast<char*>(
        "ProcessChannel(maxsize=0, *, capacity=1048576, fallback=None)\n--\n\n"
        "A channel between processes: items are copied into a shared-memory\n"
        "segment (a memfd) of `capacity` bytes, at most `maxsize` of them\n"
        "(0: no item limit). Pass it to multiprocessing.Process / Pool\n"
        "(fork, spawn, forkserver) like a multiprocessing.Queue.")},
    {Py_tp_new, reinterpret_cast<void*>(NoExcept<PcNew>::Call)},
    {Py_tp_repr, reinterpret_cast<void*>(NoExcept<PcRepr>::Call)},
    {Py_tp_methods, kPcMethods},
    {Py_tp_getset, kPcGetSet},
});

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
  PyObject* value = ProcessOps::DecodeValue(AsPc(ch), rec);
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
  return AddHeapType(module, kPcSpec, "ProcessChannel",
                     &st->ProcessChannelType);
}

}  // namespace xchannels::py
