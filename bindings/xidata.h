/* bindings/xidata.h: the seam between CPython's cross-interpreter data
 * registry (xidata_registry.c, C) and the bindings (xidata.cpp, C++).
 *
 * Channel, ProcessChannel and SharedBuffer are handles on core objects that
 * belong to no interpreter, so they can be CPython "cross-interpreter data":
 * the sending interpreter takes one reference to the core object (share),
 * the receiving one wraps it in its own type (make), and the reference goes
 * when CPython releases the data (drop). No Python object crosses. */
#ifndef XCHANNELS_BINDINGS_XIDATA_H_
#define XCHANNELS_BINDINGS_XIDATA_H_

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* xidata.cpp. With the sender's GIL: a heap handle holding one reference to
 * obj's core object, or NULL with an exception set. */
void* xchannels_xidata_share(PyObject* obj);
/* With the receiver's GIL: a new handle of the receiver's type. The shared
 * handle stays valid (CPython may make more than one object from it). */
PyObject* xchannels_xidata_make(void* shared);
/* Any thread, any interpreter or none: drops the reference and the handle. */
void xchannels_xidata_drop(void* shared);

/* xidata_registry.c. Registers `type` (a heap type of the calling
 * interpreter) with this interpreter's registry. Returns 1 if registered,
 * 0 if this Python has no registry this build knows (nothing registered,
 * no exception), -1 with an exception set on failure. */
int xchannels_xidata_register(PyTypeObject* type);
/* Which registry this build uses: "_PyXIData_RegisterClass (3.14)", ...,
 * or NULL where none is used. */
const char* xchannels_xidata_api(void);

#ifdef __cplusplus
}
#endif

#endif /* XCHANNELS_BINDINGS_XIDATA_H_ */
