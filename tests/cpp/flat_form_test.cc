// tests/cpp/flat_form_test.cc: the flat form of Items (what a ProcessChannel
// record holds): scalars, buffers and messages round-trip, and any byte
// string is parsed or refused without reading out of bounds.
#include "xchannels/flat_form.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace xchannels {
namespace {

TEST(FlatItemTest, RoundTripsScalarsBuffersAndMessages) {
  RecordBuffer flat;
  FlatItem f;
  bool oom = false;
  ASSERT_TRUE(FlattenItem(Item::Int(-42), &flat));
  ASSERT_TRUE(UnflattenItem(flat.span(), &f, &oom));
  EXPECT_EQ(f.scalar.kind(), Item::Kind::kInt);
  EXPECT_EQ(f.scalar.AsInt(), -42);

  flat.clear();
  f = FlatItem();
  ASSERT_TRUE(FlattenItem(Item::Float(2.5), &flat));
  ASSERT_TRUE(UnflattenItem(flat.span(), &f, &oom));
  EXPECT_EQ(f.scalar.AsFloat(), 2.5);

  flat.clear();
  f = FlatItem();
  BufferLayout layout;
  layout.format = "i";
  layout.itemsize = 4;
  layout.shape = {2, 2};
  const int32_t data[4] = {1, 2, 3, 4};
  Ref<SharedBuffer> b = SharedBuffer::Copy(data, 16, layout);
  ASSERT_TRUE(FlattenItem(Item::FromRef(Item::Kind::kBuffer, Ref<RefCounted>(Ref<SharedBuffer>(b))),
                          &flat));
  ASSERT_TRUE(UnflattenItem(flat.span(), &f, &oom));
  ASSERT_TRUE(f.is_buffer);
  EXPECT_EQ(f.buffers[0]->layout().format, "i");
  EXPECT_EQ(f.buffers[0]->shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(std::memcmp(f.buffers[0]->data(), data, 16), 0);
  EXPECT_NE(f.buffers[0].get(), b.get());  // a copy
}

// A message travels as its buffers, inlined, then its payload unchanged;
// the record is the head FlattenItem writes followed by the payload it
// points at, or the same bytes written whole.
TEST(FlatItemTest, MessagesCarryTheirBuffersAndPayload) {
  Ref<SharedBuffer> buf = SharedBuffer::Copy("bytes", 5);
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kTuple, 2));
  ASSERT_TRUE(w.Int64(7));
  ASSERT_TRUE(w.RefValue(Tag::kBytesRef, RefKind::kBuffer,
                         Ref<RefCounted>(Ref<SharedBuffer>(buf))));
  MessagePtr m = w.Finish();
  ASSERT_NE(m, nullptr);
  const Item item = Item::FromMessage(std::move(m));

  RecordBuffer head;
  std::span<const uint8_t> payload;
  ASSERT_TRUE(FlattenItem(item, &head, &payload));
  EXPECT_EQ(payload.data(), item.AsMessage()->payload().data());  // a view
  RecordBuffer whole;
  ASSERT_TRUE(FlattenItem(item, &whole));
  ASSERT_EQ(whole.size(), head.size() + payload.size());
  EXPECT_EQ(std::memcmp(whole.data(), head.data(), head.size()), 0);
  EXPECT_EQ(std::memcmp(whole.data() + head.size(), payload.data(),
                        payload.size()), 0);
  EXPECT_EQ(whole.data()[0], static_cast<uint8_t>(FlatKind::kMessage));

  FlatItem f;
  bool oom = false;
  ASSERT_TRUE(UnflattenItem(whole.span(), &f, &oom));
  EXPECT_FALSE(f.is_buffer);
  ASSERT_EQ(f.refs.size(), 1u);
  EXPECT_EQ(f.refs[0].kind, RefKind::kBuffer);
  EXPECT_EQ(f.refs[0].object, f.buffers[0].get());
  EXPECT_NE(f.buffers[0].get(), buf.get());  // a copy
  ASSERT_EQ(f.buffers[0]->size(), 5u);
  EXPECT_EQ(std::memcmp(f.buffers[0]->data(), "bytes", 5), 0);
  ASSERT_EQ(f.payload.size(), payload.size());
  EXPECT_EQ(std::memcmp(f.payload.data(), payload.data(), payload.size()), 0);
}

// A channel cannot leave its process: an Item that is one, or a message
// that refers to one, has no flat form, and the buffer is left as it was.
TEST(FlatItemTest, ChannelsHaveNoFlatForm) {
  class FakeChannel final : public RefCounted {};
  RecordBuffer out;
  out.push_back(0xAB);
  const Item ch = Item::FromRef(Item::Kind::kChannel, MakeRef<FakeChannel>());
  EXPECT_FALSE(FlattenItem(ch, &out));
  MessageWriter w;
  ASSERT_TRUE(w.RefValue(Tag::kChannelRef, RefKind::kChannel,
                         MakeRef<FakeChannel>()));
  const Item msg = Item::FromMessage(w.Finish());
  EXPECT_FALSE(FlattenItem(msg, &out));
  EXPECT_FALSE(FlattenItem(Item(), &out));  // kEmpty
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out.data()[0], 0xAB);
}

// The kind bytes are the wire's: a scalar record is its kind and 8 bytes.
TEST(FlatItemTest, ScalarRecordsAreTheirKindAndBits) {
  RecordBuffer out;
  ASSERT_TRUE(FlattenItem(Item::Int(-2), &out));
  const int64_t minus_two = -2;
  ASSERT_EQ(out.size(), 9u);
  EXPECT_EQ(out.data()[0], 4);  // FlatKind::kInt
  EXPECT_EQ(std::memcmp(out.data() + 1, &minus_two, 8), 0);
  out.clear();
  ASSERT_TRUE(FlattenItem(Item::None(), &out));
  ASSERT_TRUE(FlattenItem(Item::Bool(false), &out));
  ASSERT_TRUE(FlattenItem(Item::Bool(true), &out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out.data()[0], 1);  // kNone
  EXPECT_EQ(out.data()[1], 2);  // kFalse
  EXPECT_EQ(out.data()[2], 3);  // kTrue
}

TEST(FlatItemTest, MalformedRecordsAreRefused) {
  std::mt19937 rng(3);
  FlatItem f;
  bool oom = false;
  EXPECT_FALSE(UnflattenItem({}, &f, &oom));
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> junk(rng() % 40);
    for (auto& c : junk) c = static_cast<uint8_t>(rng());
    if (!junk.empty()) junk[0] = static_cast<uint8_t>(rng() % 10);
    FlatItem g;
    UnflattenItem(junk, &g, &oom);  // must not crash or read out of bounds
    EXPECT_FALSE(oom);
  }
}

}  // namespace
}  // namespace xchannels
