// tests/cpp/message_test.cc: the message format (write, decode, reject bad
// bytes) and Items, without Python. SharedBuffer itself is tested in
// shared_buffer_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "xchannels/item.h"
#include "xchannels/message.h"
#include "xchannels/shared_buffer.h"
#include "test_peers.h"

namespace xchannels {
namespace {

// A decoded value, as a plain C++ tree.
struct Node {
  Tag tag = Tag::kNone;
  int64_t i = 0;
  double f = 0;
  double im = 0;
  int kind = 0;
  std::string bytes;  // str code units, bytes, big int bytes
  std::vector<std::unique_ptr<Node>> items;
  const SharedBuffer* buffer = nullptr;
  const RefCounted* channel = nullptr;
};

struct TreeVisitor {
  using Value = std::unique_ptr<Node>;
  static bool IsNull(const Value& v) { return v == nullptr; }
  static Value Make(Tag t) {
    auto n = std::make_unique<Node>();
    n->tag = t;
    return n;
  }
  Value None() { return Make(Tag::kNone); }
  Value Bool(bool b) { return Make(b ? Tag::kTrue : Tag::kFalse); }
  Value Int64(int64_t v) {
    auto n = Make(Tag::kInt64);
    n->i = v;
    return n;
  }
  Value BigInt(const uint8_t* p, size_t n) {
    auto v = Make(Tag::kBigInt);
    v->bytes.assign(reinterpret_cast<const char*>(p), n);
    return v;
  }
  Value Float(double d) {
    auto n = Make(Tag::kFloat);
    n->f = d;
    return n;
  }
  Value Str(int kind, const uint8_t* p, size_t len) {
    auto n = Make(Tag::kStr1);
    n->kind = kind;
    n->bytes.assign(reinterpret_cast<const char*>(p),
                    len * static_cast<size_t>(kind));
    return n;
  }
  Value Bytes(const uint8_t* p, size_t len) {
    auto n = Make(Tag::kBytes);
    n->bytes.assign(reinterpret_cast<const char*>(p), len);
    return n;
  }
  Value Tuple(size_t n) {
    auto v = Make(Tag::kTuple);
    v->items.resize(n);
    return v;
  }
  bool SetItem(Value& t, size_t i, Value item) {
    t->items[i] = std::move(item);
    return true;
  }
  Value Complex(double re, double im) {
    auto n = Make(Tag::kComplex);
    n->f = re;
    n->im = im;
    return n;
  }
  Value List(size_t n) {
    auto v = Make(Tag::kList);
    v->items.resize(n);
    return v;
  }
  bool SetListItem(Value& t, size_t i, Value item) { return SetItem(t, i, std::move(item)); }
  Value Dict(size_t) { return Make(Tag::kDict); }
  bool SetDictItem(Value& d, Value k, Value v) {
    d->items.push_back(std::move(k));
    d->items.push_back(std::move(v));
    return true;
  }
  void BeginKey() {}
  void EndKey() {}
  Value Set(size_t, bool frozen) { return Make(frozen ? Tag::kFrozenSet : Tag::kSet); }
  bool AddSetItem(Value& s, Value item) {
    s->items.push_back(std::move(item));
    return true;
  }
  Value Pickled(const uint8_t* p, size_t len) {
    auto n = Make(Tag::kPickled);
    n->bytes.assign(reinterpret_cast<const char*>(p), len);
    return n;
  }
  Value Buffer(SharedBuffer* b) {
    auto n = Make(Tag::kBufferRef);
    n->buffer = b;
    return n;
  }
  Value BytesFromBuffer(SharedBuffer* b) {
    auto n = Make(Tag::kBytes);
    n->bytes.assign(reinterpret_cast<const char*>(b->data()), b->size());
    return n;
  }
  Value Channel(RefCounted* c) {
    auto n = Make(Tag::kChannelRef);
    n->channel = c;
    return n;
  }
  void Discard(Value) {}
};

std::unique_ptr<Node> DecodeAll(const Message& m, DecodeError* err = nullptr) {
  TreeVisitor v;
  Decoder<TreeVisitor> d(m.payload(), m.refs(), v);
  auto out = d.Run();
  if (err != nullptr) *err = d.error();
  return out;
}

std::unique_ptr<Node> DecodeBytes(const std::vector<uint8_t>& bytes,
                                  DecodeError* err) {
  TreeVisitor v;
  Decoder<TreeVisitor> d(std::span<const uint8_t>(bytes.data(), bytes.size()),
                         {}, v);
  auto out = d.Run();
  *err = d.error();
  return out;
}

// A counting channel stand-in: any RefCounted works as a channel ref here.
class FakeChannel final : public RefCounted {
 public:
  static int live;
  FakeChannel() { ++live; }
  ~FakeChannel() override { --live; }
};
int FakeChannel::live = 0;

int64_t Refs(const RefCounted& o) { return RefCountedTestPeer::RefCount(o); }

TEST(Message, ScalarsRoundTrip) {
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kTuple, 6));
  ASSERT_TRUE(w.Scalar(Tag::kNone));
  ASSERT_TRUE(w.Scalar(Tag::kTrue));
  ASSERT_TRUE(w.Scalar(Tag::kFalse));
  ASSERT_TRUE(w.Int64(std::numeric_limits<int64_t>::min()));
  ASSERT_TRUE(w.Float(-0.0));
  ASSERT_TRUE(w.Float(std::numeric_limits<double>::quiet_NaN()));
  MessagePtr m = w.Finish();
  ASSERT_NE(m, nullptr);
  DecodeError err;
  auto t = DecodeAll(*m, &err);
  ASSERT_NE(t, nullptr) << DecodeErrorName(err);
  ASSERT_EQ(t->items.size(), 6u);
  EXPECT_EQ(t->items[0]->tag, Tag::kNone);
  EXPECT_EQ(t->items[1]->tag, Tag::kTrue);
  EXPECT_EQ(t->items[2]->tag, Tag::kFalse);
  EXPECT_EQ(t->items[3]->i, std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(std::signbit(t->items[4]->f));
  EXPECT_TRUE(std::isnan(t->items[5]->f));
}

TEST(Message, StringsBytesAndBigInts) {
  const char16_t wide[] = u"h\xE9\xD800";  // includes a lone surrogate
  std::string big(20, '\x7f');
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kTuple, 3));
  std::memcpy(w.Str(2, 3), wide, 6);
  std::memcpy(w.Bytes(5), "a\0b\0c", 5);
  std::memcpy(w.BigInt(big.size()), big.data(), big.size());
  MessagePtr m = w.Finish();
  ASSERT_NE(m, nullptr);
  auto t = DecodeAll(*m);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->items[0]->kind, 2);
  EXPECT_EQ(std::memcmp(t->items[0]->bytes.data(), wide, 6), 0);
  EXPECT_EQ(t->items[1]->bytes, std::string("a\0b\0c", 5));
  EXPECT_EQ(t->items[2]->tag, Tag::kBigInt);
  EXPECT_EQ(t->items[2]->bytes, big);
}

TEST(Message, RefsAreOwnedAndReleased) {
  ASSERT_EQ(FakeChannel::live, 0);
  int64_t buffers_before = SharedBuffer::LiveCountForTesting();
  {
    Ref<SharedBuffer> buf = SharedBuffer::Copy("hello", 5);
    Ref<RefCounted> ch = MakeRef<FakeChannel>();
    MessageWriter w;
    ASSERT_TRUE(w.Container(Tag::kTuple, 2));
    ASSERT_TRUE(w.RefValue(Tag::kBufferRef, RefKind::kBuffer,
                           Ref<RefCounted>(Ref<SharedBuffer>(buf))));
    ASSERT_TRUE(w.RefValue(Tag::kChannelRef, RefKind::kChannel, ch));
    MessagePtr m = w.Finish();
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(Refs(*buf), 2);
    EXPECT_EQ(Refs(*ch), 2);
    auto t = DecodeAll(*m);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->items[0]->buffer, buf.get());
    EXPECT_EQ(t->items[1]->channel, ch.get());
    m.reset();
    EXPECT_EQ(Refs(*buf), 1);
    EXPECT_EQ(Refs(*ch), 1);
  }
  EXPECT_EQ(FakeChannel::live, 0);
  EXPECT_EQ(SharedBuffer::LiveCountForTesting(), buffers_before);
}

// A writer dropped unfinished drops the reference it took over; the
// caller's own stays.
TEST(MessageWriter, UnfinishedWriterReleasesACallersRef) {
  Ref<RefCounted> ch = MakeRef<FakeChannel>();
  {
    MessageWriter w;
    ASSERT_TRUE(w.RefValue(Tag::kChannelRef, RefKind::kChannel, ch));
    EXPECT_EQ(Refs(*ch), 2);
  }  // never finished
  EXPECT_EQ(Refs(*ch), 1);
}

// A write that failed leaves a writer that never finishes, even when later
// writes succeed: no message holds a partial encoding.
TEST(MessageWriter, FinishRefusesAfterAFailedWrite) {
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kList, 2));
  ASSERT_EQ(w.Bytes(kMaxPayloadBytes), nullptr);
  ASSERT_TRUE(w.Scalar(Tag::kNone));  // a later write still finds room
  EXPECT_EQ(w.Finish(), nullptr);
}

// The one-walk writer produces exactly the grammar's bytes (message.h),
// spilling from its inline buffer to the heap, with its refs in the
// message's table.
TEST(MessageWriter, WritesTheGrammarAcrossTheSpill) {
  const char16_t wide[] = u"h\xE9\xD800";
  for (size_t blob : {size_t{10}, size_t{200}, size_t{600}, size_t{100000}}) {
    auto b1 = SharedBuffer::Copy("ref", 3);
    auto b2 = b1;
    // The expected payload, byte by byte.
    std::vector<uint8_t> expected;
    auto tag = [&](Tag t) { expected.push_back(static_cast<uint8_t>(t)); };
    auto raw = [&](const void* p, size_t n) {
      auto* b = static_cast<const uint8_t*>(p);
      expected.insert(expected.end(), b, b + n);
    };
    auto varint = [&](uint64_t v) {
      for (; v >= 0x80; v >>= 7) expected.push_back(static_cast<uint8_t>(v | 0x80));
      expected.push_back(static_cast<uint8_t>(v));
    };
    tag(Tag::kTuple);
    varint(7);
    tag(Tag::kNone);
    const int64_t minus_five = -5;
    const double minus_zero = -0.0;
    tag(Tag::kInt64);
    raw(&minus_five, 8);
    tag(Tag::kFloat);
    raw(&minus_zero, 8);
    tag(Tag::kStr2);
    varint(3);
    raw(wide, 6);
    tag(Tag::kBytes);
    varint(blob);
    expected.insert(expected.end(), blob, 'x');
    tag(Tag::kBufferRef);
    varint(0);
    tag(Tag::kTuple);
    varint(0);

    MessageWriter w;
    ASSERT_TRUE(w.Container(Tag::kTuple, 7));
    ASSERT_TRUE(w.Scalar(Tag::kNone));
    ASSERT_TRUE(w.Int64(-5));
    ASSERT_TRUE(w.Float(-0.0));
    uint8_t* s = w.Str(2, 3);
    ASSERT_NE(s, nullptr);
    std::memcpy(s, wide, 6);
    uint8_t* b = w.Bytes(blob);
    ASSERT_NE(b, nullptr);
    std::memset(b, 'x', blob);
    ASSERT_TRUE(w.RefValue(Tag::kBufferRef, RefKind::kBuffer, Ref<RefCounted>(std::move(b2))));
    ASSERT_TRUE(w.Container(Tag::kTuple, 0));
    EXPECT_EQ(w.size(), expected.size());
    MessagePtr got = w.Finish();
    ASSERT_NE(got, nullptr);
    ASSERT_EQ(got->payload().size(), expected.size());
    EXPECT_EQ(std::memcmp(got->payload().data(), expected.data(),
                          expected.size()), 0) << blob;
    ASSERT_EQ(got->refs().size(), 1u);
    EXPECT_EQ(got->refs()[0].object, b1.get());
    auto t = DecodeAll(*got);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->items[4]->bytes, std::string(blob, 'x'));
  }
}

TEST(MessageWriter, UnfinishedWriterReleasesRefs) {
  FakeChannel::live = 0;
  {
    MessageWriter w;
    for (int i = 0; i < 20; ++i) {  // past the first ref table growth
      ASSERT_TRUE(w.RefValue(Tag::kChannelRef, RefKind::kChannel,
                             Ref<RefCounted>::Adopt(new FakeChannel())));
    }
    EXPECT_EQ(FakeChannel::live, 20);
  }
  EXPECT_EQ(FakeChannel::live, 0);
  {
    MessageWriter w;
    ASSERT_TRUE(w.Container(Tag::kList, 1));
    ASSERT_TRUE(w.RefValue(Tag::kChannelRef, RefKind::kChannel,
                           Ref<RefCounted>::Adopt(new FakeChannel())));
    MessagePtr m = w.Finish();  // the message owns the ref now
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(FakeChannel::live, 1);
  }
  EXPECT_EQ(FakeChannel::live, 0);
}

TEST(MessageWriter, SizeLimitRefusesWithoutAllocating) {
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kList, 2));
  EXPECT_EQ(w.Bytes(kMaxPayloadBytes), nullptr);
  EXPECT_TRUE(w.too_large());
  EXPECT_EQ(w.Finish(), nullptr);
  MessageWriter w2;
  EXPECT_EQ(w2.Str(4, SIZE_MAX / 2), nullptr);  // len * 4 would overflow
  EXPECT_TRUE(w2.too_large());
}

// Lists, dicts, sets, frozensets, complex and pickled values round-trip
// through the grammar, and their counts are checked against the payload.
TEST(Message, ContainersRoundTrip) {
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kDict, 2));
  ASSERT_TRUE(w.Int64(1));
  ASSERT_TRUE(w.Container(Tag::kList, 2));
  ASSERT_TRUE(w.Complex(1.5, -0.0));
  ASSERT_TRUE(w.Container(Tag::kSet, 1));
  ASSERT_TRUE(w.Scalar(Tag::kTrue));
  ASSERT_TRUE(w.Container(Tag::kFrozenSet, 0));
  uint8_t* p = w.Pickled(3);
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "pkl", 3);
  MessagePtr m = w.Finish();
  ASSERT_NE(m, nullptr);
  auto t = DecodeAll(*m);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->tag, Tag::kDict);
  ASSERT_EQ(t->items.size(), 4u);  // key, value, key, value
  EXPECT_EQ(t->items[0]->i, 1);
  EXPECT_EQ(t->items[1]->tag, Tag::kList);
  EXPECT_EQ(t->items[1]->items[0]->tag, Tag::kComplex);
  EXPECT_EQ(t->items[1]->items[0]->f, 1.5);
  EXPECT_TRUE(std::signbit(t->items[1]->items[0]->im));
  EXPECT_EQ(t->items[1]->items[1]->tag, Tag::kSet);
  EXPECT_EQ(t->items[2]->tag, Tag::kFrozenSet);
  EXPECT_EQ(t->items[3]->tag, Tag::kPickled);
  EXPECT_EQ(t->items[3]->bytes, "pkl");
  // Every truncation of it is rejected, never read past.
  auto payload = m->payload();
  for (size_t n = 0; n < payload.size(); ++n) {
    std::vector<uint8_t> cut(payload.begin(), payload.begin() + n);
    DecodeError err;
    EXPECT_EQ(DecodeBytes(cut, &err), nullptr) << n;
  }
  // A dict whose count claims more pairs than the bytes could hold.
  std::vector<uint8_t> lying = {static_cast<uint8_t>(Tag::kDict), 3,
                                static_cast<uint8_t>(Tag::kNone),
                                static_cast<uint8_t>(Tag::kNone),
                                static_cast<uint8_t>(Tag::kNone),
                                static_cast<uint8_t>(Tag::kNone),
                                static_cast<uint8_t>(Tag::kNone)};
  DecodeError err;
  EXPECT_EQ(DecodeBytes(lying, &err), nullptr);
  EXPECT_EQ(err, DecodeError::kTruncated);
}

TEST(Message, DepthLimit) {
  for (int depth : {kMaxDepth, kMaxDepth + 1}) {
    std::vector<uint8_t> bytes;
    for (int i = 0; i < depth; ++i) {
      bytes.push_back(static_cast<uint8_t>(Tag::kTuple));
      bytes.push_back(1);
    }
    bytes.push_back(static_cast<uint8_t>(Tag::kNone));
    DecodeError err;
    auto t = DecodeBytes(bytes, &err);
    if (depth <= kMaxDepth) {
      EXPECT_NE(t, nullptr) << depth;
    } else {
      EXPECT_EQ(t, nullptr);
      EXPECT_EQ(err, DecodeError::kTooDeep);
    }
  }
}

TEST(Message, RejectsMalformed) {
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    DecodeError want;
  };
  const std::vector<Case> cases = {
      {"empty", {}, DecodeError::kTruncated},
      {"bad tag", {0xEE}, DecodeError::kBadTag},
      {"short int", {3, 1, 2}, DecodeError::kTruncated},
      {"trailing", {0, 0}, DecodeError::kTrailing},
      {"bytes past end", {9, 5, 'a'}, DecodeError::kTruncated},
      {"huge tuple count", {10, 0xff, 0xff, 0xff, 0x0f}, DecodeError::kTruncated},
      {"varint too long", {9, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
       DecodeError::kTruncated},
      {"ref without table", {11, 0}, DecodeError::kBadRef},
      {"short big int", {4, 2, 1, 2}, DecodeError::kBadValue},
      {"str4 past end", {8, 3, 0, 0, 0, 0}, DecodeError::kTruncated},
  };
  for (const Case& c : cases) {
    DecodeError err;
    auto t = DecodeBytes(c.bytes, &err);
    EXPECT_EQ(t, nullptr) << c.name;
    EXPECT_EQ(err, c.want) << c.name << ": " << DecodeErrorName(err);
  }
}

TEST(Message, RefKindMismatchIsRejected) {
  Ref<RefCounted> ch = MakeRef<FakeChannel>();
  MessageWriter w;
  ASSERT_TRUE(w.RefValue(Tag::kBufferRef, RefKind::kChannel, ch));  // buffer tag, channel ref
  MessagePtr m = w.Finish();
  ASSERT_NE(m, nullptr);
  DecodeError err;
  EXPECT_EQ(DecodeAll(*m, &err), nullptr);
  EXPECT_EQ(err, DecodeError::kBadRef);
}

TEST(Message, EveryTruncationIsRejected) {
  // A valid nested message, cut at every length: never a crash, never ok.
  MessageWriter w;
  ASSERT_TRUE(w.Container(Tag::kTuple, 3));
  std::memcpy(w.Str(1, 4), "abcd", 4);
  ASSERT_TRUE(w.Container(Tag::kTuple, 1));
  ASSERT_TRUE(w.Int64(42));
  std::memcpy(w.Bytes(3), "xyz", 3);
  MessagePtr m = w.Finish();
  ASSERT_NE(m, nullptr);
  auto payload = m->payload();
  for (size_t cut = 0; cut < payload.size(); ++cut) {
    std::vector<uint8_t> bytes(payload.begin(), payload.begin() + cut);
    DecodeError err;
    EXPECT_EQ(DecodeBytes(bytes, &err), nullptr) << cut;
    EXPECT_NE(err, DecodeError::kOk);
  }
}

TEST(Message, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
#ifdef XCHANNELS_UNDER_SANITIZER
  const int rounds = 2000;
#else
  const int rounds = 20000;
#endif
  for (int r = 0; r < rounds; ++r) {
    std::vector<uint8_t> bytes(rng() % 64);
    for (auto& x : bytes) x = static_cast<uint8_t>(rng() % 16);  // mostly tags
    DecodeError err;
    auto t = DecodeBytes(bytes, &err);
    EXPECT_EQ(t == nullptr, err != DecodeError::kOk);
  }
}

TEST(Item, ScalarsAndOwnership) {
  Item a = Item::Int(-5);
  EXPECT_EQ(a.kind(), Item::Kind::kInt);
  EXPECT_EQ(a.AsInt(), -5);
  Item f = Item::Float(-0.0);
  EXPECT_TRUE(std::signbit(f.AsFloat()));
  Ref<RefCounted> ch = MakeRef<FakeChannel>();
  {
    Item c = Item::FromRef(Item::Kind::kChannel, ch);
    EXPECT_EQ(Refs(*ch), 2);
    Item moved = std::move(c);
    EXPECT_EQ(c.kind(), Item::Kind::kEmpty);  // NOLINT: testing moved-from
    EXPECT_EQ(Refs(*ch), 2);
  }
  EXPECT_EQ(Refs(*ch), 1);
}

TEST(Message, BuiltOnOneThreadDestroyedOnAnother) {
  // Hammer the path a channel takes (write here, destroy there) for ASan and
  // TSan, with sizes from empty to past the writer's inline buffer.
#ifdef XCHANNELS_UNDER_SANITIZER
  const int n = 20000;
#else
  const int n = 200000;
#endif
  std::vector<MessagePtr> built(static_cast<size_t>(n));
  std::thread producer([&] {
    for (int i = 0; i < n; ++i) {
      size_t len = static_cast<size_t>(i % 700);
      MessageWriter w;
      std::memset(w.Bytes(len), i & 0xff, len);
      built[static_cast<size_t>(i)] = w.Finish();
    }
  });
  producer.join();
  std::thread consumer([&] {
    for (int i = 0; i < n; ++i) {
      auto t = DecodeAll(*built[static_cast<size_t>(i)]);
      ASSERT_NE(t, nullptr);
      ASSERT_EQ(t->bytes.size(), static_cast<size_t>(i % 700));
      built[static_cast<size_t>(i)].reset();
    }
  });
  consumer.join();
}

}  // namespace
}  // namespace xchannels
