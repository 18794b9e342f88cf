// Speculative decoding panel drawing.
#include "spec_panel.h"

#include <algorithm>

namespace gb::ui {

double plainBaselineTokensPerS(const InspectorSnapshot & snap, const RequestTrace & r) {
    if (r.promptKey.empty()) return 0.0;
    for (auto it = snap.requests.rbegin(); it != snap.requests.rend(); ++it) {
        const RequestTrace & o = **it;
        if (&o != &r && o.finished && o.promptKey == r.promptKey && (!o.specSummary || o.specSummary->method == "none") &&
            o.latency.tokensPerS > 0)
            return o.latency.tokensPerS;
    }
    return 0.0;
}

void SpecPanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const RequestTrace> r = m_picker.draw(snap);
    if (!r) {
        ImGui::TextDisabled("No requests yet: speculative decoding statistics appear here after a request.");
        return;
    }
    if (!r->specSummary) {
        ImGui::TextDisabled("This request ran without speculative decoding (choose a method in the settings).");
        drawComparison(snap, *r);
        return;
    }
    drawSummary(*r, snap);
    drawComparison(snap, *r);
}

void SpecPanel::drawSummary(const RequestTrace & r, const InspectorSnapshot & snap) {
    const SpecSummary & s = *r.specSummary;
    const double baseline = plainBaselineTokensPerS(snap, r);
    const ImGuiTableFlags tflags = ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingStretchSame;
    if (ImGui::BeginTable("##specsum", 5, tflags)) {
        auto cell = [](const char * label, const std::string & value) {
            ImGui::TableNextColumn();
            ImGui::TextDisabled("%s", label);
            ImGui::TextUnformatted(value.c_str());
        };
        char buf[96];
        cell("method", s.method);
        std::snprintf(buf, sizeof buf, "%.1f%% (%lld of %lld)", 100.0 * s.acceptanceRate, static_cast<long long>(s.accepted),
                      static_cast<long long>(s.proposed));
        cell("acceptance", buf);
        std::snprintf(buf, sizeof buf, "%.2f tokens", s.meanAcceptedLen);
        cell("mean accepted length", buf);
        std::snprintf(buf, sizeof buf, "%.2f", s.tokensPerStep);
        cell("tokens per target step", buf);
        std::snprintf(buf, sizeof buf, "%.1f tok/s", s.tokensPerS);
        cell("speed", buf);
        if (baseline > 0) std::snprintf(buf, sizeof buf, "%.2fx vs plain run (%.1f tok/s)", s.tokensPerS / baseline, baseline);
        else if (s.speedup > 0) std::snprintf(buf, sizeof buf, "%.2fx vs plain step estimate (%.1f tok/s)", s.speedup, s.plainTokensPerS);
        else std::snprintf(buf, sizeof buf, "-");
        cell("realised speedup", buf);
        std::snprintf(buf, sizeof buf, "%lld / %lld", static_cast<long long>(s.specSteps), static_cast<long long>(s.steps));
        cell("speculative / all steps", buf);
        std::snprintf(buf, sizeof buf, "%lld / %lld / %lld / %lld", static_cast<long long>(s.nDraft), static_cast<long long>(s.nCorrection),
                      static_cast<long long>(s.nBonus), static_cast<long long>(s.nTarget));
        cell("draft / corrected / bonus / plain", buf);
        cell("draft time", formatMs(s.tDraftMs));
        cell("verify time", formatMs(s.tVerifyMs));
        ImGui::EndTable();
    }
    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);
    const float half = (width - ImGui::GetStyle().ItemSpacing.x) * 0.5f;
    ImGui::BeginGroup();
    ImGui::TextDisabled("Acceptance over time (last %d speculative steps)", s.window);
    const PlotMarker mean[] = {{s.acceptanceRate, "mean", IM_COL32(240, 220, 90, 255)}};
    drawSeries("##rolling", s.rollingAcceptance.size(), [&s](size_t i) { return double(s.rollingAcceptance[i]); },
               ImVec2(half, 100.0f), 1.0, "", mean, IM_COL32(120, 200, 140, 255), &m_rollingColumns, r.specSummary);
    ImGui::EndGroup();
    ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::TextDisabled("Accepted draft tokens per step");
    int32_t max_acc = 1;
    for (int32_t a : s.acceptedPerStep) max_acc = std::max(max_acc, a);
    drawSeries("##accsteps", s.acceptedPerStep.size(), [&s](size_t i) { return double(s.acceptedPerStep[i]); }, ImVec2(half, 100.0f),
               double(max_acc) * 1.05, "tokens", {}, IM_COL32(90, 170, 230, 255), &m_acceptedColumns, r.specSummary);
    ImGui::EndGroup();

    // Acceptance by draft position: bars of accepted_at / attempted_at.
    ImGui::TextDisabled("Acceptance by draft position (given the draft reached it)");
    const size_t n = s.acceptanceByPosition.size();
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    const float h = 90.0f;
    ImGui::InvisibleButton("##bypos", ImVec2(width, h));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + width, p0.y + h), IM_COL32(30, 30, 34, 255));
    if (n == 0) {
        dl->AddText(ImVec2(p0.x + 6, p0.y + 4), IM_COL32(140, 140, 140, 255), "no drafts");
        return;
    }
    const float bw = width / float(n);
    for (size_t d = 0; d < n; ++d) {
        const double a = s.acceptanceByPosition[d];
        const float x0 = p0.x + float(d) * bw + 2, x1 = p0.x + float(d + 1) * bw - 2;
        dl->AddRectFilled(ImVec2(x0, p0.y + h - 14 - float(a) * (h - 18)), ImVec2(x1, p0.y + h - 14), probabilityColor(a));
        char label[32];
        std::snprintf(label, sizeof label, "%zu: %.0f%%", d + 1, 100.0 * a);
        dl->AddText(ImVec2(x0 + 2, p0.y + h - 14), IM_COL32(200, 200, 200, 255), label);
    }
    if (hovered) {
        const size_t d = std::min(n - 1, size_t((ImGui::GetIO().MousePos.x - p0.x) / bw));
        ImGui::SetTooltip("position %zu: accepted %lld of %lld drafts that reached it (%.1f%%)", d + 1,
                          static_cast<long long>(d < s.acceptedAt.size() ? s.acceptedAt[d] : 0),
                          static_cast<long long>(s.attemptedAt[d]), 100.0 * s.acceptanceByPosition[d]);
    }
}

void SpecPanel::drawComparison(const InspectorSnapshot & snap, const RequestTrace & current) {
    // Requests on the same prompt as the current one (all when it has no prompt key).
    std::vector<const RequestTrace *> rows;
    for (const auto & r : snap.requests)
        if (current.promptKey.empty() || r->promptKey == current.promptKey) rows.push_back(r.get());
    ImGui::Spacing();
    ImGui::TextDisabled(current.promptKey.empty() ? "All requests, side by side" : "Methods on the same prompt, side by side");
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("##speccmp", 8, flags, ImVec2(0, std::max(ImGui::GetContentRegionAvail().y, 80.0f)))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    for (const char * h : {"#", "method", "tokens", "acceptance", "mean accepted", "tokens/step", "tok/s", "vs plain"})
        ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(int(rows.size()));
    while (clipper.Step()) {
        for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
            const RequestTrace & r = *rows[rows.size() - 1 - size_t(i)];
            const SpecSummary * s = r.specSummary.get();
            const double base = plainBaselineTokensPerS(snap, r);
            const double tps = s && s->tokensPerS > 0 ? s->tokensPerS : r.latency.tokensPerS;
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::Text("%llu", static_cast<unsigned long long>(r.id));
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(s ? s->method.c_str() : "none");
            ImGui::TableNextColumn();
            ImGui::Text("%zu", r.tokens.size());
            ImGui::TableNextColumn();
            if (s) ImGui::Text("%.1f%%", 100.0 * s->acceptanceRate); else ImGui::TextDisabled("-");
            ImGui::TableNextColumn();
            if (s) ImGui::Text("%.2f", s->meanAcceptedLen); else ImGui::TextDisabled("-");
            ImGui::TableNextColumn();
            if (s) ImGui::Text("%.2f", s->tokensPerStep); else ImGui::Text("1.00");
            ImGui::TableNextColumn();
            ImGui::Text("%.1f", tps);
            ImGui::TableNextColumn();
            if (s && base > 0) ImGui::Text("%.2fx", tps / base);
            else if (s && s->speedup > 0) ImGui::Text("%.2fx (est.)", s->speedup);
            else ImGui::TextDisabled("-");
        }
    }
    ImGui::EndTable();
}

}  // namespace gb::ui
