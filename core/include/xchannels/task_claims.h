// core/include/xchannels/task_claims.h: who has a queued task, the worker
// that runs it or the caller that cancels it. The arbiter behind a Pool
// future's cancel() and running(): the caller and the worker sit in
// different interpreters and share no Python object, so the decision is
// made here, under one lock, once per task.
//
// A task is named by (table, task): `table` is a process-unique id of its
// pool (the pool's task channel id), `task` the pool's task id.
//
// Lifecycle of one task's entry:
//
//   | state     | how it is entered                 | how it is left                    |
//   | --------- | --------------------------------- | --------------------------------- |
//   | (absent)  | task queued, or entry forgotten   | Start -> running; Cancel -> cancelled |
//   | running   | Start by a worker (returns true)  | Forget (the caller has its outcome) |
//   | cancelled | Cancel by the caller (true)       | Start (returns false: not run), Forget |
//
// Invariants:
//   - For one task, at most one of Start and Cancel returns true; the first
//     to reach the lock wins. Cancel of a task in state cancelled returns true
//     again (idempotent, like concurrent.futures).
//   - Entries exist only for tasks that were started or cancelled and are not
//     yet forgotten; ForgetTable drops a whole pool's entries (its end).
//
// Thread-safety: every method is thread-safe; one process-wide mutex, held
// for a hash-map operation per task (a worker starts its batch under one
// acquisition). The table is a leaked singleton, usable at exit.
#ifndef XCHANNELS_TASK_CLAIMS_H_
#define XCHANNELS_TASK_CLAIMS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "xchannels/detail/mutex.h"

namespace xchannels {

class TaskClaims {
 public:
  // The one table of the process (never destroyed).
  static TaskClaims& Global();

  // A worker is about to run these tasks: marks each running, except those
  // already cancelled, whose entries are dropped and whose ids are appended
  // to *cancelled (the worker must not run them). May allocate.
  void Start(uint64_t table, std::span<const uint64_t> tasks,
             std::vector<uint64_t>* cancelled) ABSL_LOCKS_EXCLUDED(mu_);

  // The caller cancels a task: true if it is (now or already) cancelled, so
  // no worker will run it; false if a worker started it. May allocate.
  bool Cancel(uint64_t table, uint64_t task) ABSL_LOCKS_EXCLUDED(mu_);

  // True if a worker started the task and it is not yet forgotten.
  bool Running(uint64_t table, uint64_t task) const ABSL_LOCKS_EXCLUDED(mu_);

  // The caller has the tasks' outcomes (or they will never run): drop their
  // entries. Unknown tasks are ignored. Never allocates.
  void Forget(uint64_t table, std::span<const uint64_t> tasks)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Drop every entry of a table (its pool has ended). O(entries).
  void ForgetTable(uint64_t table) ABSL_LOCKS_EXCLUDED(mu_);

  // Number of entries, for leak tests.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  enum class State : uint8_t { kRunning, kCancelled };
  using Key = std::pair<uint64_t, uint64_t>;

  TaskClaims() = default;

  mutable detail::Mutex mu_;
  absl::flat_hash_map<Key, State> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace xchannels

#endif  // XCHANNELS_TASK_CLAIMS_H_
