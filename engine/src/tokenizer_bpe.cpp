// Byte-level BPE with merge ranks (tokenizer.ggml.model = "gpt2"), as
// llama.cpp's llm_tokenizer_bpe: pre-tokenize into words, map bytes to the
// GPT-2 printable codepoints, then merge the lowest-ranked adjacent pair until
// none is left; each final piece is a token (or, failing that, single bytes).
#include "tokenizer_impl.h"
#include "bigram_merge.h"

#include <queue>

namespace gb::tok {

namespace {

struct Bigram {
    int     left;
    int     right;
    int32_t rank;
    size_t  size;
};

// Lowest rank first; ties go to the leftmost pair.
struct BigramOrder {
    bool operator()(const Bigram & a, const Bigram & b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

void encode_word(const Vocab & vocab, std::string_view word, std::vector<Token> & out) {
    std::vector<MergeSymbol> symbols;
    if (vocab.ignore_merges && vocab.find(word) >= 0) {
        symbols.push_back({-1, -1, 0, word.size()});
    } else {
        split_utf8_symbols(word, symbols);
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_add = [&](int left, int right) {
        if (left == -1 || right == -1) return;
        const MergeSymbol & l = symbols[left];
        const MergeSymbol & r = symbols[right];
        const int32_t rank = vocab.find_rank(word.substr(l.offset, l.n), word.substr(r.offset, r.n));
        if (rank < 0) return;
        queue.push({left, right, rank, l.n + r.n});
    };
    merge_bigrams(symbols, queue, try_add);

    for (const MergeSymbol & s : symbols) {
        if (s.n == 0) continue;
        const std::string_view piece = word.substr(s.offset, s.n);
        const Token id = vocab.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        // Not a token: try each byte of the encoded piece on its own (llama.cpp
        // drops bytes that are not tokens either).
        for (size_t j = 0; j < piece.size(); ++j) {
            const Token b = vocab.find(piece.substr(j, 1));
            if (b >= 0) out.push_back(b);
        }
    }
}

}  // namespace

void bpe_encode(const Vocab & vocab, std::string_view text, std::vector<Token> & out) {
    for (const std::string & word : unicode::pre_tokenize(text, vocab.pre, true)) encode_word(vocab, word, out);
}

}  // namespace gb::tok
