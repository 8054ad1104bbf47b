// tests/fuzz/segment_fuzz.cc: libFuzzer target over a ProcessChannel whose
// shared segment was scribbled over by another (faulty or hostile) process.
//
// The input's first bytes overwrite the mutex-guarded state (head, tail,
// count, closed, the waiter counts), the next 8 the out-of-line byte count
// (ool_bytes), the next one chooses records to put first (bit 0: a
// kOutOfLine record naming a small sealed memfd made at startup, which the
// reader copies out, bit 1: a buffer by descriptor in it, which it maps;
// both by this process's pid and descriptor),
// and the rest overwrites the data ring. Then the reader takes records,
// opening the memfds they name (any pid and descriptor the bytes say),
// parses each as a flat Item with them (flat_form.h; the parser alone is
// flat_form_fuzz.cc's), and a writer puts one. Nothing may crash, read out
// of bounds or leak a memfd: every call returns a status (kCorrupt for a
// state that fails the checks, kLost for a record whose memfds cannot be
// opened). Build: cmake -DXCHANNELS_FUZZ=ON with clang.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "xchannels/flat_form.h"
#include "xchannels/mem_file.h"
#include "xchannels/process_channel.h"
#include "test_peers.h"

using xchannels::FdRef;
using xchannels::FlatItem;
using xchannels::MemFile;
using xchannels::ProcessChannel;
using xchannels::ProcessChannelTestPeer;
using xchannels::RecordBuffer;
using xchannels::ShmStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr size_t kRing = 512;
  // One segment for the whole run (creating a memfd per input is slow);
  // every input overwrites all of its state and ring.
  static ProcessChannel* ch = [] {
    std::string err;
    return ProcessChannel::Create(kRing, 0, 0, &err).Release();
  }();
  // A memfd whose data is a valid lone-buffer record ("abcd").
  static MemFile* file = [] {
    const uint8_t record[] = {7, 1, 'B', 1, 0, 4, 0, 0, 'a', 'b', 'c', 'd'};
    std::string err;
    xchannels::Ref<MemFile> f = MemFile::Create(sizeof record, false, &err);
    if (!f) return static_cast<MemFile*>(nullptr);
    std::memcpy(f->writable(), record, sizeof record);
    if (!f->Seal(&err)) return static_cast<MemFile*>(nullptr);
    return f.Release();
  }();
  if (ch == nullptr || file == nullptr) __builtin_trap();
  const int64_t live = MemFile::LiveCountForTesting();
  uint8_t* seg = ProcessChannelTestPeer::Segment(*ch);
  const size_t state = ProcessChannelTestPeer::StateOffset();
  const size_t nstate = ProcessChannelTestPeer::StateBytes();
  auto take = [&](size_t n) {  // the input's next n bytes, zero-padded
    std::vector<uint8_t> out(n, 0);
    const size_t k = std::min(n, size);
    if (k > 0) std::memcpy(out.data(), data, k);
    data += k;
    size -= k;
    return out;
  };
  std::memcpy(seg + state, take(nstate).data(), nstate);
  std::memcpy(seg + ProcessChannelTestPeer::OolBytesOffset(), take(8).data(),
              8);
  const uint8_t puts = take(1)[0];
  std::memcpy(seg + ProcessChannel::kHeaderBytes, take(kRing).data(), kRing);

  const FdRef ref{static_cast<uint32_t>(getpid()),
                  static_cast<uint32_t>(file->fd()), file->id(), file->size()};
  if (puts & 1) {
    RecordBuffer ool;
    xchannels::FlattenOutOfLine(ref, &ool);
    ch->TrySend(ool.span());
  }
  if (puts & 2) {
    RecordBuffer by_fd;
    const uint8_t head[] = {7, 1, 'B', 1, 0, 2, 1};
    by_fd.append(head, sizeof head);
    by_fd.append(&ref.pid, 4);
    by_fd.append(&ref.fd, 4);
    by_fd.append(&ref.id, 8);
    by_fd.append(&ref.size, 8);
    by_fd.push_back(9);  // offset: "cd"
    ch->TrySend(by_fd.span());
  }
  {
    RecordBuffer out;
    for (int k = 0; k < 4; ++k) {
      const ShmStatus s = ch->TryRecv(&out);
      if (s == ShmStatus::kLost) {
        if (!out.files.empty()) __builtin_trap();
        continue;  // consumed: the next one
      }
      if (s != ShmStatus::kOk) break;
      if (out.size() > kRing) __builtin_trap();  // never more than the ring
      // The memfds it names were opened (a kOutOfLine record's copied out),
      // all of them, or it was lost.
      std::vector<FdRef> refs;
      if (xchannels::ScanFdRefs(out.span(), &refs)) {
        const bool whole = !refs.empty() && refs[0].whole_record;
        if (whole ? !out.body || out.body->size() != refs[0].size ||
                        !out.files.empty()
                  : out.body || refs.size() != out.files.size()) {
          __builtin_trap();
        }
      }
      FlatItem f;
      bool oom = false;
      xchannels::UnflattenItem(out.span(), &f, &oom, out.files, out.body);
    }
  }
  const uint8_t rec[24] = {3};
  ch->TrySend(rec);
  if (MemFile::LiveCountForTesting() != live) __builtin_trap();
  return 0;
}
