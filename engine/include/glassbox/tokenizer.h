// Tokenizers built from GGUF vocab metadata: SentencePiece-style BPE with scores
// and byte fallback (tokenizer.ggml.model = "llama") and GPT-2 byte-level BPE
// with merges and a pre-tokenizer chosen by tokenizer.ggml.pre ("gpt2").
#pragma once

#include "glassbox/result.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gb {
namespace gguf { class File; }

using Token = int32_t;

enum class TokenAttr : uint8_t { Normal, Control, UserDefined, Unknown, Byte, Unused };

class Tokenizer {
  public:
    static Result<std::shared_ptr<const Tokenizer>> from_gguf(const gguf::File & file);
    virtual ~Tokenizer() = default;

    // add_bos: prepend BOS when the model's metadata asks for it.
    // parse_special: text like "<start_of_turn>" becomes the special token.
    virtual std::vector<Token> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;
    // Raw bytes of a token's text (may be a partial UTF-8 sequence). Control
    // tokens render as their text only when render_special is true.
    virtual std::string token_to_piece(Token id, bool render_special) const = 0;

    virtual int32_t n_vocab() const = 0;
    virtual Token bos() const = 0;     // -1 if none
    virtual Token eos() const = 0;     // -1 if none
    virtual Token eot() const = 0;     // end of turn, -1 if none
    virtual bool  add_bos() const = 0; // tokenizer.ggml.add_bos_token
    virtual bool  is_eog(Token id) const = 0;  // ends generation (EOS, EOT, ...)
    virtual TokenAttr attr(Token id) const = 0;
    virtual const std::string & text(Token id) const = 0;  // vocab string as stored
};

// Streaming detokenizer: feeds tokens, returns only complete UTF-8; invalid
// bytes become U+FFFD when they can no longer complete.
class StreamDecoder {
  public:
    explicit StreamDecoder(const Tokenizer & tok, bool render_special = false)
        : m_tok(&tok), m_render_special(render_special) {}
    std::string push(Token id);
    std::string flush();  // whatever is left, invalid tails replaced by U+FFFD

  private:
    const Tokenizer * m_tok;
    bool        m_render_special;
    std::string m_pending;
};

}  // namespace gb
