// Method 3, lookahead decoding without a draft model (after Fu et al. 2024),
// in the form a plain causal Context allows:
//  - a Jacobi window of guesses for the positions after the pending token is
//    decoded behind the verification candidate in the same causal chain; the
//    target's outputs at the rejected positions are the next Jacobi iterate
//    (a causal mask gives exactly the Jacobi update for those positions);
//  - an n-gram pool keyed by first token collects (chain tokens, target output)
//    n-grams from those Jacobi trajectories, plus the committed text (and the
//    prompt, optionally);
//  - pool n-grams starting with the pending token are verified as a token tree.
// Missing against the paper: its 2-D lookahead branch (several Jacobi levels in
// one pass). It is a token tree (node (level l, offset i) has parent
// (l - 1, i - 1)), so decode_tree could run it, with an output-head row for
// every lookahead node; not built: this runs one Jacobi level per step, riding
// on the first verification branch (the pool candidates form the rest of the tree).
#include "glassbox/spec/speculator.h"

#include <algorithm>
#include <deque>
#include <unordered_map>

namespace gb {
namespace {

class LookaheadSpeculator final : public Speculator {
  public:
    explicit LookaheadSpeculator(const SpecConfig & cfg)
        : m_window(std::max(1, cfg.lookahead_window)), m_n(std::max(2, cfg.lookahead_ngram)),
          m_candidates(std::max(1, cfg.lookahead_candidates)), m_seed_prompt(cfg.lookahead_seed_prompt) {}
    const char * name() const override { return "lookahead"; }

    void reset() override {
        m_guess.clear();
        m_guess_at = 0;
        m_seeded = false;
        // The pool survives requests: n-grams of earlier turns stay useful.
    }

    Status propose(std::span<const Token> t, int32_t max_len, Draft & out, const std::atomic<bool> *) override {
        out.clear();
        if (t.empty()) return {};
        if (!m_seeded) {
            if (m_seed_prompt) {
                for (size_t j = size_t(m_n) - 1; j < t.size(); ++j) add_ngram(t.subspan(j + 1 - size_t(m_n), size_t(m_n)));
            }
            m_seeded = true;
            m_added_until = t.size();
        }
        if (m_guess_at != t.size() || m_guess.empty()) refill_guess(t, {});
        const Token pending = t.back();
        auto it = m_pool.find(pending);
        int32_t branches = 0;
        if (it != m_pool.end()) {
            for (const std::vector<Token> & cont : it->second) {
                if (branches >= m_candidates) break;
                std::vector<Token> b(cont.begin(), cont.begin() + std::min<long>(long(cont.size()), max_len));
                if (branches == 0) {  // the Jacobi window continues behind the first candidate
                    for (size_t i = b.size(); i < m_guess.size() && int32_t(b.size()) < max_len; ++i) b.push_back(m_guess[i]);
                }
                if (out.add_branch(b) > 0) ++branches;
            }
        }
        if (branches == 0) {
            std::vector<Token> b(m_guess.begin(), m_guess.begin() + std::min<long>(long(m_guess.size()), max_len));
            out.add_branch(b);
        }
        return {};
    }

    void observe(const SpecObservation & obs) override {
        const std::span<const Token> t = obs.tokens;
        // n-grams of the committed text that end in the new tokens
        for (size_t j = std::max(m_added_until, size_t(m_n) - 1); j < t.size(); ++j) {
            add_ngram(t.subspan(j + 1 - size_t(m_n), size_t(m_n)));
        }
        m_added_until = t.size();
        // Jacobi trajectory n-grams: chain = committed (without the new pending)
        // + rejected tail; the target's output after tail[i] ends an n-gram.
        if (!obs.tail_tokens.empty()) {
            std::vector<Token> chain(t.begin(), t.end() - 1);
            const size_t base = chain.size();
            chain.insert(chain.end(), obs.tail_tokens.begin(), obs.tail_tokens.end());
            std::vector<Token> g(static_cast<size_t>(m_n), 0);
            for (size_t i = 0; i < obs.tail_tokens.size(); ++i) {
                const size_t c = base + i;  // chain index of tail[i]
                if (c + 2 < size_t(m_n)) continue;
                std::copy(chain.begin() + long(c + 2 - size_t(m_n)), chain.begin() + long(c + 1), g.begin());
                g.back() = obs.tail_next[i];
                add_ngram(g);
            }
        }
        refill_guess(t, obs.tail_next);
    }

  private:
    void add_ngram(std::span<const Token> g) {
        std::deque<std::vector<Token>> & list = m_pool[g[0]];
        std::vector<Token> cont(g.begin() + 1, g.end());
        auto it = std::find(list.begin(), list.end(), cont);
        if (it != list.end()) list.erase(it);
        list.push_front(std::move(cont));  // most recent first
        if (list.size() > kPerKey) list.pop_back();
    }

    // New Jacobi window for the positions after t.back(): the target's outputs
    // at the rejected positions (the Jacobi update), continued through the pool.
    void refill_guess(std::span<const Token> t, std::span<const Token> jacobi) {
        m_guess.assign(jacobi.begin(), jacobi.begin() + std::min<long>(long(jacobi.size()), m_window));
        Token last = m_guess.empty() ? t.back() : m_guess.back();
        while (int32_t(m_guess.size()) < m_window) {
            auto it = m_pool.find(last);
            if (it == m_pool.end() || it->second.empty()) break;
            for (Token x : it->second.front()) {
                if (int32_t(m_guess.size()) >= m_window) break;
                m_guess.push_back(x);
            }
            last = m_guess.back();
        }
        // Still short (cold start): recent context tokens as initial guesses.
        for (size_t i = t.size(); int32_t(m_guess.size()) < m_window && i-- > 0;) m_guess.push_back(t[i]);
        m_guess_at = t.size();
    }

    static constexpr size_t kPerKey = 8;
    int32_t m_window, m_n, m_candidates;
    bool    m_seed_prompt;
    bool    m_seeded = false;
    size_t  m_added_until = 0;
    std::unordered_map<Token, std::deque<std::vector<Token>>> m_pool;
    std::vector<Token> m_guess;
    size_t m_guess_at = 0;
};

}  // namespace

std::unique_ptr<Speculator> make_lookahead_speculator(const SpecConfig & cfg) {
    return std::make_unique<LookaheadSpeculator>(cfg);
}

}  // namespace gb
