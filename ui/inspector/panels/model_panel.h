// Model panel: GGUF metadata, the tensor table (type, shape, bytes), per-layer
// and per-type totals, and for a chosen tensor a histogram of its weights and
// the error of requantizing it to each supported type.
#pragma once

#include "../inspector_panel.h"
#include "../model_info.h"
#include "panel_util.h"

#include <vector>

namespace gb::ui {

class ModelPanel : public InspectorPanel {
  public:
    const char * title() const override { return "Model"; }
    void draw(const InspectorSnapshot & snapshot) override;

    // Chooses the tensor shown in "Selected tensor" (index into file->tensors()).
    void selectTensor(size_t index) { m_selected = int64_t(index); }
    int64_t selectedTensor() const { return m_selected; }

    static constexpr size_t kHistogramSample = 1 << 18;  // weights dequantized for the histogram
    static constexpr size_t kQuantSample = 1 << 16;      // weights requantized per target type

  private:
    void drawSummary(const ModelInfo & m);
    void drawMetadata(const ModelInfo & m);
    void drawTensors(const ModelInfo & m);
    void drawLayers(const ModelInfo & m);
    void drawSelected(const ModelInfo & m);
    void refreshAnalysis(const ModelInfo & m);

    std::shared_ptr<const ModelInfo> m_model;  // to reset state on a new model
    int64_t m_selected = -1;
    ImGuiTextFilter m_metaFilter;
    ImGuiTextFilter m_tensorFilter;
    std::vector<size_t> m_tensorRows;     // tensor indices passing the filter
    std::string m_tensorFilterText;
    bool m_tensorRowsDirty = true;

    int64_t m_analysed = -1;
    WeightSample m_weights;
    std::vector<QuantError> m_quantErrors;
};

}  // namespace gb::ui
