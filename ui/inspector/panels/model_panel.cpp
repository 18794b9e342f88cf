// Model panel drawing and its (cached) tensor analysis.
#include "model_panel.h"

#include <algorithm>
#include <cmath>

namespace gb::ui {

namespace {

std::string shapeOf(const gguf::TensorInfo & t) {
    char buf[96];
    int len = 0;
    for (int d = 0; d < std::max(t.n_dims, 1) && len < 80; ++d)
        len += std::snprintf(buf + len, sizeof buf - size_t(len), "%s%lld", d ? " x " : "", static_cast<long long>(t.ne[d]));
    return std::string(buf, size_t(std::min(len, 95)));
}

// The first tensor worth showing: a 2-D weight of layer 0, else the first 2-D one.
int64_t defaultTensor(const ModelInfo & m) {
    const auto & ts = m.file->tensors();
    for (const TensorRow & r : m.tensors)
        if (r.layer == 0 && ts[r.index].n_dims >= 2) return int64_t(r.index);
    for (const TensorRow & r : m.tensors)
        if (ts[r.index].n_dims >= 2) return int64_t(r.index);
    return m.tensors.empty() ? -1 : 0;
}

}  // namespace

void ModelPanel::draw(const InspectorSnapshot & snap) {
    if (!snap.model || !snap.model->file) {
        ImGui::TextDisabled("No model loaded: open a GGUF file to see its metadata and tensors.");
        return;
    }
    const ModelInfo & m = *snap.model;
    if (m_model != snap.model) {  // a new model: selection and caches belong to the old one
        m_model = snap.model;
        m_selected = defaultTensor(m);
        m_analysed = -1;
        m_tensorRowsDirty = true;
    }
    drawSummary(m);
    if (ImGui::CollapsingHeader("Metadata")) drawMetadata(m);
    if (ImGui::CollapsingHeader("Tensors", ImGuiTreeNodeFlags_DefaultOpen)) drawTensors(m);
    if (ImGui::CollapsingHeader("Per-layer totals")) drawLayers(m);
    if (ImGui::CollapsingHeader("Selected tensor", ImGuiTreeNodeFlags_DefaultOpen)) drawSelected(m);
}

void ModelPanel::drawSummary(const ModelInfo & m) {
    const gguf::File & f = *m.file;
    ImGui::TextUnformatted(f.path().c_str());
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s%s%s   GGUF v%u   %s   %zu tensors   %s parameters", m.architecture.c_str(),
                  m.name.empty() ? "" : "   ", m.name.c_str(), f.version(), formatBytes(f.file_size()).c_str(),
                  f.tensors().size(), formatCount(m.totalParams).c_str());
    ImGui::TextUnformatted(buf);
    if (m.tokenizer) ImGui::TextDisabled("tokenizer: %d tokens", m.tokenizer->n_vocab());
    else ImGui::TextColored(ImVec4(1, 0.5f, 0.4f, 1), "tokenizer: %s", m.tokenizerError.c_str());
    // Weight types by share of the bytes.
    for (size_t i = 0; i < m.types.size(); ++i) {
        const TypeTotal & t = m.types[i];
        if (i) {
            ImGui::SameLine();
            ImGui::TextDisabled("|");
            ImGui::SameLine();
        }
        ImGui::Text("%s %.1f%%", type_name(t.type), m.totalBytes ? 100.0 * double(t.nBytes) / double(m.totalBytes) : 0.0);
        if (ImGui::IsItemHovered())
            ImGui::SetTooltip("%s: %d tensors, %s parameters, %s", type_name(t.type), t.nTensors,
                              formatCount(t.nParams).c_str(), formatBytes(t.nBytes).c_str());
    }
}

void ModelPanel::drawMetadata(const ModelInfo & m) {
    m_metaFilter.Draw("filter##meta", 240.0f);
    const auto & kv = m.file->metadata();
    std::vector<size_t> rows;
    for (size_t i = 0; i < kv.size(); ++i)
        if (m_metaFilter.PassFilter(kv[i].first.c_str())) rows.push_back(i);
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_Resizable;
    const float h = std::min(ImGui::GetTextLineHeightWithSpacing() * float(rows.size() + 1) + 8.0f, 260.0f);
    if (!ImGui::BeginTable("##meta", 3, flags, ImVec2(0, h))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("key", ImGuiTableColumnFlags_WidthStretch, 0.35f);
    ImGui::TableSetupColumn("type", ImGuiTableColumnFlags_WidthStretch, 0.12f);
    ImGui::TableSetupColumn("value", ImGuiTableColumnFlags_WidthStretch, 0.53f);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(int(rows.size()));
    while (clipper.Step()) {
        for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
            const auto & [key, value] = kv[rows[size_t(i)]];
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(key.c_str());
            ImGui::TableNextColumn();
            if (const auto * arr = value.as_array())
                ImGui::Text("%s[%zu]", gguf::value_type_name(arr->elem_type), arr->items.size());
            else
                ImGui::TextUnformatted(gguf::value_type_name(value.type()));
            ImGui::TableNextColumn();
            const std::string shown = visibleTokenText(value.to_display(8), 400);
            ImGui::TextUnformatted(shown.c_str());
            if (ImGui::IsItemHovered() && shown.size() > 60) {
                ImGui::BeginTooltip();
                ImGui::PushTextWrapPos(600.0f);
                ImGui::TextUnformatted(visibleTokenText(value.to_display(32), 4000).c_str());
                ImGui::PopTextWrapPos();
                ImGui::EndTooltip();
            }
        }
    }
    ImGui::EndTable();
}

void ModelPanel::drawTensors(const ModelInfo & m) {
    const auto & ts = m.file->tensors();
    m_tensorFilter.Draw("filter##tensors", 240.0f);
    if (m_tensorRowsDirty || m_tensorFilterText != m_tensorFilter.InputBuf) {
        m_tensorRowsDirty = false;
        m_tensorFilterText = m_tensorFilter.InputBuf;
        m_tensorRows.clear();
        for (const TensorRow & r : m.tensors)
            if (m_tensorFilter.PassFilter(ts[r.index].name.c_str())) m_tensorRows.push_back(r.index);
    }
    ImGui::SameLine();
    ImGui::TextDisabled("%zu of %zu", m_tensorRows.size(), ts.size());
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_Resizable;
    const float h = std::min(ImGui::GetTextLineHeightWithSpacing() * float(m_tensorRows.size() + 1) + 8.0f, 240.0f);
    if (!ImGui::BeginTable("##tensors", 6, flags, ImVec2(0, h))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("name", ImGuiTableColumnFlags_WidthStretch, 0.4f);
    ImGui::TableSetupColumn("type", ImGuiTableColumnFlags_WidthStretch, 0.1f);
    ImGui::TableSetupColumn("shape", ImGuiTableColumnFlags_WidthStretch, 0.2f);
    ImGui::TableSetupColumn("parameters", ImGuiTableColumnFlags_WidthStretch, 0.15f);
    ImGui::TableSetupColumn("bytes", ImGuiTableColumnFlags_WidthStretch, 0.1f);
    ImGui::TableSetupColumn("bits/w", ImGuiTableColumnFlags_WidthStretch, 0.05f);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(int(m_tensorRows.size()));
    while (clipper.Step()) {
        for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
            const size_t idx = m_tensorRows[size_t(i)];
            const gguf::TensorInfo & t = ts[idx];
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::PushID(int(idx));
            if (ImGui::Selectable(t.name.c_str(), m_selected == int64_t(idx), ImGuiSelectableFlags_SpanAllColumns))
                m_selected = int64_t(idx);
            ImGui::PopID();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(type_name(t.type));
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(shapeOf(t).c_str());
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(formatCount(uint64_t(t.n_elements())).c_str());
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(formatBytes(t.n_bytes).c_str());
            ImGui::TableNextColumn();
            ImGui::Text("%.2f", t.n_elements() ? 8.0 * double(t.n_bytes) / double(t.n_elements()) : 0.0);
        }
    }
    ImGui::EndTable();
}

void ModelPanel::drawLayers(const ModelInfo & m) {
    uint64_t max_bytes = 1;
    for (const LayerTotal & l : m.layers) max_bytes = std::max(max_bytes, l.nBytes);
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY;
    const float h = std::min(ImGui::GetTextLineHeightWithSpacing() * float(m.layers.size() + 1) + 8.0f, 240.0f);
    if (!ImGui::BeginTable("##layers", 5, flags, ImVec2(0, h))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("layer");
    ImGui::TableSetupColumn("tensors");
    ImGui::TableSetupColumn("parameters");
    ImGui::TableSetupColumn("bytes");
    ImGui::TableSetupColumn("share", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();
    for (const LayerTotal & l : m.layers) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        if (l.layer < 0) ImGui::TextUnformatted("(outside blocks)");
        else ImGui::Text("blk.%d", l.layer);
        ImGui::TableNextColumn();
        ImGui::Text("%d", l.nTensors);
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(formatCount(l.nParams).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(formatBytes(l.nBytes).c_str());
        ImGui::TableNextColumn();
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.1f%%", m.totalBytes ? 100.0 * double(l.nBytes) / double(m.totalBytes) : 0.0);
        ImGui::ProgressBar(float(double(l.nBytes) / double(max_bytes)), ImVec2(-1, ImGui::GetTextLineHeight()), pct);
    }
    ImGui::EndTable();
}

void ModelPanel::refreshAnalysis(const ModelInfo & m) {
    if (m_analysed == m_selected) return;
    m_analysed = m_selected;
    m_weights = {};
    m_quantErrors.clear();
    if (m_selected < 0 || size_t(m_selected) >= m.file->tensors().size()) return;
    const gguf::TensorInfo & t = m.file->tensors()[size_t(m_selected)];
    m_weights = sampleTensorWeights(t, kHistogramSample, 80);
    if (!m_weights.ok) return;
    for (TensorType target : requantizeTargets(t.ne[0])) m_quantErrors.push_back(requantizationError(t, target, kQuantSample));
}

void ModelPanel::drawSelected(const ModelInfo & m) {
    refreshAnalysis(m);
    if (m_selected < 0 || size_t(m_selected) >= m.file->tensors().size()) {
        ImGui::TextDisabled("Click a tensor in the table.");
        return;
    }
    const gguf::TensorInfo & t = m.file->tensors()[size_t(m_selected)];
    ImGui::Text("%s   %s   %s   %s", t.name.c_str(), type_name(t.type), shapeOf(t).c_str(), formatBytes(t.n_bytes).c_str());
    if (!m_weights.ok) {
        ImGui::TextColored(ImVec4(1, 0.5f, 0.4f, 1), "%s", m_weights.error.c_str());
        return;
    }
    const WeightSample & w = m_weights;
    ImGui::TextDisabled("%s of %s weights (whole rows, evenly spaced): mean %.4g  std %.4g  min %.4g  max %.4g  mean |w| %.4g",
                        formatCount(w.nSampled).c_str(), formatCount(w.nTotal).c_str(), w.mean, w.stddev, w.minValue,
                        w.maxValue, w.meanAbs);
    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);
    const PlotMarker markers[] = {{0.0, "0", IM_COL32(200, 200, 200, 200)},
                                  {w.mean - w.stddev, "-1σ", IM_COL32(240, 200, 90, 220)},
                                  {w.mean + w.stddev, "+1σ", IM_COL32(240, 200, 90, 220)}};
    drawHistogram("##weights", w.histogram, ImVec2(width, 120.0f), "", markers, IM_COL32(110, 170, 230, 255));

    ImGui::TextDisabled("Requantization error (reference: the stored %s weights, %s per type)", type_name(t.type),
                        formatCount(std::min<size_t>(kQuantSample, w.nTotal)).c_str());
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchSame;
    if (!ImGui::BeginTable("##quant", 6, flags)) return;
    for (const char * h : {"type", "bits/w", "RMSE", "max |err|", "SNR", "relative RMSE"}) ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    for (const QuantError & e : m_quantErrors) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(type_name(e.target));
        if (e.target == t.type) {
            ImGui::SameLine();
            ImGui::TextDisabled("(stored)");
        }
        if (!e.ok) {
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(e.error.c_str());
            continue;
        }
        ImGui::TableNextColumn();
        ImGui::Text("%.2f", e.bitsPerWeight);
        ImGui::TableNextColumn();
        ImGui::Text("%.3g", e.rmse);
        ImGui::TableNextColumn();
        ImGui::Text("%.3g", e.maxAbs);
        ImGui::TableNextColumn();
        if (std::isinf(e.snrDb)) ImGui::TextUnformatted("exact");
        else ImGui::Text("%.1f dB", e.snrDb);
        ImGui::TableNextColumn();
        const double rel = e.refRms > 0 ? e.rmse / e.refRms : 0.0;
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.2f%%", 100.0 * rel);
        ImGui::ProgressBar(float(std::min(rel * 4.0, 1.0)), ImVec2(-1, ImGui::GetTextLineHeight()), pct);
    }
    ImGui::EndTable();
}

}  // namespace gb::ui
