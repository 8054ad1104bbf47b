// core/src/registry.cc: the process-wide channel registry and channel ids.
#include "xchannels/registry.h"

#include <atomic>

#include "xchannels/channel.h"  // ChannelBase: id(), TryAddRef

namespace xchannels {

Registry& Registry::Global() {
  // Leaked on purpose: channels may die during static destruction.
  static Registry* const registry = new Registry();
  return *registry;
}

uint64_t Registry::NextId() noexcept {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

Ref<ChannelBase> Registry::Find(uint64_t id) {
  detail::MutexLock lock(&mu_);
  auto it = channels_.find(id);
  if (it == channels_.end() || !it->second->TryAddRef()) return nullptr;
  return Ref<ChannelBase>::Adopt(it->second);
}

size_t Registry::size() const {
  detail::MutexLock lock(&mu_);
  return channels_.size();
}

void Registry::Add(ChannelBase* channel) {
  detail::MutexLock lock(&mu_);
  channels_.emplace(channel->id(), channel);
}

void Registry::Remove(const ChannelBase* channel) {
  detail::MutexLock lock(&mu_);
  auto it = channels_.find(channel->id());
  if (it != channels_.end() && it->second == channel) channels_.erase(it);
}

}  // namespace xchannels
