// core/src/message.cc: allocation, finishing and destruction of Messages.
#include "xchannels/message.h"

#include <cassert>
#include <cstdlib>
#include <new>

namespace xchannels {

MessageBuilder::MessageBuilder(size_t bytes, uint32_t refs) {
  size_t total = sizeof(Message) + sizeof(MessageRef) * refs + bytes;
  void* mem = std::malloc(total);
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

MessagePtr MessageBuilder::CopyOf(std::span<const uint8_t> payload) {
  MessageBuilder b(payload.size(), 0);
  if (!b.ok()) return nullptr;
  if (!payload.empty()) b.Raw(payload.data(), payload.size());
  return b.Finish();
}

void Message::Destroy(Message* m) noexcept {
  if (m == nullptr) return;
  MessageRef* refs = m->refs_begin();
  for (uint32_t i = 0; i < m->refs_written_; ++i) refs[i].object->Unref();
  m->~Message();
  std::free(m);
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
