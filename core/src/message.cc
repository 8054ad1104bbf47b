// core/src/message.cc: allocation, finishing and destruction of Messages.
#include "xchannels/message.h"

#include <cassert>
#include <cstdlib>
#include <cstring>
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

MessageWriter::~MessageWriter() {
  for (uint32_t i = 0; i < nrefs_; ++i) refs_[i].object->Unref();
  std::free(refs_);
  if (data_ != inline_) std::free(data_);
}

uint8_t* MessageWriter::Grow(size_t n) {
  if (cap_ == 0) return nullptr;  // spent by an earlier failure
  if (n > kMaxPayloadBytes || size_ + n > kMaxPayloadBytes) return Overflow();
  size_t cap = cap_;
  while (cap - size_ < n) cap *= 2;
  uint8_t* mem;
  if (data_ == inline_) {
    mem = static_cast<uint8_t*>(std::malloc(cap));
    if (mem != nullptr) std::memcpy(mem, inline_, size_);
  } else {
    mem = static_cast<uint8_t*>(std::realloc(data_, cap));
  }
  if (mem == nullptr) {
    cap_ = 0;  // spent: every later write fails too
    size_ = 0;
    if (data_ != inline_) std::free(data_);
    data_ = inline_;
    return nullptr;
  }
  data_ = mem;
  cap_ = cap;
  uint8_t* at = data_ + size_;
  size_ += n;
  return at;
}

bool MessageWriter::RefValue(Tag t, RefKind kind, Ref<RefCounted> object) {
  if (nrefs_ == refs_cap_) {
    uint32_t cap = refs_cap_ == 0 ? 4 : refs_cap_ * 2;
    auto* mem = static_cast<MessageRef*>(std::realloc(refs_, sizeof(MessageRef) * cap));
    if (mem == nullptr) return false;  // `object` is released
    refs_ = mem;
    refs_cap_ = cap;
  }
  const uint32_t index = nrefs_;
  if (!Byte(static_cast<uint8_t>(t)) || !Varint(index)) return false;
  refs_[nrefs_++] = MessageRef{object.Release(), kind};
  return true;
}

MessagePtr MessageWriter::Finish() {
  if (cap_ == 0 || too_large_) return nullptr;
  MessageBuilder b(size_, nrefs_);
  if (!b.ok()) return nullptr;
  if (size_ > 0) b.Raw(data_, size_);
  MessageRef* table = b.msg_->refs_begin();
  for (uint32_t i = 0; i < nrefs_; ++i) table[i] = refs_[i];
  b.msg_->refs_written_ = nrefs_;
  nrefs_ = 0;  // the message owns them now
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
