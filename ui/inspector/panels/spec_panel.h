// Speculative decoding panel: acceptance rate over time, acceptance by draft
// position, mean accepted length, realised speedup, and a side-by-side table of
// the methods run on the same prompt.
#pragma once

#include "../inspector_panel.h"
#include "panel_util.h"

namespace gb::ui {

class SpecPanel : public InspectorPanel {
  public:
    const char * title() const override { return "Speculative"; }
    void draw(const InspectorSnapshot & snapshot) override;

  private:
    void drawSummary(const RequestTrace & r, const InspectorSnapshot & snap);
    void drawComparison(const InspectorSnapshot & snap, const RequestTrace & current);
    RequestPicker m_picker;
    SeriesColumns m_rollingColumns, m_acceptedColumns;
};

// Tokens per second of the plain (non-speculative) request on the same prompt
// as r, newest first; 0 when there is none.
double plainBaselineTokensPerS(const InspectorSnapshot & snap, const RequestTrace & r);

}  // namespace gb::ui
