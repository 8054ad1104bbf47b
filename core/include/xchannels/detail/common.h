// core/include/xchannels/detail/common.h: the status enum, clock and deadline
// types shared by every channel flavor, Select and the bindings.
//
// Invariants: none (plain types). Memory ordering: none.
#ifndef XCHANNELS_DETAIL_COMMON_H_
#define XCHANNELS_DETAIL_COMMON_H_

#include <chrono>
#include <cstdint>
#include <optional>

namespace xchannels {

using Clock = std::chrono::steady_clock;
// A point on the monotonic clock; std::nullopt means "wait forever".
using Deadline = std::optional<Clock::time_point>;

// The result of every channel operation. One enum, mapped to Python
// exceptions in exactly one place of the bindings.
enum class OpStatus : uint8_t {
  kOk,           // the item was sent / received
  kEmpty,        // try_recv found nothing, or recv's deadline passed
  kFull,         // try_send found no room, or send's deadline passed
  kClosed,       // send on a closed channel; recv on a closed and drained one
  kInterrupted,  // interruptible wait returned EINTR; nothing sent/received
};

constexpr const char* OpStatusName(OpStatus s) {
  switch (s) {
    case OpStatus::kOk: return "kOk";
    case OpStatus::kEmpty: return "kEmpty";
    case OpStatus::kFull: return "kFull";
    case OpStatus::kClosed: return "kClosed";
    case OpStatus::kInterrupted: return "kInterrupted";
  }
  return "?";
}

}  // namespace xchannels

#endif  // XCHANNELS_DETAIL_COMMON_H_
