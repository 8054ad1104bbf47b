// core/include/xchannels/refcount.h: intrusive atomic reference counting for
// objects that belong to no interpreter (channels, shared buffers).
//
// Invariants:
//   - A RefCounted object is created with a count of 1, owned by the Ref<T>
//     that MakeRef returns.
//   - The count never rises again once it has reached 0: TryAddRef() refuses
//     to revive a dying object (the registry relies on this).
//   - OnLastUnref() runs exactly once, on the thread that dropped the last
//     reference; the default deletes the object.
//
// Memory ordering: increments are relaxed (the caller already holds a
// reference, so the object cannot die under it); the decrement is acq_rel so
// that every write made through any reference happens-before the destructor.
#ifndef XCHANNELS_REFCOUNT_H_
#define XCHANNELS_REFCOUNT_H_

#include <atomic>
#include <cstdint>
#include <utility>

namespace xchannels {

class RefCounted {
 public:
  RefCounted() = default;
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  // Thread-safe. Never allocates. The caller must already hold a reference.
  void AddRef() const noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }

  // Thread-safe. Adds a reference unless the count is already 0 (the object
  // is being destroyed). Returns whether a reference was added.
  bool TryAddRef() const noexcept {
    int64_t n = refs_.load(std::memory_order_relaxed);
    while (n > 0) {
      if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Thread-safe. Drops a reference; the last one calls OnLastUnref().
  void Unref() const noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      const_cast<RefCounted*>(this)->OnLastUnref();
    }
  }

 protected:
  virtual ~RefCounted() = default;
  // Called once when the count reaches 0. Default: delete this.
  virtual void OnLastUnref() noexcept { delete this; }

 private:
  friend class RefCountedTestPeer;  // the count, for tests (core/src/test_peers.h)
  mutable std::atomic<int64_t> refs_{1};
};

// An owning pointer to a RefCounted object (like boost::intrusive_ptr).
// Not thread-safe itself: one Ref must not be written by two threads at once;
// distinct Refs to the same object may be used freely from any thread.
template <class T>
class Ref {
 public:
  Ref() noexcept = default;
  Ref(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  // Adopts a reference the caller already owns (no increment).
  static Ref Adopt(T* p) noexcept {
    Ref r;
    r.p_ = p;
    return r;
  }
  // Shares a reference (increments).
  static Ref Share(T* p) noexcept {
    if (p != nullptr) p->AddRef();
    return Adopt(p);
  }
  Ref(const Ref& o) noexcept : p_(o.p_) {
    if (p_ != nullptr) p_->AddRef();
  }
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <class U>
  Ref(Ref<U>&& o) noexcept : p_(o.Release()) {}  // NOLINT: upcast
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~Ref() {
    if (p_ != nullptr) p_->Unref();
  }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  // Gives up ownership without decrementing.
  T* Release() noexcept { return std::exchange(p_, nullptr); }
  friend bool operator==(const Ref& a, const Ref& b) noexcept {
    return a.p_ == b.p_;
  }

 private:
  T* p_ = nullptr;
};

template <class T, class... Args>
Ref<T> MakeRef(Args&&... args) {
  return Ref<T>::Adopt(new T(std::forward<Args>(args)...));
}

}  // namespace xchannels

#endif  // XCHANNELS_REFCOUNT_H_
