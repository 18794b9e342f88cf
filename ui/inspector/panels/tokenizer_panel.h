// Tokenizer playground: text in, the model's tokens out, drawn as chips at
// their boundaries with ids, plus counts and the id list for copying.
#pragma once

#include "../inspector_panel.h"
#include "panel_util.h"

#include <memory>
#include <string>
#include <vector>

namespace gb::ui {

class TokenizerPanel : public InspectorPanel {
  public:
    TokenizerPanel();
    const char * title() const override { return "Tokenizer"; }
    void draw(const InspectorSnapshot & snapshot) override;

    void setText(std::string text) { m_text = std::move(text); m_dirty = true; }
    const std::vector<Token> & tokens() const { return m_tokens; }

    static constexpr size_t kMaxChips = 4000;  // chips drawn; the id list has them all

  private:
    void encode(const Tokenizer & tok);
    void drawChips(const Tokenizer & tok);

    std::string m_text;
    bool m_addBos = true;
    bool m_parseSpecial = true;
    bool m_showIds = false;
    bool m_dirty = true;
    std::shared_ptr<const Tokenizer> m_encodedWith;
    std::vector<Token> m_tokens;
    std::vector<std::string> m_pieces;  // visible text per token
    std::string m_idList;
};

}  // namespace gb::ui
