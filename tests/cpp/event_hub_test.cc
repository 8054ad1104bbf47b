// tests/cpp/event_hub_test.cc: EventHub, the eventfd and ready list behind
// the asyncio bindings: the eventfd is signalled exactly when the list
// becomes non-empty, entries are listed once and in order, removal, a hub
// opened with entries waiting, and pushes from many threads at once.
#include "xchannels/event_hub.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>
#include <vector>

namespace xchannels {
namespace {

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(EventHub, SignalsWhenTheListBecomesNonEmpty) {
  EventHub hub;
  const int fd = hub.Open();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(hub.Open(), fd);  // idempotent
  EXPECT_FALSE(Readable(fd));
  EventHub::Entry a, b;
  hub.Push(&a);
  EXPECT_TRUE(Readable(fd));
  hub.Push(&b);
  hub.Push(&a);  // listed once
  std::vector<EventHub::Entry*> out;
  hub.Drain(out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], &a);  // in order
  EXPECT_EQ(out[1], &b);
  EXPECT_FALSE(a.in_ready || b.in_ready);
  EXPECT_FALSE(Readable(fd));  // reset by Drain
  out.clear();
  hub.Drain(out);
  EXPECT_TRUE(out.empty());
}

TEST(EventHub, RemoveTakesAnEntryOff) {
  EventHub hub;
  ASSERT_GE(hub.Open(), 0);
  EventHub::Entry a, b, c;
  hub.Push(&a);
  hub.Push(&b);
  hub.Push(&c);
  hub.Remove(&b);
  hub.Remove(&b);  // idempotent
  std::vector<EventHub::Entry*> out;
  hub.Drain(out);
  EXPECT_EQ(out, (std::vector<EventHub::Entry*>{&a, &c}));
}

TEST(EventHub, OpenedWithEntriesWaitingIsSignalled) {
  EventHub hub;
  EventHub::Entry a;
  hub.Push(&a);  // no eventfd yet
  EXPECT_EQ(hub.fd(), -1);
  const int fd = hub.Open();
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(Readable(fd));
  hub.Close();
  EXPECT_EQ(hub.fd(), -1);
  const int fd2 = hub.Open();  // still listed: signalled again
  ASSERT_GE(fd2, 0);
  EXPECT_TRUE(Readable(fd2));
  std::vector<EventHub::Entry*> out;
  hub.Drain(out);
  EXPECT_EQ(out.size(), 1u);
}

// Pushes from several threads while a "loop" drains: every entry is seen,
// and the eventfd is readable whenever entries wait (no lost signal).
TEST(EventHub, ConcurrentPushesAreAllDrained) {
  EventHub hub;
  const int fd = hub.Open();
  ASSERT_GE(fd, 0);
  constexpr int kThreads = 4, kEach = 500;
  std::vector<EventHub::Entry> entries(kThreads * kEach);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) hub.Push(&entries[t * kEach + i]);
    });
  }
  size_t seen = 0;
  std::vector<EventHub::Entry*> out;
  while (seen < entries.size()) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "lost signal after " << seen;
    out.clear();
    hub.Drain(out);
    seen += out.size();
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen, entries.size());
}

}  // namespace
}  // namespace xchannels
