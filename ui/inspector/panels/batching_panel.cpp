// Batching panel drawing.
#include "batching_panel.h"

#include <algorithm>

namespace gb::ui {

namespace {
const ImU32 kPrefill = IM_COL32(150, 110, 220, 255);
const ImU32 kDecode = IM_COL32(90, 170, 230, 255);

std::string labelOf(const KvTrace & kv, int64_t id) {
    for (const KvRequest & r : kv.requests)
        if (r.id == id) return r.label;
    return "request " + std::to_string(id);
}
}  // namespace

void BatchingPanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const KvTrace> kv = snap.kv;
    if (!kv || kv->steps.empty()) {
        ImGui::TextDisabled("No engine steps yet: each iteration's prefill chunks and decode tokens appear here.");
        return;
    }
    const auto & steps = kv->steps;
    int64_t prefill = 0, decode = 0, running = 0;
    int32_t max_parts = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
        const KvStep & s = steps[i];
        prefill += s.nPrefill;
        decode += s.nDecode;
        running += s.nRunning;
        max_parts = std::max(max_parts, int32_t(s.parts.size()));
    }
    const double n = double(steps.size());
    ImGui::TextDisabled("%s", kv->source.c_str());
    ImGui::Text("%s steps   %.1f tokens/step   prefill %s (%.0f%%)   decode %s   mean running %.2f   widest batch %d sequences",
                formatCount(steps.size()).c_str(), double(prefill + decode) / n, formatCount(uint64_t(prefill)).c_str(),
                prefill + decode ? 100.0 * double(prefill) / double(prefill + decode) : 0.0, formatCount(uint64_t(decode)).c_str(),
                double(running) / n, max_parts);
    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);
    drawOverview(kv, width);
    ImGui::Spacing();
    drawComposition(*kv, width, std::max(ImGui::GetContentRegionAvail().y - 40.0f, 120.0f));
}

void BatchingPanel::drawOverview(const std::shared_ptr<const KvTrace> & trace, float width) {
    const auto & steps = trace->steps;
    ImGui::TextDisabled("Tokens per step over the whole history (prefill above decode; click to jump)");
    const float h = 70.0f;
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton("##overview", ImVec2(width, h));
    const bool hovered = ImGui::IsItemHovered();
    const bool clicked = ImGui::IsItemClicked();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + width, p0.y + h), IM_COL32(30, 30, 34, 255));
    const int cols = std::max(1, int(width));
    if (m_overviewKey != trace || m_overviewCols != cols) {  // per column: the busiest step
        m_overviewKey = trace;
        m_overviewCols = cols;
        m_overview.assign(size_t(cols), Column{});
        m_overviewMax = 1;
        const size_t n = steps.size();
        for (int c = 0; c < cols; ++c) {
            Column & col = m_overview[size_t(c)];
            col.first = size_t(double(c) * double(n) / cols);
            col.last = std::max(col.first + (col.first < n ? 1 : 0), std::min(n, size_t(double(c + 1) * double(n) / cols)));
            for (size_t i = col.first; i < col.last; ++i) {
                const KvStep & s = steps[i];
                if (s.nPrefill + s.nDecode > col.prefill + col.decode) {
                    col.prefill = s.nPrefill;
                    col.decode = s.nDecode;
                }
            }
            m_overviewMax = std::max(m_overviewMax, col.prefill + col.decode);
        }
    }
    for (int c = 0; c < cols; ++c) {
        const Column & col = m_overview[size_t(c)];
        if (col.first >= col.last) continue;
        const float x = p0.x + float(c);
        const float yd = p0.y + h - float(col.decode) / float(m_overviewMax) * (h - 2);
        const float yp = yd - float(col.prefill) / float(m_overviewMax) * (h - 2);
        if (col.decode) dl->AddRectFilled(ImVec2(x, yd), ImVec2(x + 1, p0.y + h), kDecode);
        if (col.prefill) dl->AddRectFilled(ImVec2(x, yp), ImVec2(x + 1, yd), kPrefill);
    }
    // The composition window.
    const int visible = std::max(1, int(width) / kMinBarWidth);
    const int64_t first = m_follow ? std::max<int64_t>(0, int64_t(steps.size()) - visible) : m_first;
    const float wx0 = p0.x + float(double(first) / double(steps.size()) * width);
    const float wx1 = p0.x + float(double(std::min<int64_t>(first + visible, int64_t(steps.size()))) / double(steps.size()) * width);
    dl->AddRect(ImVec2(wx0, p0.y), ImVec2(std::max(wx1, wx0 + 2), p0.y + h), IM_COL32(240, 220, 90, 200));
    if (hovered) {
        const int c = std::clamp(int(ImGui::GetIO().MousePos.x - p0.x), 0, cols - 1);
        const Column & col = m_overview[size_t(c)];
        if (col.first < col.last)
            ImGui::SetTooltip("steps %zu..%zu: busiest %d prefill + %d decode tokens", size_t(steps.firstIndex() + col.first),
                              size_t(steps.firstIndex() + col.last - 1), col.prefill, col.decode);
        if (clicked && col.first < col.last) {
            m_follow = false;
            m_first = std::clamp<int64_t>(int64_t(col.first) - visible / 2, 0, std::max<int64_t>(0, int64_t(steps.size()) - visible));
        }
    }
}

void BatchingPanel::drawComposition(const KvTrace & kv, float width, float height) {
    const auto & steps = kv.steps;
    const int visible = std::max(1, int(width) / kMinBarWidth);
    const int64_t max_first = std::max<int64_t>(0, int64_t(steps.size()) - visible);
    ImGui::Checkbox("Follow newest", &m_follow);
    ImGui::SameLine();
    int first_i = int(m_follow ? max_first : std::min(m_first, max_first));
    ImGui::SetNextItemWidth(std::max(width - ImGui::GetCursorPosX() - 10.0f, 60.0f));
    if (ImGui::SliderInt("##first", &first_i, 0, int(max_first), "first step %d")) {
        m_follow = false;
        m_first = first_i;
    }
    const int64_t first = m_follow ? max_first : std::min(m_first, max_first);
    const int64_t last = std::min<int64_t>(first + visible, int64_t(steps.size()));
    int32_t ymax = 1;
    for (int64_t i = first; i < last; ++i) ymax = std::max(ymax, steps[size_t(i)].nPrefill + steps[size_t(i)].nDecode);

    ImGui::TextDisabled("Composition of each step: one bar per step, one block per sequence (light = prefill chunk, solid = decode)");
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    const float h = std::max(height - ImGui::GetTextLineHeightWithSpacing(), 60.0f);
    ImGui::InvisibleButton("##composition", ImVec2(width, h));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + width, p0.y + h), IM_COL32(30, 30, 34, 255));
    // Few steps: wider bars (up to 4x the minimum), so a short run fills more of the view.
    const float bw = std::min(width / float(std::max<int64_t>(last - first, 1)), width / float(visible) * 4.0f);
    for (int64_t i = first; i < last; ++i) {
        const KvStep & s = steps[size_t(i)];
        const float x0 = p0.x + float(i - first) * bw, x1 = x0 + std::max(bw - 1.0f, 1.0f);
        float y = p0.y + h;
        for (const BatchPart & part : s.parts) {
            const float y1 = y - float(part.nTokens) / float(ymax) * (h - 4);
            const ImU32 c = requestColor(part.request, part.prefill ? 130 : 255);
            dl->AddRectFilled(ImVec2(x0, y1), ImVec2(x1, y), c);
            if (part.prefill && y - y1 > 2) dl->AddRect(ImVec2(x0, y1), ImVec2(x1, y), requestColor(part.request));
            y = y1;
        }
    }
    // y axis: the budget line at ymax
    char buf[32];
    std::snprintf(buf, sizeof buf, "%d tokens", ymax);
    dl->AddText(ImVec2(p0.x + width - ImGui::CalcTextSize(buf).x - 6, p0.y + 2), IM_COL32(170, 170, 170, 255), buf);
    if (hovered) {
        const int64_t i = first + int64_t((ImGui::GetIO().MousePos.x - p0.x) / bw);
        if (i >= first && i < last) {
            const KvStep & s = steps[size_t(i)];
            ImGui::BeginTooltip();
            ImGui::Text("step %lld: %d prefill + %d decode tokens, %d running, %d waiting", static_cast<long long>(s.step), s.nPrefill,
                        s.nDecode, s.nRunning, s.nWaiting);
            for (const BatchPart & part : s.parts)
                ImGui::TextColored(ImColor(requestColor(part.request)), "%s: %d %s", labelOf(kv, part.request).c_str(), part.nTokens,
                                   part.prefill ? "prefill tokens" : (part.nTokens == 1 ? "decode token" : "decode tokens"));
            for (const auto & [id, hit] : s.admitted)
                ImGui::TextDisabled("admitted %s (%d prompt tokens from the prefix cache)", labelOf(kv, id).c_str(), hit);
            for (int64_t id : s.preempted) ImGui::TextColored(ImVec4(0.9f, 0.4f, 0.4f, 1), "preempted %s", labelOf(kv, id).c_str());
            ImGui::EndTooltip();
        }
    }
}

}  // namespace gb::ui
