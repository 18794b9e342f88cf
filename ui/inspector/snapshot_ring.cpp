// SnapshotRing: pointer swaps under a short mutex; listener called outside it.
#include "snapshot_ring.h"

#include <cassert>

namespace gb::ui {

SnapshotRing::SnapshotRing(size_t capacity) : m_slots(capacity > 0 ? capacity : 1) {}

void SnapshotRing::publish(std::shared_ptr<InspectorSnapshot> snapshot) {
    assert(snapshot);
    std::shared_ptr<const std::function<void()>> listener;
    {
        std::lock_guard lock(m_mutex);
        snapshot->sequence = m_sequence.load(std::memory_order_relaxed) + 1;
        m_slots[m_next] = std::move(snapshot);
        m_next = (m_next + 1) % m_slots.size();
        if (m_count < m_slots.size()) ++m_count;
        m_sequence.fetch_add(1, std::memory_order_release);
        listener = m_listener;
    }
    if (listener && *listener) (*listener)();
}

std::shared_ptr<const InspectorSnapshot> SnapshotRing::latest() const {
    std::lock_guard lock(m_mutex);
    if (m_count == 0) return nullptr;
    return m_slots[(m_next + m_slots.size() - 1) % m_slots.size()];
}

std::vector<std::shared_ptr<const InspectorSnapshot>> SnapshotRing::history() const {
    std::lock_guard lock(m_mutex);
    std::vector<std::shared_ptr<const InspectorSnapshot>> out;
    out.reserve(m_count);
    const size_t first = (m_next + m_slots.size() - m_count) % m_slots.size();
    for (size_t i = 0; i < m_count; ++i) out.push_back(m_slots[(first + i) % m_slots.size()]);
    return out;
}

void SnapshotRing::setListener(std::function<void()> listener) {
    auto shared = std::make_shared<const std::function<void()>>(std::move(listener));
    std::lock_guard lock(m_mutex);
    m_listener = std::move(shared);
}

}  // namespace gb::ui
