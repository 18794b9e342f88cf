// A bounded ring of published inspector snapshots. Producers on any thread
// publish; the GUI reads the latest. The mutex guards only pointer swaps, so
// neither side ever waits on the other's work (and never on engine locks).
#pragma once

#include "snapshot.h"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace gb::ui {

class SnapshotRing {
  public:
    explicit SnapshotRing(size_t capacity = 32);

    // Any thread. Stamps snapshot->sequence (so pass a snapshot nobody else
    // reads yet) and calls the listener afterwards, outside the lock.
    void publish(std::shared_ptr<InspectorSnapshot> snapshot);

    std::shared_ptr<const InspectorSnapshot> latest() const;
    std::vector<std::shared_ptr<const InspectorSnapshot>> history() const;  // oldest first, <= capacity
    uint64_t sequence() const { return m_sequence.load(std::memory_order_acquire); }  // number published
    size_t capacity() const { return m_slots.size(); }

    // Called on the publishing thread after each publish; must be cheap and
    // thread-safe (the widget posts a queued, coalesced repaint).
    void setListener(std::function<void()> listener);

  private:
    mutable std::mutex m_mutex;
    std::vector<std::shared_ptr<const InspectorSnapshot>> m_slots;
    size_t m_next = 0;
    size_t m_count = 0;
    std::atomic<uint64_t> m_sequence{0};
    std::shared_ptr<const std::function<void()>> m_listener;
};

}  // namespace gb::ui
