// tests/cpp/task_claims_test.cc: the task claim table behind Pool futures'
// cancel() and running().
#include "xchannels/task_claims.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

#include "test_util.h"

namespace xchannels {
namespace {

using testing_util::kScale;

// Each test uses its own table ids, so tests never see each other's entries.
constexpr uint64_t kTableBase = 1000;

std::vector<uint64_t> StartOne(uint64_t table, uint64_t task) {
  std::vector<uint64_t> cancelled;
  const uint64_t tasks[] = {task};
  TaskClaims::Global().Start(table, tasks, &cancelled);
  return cancelled;
}

TEST(TaskClaims, StartThenCancelFails) {
  auto& claims = TaskClaims::Global();
  const uint64_t t = kTableBase + 1;
  EXPECT_FALSE(claims.Running(t, 7));
  EXPECT_TRUE(StartOne(t, 7).empty());
  EXPECT_TRUE(claims.Running(t, 7));
  EXPECT_FALSE(claims.Cancel(t, 7));
  EXPECT_TRUE(claims.Running(t, 7));
  const uint64_t done[] = {7};
  claims.Forget(t, done);
  EXPECT_FALSE(claims.Running(t, 7));
}

TEST(TaskClaims, CancelThenStartIsRefusedAndIdempotent) {
  auto& claims = TaskClaims::Global();
  const uint64_t t = kTableBase + 2;
  const size_t before = claims.size();
  EXPECT_TRUE(claims.Cancel(t, 3));
  EXPECT_TRUE(claims.Cancel(t, 3));  // again: still cancelled
  EXPECT_FALSE(claims.Running(t, 3));
  EXPECT_EQ(StartOne(t, 3), std::vector<uint64_t>{3});
  EXPECT_EQ(claims.size(), before);  // the refused start dropped the entry
}

TEST(TaskClaims, BatchStartReportsOnlyTheCancelled) {
  auto& claims = TaskClaims::Global();
  const uint64_t t = kTableBase + 3;
  EXPECT_TRUE(claims.Cancel(t, 2));
  EXPECT_TRUE(claims.Cancel(t, 4));
  std::vector<uint64_t> cancelled;
  const uint64_t tasks[] = {1, 2, 3, 4, 5};
  claims.Start(t, tasks, &cancelled);
  EXPECT_EQ(cancelled, (std::vector<uint64_t>{2, 4}));
  for (uint64_t id : {1, 3, 5}) EXPECT_TRUE(claims.Running(t, id));
  for (uint64_t id : {2, 4}) EXPECT_FALSE(claims.Running(t, id));
  claims.Forget(t, tasks);
}

TEST(TaskClaims, TablesAreSeparateAndForgetTableDropsOneTable) {
  auto& claims = TaskClaims::Global();
  const uint64_t a = kTableBase + 4, b = kTableBase + 5;
  const size_t before = claims.size();
  EXPECT_TRUE(StartOne(a, 1).empty());
  EXPECT_TRUE(claims.Cancel(b, 1));  // same task id, other pool
  EXPECT_TRUE(claims.Running(a, 1));
  EXPECT_TRUE(claims.Cancel(a, 2));
  EXPECT_EQ(claims.size(), before + 3);
  claims.ForgetTable(a);
  EXPECT_EQ(claims.size(), before + 1);
  EXPECT_FALSE(claims.Running(a, 1));
  EXPECT_EQ(StartOne(b, 1), std::vector<uint64_t>{1});
  EXPECT_EQ(claims.size(), before);
  const uint64_t unknown[] = {42, 43};
  claims.Forget(a, unknown);  // unknown entries are ignored
  EXPECT_EQ(claims.size(), before);
}

// Workers start tasks in batches while the caller cancels every task: for
// each task exactly one side wins, and nothing is left behind.
TEST(TaskClaims, RacingStartAndCancelHaveExactlyOneWinner) {
  auto& claims = TaskClaims::Global();
  const uint64_t t = kTableBase + 6;
  const size_t before = claims.size();
  const uint64_t n = 20000 / kScale;
  constexpr int kWorkers = 3;
  std::vector<std::atomic<int>> started(n), cancelled(n);
  std::atomic<uint64_t> next{0};
  std::barrier go(kWorkers + 1);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      go.arrive_and_wait();
      std::vector<uint64_t> batch, refused;
      for (;;) {
        const uint64_t first = next.fetch_add(8);
        if (first >= n) break;
        batch.clear();
        refused.clear();
        for (uint64_t i = first; i < first + 8 && i < n; ++i) batch.push_back(i);
        claims.Start(t, batch, &refused);
        for (uint64_t id : batch) {
          bool was_refused = false;
          for (uint64_t r : refused) was_refused |= r == id;
          if (!was_refused) started[id].fetch_add(1);
        }
      }
    });
  }
  go.arrive_and_wait();
  for (uint64_t i = 0; i < n; ++i) {
    if (claims.Cancel(t, i)) cancelled[i].fetch_add(1);
  }
  for (auto& w : workers) w.join();
  std::vector<uint64_t> ran;
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(started[i].load() + cancelled[i].load(), 1) << "task " << i;
    EXPECT_EQ(claims.Running(t, i), started[i].load() == 1);
    if (started[i].load()) ran.push_back(i);
  }
  claims.Forget(t, ran);
  EXPECT_EQ(claims.size(), before);
}

}  // namespace
}  // namespace xchannels
