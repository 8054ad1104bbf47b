// core/include/xchannels/detail/intrusive_list.h: the doubly linked FIFO of
// nodes that carry their own `prev` and `next` (wait lists, the event hub's
// ready list). No allocation, no locking: the owner guards it.
//
// Invariants: head and tail are both null or both set; a node's prev/next
// are meaningful only while it is linked, and null after Unlink.
#ifndef XCHANNELS_DETAIL_INTRUSIVE_LIST_H_
#define XCHANNELS_DETAIL_INTRUSIVE_LIST_H_

namespace xchannels::detail {

template <class Node>
class IntrusiveList {
 public:
  Node* front() const noexcept { return head_; }
  bool empty() const noexcept { return head_ == nullptr; }

  void PushBack(Node* node) noexcept {
    node->prev = tail_;
    node->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = node;
    } else {
      head_ = node;
    }
    tail_ = node;
  }

  // `node` must be in this list.
  void Unlink(Node* node) noexcept {
    if (node->prev != nullptr) {
      node->prev->next = node->next;
    } else {
      head_ = node->next;
    }
    if (node->next != nullptr) {
      node->next->prev = node->prev;
    } else {
      tail_ = node->prev;
    }
    node->prev = node->next = nullptr;
  }

  // Forgets every node (their links are the caller's to reset).
  void Clear() noexcept { head_ = tail_ = nullptr; }

 private:
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
};

}  // namespace xchannels::detail

#endif  // XCHANNELS_DETAIL_INTRUSIVE_LIST_H_
