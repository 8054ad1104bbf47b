// bindings/errors.h: the module's exception classes and the one mapping
// from a core status to a Python exception.
//
// Invariants: each interpreter has one class of each name. ChannelError,
// ChannelEmpty, ChannelNotFoundError and NotShareableError are made with
// the module; ChannelFull (a queue.Full) and, on 3.13+, ChannelClosed (a
// queue.ShutDown) are made on first use unless `queue` was imported
// already, since importing it costs a fresh interpreter milliseconds. The
// first thread to make one publishes it (PublishOnce, state.h); the state's
// slot, the module attribute and what RaiseStatus raises are then one
// object. Every status a binding meets is raised through RaiseStatus (a
// ProcessChannel's ShmStatus through its own mapping, which defers to it
// for the statuses the two share).
#ifndef XCHANNELS_BINDINGS_ERRORS_H_
#define XCHANNELS_BINDINGS_ERRORS_H_

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>

#include "xchannels/detail/common.h"

namespace xchannels::py {

struct ModuleState;  // state.h

// Makes the module's exception classes, in `st` and as attributes of `m`
// (the lazy ones only where `queue` is imported already). False with an
// exception set.
bool MakeExceptions(ModuleState* st, PyObject* m);
// Raises the exception that matches a core status (not for kOk): "<what>:
// channel is closed" (ChannelClosed), "... is empty" (ChannelEmpty), "...
// is full" (ChannelFull); kInterrupted keeps the pending exception (or
// raises KeyboardInterrupt).
void RaiseStatus(ModuleState* st, OpStatus s, const char* what);
// This interpreter's ChannelFull class, made on first use (it needs the
// queue module). Borrowed; nullptr with an exception set on failure.
PyObject* ChannelFullType(ModuleState* st);
// This interpreter's ChannelClosed class. On 3.13+ it is also a
// queue.ShutDown, so it is made on first use unless queue was imported
// already (as ChannelFull); on 3.12 at import. Borrowed; nullptr with an
// exception set on failure.
PyObject* ChannelClosedType(ModuleState* st);
// The module attribute `name` made on first use (the module's
// __getattr__): ChannelFull or ChannelClosed, borrowed; nullptr with
// AttributeError for any other name, or the error of making it.
PyObject* LazyModuleAttr(ModuleState* st, const std::string& name);
// Replaces the pending exception by cls(PyUnicode_FromFormat(format, ...))
// with the original as __cause__ (CPython's _PyErr_FormatFromCause). The
// message is formatted only once the original is fetched: %R and %S run
// Python code, which must not run with an exception set.
void FormatFromCause(PyObject* cls, const char* format, ...);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_ERRORS_H_
