// KV cache panel: the page map coloured by owner sequence / free / cached
// (evictable) / shared, page usage and evictions over time, and prefix-cache
// hit tokens per request.
#pragma once

#include "../inspector_panel.h"
#include "../kv_trace.h"
#include "panel_util.h"

namespace gb::ui {

class KvCachePanel : public InspectorPanel {
  public:
    const char * title() const override { return "KV cache"; }
    void draw(const InspectorSnapshot & snapshot) override;

  private:
    void drawPageMap(const KvTrace & kv, float height);
    void drawUsage(const std::shared_ptr<const KvTrace> & kv);
    void drawRequests(const KvTrace & kv);

    // Per pixel column of the usage plot: last step's used/shared/cached/free
    // and the evictions in the column, for m_usageKey at m_usageCols.
    std::shared_ptr<const KvTrace> m_usageKey;
    int m_usageCols = 0;
    struct Column { int32_t used = 0, shared = 0, cached = 0, free = 0, evictions = 0; size_t step = 0; bool any = false; };
    std::vector<Column> m_usage;
    int32_t m_usageMaxEvict = 0;
};

}  // namespace gb::ui
