// Prefix tree panel: the radix tree of the prefix cache with the token text on
// its edges, tokens / pages, lock counts and last use; clicking a node shows
// its path and which requests (conversations) share it.
#pragma once

#include "../inspector_panel.h"
#include "../kv_trace.h"
#include "panel_util.h"

#include <set>

namespace gb::ui {

class PrefixTreePanel : public InspectorPanel {
  public:
    const char * title() const override { return "Prefix tree"; }
    void draw(const InspectorSnapshot & snapshot) override;

    void selectNode(int64_t id) { m_selected = id; }
    int64_t selectedNode() const { return m_selected; }

  private:
    void rebuildRows(const KvTrace & kv);
    void drawDetails(const KvTrace & kv);

    std::shared_ptr<const KvTrace> m_key;  // rows were built for this trace
    std::set<int64_t> m_collapsed;          // node ids
    bool m_rowsDirty = true;
    std::vector<int32_t> m_rows;            // visible tree indices, pre-order
    int64_t m_selected = -1;
};

}  // namespace gb::ui
