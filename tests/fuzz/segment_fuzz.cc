// tests/fuzz/segment_fuzz.cc: libFuzzer target over a ProcessChannel whose
// shared segment was scribbled over by another (faulty or hostile) process.
//
// The input's first bytes overwrite the mutex-guarded state (head, tail,
// count, closed, the waiter counts); the rest overwrites the data ring. Then
// the reader takes records, parses each as a flat Item (flat_form.h; the
// parser alone is flat_form_fuzz.cc's), and a writer puts one. Nothing may crash or read out of bounds: every call returns a status
// (kCorrupt for a state that fails the checks). Build: cmake
// -DXCHANNELS_FUZZ=ON with clang.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "xchannels/flat_form.h"
#include "xchannels/process_channel.h"
#include "test_peers.h"

using xchannels::FlatItem;
using xchannels::ProcessChannel;
using xchannels::ProcessChannelTestPeer;
using xchannels::ShmStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr size_t kRing = 512;
  // One segment for the whole run (creating a memfd per input is slow);
  // every input overwrites all of its state and ring.
  static ProcessChannel* ch = [] {
    std::string err;
    return ProcessChannel::Create(kRing, 0, 0, &err).Release();
  }();
  if (ch == nullptr) __builtin_trap();
  uint8_t* seg = ProcessChannelTestPeer::Segment(*ch);
  const size_t state = ProcessChannelTestPeer::StateOffset();
  const size_t nstate = ProcessChannelTestPeer::StateBytes();
  std::memset(seg + state, 0, nstate);
  std::memcpy(seg + state, data, std::min(size, nstate));
  std::memset(seg + ProcessChannel::kHeaderBytes, 0, kRing);
  if (size > nstate) {
    std::memcpy(seg + ProcessChannel::kHeaderBytes, data + nstate,
                std::min(size - nstate, kRing));
  }
  xchannels::RecordBuffer out;
  for (int k = 0; k < 4; ++k) {
    const ShmStatus s = ch->TryRecv(&out);
    if (s != ShmStatus::kOk) break;
    if (out.size() > kRing) __builtin_trap();  // never more than the ring
    FlatItem f;
    bool oom = false;
    xchannels::UnflattenItem(out.span(), &f, &oom);
  }
  const uint8_t rec[24] = {3};
  ch->TrySend(rec);
  return 0;
}
