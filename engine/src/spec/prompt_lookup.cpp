// Method 2, prompt lookup: earlier occurrences of the sequence's last tokens
// in the prompt and the conversation so far (generated text included). Every
// position that matches at least ngram_min trailing tokens is a candidate;
// candidates are ranked by the length of the match (longest suffix first, up
// to max(ngram_max, 32) tokens), then by recency, and the tokens that followed
// the best max_branches distinct ones become draft branches, merged into a
// token tree where they share a prefix (alternatives to the best one are
// drafted a third as deep). A continuation that reaches the end
// of the sequence repeats with the match's period. The draft's class (Draft::cls,
// acceptance kept per class by the controller): 0-3 by match length, 6 / 7 for
// 1- / 2-token matches whose other occurrences were followed by other tokens.
// Draft::first_p: the share of the match's occurrences that went on with the
// drafted token.
#include "glassbox/spec/speculator.h"

#include <algorithm>

namespace gb {
namespace {

class PromptLookupSpeculator final : public Speculator {
  public:
    explicit PromptLookupSpeculator(const SpecConfig & cfg)
        : m_ngram_min(std::max(1, cfg.ngram_min)), m_ngram_max(std::max(std::max(1, cfg.ngram_min), cfg.ngram_max)),
          m_max_branches(std::max(1, cfg.max_branches)) {}
    const char * name() const override { return "lookup"; }

    Status propose(std::span<const Token> t, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        const int64_t n = int64_t(t.size());
        if (n < 2 || max_len <= 0) return {};
        const int64_t cap = std::max<int64_t>(m_ngram_max, kLongest);
        // Candidates: end positions e (t[e] == t[n - 1], e < n - 1) with their
        // match length, the number of equal tokens going backwards.
        m_cand.clear();
        const Token last = t[size_t(n - 1)];
        for (int64_t e = n - 2; e >= 0; --e) {
            if (t[size_t(e)] != last) continue;
            int64_t len = 1;
            while (len < cap && e - len >= 0 && t[size_t(e - len)] == t[size_t(n - 1 - len)]) ++len;
            if (len >= m_ngram_min) m_cand.push_back({len, e});
        }
        // longest match first; among equals the most recent (stable: e descending)
        std::stable_sort(m_cand.begin(), m_cand.end(), [](const Cand & a, const Cand & b) { return a.len > b.len; });
        // The continuation of a match near the end runs into the tokens being
        // guessed: it goes on with the period p = n - 1 - end (a repeat).
        int32_t branches = 0;
        std::vector<Token> seq;
        for (const Cand & c : m_cand) {
            if (branches >= m_max_branches) break;
            const int64_t p = n - 1 - c.end;
            seq.clear();
            // The best match drafts max_len tokens; the others are alternatives
            // at a divergence and rarely taken far: a third of that (each node
            // costs a row of the target's forward pass).
            const int64_t len = branches == 0 ? max_len : std::max<int64_t>(2, max_len / 3);
            for (int64_t j = 0; j < len; ++j) {
                int64_t idx = c.end + 1 + j;
                while (idx >= n) idx -= p;
                seq.push_back(t[size_t(idx)]);
            }
            if (out.add_branch(seq) > 0) {
                // the draft's class: how long a suffix the best candidate matched
                if (branches == 0) out.cls = c.len >= 6 ? 3 : c.len >= 3 ? 2 : c.len >= 2 ? 1 : 0;
                // a 1- or 2-token match whose other occurrences went on differently
                // is a weaker guess than one whose occurrences agree: classes 6 / 7
                // (4 and 5 are lookahead's), so the controller keeps their
                // acceptance apart (edit-code: 67% vs 20% first-token acceptance)
                if (branches == 0 && c.len <= 2) {
                    const Token next = t[size_t(c.end + 1)];
                    const bool split = std::any_of(m_cand.begin(), m_cand.end(), [&](const Cand & o) { return t[size_t(o.end + 1)] != next; });
                    if (split) out.cls = c.len == 1 ? kClassSplit1 : kClassSplit2;
                }
                ++branches;
            }
        }
        if (!out.empty()) {
            // The first token's own odds: of the earlier occurrences matching
            // as long a suffix as the best one, the share followed by the
            // drafted first token, Laplace-smoothed (one occurrence: 0.75).
            // Not the tree's alternatives: counting every continuation seen
            // as covered made a 3-way split look certain (a novel token is
            // common there) and its 20-node tree the plan.
            const int64_t best_len = m_cand.front().len;
            int64_t n_sel = 0, agree = 0;
            for (const Cand & c : m_cand) {
                if (c.len < best_len) break;  // sorted: longest first
                ++n_sel;
                if (t[size_t(c.end + 1)] == out.tokens[0]) ++agree;
            }
            out.first_p = float((double(agree) + 0.5) / (double(n_sel) + 1.0));
        }
        return {};
    }

  private:
    static constexpr int64_t kLongest = 32;
    static constexpr int32_t kClassSplit1 = 6, kClassSplit2 = 7;
    struct Cand {
        int64_t len, end;
    };
    int32_t m_ngram_min, m_ngram_max, m_max_branches;
    std::vector<Cand> m_cand;
};

}  // namespace

std::unique_ptr<Speculator> make_prompt_lookup_speculator(const SpecConfig & cfg) {
    return std::make_unique<PromptLookupSpeculator>(cfg);
}

}  // namespace gb
