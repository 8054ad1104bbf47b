// core/include/xchannels/detail/mutex.h: absl::Mutex, made visible to
// ThreadSanitizer, with the same clang thread-safety annotations.
//
// Why: Debian's libabsl is built without -fsanitize=thread, so its
// Mutex::Lock/Unlock (out of line, in the shared library) carry no TSan
// annotations, and TSan reports every access guarded by an absl::Mutex as a
// race. Under TSan this wrapper adds the happens-before edges itself:
// __tsan_acquire after Lock, __tsan_release before Unlock. Elsewhere it is
// exactly absl::Mutex.
//
// Invariants: those of absl::Mutex. Memory ordering: lock/unlock are
// acquire/release, as for absl::Mutex.
#ifndef XCHANNELS_DETAIL_MUTEX_H_
#define XCHANNELS_DETAIL_MUTEX_H_

#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(__SANITIZE_THREAD__)
#define XCHANNELS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XCHANNELS_TSAN 1
#endif
#endif

#ifdef XCHANNELS_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace xchannels::detail {

// absl::Mutex's lock()/unlock() where it has them (Abseil 2025 and later,
// which deprecate Lock()/Unlock()), else Lock()/Unlock() (Abseil 20220623,
// Debian bookworm's). Overload resolution prefers the int overload; the
// long one is instantiated only where lock() does not exist. Outside the
// thread-safety analysis: they are the lock and unlock themselves, and the
// Mutex below carries the annotations.
template <class M, class = decltype(std::declval<M&>().lock())>
void AbslLock(M& mu, int) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu.lock();
}
template <class M>
void AbslLock(M& mu, long) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu.Lock();
}
template <class M, class = decltype(std::declval<M&>().unlock())>
void AbslUnlock(M& mu, int) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu.unlock();
}
template <class M>
void AbslUnlock(M& mu, long) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu.Unlock();
}

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // Thread-safe. Blocks until the lock is held.
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    AbslLock(mu_, 0);
#ifdef XCHANNELS_TSAN
    __tsan_acquire(this);
#endif
  }
  // Thread-safe. Never blocks. The caller must hold the lock.
  void Unlock() ABSL_UNLOCK_FUNCTION() {
#ifdef XCHANNELS_TSAN
    __tsan_release(this);
#endif
    AbslUnlock(mu_, 0);
  }

 private:
  absl::Mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_MUTEX_H_
