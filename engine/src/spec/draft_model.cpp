// Method 1, draft model: a smaller model with a compatible vocabulary drafts a
// chain autoregressively in its own Context, which rolls back with truncate()
// to the committed prefix at the next proposal (or restarts on a window of the
// sequence when the catch-up would be longer). Also the vocabulary check.
#include "glassbox/spec/speculator.h"

#include "spec/draft_model.h"
#include "spec/target_dist.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace gb {

Status check_vocab_compatible(const Model & target, const Model & draft) {
    const Tokenizer & a = target.tokenizer();
    const Tokenizer & b = draft.tokenizer();
    std::vector<std::string> why;
    if (a.n_vocab() != b.n_vocab()) {
        why.push_back("vocabulary size differs (target " + std::to_string(a.n_vocab()) + ", draft " +
                      std::to_string(b.n_vocab()) + ")");
    }
    if (target.hparams().n_vocab != draft.hparams().n_vocab) {
        why.push_back("output size differs (target " + std::to_string(target.hparams().n_vocab) + " logits, draft " +
                      std::to_string(draft.hparams().n_vocab) + ")");
    }
    auto special = [&](const char * name, Token ta, Token tb) {
        if (ta != tb) {
            why.push_back(std::string(name) + " token differs (target " + std::to_string(ta) + ", draft " +
                          std::to_string(tb) + ")");
        }
    };
    special("BOS", a.bos(), b.bos());
    special("EOS", a.eos(), b.eos());
    special("EOT", a.eot(), b.eot());
    if (a.add_bos() != b.add_bos()) {
        why.push_back(std::string("add_bos differs (target ") + (a.add_bos() ? "true" : "false") + ", draft " +
                      (b.add_bos() ? "true" : "false") + ")");
    }
    // Token texts and attributes: every special/control token, the first 512
    // ids, the last 256 and a stride through the rest (all ids when small).
    const int32_t n = std::min(a.n_vocab(), b.n_vocab());
    std::vector<Token> ids;
    const int32_t stride = n <= 65536 ? 1 : 61;
    for (Token i = 0; i < n; ++i) {
        if (i < 512 || i >= n - 256 || i % stride == 0 || a.attr(i) != TokenAttr::Normal ||
            b.attr(i) != TokenAttr::Normal) {
            ids.push_back(i);
        }
    }
    int32_t n_diff = 0;
    std::string first_diffs;
    for (Token i : ids) {
        const bool text_diff = a.text(i) != b.text(i);
        const bool attr_diff = a.attr(i) != b.attr(i);
        if (!text_diff && !attr_diff) continue;
        if (++n_diff <= 3) {
            first_diffs += (first_diffs.empty() ? "" : "; ") + std::string("id ") + std::to_string(i) + " is \"" +
                           a.text(i) + "\" in the target and \"" + b.text(i) + "\" in the draft" +
                           (attr_diff && !text_diff ? " (different token type)" : "");
        }
    }
    if (n_diff > 0) {
        why.push_back(std::to_string(n_diff) + " of " + std::to_string(ids.size()) + " checked token ids differ (" +
                      first_diffs + (n_diff > 3 ? "; ..." : "") + ")");
    }
    if (why.empty()) return {};
    std::string msg = "draft model " + draft.description() + " cannot speculate for " + target.description() + ": ";
    for (size_t i = 0; i < why.size(); ++i) msg += (i ? "; " : "") + why[i];
    return make_error(ErrorCode::Unsupported, msg);
}

namespace spec {

DraftModelSpeculator::DraftModelSpeculator(std::shared_ptr<const Model> draft, std::unique_ptr<Context> ctx,
                                           const SamplerParams & sampling, const char * name)
    : m_draft(std::move(draft)), m_ctx(std::move(ctx)), m_sampling(sampling), m_name(name) {
    uint64_t seed = sampling.seed;
    if (seed == 0) seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    m_rng.seed(seed ^ 0x9e3779b97f4a7c15ull);
}

Status DraftModelSpeculator::propose(std::span<const Token> tokens, int32_t max_len, Draft & out,
                                     const std::atomic<bool> * cancel) {
    out.clear();
    m_ingested = 0;
    if (tokens.empty() || max_len <= 0) return {};
    // The drafter holds m_tokens: the sequence from m_start (after its first
    // token, an attention sink, when m_start > 0). Reuse the K/V of the part
    // that still matches (at least one token is decoded so its logits are
    // fresh); a catch-up longer than the window restarts the drafter on the
    // first token + the last m_window tokens, and with no window a windowed
    // drafter catches up on the whole sequence.
    const int32_t n = int32_t(tokens.size());
    const int32_t sink = m_start > 0 ? 1 : 0;
    int32_t common = 0;  // held tokens after the sink that match the sequence from m_start
    if (m_start < n && (sink == 0 || (!m_tokens.empty() && m_tokens[0] == tokens[0]))) {
        while (sink + common < int32_t(m_tokens.size()) && m_start + common < n &&
               m_tokens[size_t(sink + common)] == tokens[size_t(m_start + common)]) {
            ++common;
        }
        common = std::min(common, n - m_start - 1);
    } else {
        common = -1;  // nothing usable
    }
    const int32_t catch_up = common < 0 ? n : n - m_start - common;
    int32_t start = m_start;
    int32_t keep = sink + common;    // held tokens kept
    int32_t from = m_start + common; // first sequence index decoded after them
    if (common < 0 || (m_window > 0 && catch_up > m_window) || (m_window == 0 && m_start > 0)) {
        // restart: the whole sequence, or its first token + the last m_window
        start = m_window > 0 && n - m_window > 1 ? n - m_window : 0;
        keep = 0;
        from = start;
    }
    const int32_t held = (start > 0 ? 1 : 0) + (n - start);  // after the catch-up
    const int32_t room = m_ctx->n_ctx() - held;
    if (room <= 1) return {};
    max_len = std::min(max_len, room - 1);
    // (If the decode fails, the next call truncates back to these kept tokens.)
    m_ctx->truncate(keep);
    m_tokens.resize(size_t(keep));
    m_start = start;
    std::vector<Token> feed;  // one decode call (one output-head row) for the sink and the rest
    if (keep == 0 && start > 0) feed.push_back(tokens[0]);
    feed.insert(feed.end(), tokens.begin() + from, tokens.end());
    GB_TRY_STATUS(m_ctx->decode(feed, false, cancel));
    m_tokens.insert(m_tokens.end(), feed.begin(), feed.end());
    m_ingested = int32_t(feed.size());

    const bool greedy = m_sampling.temperature <= 0.0f;
    // Greedy without penalties needs only each row's argmax: a drafter on the
    // GPU summarises its row there (Context::row_summaries) instead of copying it.
    std::vector<Token> hist(tokens.begin(), tokens.end());
    for (int32_t i = 0; i < max_len; ++i) {
        const std::span<const RowSummary> sums = m_sampling.greedy_argmax() ? m_ctx->row_summaries() : std::span<const RowSummary>{};
        const std::span<const float> row = sums.empty() ? m_ctx->logits() : std::span<const float>{};
        Token t;
        if (!sums.empty()) {
            t = sums.back().argmax;
        } else if (greedy) {
            t = greedy_token(row, m_sampling, hist);
        } else {
            // Draw from q = the drafter's distribution under the request's sampler
            // stages; q goes with the draft for the acceptance test.
            target_dist(row, m_sampling, hist, m_cand);
            t = draw(m_cand, m_rng);
            std::vector<std::pair<Token, float>> q;
            q.reserve(m_cand.items.size());
            for (const Candidate & c : m_cand.items) q.emplace_back(c.id, c.p);
            out.q.push_back(std::move(q));
        }
        out.add(i - 1, t);
        hist.push_back(t);
        if (i + 1 == max_len) break;  // the last draft token needs no logits
        const Token one[1] = {t};
        GB_TRY_STATUS(m_ctx->decode(one, false, cancel));
        m_tokens.push_back(t);
    }
    return {};
}

Result<double> DraftModelSpeculator::step_ms(const std::atomic<bool> * cancel) {
    if (m_step_ms <= 0.0) GB_TRY_STATUS(time_step(cancel));
    return m_step_ms;
}

Status DraftModelSpeculator::time_step(const std::atomic<bool> * cancel) {
    // The faster of two one-token steps from an empty cache (the first pays
    // for cold weights, a GPU's graph capture): a decode and its greedy pick.
    const Token one[1] = {Token(0)};
    double best = 0.0;
    for (int i = 0; i < 2; ++i) {
        m_ctx->truncate(0);
        const auto t0 = std::chrono::steady_clock::now();
        GB_TRY_STATUS(m_ctx->decode(one, false, cancel));
        if (m_ctx->row_summaries().empty()) (void)argmax(m_ctx->logits());
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        best = i == 0 ? ms : std::min(best, ms);
    }
    m_ctx->truncate(0);
    m_tokens.clear();
    m_start = 0;
    m_step_ms = best;
    return {};
}

}  // namespace spec

Result<std::unique_ptr<Speculator>> make_draft_model_speculator(const Model & target, std::shared_ptr<const Model> draft,
                                                                const SpecConfig & cfg, const SamplerParams & sampling,
                                                                int32_t n_ctx, int32_t n_threads) {
    if (!draft) return make_error(ErrorCode::InvalidArgument, "speculative method \"draft\" needs a draft model");
    GB_TRY_STATUS(check_vocab_compatible(target, *draft));
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = cfg.draft_threads > 0 ? cfg.draft_threads : n_threads;
    auto ctx = cfg.context_factory ? cfg.context_factory(draft, cp) : Context::create(draft, cp);
    if (!ctx) return ctx.error();
    // The draft model's weights are mapped lazily: fault them in now, as part of
    // loading it, before its timing (~20k page faults for a 150 MB file; left
    // to time_step's first decode, the timing read 9.3-17.5 ms in four runs
    // against 9.3-9.9 in three with them faulted in first, CPU, 2 threads, Q2_K
    // gemma copy; a high reading bars a drafter that could pay).
    volatile uint8_t sink = 0;
    for (const gguf::TensorInfo & t : draft->file().tensors()) {
        for (size_t off = 0; off < t.n_bytes; off += 4096) sink = sink ^ t.data[off];
    }
    (void)sink;
    auto sp = std::make_unique<spec::DraftModelSpeculator>(std::move(draft), std::move(ctx.value()), sampling, "draft");
    GB_TRY_STATUS(sp->time_step(nullptr));
    return std::unique_ptr<Speculator>(std::move(sp));
}

}  // namespace gb
