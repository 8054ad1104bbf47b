// tests/cpp/registry_test.cc: channel ids and the process-wide registry.
#include "xchannels/registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

#include "xchannels/channel.h"
#include "test_peers.h"
#include "test_util.h"

namespace xchannels {
namespace {

using testing_util::kScale;

TEST(Registry, IdsUniqueAndIncreasing) {
  std::vector<Ref<Channel<int64_t>>> chans;
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    chans.push_back(Channel<int64_t>::Create(i % 3));
    EXPECT_GT(chans.back()->id(), last);
    last = chans.back()->id();
  }
  EXPECT_GE(chans.front()->id(), 1u);
}

TEST(Registry, FindLive) {
  auto ch = Channel<int64_t>::Create(4);
  Ref<ChannelBase> found = Registry::Global().Find(ch->id());
  ASSERT_TRUE(found);
  EXPECT_EQ(found.get(), static_cast<ChannelBase*>(ch.get()));
  EXPECT_EQ(found->capacity(), 4u);
  EXPECT_EQ(RefCountedTestPeer::RefCount(*ch), 2);
  EXPECT_FALSE(Registry::Global().Find(0));
  EXPECT_FALSE(Registry::Global().Find(~uint64_t{0}));
}

TEST(Registry, FindAfterLastUnrefIsNull) {
  const size_t before = Registry::Global().size();
  uint64_t id;
  {
    auto ch = Channel<int64_t>::Create();
    id = ch->id();
    EXPECT_EQ(Registry::Global().size(), before + 1);
    Ref<ChannelBase> again = Registry::Global().Find(id);
    EXPECT_TRUE(again);
  }
  EXPECT_FALSE(Registry::Global().Find(id));
  EXPECT_EQ(Registry::Global().size(), before);
}

TEST(Registry, SizeReturnsToStart) {
  const size_t before = Registry::Global().size();
  {
    std::vector<Ref<ChannelBase>> chans;
    for (int i = 0; i < 50; ++i) chans.push_back(Channel<int64_t>::Create());
    EXPECT_EQ(Registry::Global().size(), before + 50);
  }
  EXPECT_EQ(Registry::Global().size(), before);
}

// Find races the last Unref: whatever Find returns must be alive and usable
// (ASan would catch a revived or freed channel), and nothing leaks.
TEST(Registry, FindRacesLastUnref) {
  const size_t before = Registry::Global().size();
  constexpr int kFinders = 2;
  const int rounds = 1000 / kScale;
  std::atomic<uint64_t> current{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> hits{0};
  std::vector<std::thread> finders;
  for (int f = 0; f < kFinders; ++f) {
    finders.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t id = current.load(std::memory_order_relaxed);
        Ref<ChannelBase> ch = Registry::Global().Find(id);
        if (ch) {
          EXPECT_EQ(ch->id(), id);
          EXPECT_FALSE(ch->closed());
          EXPECT_EQ(ch->size(), 1u);
          hits.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (int r = 0; r < rounds; ++r) {
    auto ch = Channel<int64_t>::Create();
    int64_t v = r;
    ch->send(v, std::nullopt);
    current.store(ch->id(), std::memory_order_relaxed);
    std::this_thread::yield();
    // The last Ref may be dropped here or by a finder thread.
  }
  stop.store(true);
  for (auto& t : finders) t.join();
  EXPECT_EQ(Registry::Global().size(), before);
  RecordProperty("hits", static_cast<int>(hits.load()));
}

}  // namespace
}  // namespace xchannels
