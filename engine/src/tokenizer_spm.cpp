// SentencePiece-style BPE with scores (tokenizer.ggml.model = "llama"), as
// llama.cpp's llm_tokenizer_spm: start from UTF-8 characters, repeatedly merge
// the adjacent pair whose concatenation is the highest-scoring token, then
// fall back to <0xXX> byte tokens for pieces that are not in the vocabulary.
#include "tokenizer_impl.h"

#include <queue>

namespace gb::tok {

namespace {

struct Symbol {
    int    prev;
    int    next;
    size_t offset;  // into the fragment text
    size_t n;       // bytes; 0 once merged into its left neighbour
};

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
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (size_t offs = 0; offs < text.size();) {
        // NOTE: lengths come from the lead byte only, as in llama.cpp, so
        // invalid UTF-8 still forms (possibly odd) symbols.
        const size_t n = std::min(unicode::utf8_len(uint8_t(text[offs])), text.size() - offs);
        const int index = int(symbols.size());
        symbols.push_back({index - 1, offs + n == text.size() ? -1 : index + 1, offs, n});
        offs += n;
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_add = [&](int left, int right) {
        if (left == -1 || right == -1) return;
        const size_t size = symbols[left].n + symbols[right].n;
        const Token id = vocab.find(text.substr(symbols[left].offset, size));
        if (id < 0) return;
        queue.push({left, right, vocab.score[id], size});
    };
    for (int i = 1; i < int(symbols.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol & left = symbols[b.left];
        Symbol & right = symbols[b.right];
        // Skip pairs whose symbols changed since the pair was queued.
        if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
        left.n += right.n;
        right.n = 0;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }

    if (symbols.empty()) return;
    for (int i = 0; i != -1; i = symbols[i].next) {
        const Symbol & s = symbols[i];
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
