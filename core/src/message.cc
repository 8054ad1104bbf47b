// core/src/message.cc: allocation, finishing and destruction of Messages.
#include "xchannels/message.h"

#include <cassert>
#include <atomic>
#include <cstdlib>

#include <concurrentqueue/concurrentqueue.h>
#include <new>

namespace xchannels {
namespace {

// Small messages are recycled through lock-free free lists instead of going
// back to malloc. A message is usually allocated on the sending thread and
// freed on the receiving one, and glibc's free of another thread's chunk
// takes that arena's lock, which the sender wants for its next message:
// streaming 5-tuples spent a third of its time there. Bounded: at most
// kMaxPooled blocks per size class (the count is approximate under races).
constexpr size_t kClassBytes[] = {64, 128, 256, 512};
constexpr int kClasses = 4;
constexpr size_t kMaxPooled = 4096;

struct FreeList {
  moodycamel::ConcurrentQueue<void*> blocks;
  std::atomic<size_t> count{0};
};

FreeList* Lists() {
  static FreeList* lists = new FreeList[kClasses];  // never destroyed
  return lists;
}

int ClassOf(size_t total) {
  for (int c = 0; c < kClasses; ++c) {
    if (total <= kClassBytes[c]) return c;
  }
  return -1;
}

size_t TotalBytes(size_t payload, uint32_t nrefs) {
  return sizeof(Message) + sizeof(MessageRef) * nrefs + payload;
}

void* AllocateBlock(size_t total) {
  int c = ClassOf(total);
  if (c < 0) return std::malloc(total);
  FreeList& list = Lists()[c];
  void* p = nullptr;
  if (list.count.load(std::memory_order_relaxed) > 0 &&
      list.blocks.try_dequeue(p)) {
    list.count.fetch_sub(1, std::memory_order_relaxed);
    return p;
  }
  return std::malloc(kClassBytes[c]);
}

void FreeBlock(void* p, size_t total) {
  int c = ClassOf(total);
  if (c >= 0) {
    FreeList& list = Lists()[c];
    if (list.count.load(std::memory_order_relaxed) < kMaxPooled) {
      list.count.fetch_add(1, std::memory_order_relaxed);
      if (list.blocks.enqueue(p)) return;
      list.count.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  std::free(p);
}

}  // namespace

MessageBuilder::MessageBuilder(size_t bytes, uint32_t refs) {
  size_t total = TotalBytes(bytes, refs);
  void* mem = AllocateBlock(total);
  if (mem == nullptr) return;
  msg_ = new (mem) Message();
  msg_->size_ = bytes;
  msg_->nrefs_ = refs;
  msg_->refs_written_ = 0;
  cursor_ = const_cast<uint8_t*>(msg_->payload().data());
  end_ = cursor_ + bytes;
}

void MessageBuilder::RefValue(Tag t, RefKind kind, Ref<RefCounted> object) {
  uint32_t index = msg_->refs_written_;
  assert(index < msg_->nrefs_ && "MessageBuilder: more refs than sized");
  Byte(static_cast<uint8_t>(t));
  Varint(index);
  msg_->refs_begin()[index] = MessageRef{object.Release(), kind};
  msg_->refs_written_ = index + 1;
}

MessagePtr MessageBuilder::Finish() {
  if (msg_ == nullptr || cursor_ != end_ ||
      msg_->refs_written_ != msg_->nrefs_) {
    return nullptr;
  }
  return MessagePtr(std::exchange(msg_, nullptr));
}

void Message::Destroy(Message* m) noexcept {
  if (m == nullptr) return;
  MessageRef* refs = m->refs_begin();
  for (uint32_t i = 0; i < m->refs_written_; ++i) refs[i].object->Unref();
  size_t total = TotalBytes(m->size_, m->nrefs_);
  m->~Message();
  FreeBlock(m, total);
}

std::string_view DecodeErrorName(DecodeError e) {
  switch (e) {
    case DecodeError::kOk: return "ok";
    case DecodeError::kTruncated: return "truncated";
    case DecodeError::kBadTag: return "unknown tag";
    case DecodeError::kBadRef: return "bad reference";
    case DecodeError::kTooDeep: return "nested too deep";
    case DecodeError::kTrailing: return "trailing bytes";
    case DecodeError::kBadValue: return "malformed value";
    case DecodeError::kVisitor: return "value construction failed";
  }
  return "unknown error";
}

}  // namespace xchannels
