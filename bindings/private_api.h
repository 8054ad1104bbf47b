// bindings/private_api.h: the module's private functions that are bound
// with pybind11: the pool's task claims (task_claims.cpp) and the helpers
// for the tests and benchmarks (testing.cpp). Both are called from the
// module body (module.cpp, InitModule) once per interpreter.
//
// Contract: each adds its functions to `m` and throws
// pybind11::error_already_set (with the Python exception set) on failure.
// None of these functions is on a per-item path: that is what keeps them in
// pybind11 (docs/design.md, "What pybind11 is for").
#ifndef XCHANNELS_BINDINGS_PRIVATE_API_H_
#define XCHANNELS_BINDINGS_PRIVATE_API_H_

#include <pybind11/pybind11.h>

namespace xchannels::py {

namespace pyb = pybind11;

// _task_start, _task_cancel, _task_running, _task_forget,
// _task_forget_table, _task_claims (task_claims.cpp).
void DefineTaskClaims(pyb::module_& m);
// _encode_decode, _live_channels, _live_buffers, _lent_bytes,
// _asymmetric_barriers (testing.cpp).
void DefineTestHelpers(pyb::module_& m);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_PRIVATE_API_H_
