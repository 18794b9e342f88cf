// Requantization plan, validation (llama.cpp fallbacks), calibration statistics
// and the streaming GGUF rewrite with progress, cancellation and GPTQ.
#include "glassbox/quant/requantize.h"

#include "cpu/thread_pool.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <thread>

namespace gb::quant {
namespace {

std::string upper(std::string_view s) {
    std::string r(s);
    for (char & c : r) c = char(std::toupper(static_cast<unsigned char>(c)));
    return r;
}

bool is_weight_matrix(const gguf::TensorInfo & t) {
    if (t.n_dims < 2) return false;
    const std::string & n = t.name;
    return n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 && n.find("norm") == std::string::npos;
}

TensorType fallback_of(TensorType t) {
    switch (t) {
        case TensorType::Q4_K: return TensorType::Q5_0;
        case TensorType::Q5_K: return TensorType::Q5_1;
        case TensorType::Q6_K: return TensorType::Q8_0;
        case TensorType::Q2_K:
        case TensorType::Q3_K: return TensorType::Q4_0;
        default: return TensorType::F16;
    }
}

// llama_ftype of a uniform target (general.file_type).
int file_type_of(TensorType t) {
    switch (t) {
        case TensorType::F32: return 0;
        case TensorType::F16: return 1;
        case TensorType::Q4_0: return 2;
        case TensorType::Q8_0: return 7;
        case TensorType::Q2_K: return 10;
        case TensorType::Q3_K: return 11;  // Q3_K_S
        case TensorType::Q4_K: return 14;  // Q4_K_S
        case TensorType::Q5_K: return 16;  // Q5_K_S
        case TensorType::Q6_K: return 18;
        default: return -1;
    }
}

int resolve_threads(int n) { return n > 0 ? n : int(std::max(1u, std::thread::hardware_concurrency())); }

}  // namespace

const char * tensor_class_name(TensorClass c) {
    switch (c) {
        case TensorClass::Attention: return "attn";
        case TensorClass::FeedForward: return "ffn";
        case TensorClass::Embedding: return "embd";
        case TensorClass::Output: return "output";
        case TensorClass::Other: return "other";
    }
    return "other";
}

TensorClass tensor_class_of(std::string_view name) {
    if (name.rfind("token_embd", 0) == 0) return TensorClass::Embedding;
    if (name.rfind("output.", 0) == 0) return TensorClass::Output;
    if (name.find("norm") != std::string_view::npos) return TensorClass::Other;
    if (name.find(".attn_") != std::string_view::npos) return TensorClass::Attention;
    if (name.find(".ffn_") != std::string_view::npos) return TensorClass::FeedForward;
    return TensorClass::Other;
}

Result<Format> parse_format(std::string_view name) {
    const std::string u = upper(name);
    if (u == "AS-IN-FILE" || u == "KEEP" || u == "ASIS") return Format{};
    static const TensorType allowed[] = {TensorType::F16, TensorType::Q8_0, TensorType::Q6_K, TensorType::Q5_K,
                                         TensorType::Q4_K, TensorType::Q4_0, TensorType::Q3_K, TensorType::Q2_K};
    for (TensorType t : allowed)
        if (u == type_name(t)) return Format{t};
    return make_error(ErrorCode::InvalidArgument,
                      "unknown target format \"" + std::string(name) +
                          "\" (use as-in-file, F16, Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, Q3_K or Q2_K)");
}

std::string format_name(const Format & f) { return f ? type_name(*f) : "as-in-file"; }

Format QuantPlan::for_class(TensorClass c) const {
    auto it = by_class.find(c);
    return it != by_class.end() ? it->second : base;
}

std::string QuantPlan::describe() const {
    std::string s = "base=" + format_name(base);
    for (const auto & [c, f] : by_class) s += std::string(" ") + tensor_class_name(c) + "=" + format_name(f);
    return s;
}

Result<std::vector<TensorPlan>> plan_requantize(const gguf::File & file, const QuantPlan & plan) {
    std::vector<TensorPlan> out;
    for (const gguf::TensorInfo & t : file.tensors()) {
        TensorPlan p;
        p.name = t.name;
        p.cls = tensor_class_of(t.name);
        p.from = p.to = t.type;
        p.bytes_from = p.bytes_to = t.n_bytes;
        if (is_weight_matrix(t)) {
            const Format f = plan.for_class(p.cls);
            if (f) {
                if (!type_traits(t.type).computable) {
                    return make_error(ErrorCode::Unsupported, "tensor " + t.name + ": cannot convert from " + type_name(t.type));
                }
                TensorType to = *f;
                while (t.ne[0] % type_traits(to).block_size != 0) {
                    if (!plan.allow_fallback) {
                        return make_error(ErrorCode::InvalidArgument,
                                          "tensor " + t.name + ": row length " + std::to_string(t.ne[0]) +
                                              " is not a multiple of the " + type_name(to) + " block size " +
                                              std::to_string(type_traits(to).block_size));
                    }
                    if (to == TensorType::F16) {
                        return make_error(ErrorCode::InvalidArgument, "tensor " + t.name + ": no format fits row length " +
                                                                          std::to_string(t.ne[0]));
                    }
                    to = fallback_of(to);
                    p.fallback = true;
                }
                p.to = to;
                p.bytes_to = row_size(to, t.ne[0]) * size_t(t.n_elements() / t.ne[0]);
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

Result<std::map<std::string, InputStats>> collect_input_stats(std::shared_ptr<const Model> model, const GptqOptions & opts,
                                                             int32_t n_threads, const std::atomic<bool> * cancel) {
    const Tokenizer & tok = model->tokenizer();
    std::vector<Token> tokens = tok.encode(opts.calib_text, tok.add_bos(), false);
    if (int64_t(tokens.size()) < opts.min_calib_tokens) {
        return make_error(ErrorCode::InvalidArgument, "calibration text is " + std::to_string(tokens.size()) +
                                                          " tokens; GPTQ needs at least " + std::to_string(opts.min_calib_tokens));
    }
    if (opts.max_calib_tokens > 0 && int64_t(tokens.size()) > opts.max_calib_tokens) tokens.resize(size_t(opts.max_calib_tokens));
    std::map<std::string, InputStats> stats;
    ContextParams cp;
    cp.n_ctx = opts.calib_ctx;
    cp.n_batch = opts.calib_ctx;
    cp.n_threads = n_threads;
    // q/k/v (and gate/up) read the same input: accumulate it once and copy at the end.
    std::map<std::string, std::string> alias;
    const float * last_x = nullptr;
    int64_t last_n = -1;
    std::string last_name;
    cp.matmul_observer = [&](int layer, const char * name, const float * x, int64_t n_tok, int64_t n_cols) {
        if (layer < 0) return;  // output head: not quantized with GPTQ
        if (x == last_x && n_tok == last_n && stats.count(last_name) && stats[last_name].n_cols == n_cols) {
            alias[name] = last_name;
            return;
        }
        stats[name].add(x, n_tok, n_cols);
        last_x = x, last_n = n_tok, last_name = name;
    };
    auto ctx = Context::create(model, cp);
    if (!ctx) return ctx.error();
    const int32_t n_ctx = (*ctx)->n_ctx();
    for (size_t start = 0; start < tokens.size(); start += size_t(n_ctx)) {
        if (cancel && cancel->load()) return make_error(ErrorCode::Cancelled, "calibration cancelled");
        std::vector<Token> chunk(tokens.begin() + long(start), tokens.begin() + long(std::min(tokens.size(), start + size_t(n_ctx))));
        if (start > 0 && tok.add_bos() && tok.bos() >= 0) chunk.insert(chunk.begin(), tok.bos());
        if (chunk.size() > size_t(n_ctx)) chunk.resize(size_t(n_ctx));
        (*ctx)->truncate(0);
        GB_TRY_STATUS((*ctx)->decode(chunk, false, cancel));
    }
    for (const auto & [name, src] : alias) stats[name] = stats[src];
    return stats;
}

Result<RequantizeReport> requantize_file(const std::string & in_path, const std::string & out_path,
                                         const RequantizeParams & params) {
    auto progress = [&](float p, const std::string & stage) { if (params.progress) params.progress(p, stage); };
    const bool gptq = params.gptq.enabled;
    if (gptq && params.gptq.type != TensorType::Q4_0 && params.gptq.type != TensorType::Q4_K) {
        return make_error(ErrorCode::InvalidArgument, std::string("GPTQ target must be Q4_0 or Q4_K, not ") + type_name(params.gptq.type));
    }
    if (gptq && params.gptq.weighted_rtn && params.gptq.type != TensorType::Q4_0) {
        return make_error(ErrorCode::InvalidArgument, "importance-weighted RTN supports Q4_0 only");
    }
    QuantPlan plan = params.plan;
    if (gptq) {
        plan.by_class[TensorClass::Attention] = params.gptq.type;
        plan.by_class[TensorClass::FeedForward] = params.gptq.type;
    }
    RequantizeReport report;
    std::map<std::string, InputStats> stats;
    std::shared_ptr<const Model> model;
    if (gptq) {
        progress(0.0f, "loading");
        auto m = Model::load(in_path);
        if (!m) return m.error();
        model = *m;
        progress(0.0f, "calibrating");
        auto st = collect_input_stats(model, params.gptq, params.n_threads, params.cancel);
        if (!st) return st.error();
        stats = std::move(*st);
        for (auto & [_, s] : stats) report.calib_tokens = std::max(report.calib_tokens, s.n_tokens);
    }
    std::unique_ptr<gguf::File> own_file;
    const gguf::File * file = nullptr;
    if (model) {
        file = &model->file();
    } else {
        auto f = gguf::File::open(in_path);
        if (!f) return f.error();
        own_file = std::move(*f);
        file = own_file.get();
    }
    auto tplan = plan_requantize(*file, plan);
    if (!tplan) return tplan.error();
    report.tensors = std::move(*tplan);
    if (gptq) {
        for (TensorPlan & p : report.tensors) {
            p.gptq = p.to == params.gptq.type && stats.count(p.name) > 0;  // re-rounded even if the type is unchanged
        }
    }

    gguf::Writer w;
    for (const auto & [k, v] : file->metadata()) w.set(k, v);
    w.set_alignment(uint32_t(file->alignment()));
    // general.file_type: the GPTQ type, else the base format (llama_ftype); as-in-file keeps it.
    if (gptq) w.set_u32("general.file_type", params.gptq.type == TensorType::Q4_0 ? 2u : 14u);
    else if (plan.base && file_type_of(*plan.base) >= 0) w.set_u32("general.file_type", uint32_t(file_type_of(*plan.base)));
    if (auto src_ft = file->get_int("general.file_type")) w.set_u32("glassbox.quantization.source_file_type", uint32_t(*src_ft));
    w.set_string("glassbox.quantization.plan", plan.describe());
    w.set_string("glassbox.quantization.method", gptq ? (params.gptq.weighted_rtn ? "imatrix-rtn" : "gptq") : "rtn");
    w.set_string("glassbox.quantization.source", std::filesystem::path(in_path).filename().string());
    if (gptq) {
        w.set_string("glassbox.quantization.gptq.type", type_name(params.gptq.type));
        w.set_u32("glassbox.quantization.gptq.group_size", uint32_t(params.gptq.type == TensorType::Q4_K ? 32 : params.gptq.params.group_size));
        w.set_bool("glassbox.quantization.gptq.act_order", params.gptq.params.act_order);
        w.set_f32("glassbox.quantization.gptq.damp", float(params.gptq.params.damp));
        w.set_u32("glassbox.quantization.gptq.calib_tokens", uint32_t(report.calib_tokens));
    }

    // Tensor data is produced when the writer asks for it (streaming).
    const int n_threads = resolve_threads(params.n_threads);
    auto pool = std::make_shared<cpu::ThreadPool>(n_threads);
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    auto first_error = std::make_shared<std::string>();
    const size_t n_t = report.tensors.size();
    for (size_t ti = 0; ti < n_t; ++ti) {
        const TensorPlan & p = report.tensors[ti];
        const gguf::TensorInfo * t = file->find_tensor(p.name);
        report.bytes_in += p.bytes_from;
        report.bytes_out += p.bytes_to;
        std::vector<int64_t> ne(t->ne, t->ne + t->n_dims);
        const InputStats * hs = p.gptq ? &stats.at(p.name) : nullptr;
        Status st = w.add_tensor(p.name, p.to, ne, [=, &params, &progress](uint8_t * dst, size_t n_bytes) {
            progress(float(ti) / float(n_t), p.name);
            if (cancelled->load() || (params.cancel && params.cancel->load())) {
                cancelled->store(true);
                std::memset(dst, 0, n_bytes);
                return;
            }
            if (p.from == p.to && !p.gptq) {
                std::memcpy(dst, t->data, n_bytes);
                return;
            }
            const int64_t n_cols = t->ne[0], n_rows = t->n_elements() / n_cols;
            const size_t src_rb = row_size(p.from, n_cols), dst_rb = row_size(p.to, n_cols);
            if (hs) {
                std::vector<float> wf(static_cast<size_t>(n_rows * n_cols));
                pool->parallel_for(n_rows, 64, [&](int64_t b, int64_t e) {
                    for (int64_t r = b; r < e; ++r) dequantize_row(p.from, t->data + size_t(r) * src_rb, &wf[size_t(r * n_cols)], n_cols);
                });
                Status s;
                if (params.gptq.weighted_rtn) {
                    std::vector<float> imp(static_cast<size_t>(n_cols));
                    for (int64_t c = 0; c < n_cols; ++c) imp[size_t(c)] = float(hs->h[size_t(c * n_cols + c)]);
                    s = rtn_weighted_quantize(p.to, wf.data(), n_rows, n_cols, imp, dst);
                } else {
                    GptqParams gp = params.gptq.params;
                    gp.n_threads = n_threads;
                    s = gptq_quantize(p.to, wf.data(), n_rows, n_cols, *hs, gp, dst);
                }
                if (!s.ok() && first_error->empty()) *first_error = "tensor " + p.name + ": " + s.error().message;
                return;
            }
            pool->parallel_for(n_rows, 16, [&](int64_t b, int64_t e) {
                std::vector<float> row(static_cast<size_t>(n_cols));
                for (int64_t r = b; r < e; ++r) {
                    dequantize_row(p.from, t->data + size_t(r) * src_rb, row.data(), n_cols);
                    quantize_row_ref(p.to, row.data(), dst + size_t(r) * dst_rb, n_cols);
                }
            });
        });
        if (!st.ok()) return st.error();
    }
    GB_TRY_STATUS(w.write(out_path));
    if (cancelled->load() || !first_error->empty()) {
        std::error_code ec;
        std::filesystem::remove(out_path, ec);
        if (!first_error->empty()) return make_error(ErrorCode::InvalidArgument, *first_error);
        return make_error(ErrorCode::Cancelled, "requantization cancelled");
    }
    progress(1.0f, "done");
    return report;
}

Result<std::shared_ptr<const Model>> load_requantized(const std::string & in_path, const std::string & cache_dir,
                                                      const RequantizeParams & params) {
    std::string tag = params.plan.describe() + (params.gptq.enabled ? " gptq" : "");
    for (char & c : tag)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    const std::filesystem::path out =
        std::filesystem::path(cache_dir) / (std::filesystem::path(in_path).stem().string() + "." + tag + ".gguf");
    bool reuse = false;
    if (std::filesystem::exists(out)) {
        auto f = gguf::File::open(out.string());
        if (f) {
            auto pl = (*f)->get_string("glassbox.quantization.plan");
            reuse = pl && *pl == params.plan.describe() && !params.gptq.enabled;
        }
    }
    if (!reuse) {
        auto r = requantize_file(in_path, out.string(), params);
        if (!r) return r.error();
    }
    return Model::load(out.string());
}

}  // namespace gb::quant
