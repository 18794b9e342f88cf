// Best-first merging of adjacent symbols, shared by the SPM and BPE tokenizers
// (llama.cpp's llm_tokenizer_spm / llm_tokenizer_bpe): symbols form a linked
// list over the text; a priority queue holds candidate pairs; the best pair
// is merged and its new neighbours are queued, until no pair can merge.
#pragma once

#include "unicode.h"

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

namespace gb::tok {

struct MergeSymbol {
    int    prev;
    int    next;
    size_t offset;  // into the text
    size_t n;       // bytes; 0 once merged into its left neighbour
};

// One symbol per UTF-8 character. NOTE: lengths come from the lead byte only,
// as in llama.cpp, so invalid UTF-8 still forms (possibly odd) symbols.
inline void split_utf8_symbols(std::string_view text, std::vector<MergeSymbol> & symbols) {
    symbols.reserve(symbols.size() + text.size());
    for (size_t offs = 0; offs < text.size();) {
        const size_t n = std::min(unicode::utf8_len(uint8_t(text[offs])), text.size() - offs);
        const int index = int(symbols.size());
        symbols.push_back({index - 1, offs + n == text.size() ? -1 : index + 1, offs, n});
        offs += n;
    }
}

// Queue: a priority queue of pairs with fields left, right, size (bytes of
// the pair when queued). try_add(left, right) queues the pair if it may merge.
template <typename Queue, typename TryAdd>
void merge_bigrams(std::vector<MergeSymbol> & symbols, Queue & queue, TryAdd && try_add) {
    for (int i = 1; i < int(symbols.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
        const auto b = queue.top();
        queue.pop();
        MergeSymbol & left = symbols[b.left];
        MergeSymbol & right = symbols[b.right];
        // NOTE: symbols start at fixed offsets and only grow, so an unchanged
        // total size means an unchanged pair text (llama.cpp compares strings);
        // pairs whose symbols changed since they were queued are skipped.
        if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
        left.n += right.n;
        right.n = 0;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }
}

}  // namespace gb::tok
