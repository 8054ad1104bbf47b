// bindings/lent_bytes.cpp: large bytes of the main interpreter lent to
// messages instead of copied, and their references given back.
//
// A bytes object of kBytesRefThreshold bytes or more (values.cpp), put by the main
// interpreter, is lent instead of copied: its SharedBuffer points into the
// object, which holds one extra reference until the buffer goes. bytes are
// immutable (and resizing needs a reference count of 1), so the receiver
// reads the same bytes a copy would hold, without the main interpreter's
// GIL. This saves the copy and, above all, the page faults of fresh memory
// when many large payloads are in flight (a Pool map of 48 x 1 MiB: the
// caller's 48 MiB of fresh blocks cost about 24 ms of faults).
//
// Giving the reference back needs the main interpreter's GIL. The last
// holder of the buffer is often a worker thread, so:
//   - on a thread that holds the main interpreter's GIL: Py_DECREF at once;
//   - elsewhere: the object joins the Loans list, under a mutex of its own,
//     and nothing else happens on that thread: no call into CPython (a
//     Py_AddPendingCall may release the caller's GIL on 3.13, mid-way
//     through whatever it is doing). The main interpreter drops the list's
//     references whenever one of its threads lends, receives (Decode,
//     DecodeFlat: get, get_many, get_async, select) or returns from a wait
//     of a blocking call (a main thread parked in get() at least every
//     250 ms), and when its module goes.
// Only exact bytes are lent: their deallocation runs no Python code, so a
// decref inside a channel operation is safe. Sub-interpreters copy: their
// objects cannot outlive them, and nothing would drain their list once they
// are gone. Once the main interpreter's last module state is gone (at
// finalization), returned objects are left alone: the process is exiting.
// fork(): the list's mutex is taken around it (pthread_atfork), so the
// child never inherits it locked.
//
// Invariants: each object in `returned_` holds the one reference its loan
// took, and is dropped once (by a Drain, or never once the main
// interpreter is gone); `waiting_` is set after every push and cleared only
// with the swap that empties the list, both under the mutex, so a Drain
// whose lock-free look comes after a Give returned finds what it gave.
// Memory ordering: Give's release store of `waiting_` pairs with Drain's
// acquire load; the list itself is touched only under the mutex.
//
// Why a mutex of its own, and not core's detail::Mutex
// (core/include/xchannels/detail/mutex.h): that one is an absl::Mutex, and
// this list's mutex must survive fork() (pthread_atfork takes it around the
// fork and the child makes it anew). absl's Unlock in a child whose parent
// had another thread waiting on the mutex at the fork goes to wake that
// thread, which the child does not have, and spun forever on an internal
// lock (test_values.py's fork test hung in a fresh-clone make test, and in
// 1 of 26 runs of its script). So this is a pthread mutex, the only
// fork-safe mutex in the bindings; nothing else in them is taken across a
// fork.
#include "lent_bytes.h"

#include <pthread.h>

#include <atomic>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace xchannels::py {
namespace {

class ABSL_LOCKABLE ForkSafeMutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_mutex_lock(&mu_); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { pthread_mutex_unlock(&mu_); }
  // In a fork() child, for the mutex the forking thread held across fork().
  void RemakeInChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    pthread_mutex_init(&mu_, nullptr);
  }

 private:
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
};

class ABSL_SCOPED_LOCKABLE ForkSafeLock {
 public:
  explicit ForkSafeLock(ForkSafeMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ~ForkSafeLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  ForkSafeLock(const ForkSafeLock&) = delete;
  ForkSafeLock& operator=(const ForkSafeLock&) = delete;

 private:
  ForkSafeMutex* const mu_;
};

class Loans {
 public:
  // Any thread, any GIL or none. Never calls into CPython.
  void Give(PyObject* obj) noexcept {
    ForkSafeLock lock(&mu_);
    if (users_ == 0) return;  // the main interpreter is gone: exiting
    try {
      returned_.push_back(obj);
    } catch (...) {
      return;  // out of memory: keep the object rather than crash
    }
    waiting_.store(true, std::memory_order_release);
  }
  // The main interpreter, GIL held.
  void Drain() {
    if (!waiting_.load(std::memory_order_acquire)) return;  // the common case
    std::vector<PyObject*> out;
    {
      ForkSafeLock lock(&mu_);
      waiting_.store(false, std::memory_order_relaxed);
      out.swap(returned_);
    }
    for (PyObject* obj : out) Py_DECREF(obj);
  }
  // A module state of the main interpreter is made / goes (GIL held).
  void Open() {
    ForkSafeLock lock(&mu_);
    ++users_;
  }
  void Close() {
    Drain();
    ForkSafeLock lock(&mu_);
    if (users_ > 0 && --users_ == 0) {
      waiting_.store(false, std::memory_order_relaxed);
      returned_.clear();  // only objects returned since the Drain: left
    }
  }
  size_t PendingForTesting() {
    ForkSafeLock lock(&mu_);
    return returned_.size();
  }
  void BeforeFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.Lock(); }
  void AfterForkParent() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.Unlock(); }
  void AfterForkChild() { mu_.RemakeInChild(); }

 private:
  ForkSafeMutex mu_;
  std::atomic<bool> waiting_{false};  // returned_ may be non-empty
  std::vector<PyObject*> returned_ ABSL_GUARDED_BY(mu_);
  int users_ ABSL_GUARDED_BY(mu_) = 0;  // live main-interpreter module states
};

Loans& TheLoans() {
  static Loans* loans = [] {
    auto* l = new Loans();  // never destroyed: safe at exit
    pthread_atfork([] { TheLoans().BeforeFork(); },
                   [] { TheLoans().AfterForkParent(); },
                   [] { TheLoans().AfterForkChild(); });
    return l;
  }();
  return *loans;
}

std::atomic<int64_t> g_lent{0};  // live lent objects, for tests

PyThreadState* AttachedThreadState() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

void ReturnLoan(void* context) noexcept {
  auto* obj = static_cast<PyObject*>(context);
  g_lent.fetch_sub(1, std::memory_order_relaxed);
  PyThreadState* ts = AttachedThreadState();
  if (ts != nullptr &&
      PyThreadState_GetInterpreter(ts) == PyInterpreterState_Main()) {
    Py_DECREF(obj);  // exact bytes: frees memory, runs no Python code
    return;
  }
  TheLoans().Give(obj);
}

}  // namespace

Ref<SharedBuffer> LendBytes(PyObject* obj) {
  TheLoans().Drain();
  Py_INCREF(obj);
  Ref<SharedBuffer> b = SharedBuffer::Borrow(
      PyBytes_AS_STRING(obj), static_cast<size_t>(PyBytes_GET_SIZE(obj)),
      &ReturnLoan, obj);
  if (!b) {
    Py_DECREF(obj);
    return b;
  }
  g_lent.fetch_add(1, std::memory_order_relaxed);
  return b;
}


// ---- the module's side ----------------------------------------------------------

void OpenLoans() { TheLoans().Open(); }

void CloseLoans() { TheLoans().Close(); }

void DrainLoans() { TheLoans().Drain(); }

int64_t LentForTesting() { return g_lent.load(std::memory_order_relaxed); }

size_t ReturnedForTesting() { return TheLoans().PendingForTesting(); }

}  // namespace xchannels::py
