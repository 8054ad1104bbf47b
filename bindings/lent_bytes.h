// bindings/lent_bytes.h: large bytes of the main interpreter lent to
// messages instead of copied (the whole protocol is at the top of
// lent_bytes.cpp; docs/design.md, "The one exception").
//
// Contract: LendBytes runs in the main interpreter with its GIL held, on an
// exact bytes object; the SharedBuffer it makes holds one reference to the
// object until the buffer goes, on any thread, with any GIL or none. The
// main interpreter takes those references back (DrainLoans) whenever one of
// its threads lends, receives or returns from a blocking wait.
//
// Invariants: a loan's reference is dropped exactly once while the main
// interpreter has a module state, and never after its last one is gone
// (the process is exiting). Nothing here ever calls into CPython from a
// thread that does not hold the main interpreter's GIL.
#ifndef XCHANNELS_BINDINGS_LENT_BYTES_H_
#define XCHANNELS_BINDINGS_LENT_BYTES_H_

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstddef>
#include <cstdint>

#include "xchannels/shared_buffer.h"

namespace xchannels::py {

// A SharedBuffer over the exact bytes `obj` (main interpreter, GIL held);
// null (no exception set) when memory ran out.
Ref<SharedBuffer> LendBytes(PyObject* obj);

// A module state of the main interpreter is made (OpenLoans) / goes
// (CloseLoans); GIL held. Returns after the last CloseLoans are left alone.
void OpenLoans();
void CloseLoans();
// Drops the references given back meanwhile. Main interpreter, GIL held;
// an atomic load when nothing waits.
void DrainLoans();

// For the leak tests (_xchannels._lent_bytes()).
int64_t LentForTesting();      // lent objects not yet given back
size_t ReturnedForTesting();   // given back, waiting for the main interpreter

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_LENT_BYTES_H_
