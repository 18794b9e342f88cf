// Latency panel drawing.
#include "latency_panel.h"

#include <algorithm>
#include <cmath>

namespace gb::ui {

namespace {
const ImU32 kP50 = IM_COL32(240, 220, 90, 255);
const ImU32 kP95 = IM_COL32(240, 150, 60, 255);
const ImU32 kP99 = IM_COL32(240, 80, 80, 255);
const ImU32 kPrefill = IM_COL32(150, 110, 220, 255);
const ImU32 kDecode = IM_COL32(90, 170, 230, 255);
}  // namespace

void LatencyPanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const RequestTrace> r = m_picker.draw(snap);
    if (!r) {
        ImGui::TextDisabled("No requests yet: token timings appear here as a reply streams.");
        return;
    }
    drawSummary(*r);
    ImGui::Spacing();
    drawTimeline(r);
    if (snap.requests.size() > 1) {
        ImGui::Spacing();
        drawRequestTable(snap);
    }
}

void LatencyPanel::drawSummary(const RequestTrace & r) {
    const LatencyStats & s = r.latency;
    const ImGuiTableFlags flags = ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchSame;
    if (!ImGui::BeginTable("##summary", 5, flags)) return;
    auto cell = [](const char * label, const std::string & value) {
        ImGui::TableNextColumn();
        ImGui::TextDisabled("%s", label);
        ImGui::TextUnformatted(value.c_str());
    };
    cell("time to first token", formatMs(s.ttftMs));
    cell("prefill", r.tPromptMs > 0 ? formatMs(r.tPromptMs) : std::string("-"));
    cell("prompt tokens", r.nPromptTokens > 0 ? formatCount(uint64_t(r.nPromptTokens)) +
                                                    (r.nPromptReused > 0 ? " (" + formatCount(uint64_t(r.nPromptReused)) + " cached)" : "")
                                              : std::string("-"));
    cell("generated", formatCount(s.nTokens) + (r.finished ? " (" + r.stopReason + ")" : " ..."));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f tok/s", s.tokensPerS);
    cell("decode speed", s.nGaps ? std::string(buf) : std::string("-"));
    cell("mean inter-token", s.nGaps ? formatMs(s.meanMs) : std::string("-"));
    cell("p50", s.nGaps ? formatMs(s.p50Ms) : std::string("-"));
    cell("p95", s.nGaps ? formatMs(s.p95Ms) : std::string("-"));
    cell("p99", s.nGaps ? formatMs(s.p99Ms) : std::string("-"));
    cell("max", s.nGaps ? formatMs(s.maxMs) : std::string("-"));
    ImGui::EndTable();
}

void LatencyPanel::drawTimeline(const std::shared_ptr<const RequestTrace> & trace) {
    const RequestTrace & r = *trace;
    const TokenHistory & tokens = r.tokens;
    const LatencyStats & s = r.latency;
    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);

    // Phase bar: prefill (or prompt -> first token when prefill is unknown), then
    // one tick per decode step (columns with many steps get darker).
    ImGui::TextDisabled("Timeline");
    const double t_end = std::max({r.tTotalMs, tokens.empty() ? 0.0 : tokens[tokens.size() - 1].tMs, 1e-3});
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    const float bar_h = 22.0f;
    ImGui::InvisibleButton("##phases", ImVec2(width, bar_h));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + width, p0.y + bar_h), IM_COL32(30, 30, 34, 255));
    auto x_of = [&](double t) { return p0.x + float(std::clamp(t / t_end, 0.0, 1.0)) * width; };
    const double prefill_end = r.tPromptMs > 0 ? r.tPromptMs : (tokens.empty() ? 0.0 : tokens[0].tMs);
    dl->AddRectFilled(p0, ImVec2(std::max(x_of(prefill_end), p0.x + 1), p0.y + bar_h), kPrefill);
    if (m_stepsKey != trace || m_stepsWidth != size_t(width)) {
        // Steps per pixel column: one pass over the history per new snapshot.
        m_stepsKey = trace;
        m_stepsWidth = size_t(width);
        m_steps.assign(m_stepsWidth + 1, 0);
        for (const auto & chunk : tokens.chunks())
            for (const TokenSample & t : *chunk) ++m_steps[size_t(std::clamp(t.tMs / t_end, 0.0, 1.0) * (width - 1))];
    }
    for (size_t c = 0; c < m_steps.size(); ++c) {
        if (!m_steps[c]) continue;
        const int a = std::min(255, 120 + int(m_steps[c]) * 30);
        const ImU32 col = (kDecode & ~IM_COL32_A_MASK) | (ImU32(a) << IM_COL32_A_SHIFT);
        dl->AddLine(ImVec2(p0.x + float(c) + 0.5f, p0.y + 3), ImVec2(p0.x + float(c) + 0.5f, p0.y + bar_h - 3), col);
    }
    if (hovered) {
        const double t = double(ImGui::GetIO().MousePos.x - p0.x) / width * t_end;
        ImGui::BeginTooltip();
        ImGui::Text("t = %s", formatMs(t).c_str());
        ImGui::TextColored(ImColor(kPrefill), "prefill: 0 .. %s", formatMs(prefill_end).c_str());
        ImGui::TextColored(ImColor(kDecode), "decode: %zu steps", tokens.size());
        ImGui::EndTooltip();
    }
    ImGui::TextDisabled("0");
    ImGui::SameLine(std::max(0.0f, width - ImGui::CalcTextSize(formatMs(t_end).c_str()).x));
    ImGui::TextDisabled("%s", formatMs(t_end).c_str());

    // Inter-token latency of each token (token i: t_i - t_{i-1}).
    ImGui::TextDisabled("Inter-token latency by token");
    const PlotMarker markers[] = {{s.p50Ms, "p50", kP50}, {s.p95Ms, "p95", kP95}, {s.p99Ms, "p99", kP99}};
    const double y_max = s.nGaps ? std::max(s.maxMs, 1e-6) * 1.05 : 0.0;
    drawSeries("##itl_series", s.nGaps,
               [&tokens](size_t i) { return tokens[i + 1].tMs - tokens[i].tMs; },
               ImVec2(width, 110.0f), y_max, "ms", markers, IM_COL32(120, 200, 140, 255), &m_itlColumns, trace);

    ImGui::TextDisabled("Inter-token latency histogram");
    drawHistogram("##itl_hist", s.itl, ImVec2(width, 110.0f), "ms", markers);
}

void LatencyPanel::drawRequestTable(const InspectorSnapshot & snap) {
    ImGui::TextDisabled("Requests");
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_SizingFixedFit;
    const float height = std::min(ImGui::GetTextLineHeightWithSpacing() * float(snap.requests.size() + 1) + 6.0f,
                                  std::max(ImGui::GetContentRegionAvail().y, 80.0f));
    if (!ImGui::BeginTable("##requests", 8, flags, ImVec2(0, height))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    for (const char * h : {"#", "label", "tokens", "TTFT", "p50", "p95", "p99", "tok/s"}) ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(int(snap.requests.size()));
    while (clipper.Step()) {
        for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
            const RequestTrace & r = *snap.requests[snap.requests.size() - 1 - size_t(i)];  // newest first
            const LatencyStats & s = r.latency;
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::Text("%llu", static_cast<unsigned long long>(r.id));
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(r.label.c_str());
            ImGui::TableNextColumn();
            ImGui::Text("%zu", s.nTokens);
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(formatMs(s.ttftMs).c_str());
            for (double v : {s.p50Ms, s.p95Ms, s.p99Ms}) {
                ImGui::TableNextColumn();
                ImGui::TextUnformatted(s.nGaps ? formatMs(v).c_str() : "-");
            }
            ImGui::TableNextColumn();
            ImGui::Text("%.1f", s.tokensPerS);
        }
    }
    ImGui::EndTable();
}

}  // namespace gb::ui
