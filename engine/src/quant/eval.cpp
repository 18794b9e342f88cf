// Variant evaluation: per chunk the reference's log-probabilities of the scored
// positions are kept, then each variant runs the same chunk and is compared.
#include "glassbox/quant/eval.h"

#include "glassbox/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace gb::quant {
namespace {

// log-softmax in double: out[i] = l[i] - logsumexp(l)
void log_softmax(const float * l, int32_t n, std::vector<double> & out) {
    out.resize(size_t(n));
    float mx = l[0];
    for (int32_t i = 1; i < n; ++i) mx = std::max(mx, l[i]);
    double sum = 0.0;
    for (int32_t i = 0; i < n; ++i) sum += std::exp(double(l[i]) - mx);
    const double lse = double(mx) + std::log(sum);
    for (int32_t i = 0; i < n; ++i) out[size_t(i)] = double(l[i]) - lse;
}

int32_t argmax(const float * l, int32_t n) { return int32_t(std::max_element(l, l + n) - l); }

using Clock = std::chrono::steady_clock;

}  // namespace

TokenCompare compare_logits(const float * ref, const float * var, int32_t n_vocab, int32_t target) {
    std::vector<double> lr, lv;
    log_softmax(ref, n_vocab, lr);
    log_softmax(var, n_vocab, lv);
    TokenCompare c;
    double kld = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i) {
        const double p = std::exp(lr[size_t(i)]);
        if (p > 0.0) kld += p * (lr[size_t(i)] - lv[size_t(i)]);
    }
    c.kld = std::max(0.0, kld);
    c.same_top = argmax(ref, n_vocab) == argmax(var, n_vocab);
    c.nll_ref = -lr[size_t(target)];
    c.nll_var = -lv[size_t(target)];
    c.p_ref = std::exp(lr[size_t(target)]);
    c.p_var = std::exp(lv[size_t(target)]);
    return c;
}

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const double pos = std::clamp(q, 0.0, 100.0) / 100.0 * double(v.size() - 1);
    const size_t lo = size_t(std::floor(pos)), hi = std::min(v.size() - 1, lo + 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

Result<std::vector<VariantResult>> evaluate_variants(const std::vector<Variant> & variants, const std::string & text,
                                                     const EvalParams & params) {
    if (variants.empty()) return make_error(ErrorCode::InvalidArgument, "eval needs at least one model");
    if (params.n_ctx < 8) return make_error(ErrorCode::InvalidArgument, "eval needs a context of at least 8 tokens");
    std::vector<std::shared_ptr<const Model>> models;
    for (const Variant & v : variants) {
        auto m = Model::load(v.path);
        if (!m) return make_error(m.error().code, v.name + ": " + m.error().message);
        models.push_back(*m);
    }
    const Tokenizer & tok = models[0]->tokenizer();
    const int32_t n_vocab = models[0]->hparams().n_vocab;
    for (size_t i = 1; i < models.size(); ++i) {
        if (models[i]->hparams().n_vocab != n_vocab) {
            return make_error(ErrorCode::InvalidArgument, variants[i].name + ": vocabulary differs from the reference");
        }
    }
    const std::vector<Token> tokens = tok.encode(text, tok.add_bos(), false);
    int32_t n_chunks = int32_t(tokens.size() / size_t(params.n_ctx));
    if (n_chunks == 0) {
        return make_error(ErrorCode::InvalidArgument, "the text is " + std::to_string(tokens.size()) +
                                                          " tokens; eval needs at least n_ctx = " + std::to_string(params.n_ctx));
    }
    if (params.max_chunks > 0) n_chunks = std::min(n_chunks, params.max_chunks);
    const int32_t first = params.n_ctx / 2;
    const int32_t n_score = params.n_ctx - 1 - first;

    const size_t nv = variants.size();
    std::vector<VariantResult> res(nv);
    std::vector<std::vector<double>> klds(nv);
    std::vector<double> nll(nv, 0.0), dp(nv, 0.0), secs(nv, 0.0);
    std::vector<int64_t> same(nv, 0);
    std::vector<float> ref_logits;  // [n_score, n_vocab]
    ContextParams cp;
    cp.n_ctx = params.n_ctx;
    cp.n_batch = params.n_ctx;
    cp.n_threads = params.n_threads;
    for (int32_t c = 0; c < n_chunks; ++c) {
        const size_t start = size_t(c) * size_t(params.n_ctx);
        std::vector<Token> chunk(tokens.begin() + long(start), tokens.begin() + long(start + size_t(params.n_ctx)));
        if (tok.add_bos() && tok.bos() >= 0) chunk[0] = tok.bos();
        for (size_t v = 0; v < nv; ++v) {
            if (params.progress && !params.progress(variants[v].name + " chunk " + std::to_string(c + 1) + "/" + std::to_string(n_chunks))) {
                return make_error(ErrorCode::Cancelled, "eval cancelled");
            }
            auto ctx = Context::create(models[v], cp);
            if (!ctx) return ctx.error();
            if ((*ctx)->n_ctx() < params.n_ctx) return make_error(ErrorCode::InvalidArgument, "the model's context is smaller than n_ctx");
            const auto t0 = Clock::now();
            GB_TRY_STATUS((*ctx)->decode(chunk, true));
            secs[v] += std::chrono::duration<double>(Clock::now() - t0).count();
            const float * logits = (*ctx)->logits().data() + size_t(first) * size_t(n_vocab);
            if (v == 0) ref_logits.assign(logits, logits + size_t(n_score) * size_t(n_vocab));
            for (int32_t j = 0; j < n_score; ++j) {
                const Token target = tokens[start + size_t(first + j) + 1];
                const TokenCompare tc = compare_logits(ref_logits.data() + size_t(j) * size_t(n_vocab),
                                                       logits + size_t(j) * size_t(n_vocab), n_vocab, target);
                nll[v] += tc.nll_var;
                klds[v].push_back(tc.kld);
                same[v] += tc.same_top ? 1 : 0;
                dp[v] += tc.p_var - tc.p_ref;
            }
        }
    }
    for (size_t v = 0; v < nv; ++v) {
        VariantResult & r = res[v];
        r.name = variants[v].name;
        r.is_reference = v == 0;
        std::error_code ec;
        r.file_bytes = std::filesystem::file_size(variants[v].path, ec);
        r.n_scored = int64_t(klds[v].size());
        for (const auto & t : models[v]->file().tensors()) r.memory_bytes += t.n_bytes;
        const double n = double(std::max<int64_t>(1, r.n_scored));
        r.ppl = std::exp(nll[v] / n);
        double s = 0.0;
        for (double k : klds[v]) s += k;
        r.kld_mean = s / n;
        r.kld_p50 = percentile(klds[v], 50);
        r.kld_p90 = percentile(klds[v], 90);
        r.kld_p99 = percentile(klds[v], 99);
        r.kld_max = klds[v].empty() ? 0.0 : *std::max_element(klds[v].begin(), klds[v].end());
        r.same_top_pct = 100.0 * double(same[v]) / n;
        r.dp_mean = dp[v] / n;
        r.prefill_tok_s = secs[v] > 0 ? double(n_chunks) * params.n_ctx / secs[v] : 0.0;
        // decode speed: 32 single-token steps after a short prompt
        auto ctx = Context::create(models[v], cp);
        if (ctx) r.memory_bytes += (*ctx)->kv_bytes();
        if (ctx && tokens.size() >= 40) {
            std::vector<Token> p(tokens.begin(), tokens.begin() + 8);
            if ((*ctx)->decode(p, false).ok()) {
                const auto t0 = Clock::now();
                int steps = 0;
                for (; steps < 32; ++steps) {
                    const Token t = tokens[size_t(8 + steps)];
                    if (!(*ctx)->decode(std::span<const Token>(&t, 1), false).ok()) break;
                }
                const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
                r.decode_tok_s = dt > 0 ? steps / dt : 0.0;
            }
        }
    }
    return res;
}

std::string format_table(const std::vector<VariantResult> & rows) {
    std::ostringstream o;
    char buf[512];
    o << "| variant | size MiB | memory MiB | PPL | mean KLD | KLD p50 | p90 | p99 | max | same top % | mean Δp(correct) | prefill tok/s | decode tok/s |\n";
    o << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const VariantResult & r : rows) {
        std::snprintf(buf, sizeof buf, "| %s%s | %.1f | %.1f | %.4f | %.5f | %.5f | %.5f | %.5f | %.4f | %.2f | %+.5f | %.1f | %.1f |\n",
                      r.name.c_str(), r.is_reference ? " (ref)" : "", double(r.file_bytes) / (1024.0 * 1024.0),
                      double(r.memory_bytes) / (1024.0 * 1024.0), r.ppl, r.kld_mean, r.kld_p50, r.kld_p90, r.kld_p99, r.kld_max,
                      r.same_top_pct, r.dp_mean, r.prefill_tok_s, r.decode_tok_s);
        o << buf;
    }
    if (!rows.empty()) o << "\n" << rows[0].n_scored << " tokens scored (second half of each chunk).\n";
    return o.str();
}

std::string format_json(const std::vector<VariantResult> & rows) {
    std::ostringstream o;
    char buf[1024];
    o << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
        const VariantResult & r = rows[i];
        std::snprintf(buf, sizeof buf,
                      "  {\"name\": \"%s\", \"reference\": %s, \"file_bytes\": %llu, \"memory_bytes\": %llu, \"ppl\": %.6f, \"kld_mean\": %.8f, "
                      "\"kld_p50\": %.8f, \"kld_p90\": %.8f, \"kld_p99\": %.8f, \"kld_max\": %.8f, \"same_top_pct\": %.4f, "
                      "\"dp_mean\": %.8f, \"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"n_scored\": %lld}%s\n",
                      r.name.c_str(), r.is_reference ? "true" : "false", static_cast<unsigned long long>(r.file_bytes),
                      static_cast<unsigned long long>(r.memory_bytes), r.ppl,
                      r.kld_mean, r.kld_p50, r.kld_p90, r.kld_p99, r.kld_max, r.same_top_pct, r.dp_mean, r.prefill_tok_s,
                      r.decode_tok_s, static_cast<long long>(r.n_scored), i + 1 < rows.size() ? "," : "");
        o << buf;
    }
    o << "]\n";
    return o.str();
}

}  // namespace gb::quant
