// SentencePiece-style BPE with scores (tokenizer.ggml.model = "llama"), as
// llama.cpp's llm_tokenizer_spm: start from UTF-8 characters, repeatedly merge
// the adjacent pair whose concatenation is the highest-scoring token, then
// fall back to <0xXX> byte tokens for pieces that are not in the vocabulary.
#include "tokenizer_impl.h"
#include "bigram_merge.h"

#include <queue>

namespace gb::tok {

namespace {

struct Bigram {
    int    left;
    int    right;
    float  score;
    size_t size;
};

// Highest score first; ties go to the leftmost pair.
struct BigramOrder {
    bool operator()(const Bigram & a, const Bigram & b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

void spm_encode(const Vocab & vocab, std::string_view text, std::vector<Token> & out) {
    std::vector<MergeSymbol> symbols;
    split_utf8_symbols(text, symbols);

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_add = [&](int left, int right) {
        if (left == -1 || right == -1) return;
        const size_t size = symbols[left].n + symbols[right].n;
        const Token id = vocab.find(text.substr(symbols[left].offset, size));
        if (id < 0) return;
        queue.push({left, right, vocab.score[id], size});
    };
    merge_bigrams(symbols, queue, try_add);

    if (symbols.empty()) return;
    for (int i = 0; i != -1; i = symbols[i].next) {
        const MergeSymbol & s = symbols[i];
        const std::string_view piece = text.substr(s.offset, s.n);
        const Token id = vocab.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        for (const char ch : piece) {
            const Token b = vocab.byte_token[uint8_t(ch)];
            out.push_back(b >= 0 ? b : vocab.unk);
        }
    }
}

}  // namespace gb::tok
