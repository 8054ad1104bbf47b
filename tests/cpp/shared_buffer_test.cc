// tests/cpp/shared_buffer_test.cc: SharedBuffer (core/include/xchannels/
// shared_buffer.h): copies, slices and their lifetime, layout checks, and
// the cache of large blocks, without Python.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "xchannels/shared_buffer.h"

namespace xchannels {
namespace {

TEST(SharedBuffer, CopySliceAndLifetime) {
  int64_t before = SharedBuffer::LiveCountForTesting();
  Ref<SharedBuffer> slice;
  {
    Ref<SharedBuffer> base = SharedBuffer::Copy("0123456789", 10);
    ASSERT_TRUE(base);
    slice = SharedBuffer::Slice(base, 2, 5);
    Ref<SharedBuffer> slice2 = SharedBuffer::Slice(slice, 1, 2);
    EXPECT_EQ(slice2->root(), base.get());  // no chains of slices
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(slice2->data()), 2),
              "34");
  }
  // The base is gone from our hands but the slice keeps it alive.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(slice->data()), 5),
            "23456");
  slice = nullptr;
  EXPECT_EQ(SharedBuffer::LiveCountForTesting(), before);
}

// Borrowed storage is read in place and given back exactly once, when the
// last reference (the buffer's or a slice's, on any thread) goes.
TEST(SharedBuffer, BorrowGivesTheStorageBackOnce) {
  static std::atomic<int> returned{0};
  static const void* returned_context = nullptr;
  returned = 0;
  std::string owner = "borrowed bytes, never copied";
  Ref<SharedBuffer> slice;
  {
    Ref<SharedBuffer> b = SharedBuffer::Borrow(
        owner.data(), owner.size(),
        [](void* context) noexcept {
          returned_context = context;
          returned.fetch_add(1);
        },
        &owner);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->data(), reinterpret_cast<const uint8_t*>(owner.data()));
    EXPECT_EQ(b->size(), owner.size());
    EXPECT_EQ(b->layout().format, "B");
    slice = SharedBuffer::Slice(b, 9, 5);
  }
  EXPECT_EQ(returned.load(), 0);  // the slice keeps the loan
  std::thread other([s = std::move(slice)]() mutable { s = nullptr; });
  other.join();
  EXPECT_EQ(returned.load(), 1);
  EXPECT_EQ(returned_context, &owner);
}

TEST(SharedBuffer, LayoutChecks) {
  BufferLayout ints{"i", 4, {2, 3}};
  EXPECT_TRUE(ints.Fits(24));
  EXPECT_FALSE(ints.Fits(20));
  EXPECT_FALSE(SharedBuffer::Copy("abc", 3, ints));
  BufferLayout zero{"B", 0, {}};
  EXPECT_FALSE(zero.Fits(0));
  BufferLayout overflow{"B", 1, {int64_t{1} << 40, int64_t{1} << 40}};
  EXPECT_FALSE(overflow.Fits(0));
  BufferLayout negative{"B", 1, {-1}};
  EXPECT_FALSE(negative.Fits(0));
  Ref<SharedBuffer> b = SharedBuffer::Copy("abcdefgh", 8, BufferLayout{"d", 8, {}});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->shape(), std::vector<int64_t>{1});
  Ref<SharedBuffer> empty = SharedBuffer::Copy(nullptr, 0);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->size(), 0u);
}

TEST(SharedBuffer, LargeBlocksAreReusedNotLeaked) {
  // Freed large storage goes to a bounded cache; a same-sized allocation
  // takes it back, and its contents are whatever the new owner writes.
  const size_t size = 1 << 20;
  std::vector<uint8_t> ones(size, 1), twos(size, 2);
  const uint8_t* first = nullptr;
  {
    Ref<SharedBuffer> a = SharedBuffer::Copy(ones.data(), size);
    first = a->data();
  }
  Ref<SharedBuffer> b = SharedBuffer::Copy(twos.data(), size);
  EXPECT_EQ(b->data(), first);  // the cached block came back
  EXPECT_EQ(std::memcmp(b->data(), twos.data(), size), 0);
  // Many more blocks than the cache holds: the rest are freed (ASan's leak
  // check covers that nothing is lost).
  std::vector<Ref<SharedBuffer>> many;
  for (int i = 0; i < 20; ++i) many.push_back(SharedBuffer::Copy(ones.data(), size));
  many.clear();
}

}  // namespace
}  // namespace xchannels
