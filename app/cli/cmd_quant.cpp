// `quantize` (requantize / GPTQ a GGUF) and `eval` (perplexity, KLD and
// top-token agreement of variants against a reference) - engine/src/quant.
#include "args.h"
#include "commands.h"

#include "glassbox/quant/eval.h"
#include "glassbox/quant/requantize.h"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace gbcli {

namespace {
bool read_text(const std::string & path, std::string & out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}
}  // namespace

int cmd_quantize(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--gptq", "--act-order", "--imatrix-rtn", "--strict"});
    if (!args.ok()) return fail(args.error());
    const auto in = args.get("-m");
    const auto out = args.get("-o");
    if (!in || !out) {
        return fail("quantize needs -m IN -o OUT [--type T] [--attn T --ffn T --embd T --output T] "
                    "[--gptq --calib FILE [--gptq-type Q4_0|Q4_K] [--group 32] [--act-order] [--damp 0.01] [--imatrix-rtn]] [--strict] [-t N]");
    }
    using namespace gb::quant;
    RequantizeParams p;
    auto base = parse_format(args.get_or("--type", "as-in-file"));
    if (!base) return fail(base.error().message);
    p.plan.base = *base;
    const std::pair<const char *, TensorClass> classes[] = {{"--attn", TensorClass::Attention}, {"--ffn", TensorClass::FeedForward},
                                                            {"--embd", TensorClass::Embedding}, {"--output", TensorClass::Output}};
    for (const auto & [opt, cls] : classes) {
        if (auto v = args.get(opt)) {
            auto f = parse_format(*v);
            if (!f) return fail(f.error().message);
            p.plan.by_class[cls] = *f;
        }
    }
    p.plan.allow_fallback = !args.has("--strict");
    p.n_threads = int32_t(args.get_int("-t", 0));
    if (args.has("--gptq") || args.has("--imatrix-rtn")) {
        p.gptq.enabled = true;
        p.gptq.weighted_rtn = args.has("--imatrix-rtn");
        const auto calib = args.get("--calib");
        if (!calib) return fail("--gptq needs --calib FILE (calibration text)");
        if (!read_text(*calib, p.gptq.calib_text)) return fail("cannot open " + *calib);
        if (!gb::type_from_name(args.get_or("--gptq-type", "Q4_0").c_str(), &p.gptq.type)) return fail("bad --gptq-type");
        p.gptq.params.group_size = int32_t(args.get_int("--group", 32));
        p.gptq.params.act_order = args.has("--act-order");
        p.gptq.params.damp = args.get_float("--damp", 0.01);
        p.gptq.calib_ctx = int32_t(args.get_int("--calib-ctx", 512));
        p.gptq.max_calib_tokens = int32_t(args.get_int("--calib-tokens", 2048));
    }
    if (!args.ok()) return fail(args.error());
    const auto unknown = args.unknown({"-m", "-o", "--type", "--attn", "--ffn", "--embd", "--output", "--gptq", "--calib", "--gptq-type",
                                       "--group", "--act-order", "--damp", "--imatrix-rtn", "--strict", "-t", "--calib-ctx", "--calib-tokens"});
    if (!unknown.empty()) return fail("quantize: unknown option " + unknown[0]);
    int last_pct = -1;
    std::string last_stage;
    p.progress = [&](float f, const std::string & stage) {
        const int pct = int(f * 100.0f);
        if (pct == last_pct && stage.rfind("blk.", 0) == 0) return;
        last_pct = pct;
        std::fprintf(stderr, "\r%3d%% %-40.40s", pct, stage.c_str());
    };
    auto r = requantize_file(*in, *out, p);
    std::fprintf(stderr, "\n");
    if (!r) return fail(r.error().message);
    int n_changed = 0, n_fallback = 0, n_gptq = 0;
    for (const TensorPlan & t : r->tensors) {
        n_changed += t.from != t.to || t.gptq;
        n_fallback += t.fallback;
        n_gptq += t.gptq;
        if (t.fallback) std::fprintf(stderr, "  %s: fallback to %s (row length)\n", t.name.c_str(), gb::type_name(t.to));
    }
    std::printf("%s: %s%s, %d tensors converted (%d GPTQ, %d fallbacks), tensor data %.1f MiB -> %.1f MiB\n", out->c_str(),
                p.plan.describe().c_str(), p.gptq.enabled ? (p.gptq.weighted_rtn ? " imatrix-rtn" : " gptq") : "", n_changed, n_gptq,
                n_fallback, double(r->bytes_in) / 1048576.0, double(r->bytes_out) / 1048576.0);
    return 0;
}

int cmd_eval(int argc, char ** argv) {
    Args args(argc, argv, 2, {"--json"});
    if (!args.ok()) return fail(args.error());
    const auto models = args.get_all("-m");
    const auto text_path = args.get("-f");
    if (models.empty() || !text_path) return fail("eval needs -m REF [-m VARIANT]... -f TEXT [--ctx 512] [--chunks N] [-t N] [--json]");
    gb::quant::EvalParams ep;
    ep.n_ctx = int32_t(args.get_int("--ctx", 512));
    ep.max_chunks = int32_t(args.get_int("--chunks", 0));
    ep.n_threads = int32_t(args.get_int("-t", 0));
    if (!args.ok()) return fail(args.error());
    const auto unknown = args.unknown({"-m", "-f", "--ctx", "--chunks", "-t", "--json"});
    if (!unknown.empty()) return fail("eval: unknown option " + unknown[0]);
    std::string text;
    if (!read_text(*text_path, text)) return fail("cannot open " + *text_path);
    std::vector<gb::quant::Variant> vs;
    for (const std::string & m : models) {
        std::string name = m;
        if (auto s = name.find_last_of('/'); s != std::string::npos) name = name.substr(s + 1);
        vs.push_back({name, m});
    }
    ep.progress = [](const std::string & stage) {
        std::fprintf(stderr, "\r%-60.60s", stage.c_str());
        return true;
    };
    auto r = gb::quant::evaluate_variants(vs, text, ep);
    std::fprintf(stderr, "\n");
    if (!r) return fail(r.error().message);
    std::fputs((args.has("--json") ? gb::quant::format_json(*r) : gb::quant::format_table(*r)).c_str(), stdout);
    return 0;
}

}  // namespace gbcli

namespace gbcli {

// `logits -m FILE -p TEXT -o OUT.f32`: all-token logits [n, n_vocab] as raw float32,
// token ids on stdout (one line). For scripts/check_quant_llamacpp.py.
int cmd_logits(int argc, char ** argv) {
    Args args(argc, argv, 2, {});
    if (!args.ok()) return fail(args.error());
    const auto path = args.get("-m");
    const auto text = args.get("-p");
    const auto out = args.get("-o");
    if (!path || !text || !out) return fail("logits needs -m FILE -p TEXT -o OUT.f32 [-t N]");
    auto model = gb::Model::load(*path);
    if (!model) return fail(model.error().message);
    const gb::Tokenizer & tok = (*model)->tokenizer();
    const std::vector<gb::Token> toks = tok.encode(*text, tok.add_bos(), false);
    gb::ContextParams cp;
    cp.n_ctx = int32_t(toks.size()) + 8;
    cp.n_threads = int32_t(args.get_int("-t", 0));
    auto ctx = gb::Context::create(*model, cp);
    if (!ctx) return fail(ctx.error().message);
    const gb::Status st = (*ctx)->decode(toks, true);
    if (!st.ok()) return fail(st.error().message);
    std::ofstream o(*out, std::ios::binary);
    const auto l = (*ctx)->logits();
    o.write(reinterpret_cast<const char *>(l.data()), std::streamsize(l.size() * sizeof(float)));
    if (!o) return fail("cannot write " + *out);
    for (size_t i = 0; i < toks.size(); ++i) std::printf("%s%d", i ? " " : "", toks[i]);
    std::printf("\n");
    return 0;
}

}  // namespace gbcli
