// bindings/testing.cpp: the module's private helpers for the tests and the
// benchmarks: _encode_decode (the codec without a channel), and the counts
// the leak tests read (_live_channels, _live_buffers, _lent_bytes) and
// _asymmetric_barriers. None of them is API; none changes any state.
//
// _encode_decode is a raw METH_O function (self: the module), so the
// benchmarks measure the codec and not pybind11's call overhead; the others
// are pybind11 functions, called a few times per test.
#include "private_api.h"

#include <utility>

#include "state.h"
#include "xchannels/detail/barrier.h"
#include "xchannels/registry.h"
#include "xchannels/shared_buffer.h"

namespace xchannels::py {
namespace {

PyObject* EncodeDecodeImpl(PyObject* module, PyObject* obj) {
  ModuleState* st = StateOfModule(module);
  Item it = Encode(st, obj);
  if (it.kind() == Item::Kind::kEmpty) return nullptr;
  return Decode(st, std::move(it));
}
PyObject* EncodeDecode(PyObject* module, PyObject* obj) {
  return NoExcept<EncodeDecodeImpl>::Call(module, obj);
}

PyMethodDef kTestingFunctions[] = {
    {"_encode_decode", EncodeDecode, METH_O,
     "_encode_decode(obj)\n--\n\nEncode obj into a message and decode it "
     "again, without a channel (for benchmarks and tests)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

void DefineTestHelpers(pyb::module_& m) {
  if (!AddModuleFunctions(m.ptr(), kTestingFunctions)) {
    throw pyb::error_already_set();
  }
  m.def(
      "_live_channels", []() { return Registry::Global().size(); },
      "Channels alive in the process (for leak tests).");
  m.def(
      "_live_buffers",
      []() { return SharedBuffer::LiveCountForTesting(); },
      "SharedBuffers alive in the process (for leak tests).");
  m.def(
      "_lent_bytes",
      []() {
        return pyb::make_tuple(LentForTesting(), ReturnedForTesting());
      },
      "(lent, returned): large bytes objects of the main interpreter that "
      "messages borrow, and those given back that wait for the main "
      "interpreter to drop them (for leak tests).");
  m.def(
      "_asymmetric_barriers",
      []() {
        detail::InitBarriers();
        return detail::AsymmetricBarriers();
      },
      "True if channels use membarrier(2) (asymmetric barriers); False if "
      "they use fences (membarrier missing, or "
      "XCHANNELS_SYMMETRIC_BARRIERS=1).");
}

}  // namespace xchannels::py
