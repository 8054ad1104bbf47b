/* bindings/xidata_registry.c: registers xchannels' types with CPython's
 * cross-interpreter data registry, so that concurrent.interpreters'
 * prepare_main(), call() and queues carry a Channel, a ProcessChannel or a
 * SharedBuffer natively, without pickle.
 *
 * Why C: the registry and its data struct live in CPython's internal
 * headers (outside the limited and the public API), whose layout changes
 * between minor versions. This file includes the real header of the Python
 * it is compiled for, so the struct layout is the compiler's, never a copy;
 * the headers compile as C, not as C++. Each supported minor version is
 * named below; any other (3.12, or a version this file does not know yet)
 * registers nothing and says so (xchannels_xidata_api() is NULL, `python -m
 * xchannels info` reports it), and such a Python's interpreters take the
 * handles by pickle instead (interp.call, InterpreterPoolExecutor).
 *
 * Memory ordering and threads: CPython calls getdata with the sender's GIL
 * held, new_object with the receiver's, and the free function in the
 * sender's interpreter (it may also run where no interpreter's state is
 * touched: drop needs none). */
#ifndef Py_BUILD_CORE_MODULE
#define Py_BUILD_CORE_MODULE 1
#endif
#include <Python.h>

#include "xidata.h"

#if PY_VERSION_HEX >= 0x030E0000 && PY_VERSION_HEX < 0x03100000
/* 3.14 and 3.15: _PyXIData_t, getdata as a {basic, fallback} pair. */
#include "internal/pycore_crossinterp.h"
#define XC_XID_API "_PyXIData_RegisterClass (CPython 3.14/3.15)"
typedef _PyXIData_t xc_xid_t;
#define XC_INIT(d, interp, shared, fn) _PyXIData_Init(d, interp, shared, NULL, fn)
#define XC_SET_FREE(d, fn) _PyXIData_SET_FREE(d, fn)
#elif PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
/* 3.13: _PyCrossInterpreterData, getdata as one function. */
#include "internal/pycore_crossinterp.h"
#define XC_XID_API "_PyCrossInterpreterData_RegisterClass (CPython 3.13)"
typedef _PyCrossInterpreterData xc_xid_t;
#define XC_INIT(d, interp, shared, fn) \
  _PyCrossInterpreterData_Init(d, interp, shared, NULL, fn)
#define XC_SET_FREE(d, fn) _PyCrossInterpreterData_SET_FREE(d, fn)
#endif

#ifdef XC_XID_API

static PyObject* xc_new_object(xc_xid_t* data) {
  return xchannels_xidata_make(data->data);
}

static void xc_free(void* shared) { xchannels_xidata_drop(shared); }

static int xc_getdata(PyThreadState* tstate, PyObject* obj, xc_xid_t* data) {
  (void)tstate;
  void* shared = xchannels_xidata_share(obj);
  if (shared == NULL) return -1;
  /* obj stays NULL: the data holds a reference to the core object, not to
   * the Python handle, so nothing needs the sender's interpreter to be
   * released but the free function, which touches no Python state. */
  XC_INIT(data, PyInterpreterState_Get(), shared, xc_new_object);
  XC_SET_FREE(data, xc_free);
  return 0;
}

int xchannels_xidata_register(PyTypeObject* type) {
  /* The header is the one this module was compiled against; refuse a
   * runtime of another minor version (an ABI mismatch import would be
   * refused by the extension suffix anyway: belt and braces). */
  if ((Py_Version >> 16) != (PY_VERSION_HEX >> 16)) return 0;
#if PY_VERSION_HEX >= 0x030E0000
  _PyXIData_getdata_t getdata = {.basic = xc_getdata, .fallback = NULL};
  if (_PyXIData_RegisterClass(PyThreadState_Get(), type, getdata) < 0) {
    return -1;
  }
#else
  if (_PyCrossInterpreterData_RegisterClass(type, xc_getdata) < 0) return -1;
#endif
  return 1;
}

const char* xchannels_xidata_api(void) { return XC_XID_API; }

#else  /* no registry known to this build */

int xchannels_xidata_register(PyTypeObject* type) {
  (void)type;
  return 0;
}

const char* xchannels_xidata_api(void) { return NULL; }

#endif
