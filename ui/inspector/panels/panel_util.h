// Drawing helpers shared by the inspector panels: histograms and long series
// drawn with ImDrawList (per-pixel min/max, so 100,000 points cost one pass),
// the request picker, and text formatting for token pieces, bytes and counts.
#pragma once

#include "../snapshot.h"

#include <imgui.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gb::ui {

struct PlotMarker {
    double value;
    const char * label;
    ImU32 color;
};

// Bars of a histogram; markers are vertical lines at values on the x axis.
// unit is appended to values in the tooltip ("ms").
void drawHistogram(const char * id, const Histogram & h, ImVec2 size, const char * unit,
                   std::span<const PlotMarker> markers = {}, ImU32 color = IM_COL32(90, 160, 230, 255));

// Per-pixel-column min/max of a series; kept by a panel so an unchanged
// (immutable) series is not re-scanned every frame.
struct SeriesColumns {
    std::shared_ptr<const void> key;  // what was scanned (keeps it alive: no address reuse)
    size_t n = 0;
    int cols = 0;
    std::vector<double> lo, hi;
    std::vector<size_t> first, last;  // point range [first, last) of each column
    void compute(size_t n, int cols, const std::function<double(size_t)> & y);
};

// A series y(i), i in [0, n): each pixel column shows the min..max of its
// points. Markers are horizontal lines at y values. Hover shows the range.
// With a cache and a key, columns are recomputed only when key, n or the
// width change. Returns the hovered column's first index or -1.
int64_t drawSeries(const char * id, size_t n, const std::function<double(size_t)> & y, ImVec2 size, double yMax,
                   const char * unit, std::span<const PlotMarker> markers = {},
                   ImU32 color = IM_COL32(120, 200, 140, 255), SeriesColumns * cache = nullptr,
                   const std::shared_ptr<const void> & key = nullptr);

// Which request a panel shows: the newest (following new ones) or a chosen id.
class RequestPicker {
  public:
    // Draws a combo; returns the chosen request or nullptr when there is none.
    std::shared_ptr<const RequestTrace> draw(const InspectorSnapshot & snapshot);

  private:
    bool m_followLatest = true;
    uint64_t m_id = 0;
};

// Token text made visible: newlines as ↵, tabs as →, control bytes and broken
// UTF-8 as <0xNN>; spaces as · when showSpaces. maxBytes clips long pieces (with …).
std::string visibleTokenText(std::string_view text, size_t maxBytes = 64, bool showSpaces = false);
std::string formatBytes(uint64_t bytes);   // "12.3 MiB"
std::string formatCount(uint64_t n);       // "268,098,176"
std::string formatMs(double ms);           // "12.3 ms", "1.23 s"

// A colour from green (p = 1) through yellow to red (p = 0).
ImU32 probabilityColor(double p, int alpha = 255);

// A stable colour per request / sequence id (golden-ratio hues).
ImU32 requestColor(int64_t id, int alpha = 255);

// Text with a label in the disabled colour: "label: value".
void labelValue(const char * label, const std::string & value);

}  // namespace gb::ui
