// Latency panel drawing.
#include "latency_panel.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace gb::ui {

namespace {
const ImU32 kP50 = IM_COL32(240, 220, 90, 255);
const ImU32 kP95 = IM_COL32(240, 150, 60, 255);
const ImU32 kP99 = IM_COL32(240, 80, 80, 255);
const ImU32 kPrefill = IM_COL32(150, 110, 220, 255);
const ImU32 kDecode = IM_COL32(90, 170, 230, 255);
const ImU32 kQueue = IM_COL32(120, 120, 130, 255);
const ImU32 kDraft = IM_COL32(240, 160, 70, 255);
const ImU32 kVerify = IM_COL32(80, 200, 160, 255);
ImU32 phaseColor(Phase p) {
    switch (p) {
    case Phase::Queue: return kQueue;
    case Phase::Prefill: return kPrefill;
    case Phase::Decode: return kDecode;
    case Phase::Draft: return kDraft;
    case Phase::Verify: return kVerify;
    }
    return kQueue;
}
}  // namespace

void LatencyPanel::drawPhases(const std::shared_ptr<const RequestTrace> & trace, float width) {
    const RequestTrace & r = *trace;
    ImGui::TextDisabled("Phases");
    for (Phase p : {Phase::Queue, Phase::Prefill, Phase::Decode, Phase::Draft, Phase::Verify}) {
        ImGui::SameLine(0, 12);
        ImGui::TextColored(ImColor(phaseColor(p)), "%s", phaseName(p));
    }
    const int cols = std::max(1, int(width));
    if (m_phaseKey != trace || m_phaseWidth != size_t(cols)) {
        // Time in each phase per pixel column; the column shows the largest.
        m_phaseKey = trace;
        m_phaseWidth = size_t(cols);
        m_phaseT0 = 0.0;
        m_phaseT1 = std::max(r.tTotalMs, 1e-3);
        for (const PhaseSpan & s : r.phases) {
            m_phaseT0 = std::min(m_phaseT0, s.t0Ms);
            m_phaseT1 = std::max(m_phaseT1, s.t1Ms);
        }
        const double span = std::max(m_phaseT1 - m_phaseT0, 1e-6);
        std::vector<std::array<double, 5>> time(size_t(cols), std::array<double, 5>{});
        for (const PhaseSpan & s : r.phases) {
            const double a = (s.t0Ms - m_phaseT0) / span * cols, b = (s.t1Ms - m_phaseT0) / span * cols;
            const int c0 = std::clamp(int(a), 0, cols - 1), c1 = std::clamp(int(b), 0, cols - 1);
            for (int c = c0; c <= c1; ++c) {
                const double overlap = std::min(b, double(c + 1)) - std::max(a, double(c));
                time[size_t(c)][size_t(s.phase)] += std::max(overlap, 1e-9);  // instant spans still count
            }
        }
        m_phaseCols.assign(size_t(cols), 0);
        for (int c = 0; c < cols; ++c) {
            const auto & t = time[size_t(c)];
            const auto it = std::max_element(t.begin(), t.end());
            if (*it > 0) m_phaseCols[size_t(c)] = uint8_t(1 + (it - t.begin()));
        }
    }
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    const float h = 18.0f;
    ImGui::InvisibleButton("##phasebar", ImVec2(width, h));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + width, p0.y + h), IM_COL32(30, 30, 34, 255));
    for (int c = 0; c < cols;) {  // runs of one phase as one rectangle
        int e = c + 1;
        while (e < cols && m_phaseCols[size_t(e)] == m_phaseCols[size_t(c)]) ++e;
        if (m_phaseCols[size_t(c)])
            dl->AddRectFilled(ImVec2(p0.x + float(c), p0.y + 2), ImVec2(p0.x + float(e), p0.y + h - 2),
                              phaseColor(Phase(m_phaseCols[size_t(c)] - 1)));
        c = e;
    }
    if (hovered) {
        const double t = m_phaseT0 + double(ImGui::GetIO().MousePos.x - p0.x) / width * (m_phaseT1 - m_phaseT0);
        double sum[5] = {0, 0, 0, 0, 0};
        size_t count[5] = {0, 0, 0, 0, 0};
        for (const PhaseSpan & s : r.phases) {
            sum[size_t(s.phase)] += s.t1Ms - s.t0Ms;
            ++count[size_t(s.phase)];
        }
        ImGui::BeginTooltip();
        ImGui::Text("t = %s", formatMs(t).c_str());
        for (Phase p : {Phase::Queue, Phase::Prefill, Phase::Decode, Phase::Draft, Phase::Verify})
            if (count[size_t(p)])
                ImGui::TextColored(ImColor(phaseColor(p)), "%s: %zu spans, %s in total", phaseName(p), count[size_t(p)],
                                   formatMs(sum[size_t(p)]).c_str());
        ImGui::EndTooltip();
    }
}

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

    if (!r.phases.empty()) drawPhases(trace, width);

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
