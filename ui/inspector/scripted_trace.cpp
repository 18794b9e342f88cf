// Synthetic token events (see scripted_trace.h).
#include "scripted_trace.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace gb::ui {

std::vector<TokenEvent> makeScriptedTokenEvents(const ScriptedTraceParams & p, const Tokenizer * tok) {
    std::mt19937_64 rng(p.seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> normal(0.0, 1.0);

    std::vector<Token> source;
    if (tok) {
        const std::string text = p.text.empty()
            ? std::string("The inspector shows why a reply was fast or slow: the time to the first token, the gap "
                          "between tokens, how sure the model was of each one and which words it almost chose. ")
            : p.text;
        source = tok->encode(text, false, false);
    }
    const int32_t n_vocab = tok ? tok->n_vocab() : std::max(p.nVocab, 2);

    std::vector<TokenEvent> events;
    events.reserve(p.nTokens);
    double t = p.ttftMs;
    for (size_t i = 0; i < p.nTokens; ++i) {
        TokenEvent e;
        e.id = source.empty() ? Token(rng() % uint64_t(n_vocab)) : source[i % source.size()];
        e.text = tok ? tok->token_to_piece(e.id, false) : "tok" + std::to_string(e.id) + " ";
        if (i > 0) {
            // Log-normal jitter around the mean, and a slow step now and then.
            double gap = p.meanItlMs * std::exp(0.25 * normal(rng));
            if (i % 97 == 0) gap *= 4.0;
            t += std::max(gap, 0.05);
        }
        e.t_ms = t;

        // A distribution over nTop listed tokens plus unlisted rest mass.
        const int k = std::max(p.nTop, 1);
        std::vector<double> w(size_t(k) + 1);
        const double sharp = 0.5 + 4.0 * unit(rng);  // how confident this step is
        for (int j = 0; j < k; ++j) w[size_t(j)] = std::exp(-sharp * j - 0.3 * unit(rng));
        w[size_t(k)] = 0.05 + 0.3 * unit(rng) * std::exp(-sharp);
        double sum = 0;
        for (double v : w) sum += v;
        std::sort(w.begin(), w.end() - 1, std::greater<>());
        const int chosen_rank = unit(rng) < 0.85 ? 0 : 1 + int(rng() % uint64_t(std::max(k - 1, 1)));
        for (int j = 0; j < k; ++j) {
            Token id = (j == std::min(chosen_rank, k - 1)) ? e.id : Token(rng() % uint64_t(n_vocab));
            if (id == e.id && j != std::min(chosen_rank, k - 1)) id = (id + 1) % n_vocab;
            e.top.push_back({id, float(std::log(w[size_t(j)] / sum))});
        }
        if (p.nTop <= 0) e.top.clear();
        e.logprob = float(std::log(w[size_t(std::min(chosen_rank, k - 1))] / sum));
        events.push_back(std::move(e));
    }
    return events;
}

}  // namespace gb::ui
