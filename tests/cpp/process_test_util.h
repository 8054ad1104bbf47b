// tests/cpp/process_test_util.h: what the ProcessChannel suites share
// (process_channel_test.cc, out_of_line_test.cc): channels, deadlines,
// fork()ed children and their reaping.
#ifndef XCHANNELS_TESTS_PROCESS_TEST_UTIL_H_
#define XCHANNELS_TESTS_PROCESS_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "xchannels/process_channel.h"

namespace xchannels {
namespace process_test_util {

inline Ref<ProcessChannel> Make(size_t ring = 4096, uint64_t max_items = 0) {
  std::string err;
  Ref<ProcessChannel> ch = ProcessChannel::Create(ring, max_items, 0, &err);
  EXPECT_TRUE(ch) << err;
  return ch;
}

inline Deadline In(std::chrono::milliseconds d) { return Clock::now() + d; }
// For calls that would wait forever: a hang becomes a failed status.
inline Deadline Soon() { return Clock::now() + std::chrono::seconds(60); }

// Runs `child` in a fork()ed process; returns its pid.
template <class F>
pid_t Fork(F&& child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child();
    _exit(0);
  }
  return pid;
}
// Reaps `pid`; returns its wait status.
inline int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// Kills and reaps `pid` when the test leaves its scope (a failed ASSERT
// included); pid 0 once reaped elsewhere.
struct KillAtExit {
  pid_t pid;
  ~KillAtExit() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      Wait(pid);
    }
  }
};

}  // namespace process_test_util
}  // namespace xchannels

#endif  // XCHANNELS_TESTS_PROCESS_TEST_UTIL_H_
