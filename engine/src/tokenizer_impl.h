// Tokenizer internals: the vocabulary as plain vectors (what GGUF's
// tokenizer.ggml.* keys hold), the built Vocab with its lookup maps, and the
// SPM / BPE encoders. Follows llama.cpp's llama-vocab.cpp token for token.
#pragma once

#include "glassbox/tokenizer.h"
#include "unicode.h"

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gb::tok {

// Everything a tokenizer is built from, as stored under tokenizer.ggml.*.
// Optional fields are absent keys: llama.cpp's defaults then apply.
struct VocabData {
    std::string              model;   // "llama" (SPM) or "gpt2" (byte-level BPE)
    std::string              pre;     // pre-tokenizer name (BPE only)
    std::vector<std::string> tokens;
    std::vector<float>       scores;  // empty: all 0
    std::vector<int32_t>     types;   // empty: all normal (1)
    std::vector<std::string> merges;  // "left right" (BPE only)

    std::optional<int64_t> bos, eos, eot, eom, unk, sep, pad, mask;
    std::optional<int64_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    std::optional<bool>    add_bos, add_eos, add_space_prefix;
};

// Reads the tokenizer.ggml.* keys of a GGUF file.
Result<VocabData> read_vocab_data(const gguf::File & file);

// Token attribute bits, as llama.cpp's llama_token_attr (several may be set).
enum AttrBit : uint16_t {
    k_attr_unknown      = 1 << 0,
    k_attr_unused       = 1 << 1,
    k_attr_normal       = 1 << 2,
    k_attr_control      = 1 << 3,
    k_attr_user_defined = 1 << 4,
    k_attr_byte         = 1 << 5,
};

enum class VocabType { Spm, Bpe };

// A byte trie over the special-token texts: finds, in one pass over a text,
// which of them occur at all, so encoding skips the thousands that do not.
class SpecialTrie {
  public:
    // texts[i] is given index i; texts must be non-empty strings.
    void build(const std::vector<std::string_view> & texts);
    // Sets seen[i] for every texts[i] that occurs in text.
    void mark_occurring(std::string_view text, std::vector<bool> & seen) const;

  private:
    struct Node {
        uint32_t edge_begin = 0, edge_end = 0;
        int32_t  text_index = -1;  // a text ends here
    };
    struct Edge {
        uint8_t  byte;
        uint32_t child;
    };
    uint32_t build_node(const std::vector<std::pair<std::string_view, int32_t>> & sorted, size_t lo, size_t hi, size_t depth);
    std::vector<Node> m_nodes;
    std::vector<Edge> m_edges;
};

struct Vocab {
    VocabType               type = VocabType::Spm;
    unicode::PreTokenizer   pre = unicode::PreTokenizer::Gpt2;
    bool                    ignore_merges = false;  // llama3: a word that is a token skips merging
    bool                    add_space_prefix = true;
    bool                    add_bos = false;
    bool                    add_eos = false;

    std::vector<std::string> text;   // per token; views below point into these
    std::vector<float>       score;
    std::vector<uint16_t>    attr;   // AttrBit mask
    std::unordered_map<std::string_view, Token> token_to_id;
    std::unordered_map<std::string, int32_t>    bpe_ranks;  // key: bpe_rank_key(left, right)
    Token byte_token[256];           // SPM byte fallback (<0xXX>), -1 if none

    Token bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
    std::vector<Token> special_tokens;  // control / user-defined / unknown, longest text first
    std::vector<int32_t> special_text_index;  // per special_tokens entry: its text's index in special_trie
    SpecialTrie        special_trie;
    std::vector<bool>  eog;

    Token find(std::string_view s) const {
        const auto it = token_to_id.find(s);
        return it == token_to_id.end() ? -1 : it->second;
    }
    int32_t find_rank(std::string_view left, std::string_view right) const;
    static std::string bpe_rank_key(std::string_view left, std::string_view right);
};

// Encodes one text fragment (no special tokens inside) and appends the ids.
// SPM: the text must already have spaces escaped to U+2581.
void spm_encode(const Vocab & vocab, std::string_view text, std::vector<Token> & out);
void bpe_encode(const Vocab & vocab, std::string_view text, std::vector<Token> & out);

// The Tokenizer over a built Vocab. warnings(): non-fatal issues met while
// building (unknown pre-tokenizer, bad special ids, ...).
class VocabTokenizer final : public Tokenizer {
  public:
    static Result<std::shared_ptr<const VocabTokenizer>> build(VocabData data);

    std::vector<Token> encode(std::string_view text, bool add_bos, bool parse_special) const override;
    std::string token_to_piece(Token id, bool render_special) const override;
    int32_t n_vocab() const override { return int32_t(m_vocab.text.size()); }
    Token bos() const override { return m_vocab.bos; }
    Token eos() const override { return m_vocab.eos; }
    Token eot() const override { return m_vocab.eot; }
    bool  add_bos() const override { return m_vocab.add_bos; }
    bool  is_eog(Token id) const override;
    TokenAttr attr(Token id) const override;
    const std::string & text(Token id) const override;

    const Vocab & vocab() const { return m_vocab; }
    const std::vector<std::string> & warnings() const { return m_warnings; }

  private:
    struct Fragment {
        Token  token;   // -1 for raw text
        size_t offset;  // raw text range
        size_t length;
    };
    std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

    Vocab m_vocab;
    std::vector<std::string> m_warnings;
};

}  // namespace gb::tok
