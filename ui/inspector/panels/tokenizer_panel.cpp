// Tokenizer playground drawing.
#include "tokenizer_panel.h"

#include <imgui_stdlib.h>

#include <algorithm>

namespace gb::ui {

namespace {
const ImU32 kChipColors[] = {IM_COL32(60, 90, 140, 255), IM_COL32(110, 70, 120, 255), IM_COL32(60, 110, 90, 255),
                             IM_COL32(130, 95, 50, 255)};

size_t utf8Length(const std::string & s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

const char * attrName(TokenAttr a) {
    switch (a) {
    case TokenAttr::Normal: return "normal";
    case TokenAttr::Control: return "control";
    case TokenAttr::UserDefined: return "user defined";
    case TokenAttr::Unknown: return "unknown";
    case TokenAttr::Byte: return "byte";
    case TokenAttr::Unused: return "unused";
    }
    return "?";
}
}  // namespace

TokenizerPanel::TokenizerPanel()
    : m_text("Hello, world! Glassbox shows how text becomes tokens:\n"
             "  indentation, numbers like 1234567, emoji-free ünïcödé, and <start_of_turn>user.") {}

void TokenizerPanel::encode(const Tokenizer & tok) {
    m_tokens = tok.encode(m_text, m_addBos, m_parseSpecial);
    m_pieces.clear();
    m_pieces.reserve(m_tokens.size());
    m_idList.clear();
    for (size_t i = 0; i < m_tokens.size(); ++i) {
        m_pieces.push_back(visibleTokenText(tok.token_to_piece(m_tokens[i], true), 48, true));
        if (i) m_idList += ", ";
        m_idList += std::to_string(m_tokens[i]);
    }
    m_dirty = false;
}

void TokenizerPanel::draw(const InspectorSnapshot & snap) {
    const std::shared_ptr<const Tokenizer> tok = snap.model ? snap.model->tokenizer : nullptr;
    if (!tok) {
        if (snap.model) ImGui::TextColored(ImVec4(1, 0.5f, 0.4f, 1), "No tokenizer: %s", snap.model->tokenizerError.c_str());
        else ImGui::TextDisabled("No model loaded: the playground uses the model's tokenizer.");
        return;
    }
    m_dirty |= ImGui::InputTextMultiline("##text", &m_text, ImVec2(-1, ImGui::GetTextLineHeight() * 5 + 8));
    m_dirty |= ImGui::Checkbox("add BOS", &m_addBos);
    ImGui::SameLine();
    m_dirty |= ImGui::Checkbox("parse special tokens", &m_parseSpecial);
    ImGui::SameLine();
    ImGui::Checkbox("show ids", &m_showIds);
    if (m_dirty || m_encodedWith != tok) {
        encode(*tok);
        m_encodedWith = tok;
    }
    ImGui::Text("%zu tokens   %zu characters   %zu bytes   %.2f bytes/token", m_tokens.size(), utf8Length(m_text),
                m_text.size(), m_tokens.empty() ? 0.0 : double(m_text.size()) / double(m_tokens.size()));

    const float ids_h = ImGui::GetTextLineHeight() * 3 + 8;
    ImGui::BeginChild("##chips", ImVec2(0, std::max(ImGui::GetContentRegionAvail().y - ids_h - 8, 80.0f)), true);
    drawChips(*tok);
    ImGui::EndChild();
    ImGui::InputTextMultiline("##ids", &m_idList, ImVec2(-1, ids_h), ImGuiInputTextFlags_ReadOnly);
}

void TokenizerPanel::drawChips(const Tokenizer & tok) {
    // Wrapped flow layout: each token a rounded chip with its piece (or id);
    // a chip starts a new line when the next one would not fit.
    ImDrawList * dl = ImGui::GetWindowDrawList();
    const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
    const float pad = 4.0f, gap = 2.0f;
    const float line_h = ImGui::GetTextLineHeight() + 2 * pad;
    const size_t n = std::min(m_tokens.size(), kMaxChips);
    std::string id_label;
    auto label_of = [&](size_t i) -> const char * {
        if (!m_showIds) return m_pieces[i].c_str();
        id_label = std::to_string(m_tokens[i]);
        return id_label.c_str();
    };
    for (size_t i = 0; i < n; ++i) {
        const char * label = label_of(i);
        const float w = ImGui::CalcTextSize(label).x + 2 * pad;
        const ImVec2 p0 = ImGui::GetCursorScreenPos();
        ImGui::PushID(int(i));
        ImGui::InvisibleButton("##chip", ImVec2(w, line_h));
        ImGui::PopID();
        if (ImGui::IsItemVisible()) {
            const bool hovered = ImGui::IsItemHovered();
            dl->AddRectFilled(p0, ImVec2(p0.x + w, p0.y + line_h), hovered ? IM_COL32(200, 160, 60, 255) : kChipColors[i % 4],
                              3.0f);
            dl->AddText(ImVec2(p0.x + pad, p0.y + pad), IM_COL32(235, 235, 235, 255), label);
            if (hovered) {
                const Token id = m_tokens[i];
                std::string hex;
                for (unsigned char c : tok.token_to_piece(id, true)) {
                    char b[4];
                    std::snprintf(b, sizeof b, "%02X ", c);
                    hex += b;
                }
                ImGui::BeginTooltip();
                ImGui::Text("token %zu: id %d (%s)", i, id, attrName(tok.attr(id)));
                ImGui::Text("piece: '%s'", m_pieces[i].c_str());
                ImGui::Text("vocab: '%s'", visibleTokenText(tok.text(id), 64).c_str());
                ImGui::Text("bytes: %s", hex.c_str());
                ImGui::EndTooltip();
            }
        }
        if (i + 1 < n) {
            const float next_w = ImGui::CalcTextSize(label_of(i + 1)).x + 2 * pad;
            if (ImGui::GetItemRectMax().x + gap + next_w < right) ImGui::SameLine(0, gap);
        }
    }
    if (m_tokens.size() > n) ImGui::TextDisabled("... %zu more tokens (see the id list)", m_tokens.size() - n);
}

}  // namespace gb::ui
