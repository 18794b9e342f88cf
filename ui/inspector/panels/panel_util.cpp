// Panel drawing helpers (see panel_util.h).
#include "panel_util.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>

namespace gb::ui {

namespace {
std::string printfString(const char * fmt, double v, const char * unit) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v, unit);
    return buf;
}
}  // namespace

void drawHistogram(const char * id, const Histogram & h, ImVec2 size, const char * unit,
                   std::span<const PlotMarker> markers, ImU32 color) {
    ImGui::PushID(id);
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    if (size.x <= 0) size.x = std::max(ImGui::GetContentRegionAvail().x, 50.0f);
    ImGui::InvisibleButton("##plot", size);
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    const ImVec2 p1(p0.x + size.x, p0.y + size.y);
    dl->AddRectFilled(p0, p1, IM_COL32(30, 30, 34, 255));
    dl->AddRect(p0, p1, IM_COL32(70, 70, 80, 255));
    const size_t nb = h.counts.size();
    const uint32_t max_count = h.maxCount();
    if (nb == 0 || max_count == 0) {
        dl->AddText(ImVec2(p0.x + 6, p0.y + 4), IM_COL32(140, 140, 140, 255), "no data");
        ImGui::PopID();
        return;
    }
    const float bw = size.x / float(nb);
    for (size_t i = 0; i < nb; ++i) {
        if (h.counts[i] == 0) continue;
        const float bh = (size.y - 4) * float(h.counts[i]) / float(max_count);
        dl->AddRectFilled(ImVec2(p0.x + float(i) * bw + 1, p1.y - bh - 1), ImVec2(p0.x + float(i + 1) * bw - 1, p1.y - 1),
                          color);
    }
    const double range = h.hi - h.lo;
    for (const PlotMarker & m : markers) {
        if (range <= 0 || m.value < h.lo || m.value > h.hi) continue;
        const float x = p0.x + float((m.value - h.lo) / range) * size.x;
        dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p1.y), m.color, 1.5f);
        dl->AddText(ImVec2(x + 3, p0.y + 2), m.color, m.label);
    }
    if (hovered) {
        const float mx = ImGui::GetIO().MousePos.x - p0.x;
        const size_t bin = std::min(nb - 1, size_t(std::max(0.0f, mx / bw)));
        const double lo = h.lo + double(bin) * h.binWidth();
        ImGui::BeginTooltip();
        ImGui::Text("%.4g .. %.4g %s", lo, lo + h.binWidth(), unit);
        ImGui::Text("%u of %llu (%.1f%%)", h.counts[bin], static_cast<unsigned long long>(h.total),
                    h.total ? 100.0 * h.counts[bin] / double(h.total) : 0.0);
        ImGui::EndTooltip();
    }
    // Axis labels under the plot.
    ImGui::TextDisabled("%s", printfString("%.4g %s", h.lo, unit).c_str());
    const std::string hi = printfString("%.4g %s", h.hi, unit);
    ImGui::SameLine(std::max(0.0f, size.x - ImGui::CalcTextSize(hi.c_str()).x));
    ImGui::TextDisabled("%s", hi.c_str());
    ImGui::PopID();
}

void SeriesColumns::compute(size_t n, int cols, const std::function<double(size_t)> & y) {
    this->n = n;
    this->cols = cols;
    lo.assign(size_t(cols), 0.0);
    hi.assign(size_t(cols), 0.0);
    first.assign(size_t(cols), 0);
    last.assign(size_t(cols), 0);  // exclusive; first == last: empty column
    for (int c = 0; c < cols; ++c) {
        size_t a = size_t(double(c) * double(n) / cols);
        size_t b = size_t(double(c + 1) * double(n) / cols);
        if (b <= a && n < size_t(cols) && a < n) b = a + 1;  // fewer points than columns
        b = std::min(b, n);
        first[size_t(c)] = a;
        last[size_t(c)] = std::max(a, b);
        double l = DBL_MAX, h = -DBL_MAX;
        for (size_t i = a; i < b; ++i) {
            const double v = y(i);
            l = std::min(l, v);
            h = std::max(h, v);
        }
        lo[size_t(c)] = l;
        hi[size_t(c)] = h;
    }
}

int64_t drawSeries(const char * id, size_t n, const std::function<double(size_t)> & y, ImVec2 size, double yMax,
                   const char * unit, std::span<const PlotMarker> markers, ImU32 color, SeriesColumns * cache,
                   const std::shared_ptr<const void> & key) {
    ImGui::PushID(id);
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    if (size.x <= 0) size.x = std::max(ImGui::GetContentRegionAvail().x, 50.0f);
    ImGui::InvisibleButton("##series", size);
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList * dl = ImGui::GetWindowDrawList();
    const ImVec2 p1(p0.x + size.x, p0.y + size.y);
    dl->AddRectFilled(p0, p1, IM_COL32(30, 30, 34, 255));
    dl->AddRect(p0, p1, IM_COL32(70, 70, 80, 255));
    if (n == 0 || !(yMax > 0)) {
        dl->AddText(ImVec2(p0.x + 6, p0.y + 4), IM_COL32(140, 140, 140, 255), "no data");
        ImGui::PopID();
        return -1;
    }
    // One column per pixel: the min..max of the points that fall into it,
    // recomputed only when the data (an immutable snapshot) or the width change.
    const int cols = std::max(1, int(size.x) - 2);
    SeriesColumns local;
    SeriesColumns & sc = cache ? *cache : local;
    if (!cache || sc.key != key || !key || sc.n != n || sc.cols != cols) {
        sc.compute(n, cols, y);
        sc.key = key;
    }
    const float plot_h = size.y - 4;
    auto to_y = [&](double v) { return p1.y - 2 - float(std::clamp(v / yMax, 0.0, 1.0)) * plot_h; };
    const ImU32 dim = (color & ~IM_COL32_A_MASK) | IM_COL32(0, 0, 0, 70);
    for (int c = 0; c < cols; ++c) {
        if (sc.first[size_t(c)] == sc.last[size_t(c)]) continue;
        const float x = p0.x + 1 + float(c) + 0.5f;
        float ya = to_y(sc.hi[size_t(c)]), yb = to_y(sc.lo[size_t(c)]);
        if (yb - ya < 1.0f) yb = ya + 1.0f;
        // Dim bar from the baseline to the column's minimum, bright min..max range on top.
        dl->AddLine(ImVec2(x, p1.y - 2), ImVec2(x, yb), dim, 1.0f);
        dl->AddLine(ImVec2(x, ya), ImVec2(x, yb), color, 1.0f);
    }
    // Labels side by side from the right edge, so close lines keep readable labels.
    float label_x = p1.x - 4;
    for (auto it = markers.rbegin(); it != markers.rend(); ++it) {
        const PlotMarker & m = *it;
        if (m.value > yMax) continue;
        const float yy = to_y(m.value);
        dl->AddLine(ImVec2(p0.x, yy), ImVec2(p1.x, yy), m.color, 1.0f);
        label_x -= ImGui::CalcTextSize(m.label).x + 6;
        dl->AddText(ImVec2(label_x, yy - ImGui::GetTextLineHeight()), m.color, m.label);
    }
    int64_t hovered_index = -1;
    const int hc = hovered ? int(ImGui::GetIO().MousePos.x - p0.x - 1) : -1;
    if (hc >= 0 && hc < cols && sc.first[size_t(hc)] < sc.last[size_t(hc)]) {
        const size_t a = sc.first[size_t(hc)], b = sc.last[size_t(hc)] - 1;
        hovered_index = int64_t(a);
        ImGui::BeginTooltip();
        if (a == b) ImGui::Text("#%zu: %.4g %s", a, sc.hi[size_t(hc)], unit);
        else ImGui::Text("#%zu..#%zu: %.4g .. %.4g %s", a, b, sc.lo[size_t(hc)], sc.hi[size_t(hc)], unit);
        ImGui::EndTooltip();
    }
    ImGui::PopID();
    return hovered_index;
}

std::shared_ptr<const RequestTrace> RequestPicker::draw(const InspectorSnapshot & snap) {
    if (snap.requests.empty()) return nullptr;
    std::shared_ptr<const RequestTrace> chosen;
    if (!m_followLatest) {
        for (const auto & r : snap.requests)
            if (r->id == m_id) chosen = r;
    }
    if (!chosen) {
        chosen = snap.requests.back();
        m_followLatest = true;
    }
    auto name = [](const RequestTrace & r) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "#%llu %s%s (%zu tokens)", static_cast<unsigned long long>(r.id),
                      r.label.c_str(), r.finished ? "" : " [running]", r.tokens.size());
        return std::string(buf);
    };
    ImGui::SetNextItemWidth(std::min(420.0f, ImGui::GetContentRegionAvail().x * 0.6f));
    if (ImGui::BeginCombo("Request", name(*chosen).c_str())) {
        if (ImGui::Selectable("Newest (follow)", m_followLatest)) m_followLatest = true;
        for (auto it = snap.requests.rbegin(); it != snap.requests.rend(); ++it) {
            const RequestTrace & r = **it;
            if (ImGui::Selectable(name(r).c_str(), !m_followLatest && r.id == m_id)) {
                m_followLatest = false;
                m_id = r.id;
            }
        }
        ImGui::EndCombo();
    }
    return chosen;
}

std::string visibleTokenText(std::string_view s, size_t maxBytes, bool showSpaces) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        if (out.size() >= maxBytes) {
            out += "…";
            break;
        }
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == ' ' && showSpaces) { out += "·"; ++i; continue; }
        if (c == '\n') { out += "↵"; ++i; continue; }
        if (c == '\t') { out += "→"; ++i; continue; }
        if (c == '\r') { out += "␍"; ++i; continue; }
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "<0x%02X>", c);
            out += buf;
            ++i;
            continue;
        }
        // Copy a complete, valid UTF-8 sequence; anything else is shown as bytes.
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        bool valid = len > 0 && i + len <= s.size();
        for (size_t k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
        if (valid) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "<0x%02X>", c);
            out += buf;
            ++i;
        }
    }
    return out;
}

std::string formatBytes(uint64_t bytes) {
    const char * units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(bytes);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::string formatCount(uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string formatMs(double ms) {
    char buf[32];
    if (ms >= 1000.0) std::snprintf(buf, sizeof buf, "%.2f s", ms / 1000.0);
    else if (ms >= 10.0) std::snprintf(buf, sizeof buf, "%.1f ms", ms);
    else std::snprintf(buf, sizeof buf, "%.2f ms", ms);
    return buf;
}

ImU32 probabilityColor(double p, int alpha) {
    p = std::clamp(p, 0.0, 1.0);
    // red (0) -> yellow (0.5) -> green (1)
    const float r = p < 0.5 ? 1.0f : float(2.0 * (1.0 - p));
    const float g = p < 0.5 ? float(2.0 * p) : 1.0f;
    return IM_COL32(int(60 + 170 * r), int(60 + 150 * g), 70, alpha);
}

void labelValue(const char * label, const std::string & value) {
    ImGui::TextDisabled("%s", label);
    ImGui::SameLine();
    ImGui::TextUnformatted(value.c_str());
}

}  // namespace gb::ui

namespace gb::ui {

ImU32 requestColor(int64_t id, int alpha) {
    if (id < 0) return IM_COL32(150, 150, 150, alpha);
    const float h = float(std::fmod(0.13 + double(id) * 0.61803398875, 1.0));
    float r, g, b;
    ImGui::ColorConvertHSVtoRGB(h, 0.55f, 0.9f, r, g, b);
    return IM_COL32(int(r * 255), int(g * 255), int(b * 255), alpha);
}

}  // namespace gb::ui
