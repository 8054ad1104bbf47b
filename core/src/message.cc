// core/src/message.cc: the writer's slow paths, finishing and destruction of
// Messages.
#include "xchannels/message.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace xchannels {

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
  void* mem =
      std::malloc(sizeof(Message) + sizeof(MessageRef) * nrefs_ + size_);
  if (mem == nullptr) return nullptr;
  auto* m = new (mem) Message();
  m->size_ = size_;
  m->nrefs_ = nrefs_;
  MessageRef* table = m->refs_begin();
  for (uint32_t i = 0; i < nrefs_; ++i) table[i] = refs_[i];
  nrefs_ = 0;  // the message owns them now
  if (size_ > 0) std::memcpy(table + m->nrefs_, data_, size_);
  return MessagePtr(m);
}

void Message::Destroy(Message* m) noexcept {
  if (m == nullptr) return;
  MessageRef* refs = m->refs_begin();
  for (uint32_t i = 0; i < m->nrefs_; ++i) refs[i].object->Unref();
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
