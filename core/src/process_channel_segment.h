// core/src/process_channel_segment.h: the header page of a ProcessChannel's
// shared segment (private to the core: process_channel.cc and the tests'
// peer, test_peers.h). The ring follows it at ProcessChannel::kHeaderBytes;
// process_channel.h describes the records and the protocol.
//
// Every process that maps a segment reads this layout: a change to it (or
// to the flat form, flat_form.h) bumps kVersion in process_channel.cc, so
// that a process of another xchannels is refused at attach. Every field may
// hold anything another process wrote (see "untrusted input" in
// process_channel.h).
#ifndef XCHANNELS_CORE_SRC_PROCESS_CHANNEL_SEGMENT_H_
#define XCHANNELS_CORE_SRC_PROCESS_CHANNEL_SEGMENT_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "xchannels/process_channel.h"

namespace xchannels {

// The ring's records are 8-byte aligned.
inline size_t RoundUp8(size_t n) { return (n + 7) & ~size_t{7}; }

struct ProcessChannel::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t flags;
  uint64_t ring_bytes;
  uint64_t max_items;
  pthread_mutex_t mutex;  // robust, process-shared
  // Guarded by mutex (atomics so that process_channel.cc's lock-free peeks
  // are not data races; every store is made with the mutex held).
  std::atomic<uint64_t> head;
  std::atomic<uint64_t> tail;
  std::atomic<uint64_t> count;
  std::atomic<uint32_t> closed;
  std::atomic<uint32_t> corrupt;  // set by Recover when the state is beyond repair
  // Registered under the mutex; a waiter leaves without it (Unregister).
  std::atomic<uint32_t> recv_waiters;
  std::atomic<uint32_t> send_waiters;
  // Futex words: bumped under the mutex, waited on without it.
  std::atomic<uint32_t> data_seq;
  std::atomic<uint32_t> space_seq;
  uint64_t segment_id;  // random, set at creation: tells segments apart
  // Guarded by mutex: the data bytes of the queued out-of-line records
  // (their memfds'), counted against the ring's size; re-derived by Recover.
  std::atomic<uint64_t> ool_bytes;
};

}  // namespace xchannels

#endif  // XCHANNELS_CORE_SRC_PROCESS_CHANNEL_SEGMENT_H_
