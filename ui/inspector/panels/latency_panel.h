// Latency panel: a request's timeline (prefill, then each decode step), the
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
    void drawTimeline(const RequestTrace & r);
    void drawRequestTable(const InspectorSnapshot & snapshot);
    RequestPicker m_picker;
};

}  // namespace gb::ui
