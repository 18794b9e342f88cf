// Tokens panel drawing.
#include "tokens_panel.h"

#include <algorithm>
#include <cmath>

namespace gb::ui {

std::string tokenPieceForDisplay(const Tokenizer * tok, Token id) {
    if (tok && id >= 0 && id < tok->n_vocab()) return visibleTokenText(tok->token_to_piece(id, true), 32);
    char buf[24];
    std::snprintf(buf, sizeof buf, "#%d", id);
    return buf;
}

void TokensPanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const RequestTrace> r = m_picker.draw(snap);
    if (!r) {
        ImGui::TextDisabled("No tokens yet: each generated token appears here with its alternatives.");
        return;
    }
    const Tokenizer * tok = snap.model ? snap.model->tokenizer.get() : nullptr;
    const TokenStats & s = r->tokenStats;
    ImGui::SameLine();
    ImGui::Checkbox("Follow newest", &m_followNewest);

    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%zu tokens   mean p %.3f   perplexity %.3g   mean entropy %.3f nats   sampled %zu  draft accepted %zu  "
                  "corrected %zu  bonus %zu",
                  s.nTokens, s.meanProb, s.perplexity, s.meanEntropy, s.byOrigin[0], s.byOrigin[1], s.byOrigin[2],
                  s.byOrigin[3]);
    ImGui::TextUnformatted(buf);

    // Probability of each chosen token (lowest per pixel column, so doubtful
    // tokens stand out) and the entropy, over the whole reply.
    const TokenHistory & tokens = r->tokens;
    const float width = std::max(ImGui::GetContentRegionAvail().x, 100.0f);
    const float half = (width - ImGui::GetStyle().ItemSpacing.x) * 0.5f;
    ImGui::BeginGroup();
    ImGui::TextDisabled("Probability of the chosen token");
    const int64_t hovered = drawSeries("##prob", tokens.size(), [&tokens](size_t i) { return std::exp(double(tokens[i].logprob)); },
                                       ImVec2(half, 70.0f), 1.0, "", {}, IM_COL32(120, 200, 140, 255), &m_probColumns, r);
    ImGui::EndGroup();
    ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::TextDisabled("Entropy (nats, top-k lower bound)");
    const double max_h = s.maxEntropy;
    drawSeries("##entropy", tokens.size(), [&tokens](size_t i) { return double(tokens[i].entropy); },
               ImVec2(half, 70.0f), max_h > 0 ? max_h * 1.05 : 1.0, "nats", {}, IM_COL32(200, 150, 230, 255),
               &m_entropyColumns, r);
    ImGui::EndGroup();
    if (hovered >= 0 && ImGui::IsMouseClicked(ImGuiMouseButton_Left)) m_followNewest = false;

    drawTable(*r, tok);
}

void TokensPanel::drawTable(const RequestTrace & r, const Tokenizer * tok) {
    const TokenHistory & tokens = r.tokens;
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("##tokens", 8, flags, ImVec2(0, std::max(ImGui::GetContentRegionAvail().y, 120.0f)))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    const std::string widest = std::to_string(tokens.size());
    ImGui::TableSetupColumn("#", ImGuiTableColumnFlags_WidthFixed, ImGui::CalcTextSize(widest.c_str()).x + 4.0f);
    ImGui::TableSetupColumn("token", ImGuiTableColumnFlags_WidthFixed, 120.0f);
    ImGui::TableSetupColumn("id", ImGuiTableColumnFlags_WidthFixed, ImGui::CalcTextSize("0000000").x);
    ImGui::TableSetupColumn("p", ImGuiTableColumnFlags_WidthFixed, 90.0f);
    ImGui::TableSetupColumn("logprob");
    ImGui::TableSetupColumn("entropy");
    ImGui::TableSetupColumn("origin");
    ImGui::TableSetupColumn("top alternatives", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();

    ImGuiListClipper clipper;
    clipper.Begin(int(std::min<size_t>(tokens.size(), size_t(INT32_MAX))));
    while (clipper.Step()) {
        for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
            const TokenSample & t = tokens[size_t(i)];
            const double p = std::exp(double(t.logprob));
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::Text("%d", i);
            ImGui::TableNextColumn();
            const std::string text = visibleTokenText(t.text.empty() && tok ? tok->token_to_piece(t.id, true) : t.text, 32);
            ImGui::TextUnformatted(text.c_str());
            ImGui::TableNextColumn();
            ImGui::Text("%d", t.id);
            ImGui::TableNextColumn();
            {
                // A bar coloured by probability with the value on top.
                const ImVec2 c0 = ImGui::GetCursorScreenPos();
                const float w = ImGui::GetColumnWidth();
                const float h = ImGui::GetTextLineHeight();
                ImGui::GetWindowDrawList()->AddRectFilled(c0, ImVec2(c0.x + w * float(p), c0.y + h), probabilityColor(p, 110));
                ImGui::Text("%.4f", p);
            }
            ImGui::TableNextColumn();
            ImGui::Text("%.3f", double(t.logprob));
            ImGui::TableNextColumn();
            ImGui::Text("%.3f", double(t.entropy));
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(tokenOriginName(t.origin));
            ImGui::TableNextColumn();
            std::string alts;
            for (size_t k = 0; k < t.top.size() && alts.size() < 200; ++k) {
                char buf[96];
                std::snprintf(buf, sizeof buf, "%s'%s' %.3f", k ? "   " : "", tokenPieceForDisplay(tok, t.top[k].id).c_str(),
                              std::exp(double(t.top[k].logprob)));
                alts.append(buf);
            }
            ImGui::TextUnformatted(alts.empty() ? "-" : alts.c_str());
            if (!t.top.empty() && ImGui::IsItemHovered()) {
                ImGui::BeginTooltip();
                for (const TokenLogprob & a : t.top) {
                    const double pa = std::exp(double(a.logprob));
                    ImGui::ProgressBar(float(pa), ImVec2(120, 0), "");
                    ImGui::SameLine();
                    ImGui::Text("%.4f  '%s' (%d)%s", pa, tokenPieceForDisplay(tok, a.id).c_str(), a.id,
                                a.id == t.id ? "  <- chosen" : "");
                }
                ImGui::EndTooltip();
            }
        }
    }
    if (m_followNewest && tokens.size() != m_lastCount) ImGui::SetScrollHereY(1.0f);
    m_lastCount = tokens.size();
    if (ImGui::IsWindowHovered() && ImGui::GetIO().MouseWheel > 0) m_followNewest = false;
    ImGui::EndTable();
}

}  // namespace gb::ui
