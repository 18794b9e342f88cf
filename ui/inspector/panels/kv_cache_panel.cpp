// KV cache panel drawing.
#include "kv_cache_panel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>

namespace gb::ui {

namespace {
const ImU32 kFree = IM_COL32(52, 52, 58, 255);
const ImU32 kCached = IM_COL32(200, 160, 70, 255);
const ImU32 kShared = IM_COL32(235, 235, 245, 255);
const ImU32 kUsed = IM_COL32(90, 170, 230, 255);
const ImU32 kEvict = IM_COL32(230, 80, 80, 255);

std::string labelOf(const KvTrace & kv, int64_t id) {
    for (const KvRequest & r : kv.requests)
        if (r.id == id) return r.label;
    return id < 0 ? std::string("unknown sequence") : "request " + std::to_string(id);
}
}  // namespace

void KvCachePanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const KvTrace> kv = snap.kv;
    if (!kv || kv->nPages == 0) {
        ImGui::TextDisabled("No KV cache data yet: pages, prefix hits and evictions appear here once a request ran.");
        return;
    }
    int32_t counts[4] = {0, 0, 0, 0};
    for (PageState s : kv->pageState) ++counts[int(s)];
    ImGui::TextDisabled("%s", kv->source.c_str());
    ImGui::Text("%s pages of %d tokens   used %d   shared %d   cached %d   free %d   evictions %s",
                formatCount(uint64_t(kv->nPages)).c_str(), kv->pageSize, counts[int(PageState::Used)] + counts[int(PageState::Shared)],
                counts[int(PageState::Shared)], counts[int(PageState::Cached)], counts[int(PageState::Free)],
                formatCount(uint64_t(std::max<int64_t>(kv->evictionsTotal, 0))).c_str());
    const float avail = ImGui::GetContentRegionAvail().y;
    drawPageMap(*kv, std::clamp(avail * 0.35f, 80.0f, 320.0f));
    ImGui::Spacing();
    drawUsage(kv);
    ImGui::Spacing();
    drawRequests(*kv);
}

void KvCachePanel::drawPageMap(const KvTrace & kv, float height) {
    // Legend: states, then the owners of used pages.
    auto swatch = [](ImU32 c, const char * text) {
        const ImVec2 p = ImGui::GetCursorScreenPos();
        const float s = ImGui::GetTextLineHeight();
        ImGui::GetWindowDrawList()->AddRectFilled(p, ImVec2(p.x + s, p.y + s), c);
        ImGui::Dummy(ImVec2(s, s));
        ImGui::SameLine();
        ImGui::TextUnformatted(text);
        ImGui::SameLine(0, 14);
    };
    swatch(kFree, "free");
    swatch(kCached, "cached (evictable)");
    swatch(kShared, "shared");
    swatch(kUsed, "used: coloured by owner");
    ImGui::NewLine();

    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);
    const int n = kv.nPages;
    // Largest square cell (with a 1 px gap when cells are big enough) fitting every page.
    float cell = std::floor(std::sqrt(width * height / float(n)));
    int per_row = 0;
    for (; cell > 1; cell -= 1) {
        per_row = std::max(1, int(width / cell));
        if (float((n + per_row - 1) / per_row) * cell <= height) break;
    }
    cell = std::max(cell, 1.0f);
    per_row = std::max(1, int(width / cell));
    const int rows = (n + per_row - 1) / per_row;
    const float h = float(rows) * cell;
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton("##pagemap", ImVec2(width, std::max(h, 1.0f)));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    const float gap = cell >= 5 ? 1.0f : 0.0f;
    for (int p = 0; p < n; ++p) {
        const PageState s = kv.pageState[size_t(p)];
        ImU32 c = kFree;
        if (s == PageState::Cached) c = kCached;
        else if (s == PageState::Shared) c = kShared;
        else if (s == PageState::Used) c = requestColor(kv.pageOwner[size_t(p)]);
        const float x = p0.x + float(p % per_row) * cell, y = p0.y + float(p / per_row) * cell;
        dl->AddRectFilled(ImVec2(x, y), ImVec2(x + cell - gap, y + cell - gap), c);
    }
    if (hovered) {
        const ImVec2 m = ImGui::GetIO().MousePos;
        const int col = int((m.x - p0.x) / cell), row = int((m.y - p0.y) / cell);
        const int p = row * per_row + col;
        if (col >= 0 && col < per_row && p >= 0 && p < n) {
            ImGui::BeginTooltip();
            ImGui::Text("page %d: %s", p, pageStateName(kv.pageState[size_t(p)]));
            ImGui::Text("%d token slots", kv.pageSize);
            if (kv.pageOwner[size_t(p)] >= 0) ImGui::Text("held by %s", labelOf(kv, kv.pageOwner[size_t(p)]).c_str());
            ImGui::EndTooltip();
        }
    }
}

void KvCachePanel::drawUsage(const std::shared_ptr<const KvTrace> & trace) {
    const KvTrace & kv = *trace;
    const auto & steps = kv.steps;
    ImGui::TextDisabled("Pages over time (%s steps%s): used, shared, cached, free; evictions in red",
                        formatCount(steps.size()).c_str(), steps.firstIndex() ? ", oldest dropped" : "");
    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);
    const float height = 110.0f;
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton("##usage", ImVec2(width, height));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p0, ImVec2(p0.x + width, p0.y + height), IM_COL32(30, 30, 34, 255));
    if (steps.empty()) {
        dl->AddText(ImVec2(p0.x + 6, p0.y + 4), IM_COL32(140, 140, 140, 255), "no steps yet");
        return;
    }
    const int cols = std::max(1, int(width));
    if (m_usageKey != trace || m_usageCols != cols) {  // one pass per snapshot
        m_usageKey = trace;
        m_usageCols = cols;
        m_usage.assign(size_t(cols), Column{});
        m_usageMaxEvict = 0;
        // Column c shows the last step of its range [a, b) (the step under it when
        // there are fewer steps than columns) and the evictions of the range.
        const size_t n = steps.size();
        size_t prev_a = SIZE_MAX;
        for (int x = 0; x < cols; ++x) {
            const size_t a = std::min(n - 1, size_t(double(x) * double(n) / cols));
            const size_t b = std::min(n, size_t(double(x + 1) * double(n) / cols));
            Column & c = m_usage[size_t(x)];
            const KvStep & s = steps[std::max(a, b > 0 ? b - 1 : 0)];
            c.used = s.pagesUsed;
            c.shared = s.pagesShared;
            c.cached = s.pagesCached;
            c.free = s.pagesFree;
            c.step = std::max(a, b > 0 ? b - 1 : 0);
            c.any = true;
            if (b > a) {
                for (size_t i = a; i < b; ++i) c.evictions += steps[i].evictions;
            } else if (a != prev_a) {
                c.evictions = steps[a].evictions;
            }
            prev_a = a;
        }
        for (const Column & c : m_usage) m_usageMaxEvict = std::max(m_usageMaxEvict, c.evictions);
    }
    const float total = float(std::max(kv.nPages, 1));
    for (int x = 0; x < cols; ++x) {
        const Column & c = m_usage[size_t(x)];
        if (!c.any) continue;
        const float px = p0.x + float(x);
        float y = p0.y + height;
        auto seg = [&](int32_t pages, ImU32 col) {
            const float y1 = y - float(pages) / total * height;
            if (pages > 0) dl->AddRectFilled(ImVec2(px, y1), ImVec2(px + 1, y), col);
            y = y1;
        };
        seg(c.used - c.shared, kUsed);
        seg(c.shared, kShared);
        seg(c.cached, kCached);
        if (c.evictions > 0) {
            const float eh = 4.0f + 20.0f * float(c.evictions) / float(std::max(m_usageMaxEvict, 1));
            dl->AddRectFilled(ImVec2(px, p0.y), ImVec2(px + 1, p0.y + eh), kEvict);
        }
    }
    if (hovered) {
        const int x = std::clamp(int(ImGui::GetIO().MousePos.x - p0.x), 0, cols - 1);
        const Column & c = m_usage[size_t(x)];
        if (c.any) {
            const KvStep & s = steps[c.step];
            ImGui::BeginTooltip();
            ImGui::Text("step %lld (t = %s)", static_cast<long long>(s.step), formatMs(s.tMs).c_str());
            ImGui::Text("used %d (shared %d)  cached %d  free %d", s.pagesUsed, s.pagesShared, s.pagesCached, s.pagesFree);
            ImGui::Text("evictions: %d this step, %lld in total", s.evictions, static_cast<long long>(s.evictionsTotal));
            ImGui::Text("running %d, waiting %d", s.nRunning, s.nWaiting);
            ImGui::EndTooltip();
        }
    }
}

void KvCachePanel::drawRequests(const KvTrace & kv) {
    int64_t hit = 0, prompt = 0;
    for (const KvRequest & r : kv.requests) {
        hit += r.prefixHitTokens;
        prompt += r.promptTokens;
    }
    ImGui::TextDisabled("Prefix-cache hits per request: %s of %s prompt tokens (%.1f%%)", formatCount(uint64_t(hit)).c_str(),
                        formatCount(uint64_t(prompt)).c_str(), prompt ? 100.0 * double(hit) / double(prompt) : 0.0);
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("##kvreq", 7, flags, ImVec2(0, std::max(ImGui::GetContentRegionAvail().y, 100.0f)))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("request");
    ImGui::TableSetupColumn("prompt");
    ImGui::TableSetupColumn("cached");
    ImGui::TableSetupColumn("hit", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableSetupColumn("generated");
    ImGui::TableSetupColumn("preempted");
    ImGui::TableSetupColumn("state");
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(int(kv.requests.size()));
    while (clipper.Step()) {
        for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
            const KvRequest & r = kv.requests[kv.requests.size() - 1 - size_t(i)];  // newest first
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            const ImVec2 p = ImGui::GetCursorScreenPos();
            const float s = ImGui::GetTextLineHeight();
            ImGui::GetWindowDrawList()->AddRectFilled(p, ImVec2(p.x + s * 0.6f, p.y + s), requestColor(r.id));
            ImGui::Dummy(ImVec2(s * 0.6f, s));
            ImGui::SameLine();
            ImGui::TextUnformatted(r.label.c_str());
            ImGui::TableNextColumn();
            ImGui::Text("%d", r.promptTokens);
            ImGui::TableNextColumn();
            ImGui::Text("%d", r.prefixHitTokens);
            ImGui::TableNextColumn();
            const float frac = r.promptTokens ? float(r.prefixHitTokens) / float(r.promptTokens) : 0.0f;
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * frac);
            ImGui::PushStyleColor(ImGuiCol_PlotHistogram, ImVec4(0.78f, 0.63f, 0.27f, 1.0f));
            ImGui::ProgressBar(frac, ImVec2(-1, s), buf);
            ImGui::PopStyleColor();
            ImGui::TableNextColumn();
            ImGui::Text("%d", r.generated);
            ImGui::TableNextColumn();
            ImGui::Text("%d", r.preemptions);
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(r.state.c_str());
        }
    }
    ImGui::EndTable();
}

}  // namespace gb::ui
