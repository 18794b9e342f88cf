// Tokenizer built from GGUF vocab metadata: vocabulary set-up (special ids,
// token attributes, end-of-generation set) and special-token partitioning as
// llama.cpp's llama_vocab::impl::load / tokenize, plus token_to_piece and the
// streaming UTF-8 decoder. Encoders live in tokenizer_spm.cpp / tokenizer_bpe.cpp.
#include "tokenizer_impl.h"

#include "glassbox/gguf.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

namespace gb {

namespace tok {

namespace {

using unicode::PreTokenizer;

struct PreInfo {
    PreTokenizer kind;
    bool         ignore_merges;
    bool         add_bos;  // default before tokenizer.ggml.add_bos_token
};

// tokenizer.ggml.pre names whose llama.cpp regexes we implement.
bool lookup_pre(std::string_view name, PreInfo * info) {
    static constexpr std::string_view k_llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                                    "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"};
    static constexpr std::string_view k_llama3_regex[] = {"dbrx", "smaug-bpe"};
    static constexpr std::string_view k_qwen2[] = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2",
                                                   "hunyuan", "solar-open", "grok-2"};
    static constexpr std::string_view k_gpt2[] = {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "gigachat",
                                                  "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert",
                                                  "mpt", "olmo", "jais", "trillion", "granite-docling"};
    auto in = [&](const auto & list) { return std::find(std::begin(list), std::end(list), name) != std::end(list); };
    if (name == "default") *info = {PreTokenizer::Default, false, false};
    else if (in(k_llama3)) *info = {PreTokenizer::Llama3, true, true};
    else if (in(k_llama3_regex)) *info = {PreTokenizer::Llama3, false, false};
    else if (in(k_qwen2)) *info = {PreTokenizer::Qwen2, false, false};
    else if (in(k_gpt2)) *info = {PreTokenizer::Gpt2, false, false};
    else return false;
    return true;
}

bool text_in(std::string_view text, std::initializer_list<std::string_view> list) {
    return std::find(list.begin(), list.end(), text) != list.end();
}

// Token texts llama.cpp recognises when the matching *_token_id key is absent.
const std::initializer_list<std::string_view> k_eot_texts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>"};
const std::initializer_list<std::string_view> k_eom_texts = {"<|eom_id|>"};
const std::initializer_list<std::string_view> k_fim_pre_texts = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
    "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"};
const std::initializer_list<std::string_view> k_fim_suf_texts = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"};
const std::initializer_list<std::string_view> k_fim_mid_texts = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
    "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
const std::initializer_list<std::string_view> k_fim_pad_texts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const std::initializer_list<std::string_view> k_fim_rep_texts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const std::initializer_list<std::string_view> k_fim_sep_texts = {"<|file_sep|>"};
const std::initializer_list<std::string_view> k_eog_texts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["};

uint16_t attr_from_type(int32_t type) {
    switch (type) {
        case 1: return k_attr_normal;
        case 2: return k_attr_unknown;
        case 3: return k_attr_control;
        case 4: return k_attr_user_defined;
        case 5: return k_attr_unused;
        case 6: return k_attr_byte;
        default: return 0;  // undefined
    }
}

void replace_all(std::string & s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
        out.append(s, pos, hit - pos);
        out += to;
    }
    out.append(s, pos, std::string::npos);
    s = std::move(out);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Byte of a "<0xXX>" token (strtol on the two hex digits, as llama.cpp).
char byte_of_token_text(const std::string & text) {
    int v = 0;
    for (size_t i = 3; i < 5 && i < text.size(); ++i) {
        const int h = hex_value(text[i]);
        if (h < 0) break;
        v = v * 16 + h;
    }
    return char(v);
}

}  // namespace

void SpecialTrie::build(const std::vector<std::string_view> & texts) {
    std::vector<std::pair<std::string_view, int32_t>> sorted;
    sorted.reserve(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) sorted.emplace_back(texts[i], int32_t(i));
    std::sort(sorted.begin(), sorted.end());
    m_nodes.clear();
    m_edges.clear();
    build_node(sorted, 0, sorted.size(), 0);
}

// Node for the texts sorted[lo, hi), which share their first `depth` bytes.
// Each node's edges are appended together, before its children are built.
uint32_t SpecialTrie::build_node(const std::vector<std::pair<std::string_view, int32_t>> & sorted, size_t lo, size_t hi,
                                 size_t depth) {
    const uint32_t self = uint32_t(m_nodes.size());
    m_nodes.emplace_back();
    if (lo < hi && sorted[lo].first.size() == depth) m_nodes[self].text_index = sorted[lo].second;
    while (lo < hi && sorted[lo].first.size() == depth) ++lo;  // duplicates of the same text
    std::vector<std::pair<size_t, size_t>> groups;             // [lo, hi) per next byte
    for (size_t i = lo; i < hi;) {
        size_t j = i;
        while (j < hi && sorted[j].first[depth] == sorted[i].first[depth]) ++j;
        groups.emplace_back(i, j);
        i = j;
    }
    const uint32_t first_edge = uint32_t(m_edges.size());
    for (const auto & g : groups) m_edges.push_back({uint8_t(sorted[g.first].first[depth]), 0});
    m_nodes[self].edge_begin = first_edge;
    m_nodes[self].edge_end = first_edge + uint32_t(groups.size());
    for (size_t k = 0; k < groups.size(); ++k) {
        const uint32_t child = build_node(sorted, groups[k].first, groups[k].second, depth + 1);
        m_edges[first_edge + k].child = child;
    }
    return self;
}

void SpecialTrie::mark_occurring(std::string_view text, std::vector<bool> & seen) const {
    if (m_nodes.empty()) return;
    for (size_t i = 0; i < text.size(); ++i) {
        uint32_t node = 0;
        for (size_t j = i; j < text.size(); ++j) {
            const Node & nd = m_nodes[node];
            const uint8_t b = uint8_t(text[j]);
            const auto begin = m_edges.begin() + nd.edge_begin;
            const auto end = m_edges.begin() + nd.edge_end;
            const auto it = std::lower_bound(begin, end, b, [](const Edge & e, uint8_t v) { return e.byte < v; });
            if (it == end || it->byte != b) break;
            node = it->child;
            if (m_nodes[node].text_index >= 0) seen[size_t(m_nodes[node].text_index)] = true;
        }
    }
}

std::string Vocab::bpe_rank_key(std::string_view left, std::string_view right) {
    // Length-prefixed so that no pair of strings can collide.
    std::string key;
    key.reserve(4 + left.size() + right.size());
    const uint32_t n = uint32_t(left.size());
    key.append(reinterpret_cast<const char *>(&n), 4);
    key.append(left);
    key.append(right);
    return key;
}

int32_t Vocab::find_rank(std::string_view left, std::string_view right) const {
    const auto it = bpe_ranks.find(bpe_rank_key(left, right));
    return it == bpe_ranks.end() ? -1 : it->second;
}

Result<std::shared_ptr<const VocabTokenizer>> VocabTokenizer::build(VocabData data) {
    auto tok = std::make_shared<VocabTokenizer>();
    Vocab & v = tok->m_vocab;
    auto warn = [&](std::string msg) { tok->m_warnings.push_back(std::move(msg)); };

    const size_t n = data.tokens.size();
    if (n == 0) return make_error(ErrorCode::InvalidFile, "tokenizer: tokenizer.ggml.tokens is missing or empty");
    if (n > size_t(INT32_MAX)) return make_error(ErrorCode::InvalidFile, "tokenizer: too many tokens");
    if (!data.scores.empty() && data.scores.size() < n)
        return make_error(ErrorCode::InvalidFile, "tokenizer: tokenizer.ggml.scores has " + std::to_string(data.scores.size()) +
                                                      " entries for " + std::to_string(n) + " tokens");
    if (!data.types.empty() && data.types.size() < n)
        return make_error(ErrorCode::InvalidFile, "tokenizer: tokenizer.ggml.token_type has " + std::to_string(data.types.size()) +
                                                      " entries for " + std::to_string(n) + " tokens");

    // Model type and llama.cpp's per-type defaults.
    Token def_bos = -1, def_eos = -1, def_unk = -1;
    if (data.model == "llama") {
        v.type = VocabType::Spm;
        def_bos = 1, def_eos = 2, def_unk = 0;
        v.add_space_prefix = true;
        v.add_bos = true;
    } else if (data.model == "gpt2") {
        v.type = VocabType::Bpe;
        def_bos = 11, def_eos = 11;
        v.add_space_prefix = false;
        PreInfo info{PreTokenizer::Gpt2, false, false};
        if (data.pre.empty()) {
            warn("tokenizer: tokenizer.ggml.pre is missing, using 'default'");
            info = {PreTokenizer::Default, false, false};
        } else if (!lookup_pre(data.pre, &info)) {
            warn("tokenizer: unknown pre-tokenizer '" + data.pre + "', using the GPT-2 regex");
        }
        v.pre = info.kind;
        v.ignore_merges = info.ignore_merges;
        v.add_bos = info.add_bos;
    } else {
        return make_error(ErrorCode::Unsupported, "tokenizer: unsupported tokenizer.ggml.model '" + data.model +
                                                      "' (supported: llama, gpt2)");
    }
    if (data.add_space_prefix) v.add_space_prefix = *data.add_space_prefix;

    // Token table.
    v.text = std::move(data.tokens);
    v.score.assign(n, 0.0f);
    if (!data.scores.empty()) std::copy_n(data.scores.begin(), n, v.score.begin());
    v.attr.assign(n, k_attr_normal);
    if (!data.types.empty())
        for (size_t i = 0; i < n; ++i) v.attr[i] = attr_from_type(data.types[i]);
    for (size_t i = 0; i < n; ++i)
        if (v.text[i].empty()) v.text[i] = "[EMPTY_" + std::to_string(i) + "]";
    v.token_to_id.reserve(n);
    for (size_t i = 0; i < n; ++i) v.token_to_id[v.text[i]] = Token(i);  // later duplicates win, as in llama.cpp

    // BPE merge ranks: "left right", split at the first space after position 0.
    v.bpe_ranks.reserve(data.merges.size());
    for (size_t i = 0; i < data.merges.size(); ++i) {
        const std::string & m = data.merges[i];
        const size_t sp = m.find(' ', 1);
        std::string_view left, right;
        if (sp != std::string::npos) {
            left = std::string_view(m).substr(0, sp);
            right = std::string_view(m).substr(sp + 1);
        }
        v.bpe_ranks.emplace(Vocab::bpe_rank_key(left, right), int32_t(i));
    }

    // Special ids: defaults unless out of range, then the keys where valid.
    auto pick = [&](const char * key, Token def, const std::optional<int64_t> & value) -> Token {
        if (def >= 0 && size_t(def) >= n) def = -1;
        if (!value) return def;
        if (*value < 0 || uint64_t(*value) >= n) {
            warn(std::string("tokenizer: bad special token tokenizer.ggml.") + key + " = " + std::to_string(*value) +
                 ", using default " + std::to_string(def));
            return def;
        }
        return Token(*value);
    };
    v.bos = pick("bos_token_id", def_bos, data.bos);
    v.eos = pick("eos_token_id", def_eos, data.eos);
    v.eot = pick("eot_token_id", -1, data.eot);
    v.eom = pick("eom_token_id", -1, data.eom);
    v.unk = pick("unknown_token_id", def_unk, data.unk);
    v.pad = pick("padding_token_id", -1, data.pad);
    Token fim_pre = pick("fim_pre_token_id", -1, data.fim_pre);
    Token fim_suf = pick("fim_suf_token_id", -1, data.fim_suf);
    Token fim_mid = pick("fim_mid_token_id", -1, data.fim_mid);
    Token fim_pad = pick("fim_pad_token_id", -1, data.fim_pad);
    Token fim_rep = pick("fim_rep_token_id", -1, data.fim_rep);
    Token fim_sep = pick("fim_sep_token_id", -1, data.fim_sep);
    if (data.add_bos) v.add_bos = *data.add_bos;
    if (data.add_eos) v.add_eos = *data.add_eos;

    // Special tokens found by their text when their key is absent; they are
    // forced to be control tokens. NOTE: llama.cpp walks a hash map here, so
    // with several candidates its choice is unspecified; we take the lowest id.
    for (size_t i = 0; i < n; ++i) {
        const std::string_view t = v.text[i];
        bool hit = false;
        auto detect = [&](Token & id, const std::initializer_list<std::string_view> & texts) {
            if (id == -1 && text_in(t, texts)) {
                id = Token(i);
                hit = true;
            }
        };
        detect(v.eot, k_eot_texts);
        detect(v.eom, k_eom_texts);
        detect(fim_pre, k_fim_pre_texts);
        detect(fim_suf, k_fim_suf_texts);
        detect(fim_mid, k_fim_mid_texts);
        detect(fim_pad, k_fim_pad_texts);
        detect(fim_rep, k_fim_rep_texts);
        detect(fim_sep, k_fim_sep_texts);
        if (hit) v.attr[i] |= k_attr_control;
    }

    // Control tokens named "...unused..." are unused.
    for (size_t i = 0; i < n; ++i)
        if ((v.attr[i] & k_attr_control) && v.text[i].find("unused") != std::string::npos) v.attr[i] |= k_attr_unused;

    // End-of-generation set.
    v.eog.assign(n, false);
    for (const Token id : {fim_pad, fim_rep, fim_sep})
        if (id >= 0) v.eog[size_t(id)] = true;
    for (size_t i = 0; i < n; ++i) {
        if (text_in(v.text[i], k_eog_texts)) {
            v.eog[i] = true;
            v.attr[i] |= k_attr_control;
        }
        if (text_in(v.text[i], {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) v.attr[i] = k_attr_user_defined;
    }
    for (const Token id : {v.eos, v.eot, v.eom})
        if (id >= 0) v.eog[size_t(id)] = true;
    {
        // "<|end|>" is not an end of generation when "<|return|>"/"<|call|>" (or
        // "<|calls|>"/"<|flush|>") exist; "</s>" is not one next to gemma4/plamo markers.
        bool has_return = false, has_call = false, has_flush = false, has_marker = false;
        Token end_id = -1, s_id = -1;
        for (size_t i = 0; i < n; ++i) {
            if (!v.eog[i]) continue;
            const std::string & t = v.text[i];
            if (t == "<|return|>") has_return = true;
            else if (t == "<|call|>" || t == "<|calls|>") has_call = true;
            else if (t == "<|flush|>") has_flush = true;
            else if (t == "<|end|>") end_id = Token(i);
            if (t == "<|tool_response>" || t == "<|plamo:eos|>") has_marker = true;
            else if (t == "</s>") s_id = Token(i);
        }
        if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
            v.eog[size_t(end_id)] = false;
            v.attr[size_t(end_id)] = k_attr_user_defined;
        }
        if (has_marker && s_id >= 0) {
            v.eog[size_t(s_id)] = false;
            v.attr[size_t(s_id)] = k_attr_normal;
        }
    }

    // Special tokens matched as text before encoding, longest first.
    // NOTE: std::sort (not stable) on ascending ids, exactly as llama.cpp, so
    // equal-length tokens are tried in the same order with the same library.
    for (size_t i = 0; i < n; ++i)
        if (v.attr[i] & (k_attr_control | k_attr_user_defined | k_attr_unknown)) v.special_tokens.push_back(Token(i));
    std::sort(v.special_tokens.begin(), v.special_tokens.end(),
              [&](Token a, Token b) { return v.text[size_t(a)].size() > v.text[size_t(b)].size(); });
    {
        std::vector<std::string_view> texts;
        std::unordered_map<std::string_view, int32_t> index;
        for (const Token id : v.special_tokens) {
            const std::string_view t = v.text[size_t(id)];
            const auto [it, inserted] = index.emplace(t, int32_t(texts.size()));
            if (inserted) texts.push_back(t);
            v.special_text_index.push_back(it->second);
        }
        v.special_trie.build(texts);
    }

    // SPM byte fallback tokens.
    for (int b = 0; b < 256; ++b) {
        static const char * hex = "0123456789ABCDEF";
        const char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        Token id = v.find(buf);
        if (id < 0) id = v.find(std::string(1, char(b)));
        v.byte_token[b] = id;
    }

    return std::shared_ptr<const VocabTokenizer>(std::move(tok));
}

std::vector<VocabTokenizer::Fragment> VocabTokenizer::partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, text.size()});

    // Only special tokens that occur somewhere in the text can split it.
    std::vector<bool> occurs(m_vocab.special_tokens.size(), false);
    m_vocab.special_trie.mark_occurring(text, occurs);

    std::vector<Fragment> next;
    for (size_t k = 0; k < m_vocab.special_tokens.size(); ++k) {
        const Token id = m_vocab.special_tokens[k];
        const uint16_t a = m_vocab.attr[size_t(id)];
        // Control and unknown tokens only with parse_special; user-defined always.
        if (!parse_special && (a & (k_attr_control | k_attr_unknown))) continue;
        if (!occurs[size_t(m_vocab.special_text_index[k])]) continue;
        const std::string & tt = m_vocab.text[size_t(id)];

        next.clear();
        for (const Fragment & f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t off = f.offset;
            size_t end = f.offset + f.length;
            while (off < end) {
                const size_t hit = text.substr(0, end).find(tt, off);
                if (hit == std::string_view::npos) break;
                if (hit > off) next.push_back({-1, off, hit - off});
                next.push_back({id, hit, tt.size()});
                off = hit + tt.size();
            }
            if (off < end) next.push_back({-1, off, end - off});
        }
        frags.swap(next);
    }
    return frags;
}

std::vector<Token> VocabTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    const Vocab & v = m_vocab;
    std::vector<Token> out;
    const std::vector<Fragment> frags = partition(text, parse_special);
    // add_bos is llama.cpp's add_special: BOS (and EOS) as the metadata asks.
    if (add_bos && v.add_bos && v.bos >= 0) out.push_back(v.bos);

    if (v.type == VocabType::Spm) {
        bool prev_special = true;  // a space prefix goes before the first text too
        std::string piece;
        for (const Fragment & f : frags) {
            if (f.token >= 0) {
                out.push_back(f.token);
                prev_special = true;
                continue;
            }
            piece.clear();
            if (v.add_space_prefix && prev_special) piece = " ";
            piece.append(text.substr(f.offset, f.length));
            replace_all(piece, " ", "\xE2\x96\x81");
            spm_encode(v, piece, out);
            prev_special = false;
        }
    } else {
        for (const Fragment & f : frags) {
            if (f.token >= 0) out.push_back(f.token);
            else bpe_encode(v, text.substr(f.offset, f.length), out);
        }
    }

    if (add_bos && v.add_eos && v.eos >= 0) out.push_back(v.eos);
    return out;
}

std::string VocabTokenizer::token_to_piece(Token id, bool render_special) const {
    const Vocab & v = m_vocab;
    if (id < 0 || size_t(id) >= v.text.size()) return {};
    const uint16_t a = v.attr[size_t(id)];
    const std::string & t = v.text[size_t(id)];
    if (!render_special && (a & (k_attr_unknown | k_attr_control))) return {};
    if (a & (k_attr_unknown | k_attr_control | k_attr_user_defined)) return t;
    if (a & k_attr_normal) {
        std::string out;
        if (v.type == VocabType::Spm) {
            out = t;
            replace_all(out, "\xE2\x96\x81", " ");
            return out;
        }
        // Byte-level BPE: every codepoint stands for one byte.
        for (const uint32_t cpt : unicode::decode_utf8_lossy(t)) {
            const int b = unicode::cpt_to_byte(cpt);
            if (b >= 0) {
                out.push_back(char(b));
                continue;
            }
            std::string utf8;
            unicode::append_utf8(utf8, cpt);
            out += "[UNK_BYTE_0x";
            for (const char c : utf8) {
                char hex[3];
                std::snprintf(hex, sizeof hex, "%02x", unsigned(uint8_t(c)));
                out += hex;
            }
            out += t + "]";
        }
        return out;
    }
    if (a & k_attr_byte) return std::string(1, byte_of_token_text(t));
    return {};  // unused / undefined
}

bool VocabTokenizer::is_eog(Token id) const {
    return id >= 0 && size_t(id) < m_vocab.eog.size() && m_vocab.eog[size_t(id)];
}

TokenAttr VocabTokenizer::attr(Token id) const {
    if (id < 0 || size_t(id) >= m_vocab.attr.size()) return TokenAttr::Unused;
    const uint16_t a = m_vocab.attr[size_t(id)];
    if (a & k_attr_control) return TokenAttr::Control;
    if (a & k_attr_user_defined) return TokenAttr::UserDefined;
    if (a & k_attr_unknown) return TokenAttr::Unknown;
    if (a & k_attr_byte) return TokenAttr::Byte;
    if (a & k_attr_normal) return TokenAttr::Normal;
    return TokenAttr::Unused;
}

const std::string & VocabTokenizer::text(Token id) const {
    static const std::string empty;
    if (id < 0 || size_t(id) >= m_vocab.text.size()) return empty;
    return m_vocab.text[size_t(id)];
}

// ---------------------------------------------------------------------------
// GGUF adapter

Result<VocabData> read_vocab_data(const gguf::File & file) {
    VocabData d;
    const std::string where = file.path() + ": ";
    auto bad = [&](const std::string & key, const std::string & what) {
        return make_error(ErrorCode::InvalidFile, where + key + ": " + what);
    };

    const auto model = file.get_string("tokenizer.ggml.model");
    if (!model) return bad("tokenizer.ggml.model", "missing (file has no tokenizer)");
    d.model = std::string(*model);
    if (const auto pre = file.get_string("tokenizer.ggml.pre")) d.pre = std::string(*pre);

    auto read_strings = [&](const char * key, std::vector<std::string> & out, bool required) -> Status {
        const gguf::Value::Array * arr = file.get_array(key);
        if (!arr) return required ? Status(bad(key, "missing")) : Status();
        if (arr->elem_type != gguf::ValueType::STRING) return bad(key, "expected an array of strings");
        out.reserve(arr->items.size());
        for (const gguf::Value & item : arr->items) out.push_back(*item.as_string());
        return Status();
    };
    GB_TRY_STATUS(read_strings("tokenizer.ggml.tokens", d.tokens, true));
    GB_TRY_STATUS(read_strings("tokenizer.ggml.merges", d.merges, false));

    if (const gguf::Value::Array * arr = file.get_array("tokenizer.ggml.scores")) {
        if (arr->elem_type != gguf::ValueType::FLOAT32 && arr->elem_type != gguf::ValueType::INT32)
            return bad("tokenizer.ggml.scores", "expected float32 or int32 items");
        d.scores.reserve(arr->items.size());
        for (const gguf::Value & item : arr->items) d.scores.push_back(float(item.as_float().value_or(0.0)));
    }
    if (const gguf::Value::Array * arr = file.get_array("tokenizer.ggml.token_type")) {
        if (arr->elem_type != gguf::ValueType::INT32) return bad("tokenizer.ggml.token_type", "expected int32 items");
        d.types.reserve(arr->items.size());
        for (const gguf::Value & item : arr->items) d.types.push_back(int32_t(item.as_int().value_or(0)));
    }

    const std::pair<const char *, std::optional<int64_t> *> ids[] = {
        {"tokenizer.ggml.bos_token_id", &d.bos},         {"tokenizer.ggml.eos_token_id", &d.eos},
        {"tokenizer.ggml.eot_token_id", &d.eot},         {"tokenizer.ggml.eom_token_id", &d.eom},
        {"tokenizer.ggml.unknown_token_id", &d.unk},     {"tokenizer.ggml.seperator_token_id", &d.sep},
        {"tokenizer.ggml.padding_token_id", &d.pad},     {"tokenizer.ggml.mask_token_id", &d.mask},
        {"tokenizer.ggml.fim_pre_token_id", &d.fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &d.fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &d.fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &d.fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &d.fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &d.fim_sep},
        // deprecated spellings of the FIM ids
        {"tokenizer.ggml.prefix_token_id", &d.fim_pre},  {"tokenizer.ggml.suffix_token_id", &d.fim_suf},
        {"tokenizer.ggml.middle_token_id", &d.fim_mid},
    };
    for (const auto & [key, dst] : ids)
        if (const auto value = file.get_int(key)) *dst = *value;
    d.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
    d.add_eos = file.get_bool("tokenizer.ggml.add_eos_token");
    d.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
    return d;
}

}  // namespace tok

Result<std::shared_ptr<const Tokenizer>> Tokenizer::from_gguf(const gguf::File & file) {
    auto data = tok::read_vocab_data(file);
    if (!data) return data.error();
    auto built = tok::VocabTokenizer::build(std::move(data.value()));
    if (!built) return Error{built.error().code, file.path() + ": " + built.error().message};
    for (const std::string & w : built.value()->warnings()) std::fprintf(stderr, "glassbox: %s: %s\n", file.path().c_str(), w.c_str());
    return std::shared_ptr<const Tokenizer>(built.value());
}

// ---------------------------------------------------------------------------
// StreamDecoder

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (1-4), 0 if the bytes
// present so far could still complete one (needs more input), or -k for an
// invalid sequence whose maximal valid prefix is k bytes (replaced by one U+FFFD).
int utf8_sequence(std::string_view s, size_t i) {
    const uint8_t b0 = uint8_t(s[i]);
    if (b0 < 0x80) return 1;
    int len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) len = 2;
    else if (b0 == 0xE0) len = 3, lo = 0xA0;
    else if (b0 >= 0xE1 && b0 <= 0xEC) len = 3;
    else if (b0 == 0xED) len = 3, hi = 0x9F;
    else if (b0 >= 0xEE && b0 <= 0xEF) len = 3;
    else if (b0 == 0xF0) len = 4, lo = 0x90;
    else if (b0 >= 0xF1 && b0 <= 0xF3) len = 4;
    else if (b0 == 0xF4) len = 4, hi = 0x8F;
    else return -1;
    for (int k = 1; k < len; ++k) {
        if (i + k >= s.size()) return 0;
        const uint8_t b = uint8_t(s[i + k]);
        const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) return -k;
    }
    return len;
}

// Moves the complete part of `pending` to the result; with at_end an
// incomplete tail is replaced too.
std::string drain_utf8(std::string & pending, bool at_end) {
    std::string out;
    size_t i = 0;
    while (i < pending.size()) {
        const int r = utf8_sequence(pending, i);
        if (r > 0) {
            out.append(pending, i, size_t(r));
            i += size_t(r);
        } else if (r < 0) {
            out += "\xEF\xBF\xBD";
            i += size_t(-r);
        } else if (at_end) {
            out += "\xEF\xBF\xBD";
            i = pending.size();
        } else {
            break;
        }
    }
    pending.erase(0, i);
    return out;
}

}  // namespace

std::string StreamDecoder::push(Token id) {
    m_pending += m_tok->token_to_piece(id, m_render_special);
    return drain_utf8(m_pending, false);
}

std::string StreamDecoder::flush() {
    return drain_utf8(m_pending, true);
}

}  // namespace gb
