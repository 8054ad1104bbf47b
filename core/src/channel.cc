// core/src/channel.cc: the out-of-line, type-erased part of every channel
// (ChannelBase): construction, registration, the last reference, and the
// counted close.
#include <atomic>
#include <cstdint>

#include "xchannels/channel.h"
#include "xchannels/registry.h"

namespace xchannels {

ChannelBase::ChannelBase(const void* type_tag)
    : id_(Registry::NextId()), type_tag_(type_tag) {}

void ChannelBase::OnLastUnref() noexcept {
  if (registered_) Registry::Global().Remove(this);
  delete this;
}

void ChannelBase::Register() {
  Registry::Global().Add(this);
  registered_ = true;
}

bool ChannelBase::close_after(uint64_t n) noexcept {
  uint64_t p = close_pending_.load(std::memory_order_relaxed);
  do {
    if (closed() || n == 0 || p > UINT64_MAX - n) return false;
  } while (!close_pending_.compare_exchange_weak(
      p, p + n, std::memory_order_acq_rel, std::memory_order_relaxed));
  return true;
}

bool ChannelBase::counted_close() {
  uint64_t p = close_pending_.load(std::memory_order_acquire);
  while (p != 0) {
    if (close_pending_.compare_exchange_weak(p, p - 1,
                                             std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
      if (p != 1) return closed();
      break;
    }
  }
  close();
  return true;
}

}  // namespace xchannels
