// tests/cpp/test_util.h: what the channel test suites share: readable
// OpStatus in failure messages, fewer iterations under sanitizers, deadlines
// (and kForever, none), the channel flavors, interruptible waits.
#ifndef XCHANNELS_TESTS_TEST_UTIL_H_
#define XCHANNELS_TESTS_TEST_UTIL_H_

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

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
inline constexpr Deadline kForever = std::nullopt;  // wait without a deadline

// The channel flavors every typed suite runs over: unbounded, bounded(1)
// and bounded(16).
template <size_t N>
struct Flavor {
  static constexpr size_t kCapacity = N;
};
using Flavors = ::testing::Types<Flavor<0>, Flavor<1>, Flavor<16>>;
struct FlavorNames {
  template <class F>
  static std::string GetName(int) {
    if (F::kCapacity == 0) return "Unbounded";
    return "Bounded" + std::to_string(F::kCapacity);
  }
};

// ---- interruptible waits: a SIGUSR1 handler that only counts ----------------

inline std::atomic<int> g_signals{0};
inline void OnSignal(int) { g_signals.fetch_add(1); }

class SignalHandler {
 public:
  SignalHandler() {
    struct sigaction sa{};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART, like CPython
    sigaction(SIGUSR1, &sa, &old_);
  }
  ~SignalHandler() { sigaction(SIGUSR1, &old_, nullptr); }
  SignalHandler(const SignalHandler&) = delete;
  SignalHandler& operator=(const SignalHandler&) = delete;

 private:
  struct sigaction old_{};
};

// Runs `op` on a thread and signals it until it returns (a signal that lands
// while the thread still spins does not interrupt: keep sending).
inline OpStatus SignalUntilDone(const std::function<OpStatus()>& op) {
  std::atomic<bool> done{false};
  OpStatus result = OpStatus::kOk;
  std::thread t([&] {
    result = op();
    done.store(true);
  });
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while (!done.load() && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pthread_kill(t.native_handle(), SIGUSR1);
  }
  t.join();
  return result;
}

}  // namespace testing_util
}  // namespace xchannels

#endif  // XCHANNELS_TESTS_TEST_UTIL_H_
