// tests/cpp/test_util.h: what the channel test suites share: readable
// OpStatus in failure messages, fewer iterations under sanitizers, deadlines.
#ifndef XCHANNELS_TESTS_TEST_UTIL_H_
#define XCHANNELS_TESTS_TEST_UTIL_H_

#include <chrono>
#include <ostream>

#include "xchannels/channel.h"

namespace xchannels {

// gtest prints OpStatus by name (found by argument-dependent lookup).
inline void PrintTo(OpStatus s, std::ostream* os) { *os << OpStatusName(s); }

namespace testing_util {

#ifdef XCHANNELS_UNDER_SANITIZER
inline constexpr int kScale = 4;  // sanitizers: fewer iterations, same tests
#else
inline constexpr int kScale = 1;
#endif

inline Deadline In(std::chrono::milliseconds d) { return Clock::now() + d; }

}  // namespace testing_util
}  // namespace xchannels

#endif  // XCHANNELS_TESTS_TEST_UTIL_H_
