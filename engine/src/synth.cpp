// Synthetic random-weight GGUF models: presets, llama.cpp-style type mixes,
// the tensor table per architecture, an SPM vocabulary, and a streaming,
// multi-threaded writer (values generated and quantized per row on the fly).
#include "glassbox/synth.h"

#include "glassbox/gguf.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

namespace gb {

namespace {

std::string upper(std::string_view s) {
    std::string r(s);
    for (char & c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return r;
}

Error invalid(std::string msg) { return make_error(ErrorCode::InvalidArgument, "synth: " + std::move(msg)); }

// ---- deterministic random numbers -------------------------------------------

uint64_t splitmix64(uint64_t & state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    return h;
}

// Approximately N(0, 1): Irwin-Hall sum of four 16-bit uniforms, standardized
// (range about +-3.46; cheap and exactly reproducible across platforms).
float normalish(uint64_t & state) {
    const uint64_t r = splitmix64(state);
    const double sum = static_cast<double>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    constexpr double mean = 4.0 * 65535.0 / 2.0;
    const double sd = std::sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0);
    return static_cast<float>((sum - mean) / sd);
}

// ---- types ------------------------------------------------------------------

bool fits(TensorType t, int64_t ne0) { return ne0 % type_traits(t).block_size == 0; }

// llama.cpp's fallback for rows that do not divide into 256-element super-blocks.
TensorType fit_type(TensorType t, int64_t ne0) {
    if (fits(t, ne0)) return t;
    TensorType alt = TensorType::F16;
    switch (t) {
        case TensorType::Q2_K:
        case TensorType::Q3_K: alt = TensorType::Q4_0; break;
        case TensorType::Q4_K: alt = TensorType::Q5_0; break;
        case TensorType::Q5_K: alt = TensorType::Q5_1; break;
        case TensorType::Q6_K: alt = TensorType::Q8_0; break;
        default: break;
    }
    return fits(alt, ne0) ? alt : TensorType::F16;
}

// llama.cpp: layers that get more bits for attn_v / ffn_down in *_K_M mixes.
bool use_more_bits(int i_layer, int n_layer) {
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

bool is_writable_type(TensorType t) {
    switch (t) {
        case TensorType::F32: case TensorType::F16: case TensorType::BF16:
        case TensorType::Q4_0: case TensorType::Q4_1: case TensorType::Q5_0: case TensorType::Q5_1:
        case TensorType::Q8_0: case TensorType::Q2_K: case TensorType::Q3_K: case TensorType::Q4_K:
        case TensorType::Q5_K: case TensorType::Q6_K:
            return true;
        default:
            return false;
    }
}

// Converts one row of f32 values into type t. F32/F16/BF16 are done here, the
// quantized types by the reference quantizer.
bool convert_row(TensorType t, const float * src, uint8_t * dst, int64_t n) {
    switch (t) {
        case TensorType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return true;
        case TensorType::F16:
            for (int64_t i = 0; i < n; ++i) {
                const uint16_t h = fp32_to_fp16(src[i]);
                std::memcpy(dst + 2 * i, &h, 2);
            }
            return true;
        case TensorType::BF16:
            for (int64_t i = 0; i < n; ++i) {
                const uint16_t h = fp32_to_bf16(src[i]);
                std::memcpy(dst + 2 * i, &h, 2);
            }
            return true;
        default:
            return quantize_row_ref(t, src, dst, n);
    }
}

// ---- tensor table -------------------------------------------------------------

enum class Init { Weight, Norm };

struct PlannedTensor {
    SynthTensor info;
    Init        init;
};

std::vector<PlannedTensor> plan_tensors(const SynthSpec & s) {
    std::vector<PlannedTensor> out;
    const SynthTypes & ty = s.types;
    auto add = [&](std::string name, TensorType type, std::vector<int64_t> ne, Init init) {
        if (ne.size() == 1) type = TensorType::F32;
        type = fit_type(type, ne[0]);
        int64_t rows = 1;
        for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
        const size_t n_bytes = row_size(type, ne[0]) * static_cast<size_t>(rows);
        out.push_back({SynthTensor{std::move(name), type, std::move(ne), n_bytes}, init});
    };
    const int64_t n_embd = s.n_embd, n_vocab = s.n_vocab, n_ff = s.n_ff;
    const int64_t n_q = static_cast<int64_t>(s.n_head) * s.head_dim;
    const int64_t n_kv = static_cast<int64_t>(s.n_head_kv) * s.head_dim;

    add("token_embd.weight", s.tie_embeddings ? ty.output : ty.token_embd, {n_embd, n_vocab}, Init::Weight);
    add("output_norm.weight", TensorType::F32, {n_embd}, Init::Norm);
    if (!s.tie_embeddings) add("output.weight", ty.output, {n_embd, n_vocab}, Init::Weight);

    for (int il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        const TensorType more = use_more_bits(il, s.n_layer) ? ty.more_bits : ty.type;
        add(p + "attn_norm.weight", TensorType::F32, {n_embd}, Init::Norm);
        add(p + "attn_q.weight", ty.type, {n_embd, n_q}, Init::Weight);
        add(p + "attn_k.weight", ty.type, {n_embd, n_kv}, Init::Weight);
        add(p + "attn_v.weight", more, {n_embd, n_kv}, Init::Weight);
        if (s.arch == "qwen2") {
            add(p + "attn_q.bias", TensorType::F32, {n_q}, Init::Weight);
            add(p + "attn_k.bias", TensorType::F32, {n_kv}, Init::Weight);
            add(p + "attn_v.bias", TensorType::F32, {n_kv}, Init::Weight);
        }
        if (s.arch == "gemma3") {
            add(p + "attn_q_norm.weight", TensorType::F32, {s.head_dim}, Init::Norm);
            add(p + "attn_k_norm.weight", TensorType::F32, {s.head_dim}, Init::Norm);
        }
        add(p + "attn_output.weight", ty.type, {n_q, n_embd}, Init::Weight);
        if (s.arch == "gemma3") add(p + "post_attention_norm.weight", TensorType::F32, {n_embd}, Init::Norm);
        add(p + "ffn_norm.weight", TensorType::F32, {n_embd}, Init::Norm);
        add(p + "ffn_gate.weight", ty.type, {n_embd, n_ff}, Init::Weight);
        add(p + "ffn_up.weight", ty.type, {n_embd, n_ff}, Init::Weight);
        add(p + "ffn_down.weight", more, {n_ff, n_embd}, Init::Weight);
        if (s.arch == "gemma3") add(p + "post_ffw_norm.weight", TensorType::F32, {n_embd}, Init::Norm);
    }
    return out;
}

// ---- vocabulary ---------------------------------------------------------------

// Letters in rough English frequency order, so short pieces look plausible.
constexpr std::string_view k_letters = "etaoinshrdlcumwfgypbvkjxqz";
constexpr std::string_view k_space = "\xe2\x96\x81";  // U+2581, SPM's space marker

// The k-th string over k_letters in length-then-lexicographic order (k >= 0).
std::string letter_string(uint64_t k) {
    const uint64_t base = k_letters.size();
    uint64_t len = 1, count = base;
    while (k >= count) {
        k -= count;
        ++len;
        count *= base;
    }
    std::string s(len, ' ');
    for (uint64_t i = 0; i < len; ++i) {
        s[len - 1 - i] = k_letters[k % base];
        k /= base;
    }
    return s;
}

// ---- writing ----------------------------------------------------------------

struct FillState {
    const std::function<bool(float)> * progress = nullptr;
    int               n_threads = 1;
    uint64_t          seed = 0;
    float             weight_std = 0.02f;
    uint64_t          total_bytes = 0;
    uint64_t          done_bytes = 0;
    std::atomic<bool> cancelled{false};
    std::atomic<bool> failed{false};
    std::string       failure;  // set once, under failure_mutex
    std::mutex        failure_mutex;
};

// Generates and converts rows [r0, r1) of one tensor.
bool fill_rows(const SynthTensor & t, Init init, FillState & st, uint8_t * dst, int64_t r0, int64_t r1,
               std::vector<float> & buf) {
    const int64_t ne0 = t.ne[0];
    const size_t row_bytes = row_size(t.type, ne0);
    const uint64_t tensor_key = fnv1a(t.name) ^ (st.seed * 0xd1342543de82ef95ull);
    buf.resize(static_cast<size_t>(ne0));
    for (int64_t r = r0; r < r1; ++r) {
        // Each row starts at a hashed point of the splitmix sequence (not at
        // key + r * step, which would make row r+1 row r shifted by one value).
        uint64_t seed_r = tensor_key ^ (static_cast<uint64_t>(r) * 0xbf58476d1ce4e5b9ull);
        uint64_t state = splitmix64(seed_r);
        for (int64_t i = 0; i < ne0; ++i) {
            const float x = normalish(state);
            buf[i] = init == Init::Norm ? 1.0f + 0.1f * x : st.weight_std * x;
        }
        if (!convert_row(t.type, buf.data(), dst + static_cast<size_t>(r) * row_bytes, ne0)) return false;
    }
    return true;
}

// Fills a whole tensor: rows in chunks claimed by worker threads; the calling
// thread works too and reports progress between its chunks.
void fill_tensor(const SynthTensor & t, Init init, FillState & st, uint8_t * dst, size_t n_bytes) {
    if (st.cancelled || st.failed) {
        std::memset(dst, 0, n_bytes);  // the file is removed afterwards
        return;
    }
    const int64_t n_rows = static_cast<int64_t>(n_bytes / row_size(t.type, t.ne[0]));
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(256, (1 << 20) / std::max<int64_t>(1, t.ne[0])));
    const int64_t n_chunks = (n_rows + chunk - 1) / chunk;
    const size_t row_bytes = row_size(t.type, t.ne[0]);
    std::atomic<int64_t> next{0};

    auto work = [&](bool is_caller) {
        std::vector<float> buf;
        for (;;) {
            if (st.cancelled || st.failed) return;
            const int64_t c = next.fetch_add(1);
            if (c >= n_chunks) return;
            const int64_t r0 = c * chunk, r1 = std::min(n_rows, r0 + chunk);
            if (!fill_rows(t, init, st, dst, r0, r1, buf)) {
                std::lock_guard<std::mutex> lock(st.failure_mutex);
                if (!st.failed.exchange(true)) {
                    st.failure = std::string("cannot quantize ") + t.name + " to " + type_name(t.type);
                }
                return;
            }
            if (is_caller && st.progress && *st.progress) {
                // Rows done by all threads are not tracked; the caller's chunk
                // index is a good enough estimate of how far this tensor is.
                const uint64_t here = static_cast<uint64_t>(std::min(n_rows, (c + 1) * chunk)) * row_bytes;
                const float p = static_cast<float>(static_cast<double>(st.done_bytes + here) /
                                                   static_cast<double>(std::max<uint64_t>(1, st.total_bytes)));
                if (!(*st.progress)(std::min(p, 1.0f))) st.cancelled = true;
            }
        }
    };

    const int n_workers = static_cast<int>(std::min<int64_t>(st.n_threads, n_chunks)) - 1;
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(std::max(0, n_workers)));
    for (int i = 0; i < n_workers; ++i) threads.emplace_back(work, false);
    work(true);
    for (std::thread & th : threads) th.join();
    st.done_bytes += n_bytes;
}

}  // namespace

Result<SynthTypes> synth_types(std::string_view ftype) {
    const std::string f = upper(ftype);
    auto uniform = [](TensorType t, uint32_t file_type) { return SynthTypes{t, t, t, t, file_type}; };
    if (f == "F32") return uniform(TensorType::F32, 0);
    if (f == "F16") return uniform(TensorType::F16, 1);
    if (f == "BF16") return uniform(TensorType::BF16, 32);
    if (f == "Q4_0") return uniform(TensorType::Q4_0, 2);
    if (f == "Q4_1") return uniform(TensorType::Q4_1, 3);
    if (f == "Q8_0") return uniform(TensorType::Q8_0, 7);
    if (f == "Q5_0") return uniform(TensorType::Q5_0, 8);
    if (f == "Q5_1") return uniform(TensorType::Q5_1, 9);
    if (f == "Q2_K") return uniform(TensorType::Q2_K, 10);
    if (f == "Q3_K") return uniform(TensorType::Q3_K, 12);
    if (f == "Q4_K") return uniform(TensorType::Q4_K, 14);
    if (f == "Q5_K") return uniform(TensorType::Q5_K, 16);
    if (f == "Q6_K") return uniform(TensorType::Q6_K, 18);
    if (f == "Q4_K_M") return SynthTypes{TensorType::Q4_K, TensorType::Q6_K, TensorType::Q6_K, TensorType::Q4_K, 15};
    if (f == "Q5_K_M") return SynthTypes{TensorType::Q5_K, TensorType::Q6_K, TensorType::Q6_K, TensorType::Q5_K, 17};
    return invalid("unknown file type '" + std::string(ftype) +
                   "' (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M Q5_K_M)");
}

std::vector<std::string> synth_preset_names() {
    return {"llama-1b", "llama-8b", "qwen2-0.5b", "gemma3-270m", "tiny-llama", "tiny-qwen2", "tiny-gemma3", "mid-llama"};
}

Result<SynthSpec> synth_preset(std::string_view name) {
    SynthSpec s;
    s.types = *synth_types("Q4_K_M");
    s.name = "synthetic " + std::string(name);
    if (name == "llama-1b") {  // Llama-3.2-1B
        s.arch = "llama";
        s.n_vocab = 128256; s.n_embd = 2048; s.n_layer = 16; s.n_head = 32; s.n_head_kv = 8; s.head_dim = 64;
        s.n_ff = 8192; s.n_ctx_train = 131072; s.rope_base = 500000.0f; s.rms_eps = 1e-5f; s.tie_embeddings = true;
    } else if (name == "llama-8b") {  // Llama-3.1-8B
        s.arch = "llama";
        s.n_vocab = 128256; s.n_embd = 4096; s.n_layer = 32; s.n_head = 32; s.n_head_kv = 8; s.head_dim = 128;
        s.n_ff = 14336; s.n_ctx_train = 131072; s.rope_base = 500000.0f; s.rms_eps = 1e-5f; s.tie_embeddings = false;
    } else if (name == "qwen2-0.5b") {  // Qwen2.5-0.5B
        s.arch = "qwen2";
        s.n_vocab = 151936; s.n_embd = 896; s.n_layer = 24; s.n_head = 14; s.n_head_kv = 2; s.head_dim = 64;
        s.n_ff = 4864; s.n_ctx_train = 32768; s.rope_base = 1000000.0f; s.rms_eps = 1e-6f; s.tie_embeddings = true;
    } else if (name == "gemma3-270m") {  // gemma-3-270m
        s.arch = "gemma3";
        s.n_vocab = 262144; s.n_embd = 640; s.n_layer = 18; s.n_head = 4; s.n_head_kv = 1; s.head_dim = 256;
        s.n_ff = 2048; s.n_ctx_train = 32768; s.rope_base = 1000000.0f; s.rms_eps = 1e-6f; s.sliding_window = 512;
        s.tie_embeddings = true;
    } else if (name == "tiny-llama") {
        // n_embd 256 so the K-quants are used as such (no fallback) in attn/ffn.
        s.arch = "llama";
        s.n_vocab = 512; s.n_embd = 256; s.n_layer = 2; s.n_head = 4; s.n_head_kv = 2; s.head_dim = 64;
        s.n_ff = 512; s.n_ctx_train = 2048; s.rope_base = 10000.0f; s.rms_eps = 1e-5f; s.tie_embeddings = false;
        s.weight_std = 0.05f;
    } else if (name == "mid-llama") {
        // Llama-3.2-1B's row lengths (2048, ffn 8192) in 2 layers and a small
        // vocabulary: a model for tests of the GPU's large-row decode kernels.
        s.arch = "llama";
        s.n_vocab = 2048; s.n_embd = 2048; s.n_layer = 2; s.n_head = 16; s.n_head_kv = 4; s.head_dim = 128;
        s.n_ff = 8192; s.n_ctx_train = 4096; s.rope_base = 500000.0f; s.rms_eps = 1e-5f; s.tie_embeddings = false;
    } else if (name == "tiny-qwen2") {
        // n_embd 128: K-quant rows fall back (Q5_0 / Q8_0) except ffn_down (row 256).
        s.arch = "qwen2";
        s.n_vocab = 512; s.n_embd = 128; s.n_layer = 3; s.n_head = 4; s.n_head_kv = 2; s.head_dim = 32;
        s.n_ff = 256; s.n_ctx_train = 2048; s.rope_base = 1000000.0f; s.rms_eps = 1e-6f; s.tie_embeddings = true;
        s.weight_std = 0.05f;
    } else if (name == "tiny-gemma3") {
        // 6 layers so llama.cpp's gemma3 pattern (5 sliding-window layers, then
        // 1 global) has a global layer; a window of 8 tokens is hit by short prompts.
        s.arch = "gemma3";
        s.n_vocab = 512; s.n_embd = 128; s.n_layer = 6; s.n_head = 2; s.n_head_kv = 1; s.head_dim = 64;
        s.n_ff = 256; s.n_ctx_train = 2048; s.rope_base = 1000000.0f; s.rms_eps = 1e-6f; s.sliding_window = 8;
        s.tie_embeddings = true; s.weight_std = 0.05f;
    } else {
        std::string names;
        for (const std::string & n : synth_preset_names()) names += " " + n;
        return invalid("unknown preset '" + std::string(name) + "' (known:" + names + ")");
    }
    return s;
}

Status synth_validate(const SynthSpec & s) {
    if (s.arch != "llama" && s.arch != "qwen2" && s.arch != "gemma3") {
        return invalid("unsupported architecture '" + s.arch + "' (llama, qwen2, gemma3)");
    }
    if (s.n_vocab < 259) return invalid("n_vocab " + std::to_string(s.n_vocab) + " < 259 (3 specials + 256 bytes)");
    if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.head_dim <= 0 || s.n_ff <= 0 ||
        s.n_ctx_train <= 0) {
        return invalid("all sizes must be positive");
    }
    if (s.n_head % s.n_head_kv != 0) {
        return invalid("n_head " + std::to_string(s.n_head) + " not a multiple of n_head_kv " + std::to_string(s.n_head_kv));
    }
    if (s.head_dim % 2 != 0) return invalid("head_dim must be even (rope)");
    if (s.arch == "gemma3" && s.sliding_window <= 0) return invalid("gemma3 needs sliding_window > 0");
    for (TensorType t : {s.types.type, s.types.more_bits, s.types.output, s.types.token_embd}) {
        if (!is_writable_type(t)) return invalid(std::string("cannot write weights of type ") + type_name(t));
    }
    return Status::success();
}

Result<std::vector<SynthTensor>> synth_tensors(const SynthSpec & spec) {
    GB_TRY_STATUS(synth_validate(spec));
    std::vector<SynthTensor> out;
    for (PlannedTensor & p : plan_tensors(spec)) out.push_back(std::move(p.info));
    return out;
}

std::vector<std::string> synth_vocab(int32_t n_vocab) {
    std::vector<std::string> v;
    v.reserve(static_cast<size_t>(std::max(0, n_vocab)));
    v.push_back("<unk>");
    v.push_back("<s>");
    v.push_back("</s>");
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
        v.push_back(buf);
    }
    // Then "▁", single characters, and alternately "▁"+s / s over letter strings.
    std::vector<std::string> extra = {std::string(k_space)};
    for (char c : std::string_view("0123456789.,!?'-:;()\"")) extra.push_back(std::string(1, c));
    for (char c = 'A'; c <= 'Z'; ++c) extra.push_back(std::string(1, c));
    for (const std::string & e : extra) {
        if (static_cast<int32_t>(v.size()) >= n_vocab) break;
        v.push_back(e);
    }
    for (uint64_t k = 0; static_cast<int32_t>(v.size()) < n_vocab; ++k) {
        const std::string s = letter_string(k / 2);
        v.push_back(k % 2 == 0 ? std::string(k_space) + s : s);
    }
    v.resize(static_cast<size_t>(std::max(0, n_vocab)));
    return v;
}

Status write_synthetic_model(const SynthSpec & s, const std::string & path,
                             const std::function<bool(float)> & progress, int n_threads) {
    GB_TRY_STATUS(synth_validate(s));
    // Fail early (before writing GBs) if the quantizer lacks a type.
    std::vector<PlannedTensor> plan = plan_tensors(s);
    for (const PlannedTensor & p : plan) {
        const int64_t n = type_traits(p.info.type).block_size;
        std::vector<float> x(static_cast<size_t>(n), 0.01f);
        std::vector<uint8_t> y(row_size(p.info.type, n));
        if (!convert_row(p.info.type, x.data(), y.data(), n)) {
            return make_error(ErrorCode::Unsupported,
                              std::string("synth: the quantizer does not support ") + type_name(p.info.type));
        }
    }

    gguf::Writer w;
    const std::string & a = s.arch;
    w.set_string("general.architecture", a);
    w.set_string("general.type", "model");
    w.set_string("general.name", s.name.empty() ? "synthetic " + a : s.name);
    w.set_u32("general.quantization_version", 2);
    w.set_u32("general.file_type", s.types.file_type);
    w.set_u64("general.synthetic_seed", s.seed);
    w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx_train));
    w.set_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
    w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
    w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
    w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
    w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
    w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.rms_eps);
    w.set_f32(a + ".rope.freq_base", s.rope_base);
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
    if (a == "llama") {
        w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.head_dim));
        w.set_u32(a + ".vocab_size", static_cast<uint32_t>(s.n_vocab));
    }
    if (a == "gemma3") w.set_u32(a + ".attention.sliding_window", static_cast<uint32_t>(s.sliding_window));

    // SPM ("llama") tokenizer: unk 0, bos 1, eos 2, byte tokens 3..258.
    const std::vector<std::string> vocab = synth_vocab(s.n_vocab);
    std::vector<float> scores(vocab.size(), 0.0f);
    std::vector<int32_t> token_types(vocab.size(), 1);  // normal
    token_types[0] = 2;                                  // unknown
    token_types[1] = token_types[2] = 3;                 // control
    for (size_t i = 3; i < 259; ++i) token_types[i] = 6; // byte
    for (size_t i = 259; i < vocab.size(); ++i) scores[i] = -static_cast<float>(i - 259);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string("tokenizer.ggml.pre", "default");
    w.set_array_string("tokenizer.ggml.tokens", vocab);
    w.set_array_f32("tokenizer.ggml.scores", scores);
    w.set_array_i32("tokenizer.ggml.token_type", token_types);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", false);

    FillState st;
    st.progress = &progress;
    st.n_threads = n_threads > 0 ? n_threads : std::max(1u, std::thread::hardware_concurrency());
    st.seed = s.seed;
    st.weight_std = s.weight_std;
    for (const PlannedTensor & p : plan) st.total_bytes += p.info.n_bytes;

    for (const PlannedTensor & p : plan) {
        const SynthTensor * info = &p.info;
        const Init init = p.init;
        GB_TRY_STATUS(w.add_tensor(info->name, info->type, info->ne,
                                   [info, init, &st](uint8_t * dst, size_t n_bytes) {
                                       fill_tensor(*info, init, st, dst, n_bytes);
                                   }));
    }

    Status written = w.write(path);
    if (written.ok() && !st.cancelled && !st.failed) {
        if (progress) progress(1.0f);
        return written;
    }
    std::remove(path.c_str());
    if (!written.ok()) return written;
    if (st.failed) return make_error(ErrorCode::Internal, "synth: " + st.failure + " (writing " + path + ")");
    return make_error(ErrorCode::Cancelled, "synth: writing " + path + " cancelled");
}

}  // namespace gb
