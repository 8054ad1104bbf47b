// core/src/event_hub.cc: EventHub's eventfd and ready list.
#include "xchannels/event_hub.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace xchannels {

EventHub::~EventHub() {
  detail::MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
}

void EventHub::Signal() {
  if (fd_ < 0) return;
  const uint64_t one = 1;
  // Cannot fail short of a counter overflow (2^64 - 2 unread writes).
  [[maybe_unused]] ssize_t r = ::write(fd_, &one, sizeof one);
}

int EventHub::Open() {
  detail::MutexLock lock(&mu_);
  if (fd_ < 0) {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -errno;
    fd_ = fd;
    // An entry may be waiting already (pushed before a Close): make sure
    // the loop hears of it.
    if (!ready_.empty()) Signal();
  }
  return fd_;
}

void EventHub::Close() {
  detail::MutexLock lock(&mu_);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

int EventHub::fd() const {
  detail::MutexLock lock(&mu_);
  return fd_;
}

void EventHub::Push(Entry* e) noexcept {
  detail::MutexLock lock(&mu_);
  if (e->in_ready) return;
  e->in_ready = true;
  ready_.PushBack(e);
  if (ready_.front() == e) Signal();
}

void EventHub::Remove(Entry* e) noexcept {
  detail::MutexLock lock(&mu_);
  if (!e->in_ready) return;
  ready_.Unlink(e);
  e->in_ready = false;
}

void EventHub::Drain(std::vector<Entry*>& out) {
  detail::MutexLock lock(&mu_);
  if (fd_ >= 0) {
    uint64_t count;
    [[maybe_unused]] ssize_t r = ::read(fd_, &count, sizeof count);
  }
  const size_t first = out.size();
  try {
    for (Entry* e = ready_.front(); e != nullptr; e = e->next) out.push_back(e);
  } catch (...) {
    out.resize(first);
    Signal();  // keep the list and the wake-up: nothing is lost
    throw;
  }
  for (Entry* e = ready_.front(); e != nullptr;) {
    Entry* next = e->next;
    e->prev = e->next = nullptr;
    e->in_ready = false;
    e = next;
  }
  ready_.Clear();
}

}  // namespace xchannels
