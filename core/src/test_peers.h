// core/src/test_peers.h: what the C++ tests and fuzz targets may see of the
// core's private parts, and nothing else uses: each peer is a friend of one
// class. Included only under tests/ (their targets add core/src to the
// include path); the public headers declare no test-only member.
#ifndef XCHANNELS_CORE_SRC_TEST_PEERS_H_
#define XCHANNELS_CORE_SRC_TEST_PEERS_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "process_channel_segment.h"
#include "xchannels/process_channel.h"
#include "xchannels/refcount.h"

namespace xchannels {

// The raw shared segment, for the tests of the untrusted-segment checks
// (they scribble over it as a faulty process would).
class ProcessChannelTestPeer {
 public:
  // The mapping: the header page (process_channel_segment.h), then the ring
  // at ProcessChannel::kHeaderBytes.
  static uint8_t* Segment(const ProcessChannel& ch) noexcept {
    return ch.base_;
  }
  // Where the mutex-guarded state (head, tail, count, closed, corrupt, the
  // waiter counts) lies in the segment: what a faulty process could
  // scribble over without breaking the mutex itself.
  static size_t StateOffset() noexcept {
    return offsetof(ProcessChannel::Header, head);
  }
  static size_t StateBytes() noexcept {
    return offsetof(ProcessChannel::Header, data_seq) -
           offsetof(ProcessChannel::Header, head);
  }
  // The mutex (robust, process-shared), for the tests that hold it or
  // die holding it.
  static pthread_mutex_t* Mutex(const ProcessChannel& ch) noexcept {
    return &ch.header()->mutex;
  }
  // The out-of-line bytes queued (header.ool_bytes), and where the field
  // lies in the segment.
  static uint64_t OolBytes(const ProcessChannel& ch) noexcept {
    return ch.header()->ool_bytes.load(std::memory_order_relaxed);
  }
  static size_t OolBytesOffset() noexcept {
    return offsetof(ProcessChannel::Header, ool_bytes);
  }
};

// A reference count, for the tests that check who owns what. Approximate
// (racy by nature) while other threads hold references.
class RefCountedTestPeer {
 public:
  static int64_t RefCount(const RefCounted& o) noexcept {
    return o.refs_.load(std::memory_order_relaxed);
  }
};

}  // namespace xchannels

#endif  // XCHANNELS_CORE_SRC_TEST_PEERS_H_
