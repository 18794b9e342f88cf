// Batching panel: each iteration's composition (prefill-chunk and decode tokens
// by sequence) as stacked bars over a scrollable window of steps, and the
// prefill / decode token mix over the whole history: chunked prefill at work.
#pragma once

#include "../inspector_panel.h"
#include "../kv_trace.h"
#include "panel_util.h"

namespace gb::ui {

class BatchingPanel : public InspectorPanel {
  public:
    const char * title() const override { return "Batching"; }
    void draw(const InspectorSnapshot & snapshot) override;

    static constexpr int kMinBarWidth = 6;  // px per step in the composition view

  private:
    void drawOverview(const std::shared_ptr<const KvTrace> & kv, float width);
    void drawComposition(const KvTrace & kv, float width, float height);

    bool m_follow = true;   // window shows the newest steps
    int64_t m_first = 0;    // first step index of the window when not following
    std::shared_ptr<const KvTrace> m_overviewKey;
    int m_overviewCols = 0;
    struct Column { int32_t prefill = 0, decode = 0; size_t first = 0, last = 0; };
    std::vector<Column> m_overview;
    int32_t m_overviewMax = 1;
};

}  // namespace gb::ui
