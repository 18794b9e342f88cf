// Method 2, prompt lookup: the last n tokens (n from ngram_max down to
// ngram_min) are searched in the prompt and the conversation so far; the tokens
// that followed each match (most recent first) become draft branches, merged
// into a token tree when they diverge (max_branches distinct continuations).
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
        int32_t branches = 0;
        for (int32_t ng = std::min<int64_t>(m_ngram_max, n - 1); ng >= m_ngram_min && branches < m_max_branches; --ng) {
            const Token * key = t.data() + (n - ng);
            // Most recent match first; a match must be followed by at least one token.
            for (int64_t i = n - ng - 1; i >= 0 && branches < m_max_branches; --i) {
                if (t[size_t(i)] != key[0] || !std::equal(key, key + ng, t.data() + i)) continue;
                const int64_t b = i + ng;
                const int64_t e = std::min<int64_t>(b + max_len, n);
                if (b >= e) continue;
                if (out.add_branch(t.subspan(size_t(b), size_t(e - b))) > 0) ++branches;
            }
        }
        return {};
    }

  private:
    int32_t m_ngram_min, m_ngram_max, m_max_branches;
};

}  // namespace

std::unique_ptr<Speculator> make_prompt_lookup_speculator(const SpecConfig & cfg) {
    return std::make_unique<PromptLookupSpeculator>(cfg);
}

}  // namespace gb
