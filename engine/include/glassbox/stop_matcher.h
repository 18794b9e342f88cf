// Stop strings over streamed text: holds back what might be the start of a
// stop string, so emitted text never contains one (used by Session and by the
// app's batching path, which must stop exactly where Session does).
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace gb {

class StopMatcher {
  public:
    // stops must outlive the matcher
    explicit StopMatcher(const std::vector<std::string> & stops) : m_stops(stops) {}

    // Appends text; returns what is safe to emit. *hit is set when a stop
    // string completed (the returned text ends right before it).
    std::string push(const std::string & text, bool * hit) {
        m_pending += text;
        *hit = false;
        size_t first = std::string::npos;
        for (const std::string & s : m_stops) {
            if (s.empty()) continue;
            const size_t at = m_pending.find(s);
            if (at != std::string::npos) first = std::min(first, at);
        }
        if (first != std::string::npos) {
            *hit = true;
            std::string out = m_pending.substr(0, first);
            m_pending.clear();
            return out;
        }
        size_t hold = 0;  // longest suffix of pending that is a proper prefix of a stop string
        for (const std::string & s : m_stops) {
            if (s.empty()) continue;
            for (size_t len = std::min(s.size() - 1, m_pending.size()); len > hold; --len) {
                if (m_pending.compare(m_pending.size() - len, len, s, 0, len) == 0) {
                    hold = len;
                    break;
                }
            }
        }
        std::string out = m_pending.substr(0, m_pending.size() - hold);
        m_pending.erase(0, m_pending.size() - hold);
        return out;
    }
    std::string flush() { return std::exchange(m_pending, {}); }

  private:
    const std::vector<std::string> & m_stops;
    std::string m_pending;
};

}  // namespace gb
