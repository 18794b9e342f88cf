// Tokens panel: each generated token with its probability, entropy, origin and
// top-k alternatives; a probability strip over the whole reply; summary numbers.
#pragma once

#include "../inspector_panel.h"
#include "panel_util.h"

namespace gb::ui {

class TokensPanel : public InspectorPanel {
  public:
    const char * title() const override { return "Tokens"; }
    void draw(const InspectorSnapshot & snapshot) override;

  private:
    void drawTable(const RequestTrace & r, const Tokenizer * tok);
    RequestPicker m_picker;
    SeriesColumns m_probColumns;
    SeriesColumns m_entropyColumns;
    bool m_followNewest = true;
    size_t m_lastCount = 0;
};

// The piece of a token for display ("#id" when there is no tokenizer or the id is out of range).
std::string tokenPieceForDisplay(const Tokenizer * tok, Token id);

}  // namespace gb::ui
