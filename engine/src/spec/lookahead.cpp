// Method 3, lookahead decoding (Fu et al. 2024, "Break the Sequential
// Dependency of LLM Inference Using Lookahead Decoding"): no draft model.
//  - Lookahead branch: a 2-D window of W positions x (N - 1) levels of a Jacobi
//    trajectory, decoded every step in the same forward pass as the
//    verification branch (as aux nodes of the token tree). Level l, column i
//    guesses the token at offset l + i + 1 after the pending token; its parent
//    is (l - 1, i) (level 0: (0, i - 1), column 0 of level 0: the pending
//    token), so each node attends to the oldest level up to its column and
//    then its own column's trajectory: exactly the paper's lookahead mask. The
//    target's argmax after each last-level node is the next Jacobi iterate;
//    the window then drops its oldest level and appends that one.
//  - N-gram pool: each column gives an N-gram (its N - 1 window tokens + the
//    new iterate), keyed by its first token; also the committed text's
//    n-grams (and the prompt's, lookahead_seed_prompt) and the n-grams of the
//    rejected verification tail with the target's outputs along it.
//  - Verification branch: up to G pool n-grams starting with the pending
//    token, merged into a token tree and checked in the same pass (none in
//    the pool: the window's first column, a Jacobi guess chain).
//  - Text n-grams of any length (lookahead_seed_prompt): the pool's n-grams
//    from the prompt and the committed text are at most N - 1 tokens long and
//    keyed by one token, which ranks them poorly; so the text part of the
//    pool is searched as prompt lookup does (longest suffix match, full
//    draft depth) and its continuations come first in the tree, the Jacobi
//    pool's n-grams after them. The draft's class (Draft::cls) tells the
//    controller which source led: prompt lookup's classes 0-3 (match
//    length), 4 = pool n-grams only, 5 = the window's first column.
// As in the paper, the window is not re-aligned when a step accepts several
// tokens (its guesses are only guesses); the first N - 2 steps fill it.
#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <deque>
#include <random>
#include <unordered_map>

namespace gb {
namespace {

class LookaheadSpeculator final : public Speculator {
  public:
    explicit LookaheadSpeculator(const SpecConfig & cfg)
        : m_window(std::max(1, cfg.lookahead_window)), m_n(std::max(2, cfg.lookahead_ngram)),
          m_candidates(std::max(1, cfg.lookahead_candidates)), m_seed_prompt(cfg.lookahead_seed_prompt) {
        if (m_seed_prompt) {
            SpecConfig text = cfg;
            text.max_branches = std::max(1, cfg.lookahead_candidates);
            m_text = make_prompt_lookup_speculator(text);
        }
    }
    const char * name() const override { return "lookahead"; }

    void reset() override {
        m_levels.clear();
        m_window_sent = false;
        m_seeded = false;
        // The pool survives requests: n-grams of earlier turns stay useful.
    }

    Status propose(std::span<const Token> t, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        m_window_sent = false;
        if (t.empty()) return {};
        if (!m_seeded) {
            if (m_seed_prompt) {
                for (size_t j = size_t(m_n) - 1; j < t.size(); ++j) add_ngram(t.subspan(j + 1 - size_t(m_n), size_t(m_n)));
            }
            m_seeded = true;
            m_added_until = t.size();
        }
        if (m_levels.empty()) init_window(t);

        // Text n-grams by longest suffix match (full depth), then the pool's.
        if (m_text) {
            GB_TRY_STATUS(m_text->propose(t, max_len, out, nullptr));
            out.aux_tokens.clear();
            out.aux_parent.clear();
            out.aux_output.clear();
        }
        const bool from_text = !out.empty();
        // Verification branch: pool n-grams that continue the pending token.
        auto it = m_pool.find(t.back());
        if (it != m_pool.end()) {
            int32_t branches = 0;
            for (const std::vector<Token> & cont : it->second) {
                if (branches >= m_candidates) break;
                const size_t len = std::min(cont.size(), size_t(std::max(0, max_len)));
                if (len > 0 && out.add_branch(std::span<const Token>(cont.data(), len)) > 0) ++branches;
            }
            if (!from_text && !out.empty()) out.cls = 4;
        }

        // No pool n-gram: the window's first column (a chain of Jacobi guesses for
        // offsets 1 .. levels) is the candidate (its nodes are then decoded twice).
        const int32_t n_levels = int32_t(m_levels.size());
        if (out.empty()) {
            std::vector<Token> col;
            for (int32_t l = 0; l < n_levels && l < max_len; ++l) col.push_back(m_levels[size_t(l)][0]);
            out.add_branch(col);
            out.cls = 5;  // a Jacobi guess chain, not a pool n-gram: its own acceptance class
        }

        // Lookahead branch: level by level (parents first), outputs of the last level.
        for (int32_t l = 0; l < n_levels; ++l) {
            for (int32_t i = 0; i < m_window; ++i) {
                const int32_t parent = l == 0 ? (i == 0 ? -1 : aux_index(0, i - 1)) : aux_index(l - 1, i);
                out.add_aux(parent, m_levels[size_t(l)][size_t(i)], l == n_levels - 1);
            }
        }
        m_window_sent = true;
        return {};
    }

    void observe(const SpecObservation & obs) override {
        const std::span<const Token> t = obs.tokens;
        // n-grams of the committed text that end in the new tokens
        for (size_t j = std::max(m_added_until, size_t(m_n) - 1); j < t.size(); ++j) {
            add_ngram(t.subspan(j + 1 - size_t(m_n), size_t(m_n)));
        }
        m_added_until = t.size();
        // The rejected verification tail: chain = committed (without the new
        // pending token) + tail; the target's output after tail[i] ends an n-gram.
        if (!obs.tail_tokens.empty()) {
            std::vector<Token> chain(t.begin(), t.end() - 1);
            const size_t base = chain.size();
            chain.insert(chain.end(), obs.tail_tokens.begin(), obs.tail_tokens.end());
            std::vector<Token> g(size_t(m_n), 0);
            for (size_t i = 0; i < obs.tail_tokens.size(); ++i) {
                const size_t c = base + i;  // chain index of tail[i]
                if (c + 2 < size_t(m_n)) continue;
                std::copy(chain.begin() + long(c + 2 - size_t(m_n)), chain.begin() + long(c + 1), g.begin());
                g.back() = obs.tail_next[i];
                add_ngram(g);
            }
        }
        // Jacobi step of the window.
        const int32_t n_levels = int32_t(m_levels.size());
        if (!m_window_sent || n_levels == 0 || obs.aux_next.size() != size_t(n_levels) * size_t(m_window)) return;
        m_window_sent = false;
        std::vector<Token> next(static_cast<size_t>(m_window));
        for (int32_t i = 0; i < m_window; ++i) {
            const Token x = obs.aux_next[size_t(aux_index(n_levels - 1, i))];
            if (x < 0) return;  // not computed: keep the window as it is
            next[size_t(i)] = x;
        }
        if (n_levels + 1 < m_n) {  // warm-up: one more level
            m_levels.push_back(std::move(next));
            return;
        }
        std::vector<Token> g(static_cast<size_t>(m_n));
        for (int32_t i = 0; i < m_window; ++i) {
            for (int32_t l = 0; l < n_levels; ++l) g[size_t(l)] = m_levels[size_t(l)][size_t(i)];
            g.back() = next[size_t(i)];
            add_ngram(g);
        }
        m_levels.erase(m_levels.begin());
        m_levels.push_back(std::move(next));
    }

  private:
    int32_t aux_index(int32_t level, int32_t col) const { return level * m_window + col; }

    // Level 0: W tokens drawn from the context (the paper starts from random
    // tokens of the prompt); a fixed seed keeps runs reproducible.
    void init_window(std::span<const Token> t) {
        std::mt19937 rng(uint32_t(t.size()) * 2654435761u + 17u);
        std::vector<Token> level(static_cast<size_t>(m_window));
        for (Token & x : level) x = t[rng() % t.size()];
        m_levels.push_back(std::move(level));
    }

    void add_ngram(std::span<const Token> g) {
        std::deque<std::vector<Token>> & list = m_pool[g[0]];
        std::vector<Token> cont(g.begin() + 1, g.end());
        auto it = std::find(list.begin(), list.end(), cont);
        if (it != list.end()) list.erase(it);
        list.push_front(std::move(cont));  // most recent first
        if (list.size() > kPerKey) list.pop_back();
    }

    static constexpr size_t kPerKey = 8;
    int32_t m_window, m_n, m_candidates;
    bool    m_seed_prompt;
    std::unique_ptr<Speculator> m_text;  // longest-suffix search of the prompt + committed text
    bool    m_seeded = false;
    bool    m_window_sent = false;  // the last propose() sent the window as aux nodes
    size_t  m_added_until = 0;
    std::unordered_map<Token, std::deque<std::vector<Token>>> m_pool;
    std::vector<std::vector<Token>> m_levels;  // [level][column], oldest level first, 1 .. N - 1 levels
};

}  // namespace

std::unique_ptr<Speculator> make_lookahead_speculator(const SpecConfig & cfg) {
    return std::make_unique<LookaheadSpeculator>(cfg);
}

}  // namespace gb
