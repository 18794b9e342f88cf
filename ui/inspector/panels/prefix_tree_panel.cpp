// Prefix tree panel drawing: the tree is a pre-order list, shown as a clipped
// table with indentation, so thousands of nodes cost only the visible rows.
#include "prefix_tree_panel.h"

#include <algorithm>

namespace gb::ui {

namespace {
std::string labelOf(const KvTrace & kv, int64_t id) {
    for (const KvRequest & r : kv.requests)
        if (r.id == id) return r.label;
    return id < 0 ? std::string("unknown sequence") : "request " + std::to_string(id);
}
}  // namespace

void PrefixTreePanel::rebuildRows(const KvTrace & kv) {
    m_rows.clear();
    // Pre-order: skip the subtree of a collapsed node (everything after it with a deeper level).
    int32_t skip_below = -1;
    for (int32_t i = 0; i < int32_t(kv.tree.size()); ++i) {
        const KvTreeNode & n = kv.tree[size_t(i)];
        if (skip_below >= 0 && n.level > skip_below) continue;
        skip_below = -1;
        m_rows.push_back(i);
        if (n.nChildren > 0 && m_collapsed.count(n.id)) skip_below = n.level;
    }
    m_rowsDirty = false;
}

void PrefixTreePanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const KvTrace> kv = snap.kv;
    if (!kv || !kv->hasTree) {
        ImGui::TextDisabled("No prefix tree: %s", kv ? "this engine keeps one sequence (see the KV cache panel for its reuse)."
                                                     : "it appears when the paged-KV engine runs with its prefix cache.");
        if (kv && !kv->requests.empty()) {
            int64_t hit = 0;
            for (const KvRequest & r : kv->requests) hit += r.prefixHitTokens;
            ImGui::Text("Prompt tokens reused from the cache so far: %s", formatCount(uint64_t(hit)).c_str());
        }
        return;
    }
    if (kv != m_key) {
        m_key = kv;
        m_rowsDirty = true;
    }
    if (m_rowsDirty) rebuildRows(*kv);
    int64_t tokens = 0, pages = 0;
    for (const KvTreeNode & n : kv->tree) {
        tokens += n.nTokens;
        pages += n.nPages;
    }
    ImGui::Text("%s nodes%s, %s tokens in %s pages (page size %d)", formatCount(uint64_t(kv->treeNodesTotal)).c_str(),
                int64_t(kv->tree.size()) < kv->treeNodesTotal ? (" (first " + formatCount(kv->tree.size()) + " shown)").c_str() : "",
                formatCount(uint64_t(tokens)).c_str(), formatCount(uint64_t(pages)).c_str(), kv->pageSize);
    ImGui::SameLine();
    if (ImGui::SmallButton("Expand all")) {
        m_collapsed.clear();
        m_rowsDirty = true;
    }
    ImGui::SameLine();
    if (ImGui::SmallButton("Collapse all")) {
        for (const KvTreeNode & n : kv->tree)
            if (n.nChildren > 0) m_collapsed.insert(n.id);
        m_rowsDirty = true;
    }

    const float avail = ImGui::GetContentRegionAvail().y;
    const float details_h = std::clamp(avail * 0.3f, 90.0f, 220.0f);
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
    if (ImGui::BeginTable("##tree", 6, flags, ImVec2(0, std::max(avail - details_h, 80.0f)))) {
        ImGui::TableSetupScrollFreeze(0, 1);
        ImGui::TableSetupColumn("edge (token text)", ImGuiTableColumnFlags_WidthStretch);
        ImGui::TableSetupColumn("tokens");
        ImGui::TableSetupColumn("pages");
        ImGui::TableSetupColumn("locks");
        ImGui::TableSetupColumn("last use");
        ImGui::TableSetupColumn("shared by");
        ImGui::TableHeadersRow();
        ImGuiListClipper clipper;
        clipper.Begin(int(m_rows.size()));
        bool toggled = false;
        while (clipper.Step()) {
            for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
                const KvTreeNode & n = kv->tree[size_t(m_rows[size_t(r)])];
                ImGui::TableNextRow();
                ImGui::TableNextColumn();
                ImGui::PushID(int(n.id));
                ImGui::Indent(float(n.level) * 14.0f + 1.0f);
                if (n.nChildren > 0) {
                    const bool collapsed = m_collapsed.count(n.id) != 0;
                    if (ImGui::ArrowButton("##x", collapsed ? ImGuiDir_Right : ImGuiDir_Down)) {
                        if (collapsed) m_collapsed.erase(n.id);
                        else m_collapsed.insert(n.id);
                        toggled = true;
                    }
                    ImGui::SameLine();
                }
                const std::string text = visibleTokenText(n.text, 48);
                if (ImGui::Selectable(text.empty() ? "(empty)" : text.c_str(), m_selected == n.id))
                    m_selected = n.id;
                ImGui::Unindent(float(n.level) * 14.0f + 1.0f);
                ImGui::PopID();
                ImGui::TableNextColumn();
                ImGui::Text("%d", n.nTokens);
                ImGui::TableNextColumn();
                ImGui::Text("%d", n.nPages);
                ImGui::TableNextColumn();
                if (n.lockRef > 0) ImGui::TextColored(ImVec4(0.95f, 0.75f, 0.35f, 1.0f), "%d", n.lockRef);
                else ImGui::TextDisabled("0");
                ImGui::TableNextColumn();
                ImGui::Text("%llu ago", static_cast<unsigned long long>(kv->treeClock - std::min(kv->treeClock, n.lastAccess)));
                ImGui::TableNextColumn();
                ImGui::Text("%zu", n.sharers.size());
            }
        }
        ImGui::EndTable();
        if (toggled) m_rowsDirty = true;
    }
    drawDetails(*kv);
}

void PrefixTreePanel::drawDetails(const KvTrace & kv) {
    int32_t sel = -1;
    for (int32_t i = 0; i < int32_t(kv.tree.size()); ++i)
        if (kv.tree[size_t(i)].id == m_selected) sel = i;
    ImGui::BeginChild("##details", ImVec2(0, 0), true);
    if (sel < 0) {
        ImGui::TextDisabled("Click a node to see its path and which conversations share it.");
        ImGui::EndChild();
        return;
    }
    const KvTreeNode & n = kv.tree[size_t(sel)];
    std::vector<int32_t> path;
    for (int32_t i = sel; i >= 0; i = kv.tree[size_t(i)].parent) path.push_back(i);
    std::string text;
    for (auto it = path.rbegin(); it != path.rend(); ++it) text += kv.tree[size_t(*it)].text + (std::next(it) != path.rend() ? " | " : "");
    ImGui::Text("node %lld: %d tokens at depth %llu, %d pages, %d locks (%d on the node), last use %llu",
                static_cast<long long>(n.id), n.nTokens, static_cast<unsigned long long>(n.depthTokens), n.nPages, n.lockRef,
                n.directLocks, static_cast<unsigned long long>(n.lastAccess));
    ImGui::TextDisabled("path (edges separated by |):");
    ImGui::SameLine();
    ImGui::TextWrapped("%s", visibleTokenText(text, 400).c_str());
    std::string pages;
    for (size_t i = 0; i < n.pages.size() && i < 32; ++i) pages += (i ? " " : "") + std::to_string(n.pages[i]);
    if (n.pages.size() > 32) pages += " ...";
    labelValue("pages:", pages);
    ImGui::TextDisabled("shared by %zu request(s) whose history runs through it; %zu hold its pages now:", n.sharers.size(), n.holders.size());
    for (int64_t id : n.sharers) {
        const bool holds = std::find(n.holders.begin(), n.holders.end(), id) != n.holders.end();
        ImGui::TextColored(ImColor(requestColor(id)), "  %s%s", labelOf(kv, id).c_str(), holds ? "  (holding)" : "");
    }
    for (int64_t id : n.holders)
        if (std::find(n.sharers.begin(), n.sharers.end(), id) == n.sharers.end())
            ImGui::TextColored(ImColor(requestColor(id)), "  %s  (holding)", labelOf(kv, id).c_str());
    ImGui::EndChild();
}

}  // namespace gb::ui
