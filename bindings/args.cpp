// bindings/args.cpp: argument parsing for the METH_FASTCALL functions:
// names and positions, and the timeout and block arguments of the blocking
// calls.
#include "args.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "errors.h"

namespace xchannels::py {

bool TimeoutSeconds(PyObject* timeout, double* secs) {
  if (timeout == Py_None) {
    *secs = std::numeric_limits<double>::infinity();
    return true;
  }
  double v = PyFloat_AsDouble(timeout);
  if (v == -1.0 && PyErr_Occurred()) {
    // Not a number: say so, keeping float()'s own error as the cause. What
    // a number raised itself (a huge int's OverflowError, a __float__ that
    // failed, KeyboardInterrupt) goes through unchanged.
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
      FormatFromCause(PyExc_TypeError,
                      "timeout must be a number or None, not %s",
                      Py_TYPE(timeout)->tp_name);
    }
    return false;
  }
  if (std::isnan(v) || v < 0) {
    PyErr_SetString(PyExc_ValueError,
                    "timeout must be a non-negative number or None");
    return false;
  }
  *secs = v;
  return true;
}

Deadline DeadlineAfter(double secs) {
  // Beyond ~292 years a deadline overflows the clock: treat as forever.
  if (secs > 9.0e9) return Deadline();
  const auto after = std::chrono::duration<double>(secs);
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(after);
}

bool ParseTimeout(PyObject* timeout, Deadline* out) {
  double secs;
  if (!TimeoutSeconds(timeout, &secs)) return false;
  *out = DeadlineAfter(secs);
  return true;
}

bool ParseArgs(const char* fname, PyObject* const* args, Py_ssize_t nargs,
               PyObject* kwnames, const char* const* names, int nnames,
               int npositional, int nrequired, PyObject** out) {
  if (nargs > npositional) {
    PyErr_Format(PyExc_TypeError,
                 "%s() takes at most %d positional arguments (%zd given)",
                 fname, npositional, nargs);
    return false;
  }
  bool seen[8] = {};
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    out[i] = args[i];
    seen[i] = true;
  }
  if (kwnames != nullptr) {
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      int found = -1;
      for (int j = 0; j < nnames; ++j) {
        if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
          found = j;
          break;
        }
      }
      if (found < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got an unexpected keyword argument %R", fname, key);
        return false;
      }
      if (seen[found]) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got multiple values for argument '%s'", fname,
                     names[found]);
        return false;
      }
      out[found] = args[nargs + k];
      seen[found] = true;
    }
  }
  for (int j = 0; j < nrequired; ++j) {
    if (!seen[j]) {
      PyErr_Format(PyExc_TypeError,
                   "%s() missing required argument '%s'", fname, names[j]);
      return false;
    }
  }
  return true;
}

bool ParseBlock(PyObject* block_obj, PyObject* timeout, BlockArgs* out) {
  int b = PyObject_IsTrue(block_obj);
  if (b < 0) return false;
  out->block = b != 0;
  // As queue.Queue: a non-blocking call ignores its timeout.
  if (!out->block || timeout == Py_None) return true;
  return TimeoutSeconds(timeout, &out->secs);
}


bool ParseFallback(PyObject* fallback, bool* pickle) {
  *pickle = false;
  if (fallback == Py_None) return true;
  if (!PyUnicode_Check(fallback) ||
      PyUnicode_CompareWithASCIIString(fallback, "pickle") != 0) {
    PyErr_Format(PyExc_ValueError,
                 "fallback must be None or 'pickle', not %R", fallback);
    return false;
  }
  *pickle = true;
  return true;
}

}  // namespace xchannels::py
