// core/include/xchannels/registry.h: the process-wide map from channel id to
// live channel, so that any interpreter can attach to a channel by id.
//
// Invariants:
//   - An entry id -> ch exists from Channel<T>::Create until ch's last Unref;
//     ids are never reused, so an entry can only ever name one channel.
//   - Find never revives a dying channel: it takes a reference with
//     TryAddRef under mu_, which fails once the count has reached 0; the
//     dying channel then erases its own entry (under mu_) before it is freed.
//   - The registry is a leaked singleton: usable from any thread at any time,
//     including during static destruction at exit.
//
// Memory ordering: everything goes through mu_; ids come from one relaxed
// atomic counter (uniqueness needs no ordering).
#ifndef XCHANNELS_REGISTRY_H_
#define XCHANNELS_REGISTRY_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "xchannels/detail/mutex.h"
#include "xchannels/refcount.h"

namespace xchannels {

class ChannelBase;

class Registry {
 public:
  // Thread-safe. Never blocks. The one registry of the process (never
  // destroyed).
  static Registry& Global();

  // Thread-safe. Returns a new reference to the live channel with this id,
  // or nullptr if there is none or it is being destroyed. Takes the registry
  // lock: keep it off hot paths (a handle holds its channel directly).
  Ref<ChannelBase> Find(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  // Thread-safe. Number of registered (live) channels; for leak tests.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Thread-safe. Returns a fresh id: process-unique, increasing, from 1.
  static uint64_t NextId() noexcept;

  // Internal, used by channels. Thread-safe. May allocate.
  void Add(ChannelBase* channel) ABSL_LOCKS_EXCLUDED(mu_);
  // Internal, used by a channel on its last Unref. Thread-safe. Erases the
  // entry only if it still names `channel`.
  void Remove(const ChannelBase* channel) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Registry() = default;

  mutable detail::Mutex mu_;
  absl::flat_hash_map<uint64_t, ChannelBase*> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace xchannels

#endif  // XCHANNELS_REGISTRY_H_
