// bindings/values_common.h: what the two halves of the values room share
// (values.cpp encodes Python objects into Items, values_decode.cpp builds
// them back): the error chaining that names a place in the value, and
// pickle's functions for the fallback.
//
// Contract: ChainAs runs Python code (repr, str) only once the pending
// exception is fetched; LoadPickle loads pickle's dumps and loads into the
// state once per interpreter (PublishOnce), with the GIL held.
#ifndef XCHANNELS_BINDINGS_VALUES_COMMON_H_
#define XCHANNELS_BINDINGS_VALUES_COMMON_H_

#include <string>
#include <utility>

#include "state.h"

namespace xchannels::py {

// Replaces the pending exception by `cls("<where>: <what>: <original>")`
// with the original as __cause__. MemoryError is left alone, and so is
// what is not an Exception (KeyboardInterrupt, SystemExit): they are not
// about the value.
//
// `where` is a callable giving the place: rendering it may call repr() on
// a dict key, which runs Python code and must not run with an exception
// set (a Py_DEBUG build asserts, and the key's repr could clear or replace
// the pending exception), so it is called only once the original is
// fetched.
template <class Where>
inline void ChainAs(PyObject* cls, Where&& where, const std::string& what) {
  if (PyErr_Occurred() && (!PyErr_ExceptionMatches(PyExc_Exception) ||
                           PyErr_ExceptionMatches(PyExc_MemoryError))) {
    return;
  }
  PyObject* cause = PyErr_GetRaisedException();
  // From here on no exception is set: repr() and str() may run.
  std::string place = where();
  PyObject* text = cause != nullptr ? PyObject_Str(cause) : nullptr;
  if (text == nullptr) PyErr_Clear();
  const char* msg = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
  if (msg == nullptr) {
    PyErr_Clear();
    msg = "";
  }
  std::string full = place.empty() ? what : place + ": " + what;
  if (msg[0] != '\0') full += std::string(": ") + msg;
  Py_XDECREF(text);
  PyErr_SetString(cls, full.c_str());
  if (cause != nullptr) {
    PyObject* exc = PyErr_GetRaisedException();
    PyException_SetCause(exc, cause);  // steals cause
    PyErr_SetRaisedException(exc);
  }
}

// A place known up front (no Python code to run).
inline auto At(std::string where) {
  return [w = std::move(where)] { return w; };
}

// Imports pickle's dumps and loads into the state on first use. False with
// an exception set.
bool LoadPickle(ModuleState* st);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_VALUES_COMMON_H_
