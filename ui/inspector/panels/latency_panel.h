// Latency panel: a request's timeline (prefill, then each decode step; with
// phase spans: queue, prefill chunks, decode, draft and verify), the
// inter-token latency per token and as a histogram, TTFT and p50/p95/p99, and
// a table comparing the requests in the snapshot.
#pragma once

#include "../inspector_panel.h"
#include "panel_util.h"

namespace gb::ui {

class LatencyPanel : public InspectorPanel {
  public:
    const char * title() const override { return "Latency"; }
    void draw(const InspectorSnapshot & snapshot) override;

  private:
    void drawSummary(const RequestTrace & r);
    void drawTimeline(const std::shared_ptr<const RequestTrace> & r);
    void drawRequestTable(const InspectorSnapshot & snapshot);
    RequestPicker m_picker;
    SeriesColumns m_itlColumns;
    // Decode steps per pixel column of the timeline, for m_stepsKey at m_stepsWidth.
    std::shared_ptr<const RequestTrace> m_stepsKey;
    size_t m_stepsWidth = 0;
    std::vector<uint32_t> m_steps;
    // Phase of each pixel column (most time in it) of the phase bar, +1 (0: none).
    void drawPhases(const std::shared_ptr<const RequestTrace> & r, float width);
    std::shared_ptr<const RequestTrace> m_phaseKey;
    size_t m_phaseWidth = 0;
    std::vector<uint8_t> m_phaseCols;
    double m_phaseT0 = 0.0, m_phaseT1 = 0.0;
};

}  // namespace gb::ui
