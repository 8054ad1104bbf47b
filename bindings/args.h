// bindings/args.h: argument parsing for the raw METH_FASTCALL functions, in
// one place: parameters by name and position, and the `timeout` and `block`
// arguments every blocking call takes.
//
// Contracts: every function here either fills its outputs and returns true,
// or sets an exception (TypeError, ValueError, or what the argument's own
// __float__ / __bool__ raised) and returns false. Error messages are the
// ones the tests check (tests/python/test_bad_input.py): change them there
// too. A timeout object is converted once: its __float__ is Python code,
// which could fail or answer differently a second time.
#ifndef XCHANNELS_BINDINGS_ARGS_H_
#define XCHANNELS_BINDINGS_ARGS_H_

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits>

#include "xchannels/detail/common.h"

namespace xchannels::py {

// Parses METH_FASTCALL|METH_KEYWORDS arguments into `out` by name.
// `names` lists every parameter (at most 8); the first `npositional` may be
// given by position; the first `nrequired` must be given. Unset optional
// slots keep what the caller put there (its defaults).
bool ParseArgs(const char* fname, PyObject* const* args, Py_ssize_t nargs,
               PyObject* kwnames, const char* const* names, int nnames,
               int npositional, int nrequired, PyObject** out);

// Parses a `timeout` argument: None -> no deadline; a number >= 0 -> now +
// timeout on the monotonic clock. Raises ValueError / TypeError otherwise.
bool ParseTimeout(PyObject* timeout, Deadline* out);
// ParseTimeout's two halves: the conversion (None -> infinity), which may
// run the object's __float__, and the deadline, which runs no Python code.
bool TimeoutSeconds(PyObject* timeout, double* secs);
Deadline DeadlineAfter(double secs);

// `block` and `timeout` of put/get: converted and validated once, up front
// (ParseBlock), the deadline computed only when it is needed. The timeout
// object is not looked at again.
struct BlockArgs {
  bool block = true;
  double secs = std::numeric_limits<double>::infinity();  // None: no timeout
  Deadline deadline() const {
    return block ? DeadlineAfter(secs) : Deadline();
  }
};
// As queue.Queue: a non-blocking call ignores its timeout (not converted).
bool ParseBlock(PyObject* block_obj, PyObject* timeout, BlockArgs* out);

// The `fallback` argument of the channel constructors: None -> false,
// 'pickle' -> true; ValueError for anything else.
bool ParseFallback(PyObject* fallback, bool* pickle);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_ARGS_H_
