// core/src/task_claims.cc: the process-wide task claim table.
#include "xchannels/task_claims.h"

#include <vector>

namespace xchannels {

TaskClaims& TaskClaims::Global() {
  // Leaked on purpose: pools may end during static destruction.
  static TaskClaims* const claims = new TaskClaims();
  return *claims;
}

void TaskClaims::Start(uint64_t table, std::span<const uint64_t> tasks,
                       std::vector<uint64_t>* cancelled) {
  detail::MutexLock lock(&mu_);
  for (uint64_t task : tasks) {
    auto [it, inserted] = entries_.try_emplace(Key{table, task}, State::kRunning);
    if (!inserted && it->second == State::kCancelled) {
      entries_.erase(it);
      cancelled->push_back(task);
    }
  }
}

bool TaskClaims::Cancel(uint64_t table, uint64_t task) {
  detail::MutexLock lock(&mu_);
  auto [it, inserted] = entries_.try_emplace(Key{table, task}, State::kCancelled);
  return inserted || it->second == State::kCancelled;
}

bool TaskClaims::Running(uint64_t table, uint64_t task) const {
  detail::MutexLock lock(&mu_);
  auto it = entries_.find(Key{table, task});
  return it != entries_.end() && it->second == State::kRunning;
}

void TaskClaims::Forget(uint64_t table, std::span<const uint64_t> tasks) {
  detail::MutexLock lock(&mu_);
  for (uint64_t task : tasks) entries_.erase(Key{table, task});
}

void TaskClaims::ForgetTable(uint64_t table) {
  detail::MutexLock lock(&mu_);
  absl::erase_if(entries_, [table](const auto& kv) { return kv.first.first == table; });
}

size_t TaskClaims::size() const {
  detail::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace xchannels
