// Unicode helpers for the tokenizers: lossy UTF-8 decoding, category lookup,
// GPT-2 byte mapping and the BPE pre-tokenizer splits, written by hand to give
// the same words as llama.cpp's unicode_regex_split for the supported regexes.
#include "unicode.h"

#include <algorithm>
#include <array>

namespace gb::unicode {

namespace {

constexpr uint32_t k_out_of_range = 0xFFFFFFFFu;

bool is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

uint8_t category_from_table(uint32_t cpt) {
    // Last range whose start is <= cpt.
    const CptRange * begin = k_cpt_ranges;
    const CptRange * end = k_cpt_ranges + k_n_cpt_ranges;
    const CptRange * it = std::upper_bound(begin, end, cpt, [](uint32_t c, const CptRange & r) { return c < r.start; });
    return it == begin ? uint8_t(k_undefined) : (it - 1)->flags;
}

struct AsciiFlags {
    std::array<uint16_t, 128> flags{};
    AsciiFlags() {
        for (uint32_t c = 0; c < 128; ++c) flags[c] = uint16_t(category_from_table(c) | (is_white_space(c) ? k_whitespace : 0));
    }
};

struct ByteMap {
    std::array<uint32_t, 256> to_cpt{};
    std::array<int16_t, 324> from_cpt{};  // all mapped codepoints are < 256 + 68
    ByteMap() {
        from_cpt.fill(-1);
        uint32_t n = 0;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cpt[b] = printable ? b : 256 + n++;
            from_cpt[to_cpt[b]] = int16_t(b);
        }
    }
};

const ByteMap & byte_map() {
    static const ByteMap map;
    return map;
}

// Lengths (in codepoints) of consecutive chunks; each split pass refines them.
using Chunks = std::vector<size_t>;

// Emits the words of one chunk as lengths; tracks where the last word ended.
struct Emitter {
    Chunks & out;
    size_t   prev_end;
    void emit(size_t end) {
        if (end > prev_end) out.push_back(end - prev_end);
        prev_end = end;
    }
};

enum class Digits { Run, UpTo3, Single };

// The GPT-2 regex, and the llama3 / qwen2 family when llama3_family is set
// (digits then split by `digits`). Mirrors llama.cpp's hand-written matchers,
// including their handling of chunk ends.
Chunks split_gpt2_like(const std::vector<uint32_t> & cpts, const Chunks & chunks, bool llama3_family, Digits digits) {
    Chunks out;
    out.reserve(chunks.size() * 4);
    size_t start = 0;
    for (const size_t len : chunks) {
        const size_t ini = start;
        const size_t end = start + len;
        start = end;
        auto cpt_at = [&](size_t p) { return p < end ? cpts[p] : k_out_of_range; };
        auto flags_at = [&](size_t p) -> uint16_t { return p < end ? cpt_flags(cpts[p]) : 0; };
        auto lower_ascii = [](uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; };
        constexpr uint16_t k_wln = k_whitespace | k_letter | k_number;

        Emitter em{out, ini};
        size_t pos = ini;
        while (pos < end) {
            const uint32_t c = cpt_at(pos);
            const uint16_t f = flags_at(pos);

            // 's|'t|'re|'ve|'m|'ll|'d  (case-insensitive for the llama3 family)
            if (c == '\'' && pos + 1 < end) {
                const uint32_t n1 = llama3_family ? lower_ascii(cpt_at(pos + 1)) : cpt_at(pos + 1);
                if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                    pos += 2;
                    em.emit(pos);
                    continue;
                }
                if (pos + 2 < end) {
                    const uint32_t n2 = llama3_family ? lower_ascii(cpt_at(pos + 2)) : cpt_at(pos + 2);
                    if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
                        pos += 3;
                        em.emit(pos);
                        continue;
                    }
                }
            }

            if (!llama3_family) {
                const uint16_t f2 = c == ' ' ? flags_at(pos + 1) : f;
                const size_t first = pos + (c == ' ' ? 1 : 0);
                // ' ?\p{L}+' and ' ?\p{N}+'
                const uint16_t run_cls = (f2 & k_letter) ? k_letter : (f2 & k_number) ? k_number : 0;
                if (run_cls) {
                    pos = first;
                    while (flags_at(pos) & run_cls) ++pos;
                    em.emit(pos);
                    continue;
                }
                // ' ?[^\s\p{L}\p{N}]+'
                if (!(f2 & k_wln) && f2) {
                    pos = first;
                    for (uint16_t fl = flags_at(pos); !(fl & k_wln) && fl; fl = flags_at(++pos)) {}
                    em.emit(pos);
                    continue;
                }
            } else {
                // '[^\r\n\p{L}\p{N}]?\p{L}+'
                if (!(c == '\r' || c == '\n' || (f & k_number)) && ((f & k_letter) || (flags_at(pos + 1) & k_letter))) {
                    ++pos;
                    while (flags_at(pos) & k_letter) ++pos;
                    em.emit(pos);
                    continue;
                }
                // '\p{N}{1,3}' or '\p{N}'
                if (f & k_number) {
                    if (digits == Digits::Single) {
                        em.emit(++pos);
                        continue;
                    }
                    size_t run_ini = pos;
                    while (flags_at(pos) & k_number) {
                        if (++pos - run_ini >= 3) {
                            em.emit(pos);
                            run_ini = pos;
                        }
                    }
                    em.emit(pos);
                    continue;
                }
                // ' ?[^\s\p{L}\p{N}]+[\r\n]*'  (NOTE: llama.cpp tests f, not f2, for "in range")
                const uint16_t f2 = c == ' ' ? flags_at(pos + 1) : f;
                if (!(f2 & k_wln) && f) {
                    pos += (c == ' ' ? 1 : 0);
                    for (uint16_t fl = f2; !(fl & k_wln) && fl; fl = flags_at(++pos)) {}
                    while (cpt_at(pos) == '\r' || cpt_at(pos) == '\n') ++pos;
                    em.emit(pos);
                    continue;
                }
            }

            size_t n_ws = 0;
            size_t last_rn_end = 0;
            while (flags_at(pos + n_ws) & k_whitespace) {
                const uint32_t c2 = cpt_at(pos + n_ws);
                if (llama3_family && (c2 == '\r' || c2 == '\n')) last_rn_end = pos + n_ws + 1;
                ++n_ws;
            }
            if (last_rn_end > 0) {  // '\s*[\r\n]+'
                pos = last_rn_end;
            } else if (n_ws > 1 && cpt_at(pos + n_ws) != k_out_of_range) {  // '\s+(?!\S)'
                pos += n_ws - 1;
            } else if (n_ws > 0) {  // '\s+'
                pos += n_ws;
            } else {  // no match: a word of its own
                pos += 1;
            }
            em.emit(pos);
        }
    }
    return out;
}

// Generic "[class]+" regex pass: runs of matching codepoints become words, and
// so do the gaps between them (std::regex_iterator splitting in llama.cpp).
template <typename Pred>
Chunks split_runs(const std::vector<uint32_t> & cpts, const Chunks & chunks, Pred pred) {
    Chunks out;
    out.reserve(chunks.size() * 2);
    size_t start = 0;
    for (const size_t len : chunks) {
        const size_t end = start + len;
        size_t gap = start;
        for (size_t p = start; p < end;) {
            if (!pred(cpts[p])) {
                ++p;
                continue;
            }
            size_t q = p;
            while (q < end && pred(cpts[q])) ++q;
            if (p > gap) out.push_back(p - gap);
            out.push_back(q - p);
            gap = p = q;
        }
        if (end > gap) out.push_back(end - gap);
        start = end;
    }
    return out;
}

// "[0-9][0-9][0-9]": non-overlapping ASCII digit triples, left to right.
Chunks split_digit_triples(const std::vector<uint32_t> & cpts, const Chunks & chunks) {
    Chunks out;
    size_t start = 0;
    auto digit = [](uint32_t c) { return c >= '0' && c <= '9'; };
    for (const size_t len : chunks) {
        const size_t end = start + len;
        size_t gap = start;
        for (size_t p = start; p < end;) {
            if (p + 2 < end && digit(cpts[p]) && digit(cpts[p + 1]) && digit(cpts[p + 2])) {
                if (p > gap) out.push_back(p - gap);
                out.push_back(3);
                gap = p = p + 3;
            } else {
                ++p;
            }
        }
        if (end > gap) out.push_back(end - gap);
        start = end;
    }
    return out;
}

// llama.cpp runs these regexes on a "collapsed" text where each non-ASCII
// codepoint stands for its category (whitespace first); mirror that here.
uint16_t collapsed_category(uint32_t c) {
    const uint16_t f = cpt_flags(c);
    if (f & k_whitespace) return 0;
    return f & k_categories;
}

bool is_default_punct(uint32_t c) {  // [\p{P}\$\+<=>\^~\|]
    if (c < 128) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x5F) || (c >= 0x7B && c <= 0x7E);
    return collapsed_category(c) == k_punctuation;
}

bool is_number_collapsed(uint32_t c) {  // \p{N}
    if (c < 128) return c >= '0' && c <= '9';
    return collapsed_category(c) == k_number;
}

}  // namespace

uint16_t cpt_flags(uint32_t cpt) {
    static const AsciiFlags ascii;
    if (cpt < 128) return ascii.flags[cpt];
    if (cpt >= 0x110000) return k_undefined;
    return uint16_t(category_from_table(cpt) | (is_white_space(cpt) ? k_whitespace : 0));
}

std::vector<uint32_t> decode_utf8_lossy(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    const size_t n = s.size();
    auto cont = [&](size_t i) { return i < n && (uint8_t(s[i]) & 0xC0) == 0x80; };
    for (size_t i = 0; i < n;) {
        const uint8_t b0 = uint8_t(s[i]);
        if (b0 < 0x80) {
            out.push_back(b0);
            i += 1;
        } else if (b0 < 0xC0) {
            out.push_back(0xFFFD);
            i += 1;
        } else if (b0 < 0xE0 && cont(i + 1)) {
            out.push_back((uint32_t(b0 & 0x1F) << 6) | (uint8_t(s[i + 1]) & 0x3F));
            i += 2;
        } else if (b0 >= 0xE0 && b0 < 0xF0 && cont(i + 1) && cont(i + 2)) {
            out.push_back((uint32_t(b0 & 0x0F) << 12) | (uint32_t(uint8_t(s[i + 1]) & 0x3F) << 6) | (uint8_t(s[i + 2]) & 0x3F));
            i += 3;
        } else if (b0 >= 0xF0 && b0 < 0xF8 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
            out.push_back((uint32_t(b0 & 0x07) << 18) | (uint32_t(uint8_t(s[i + 1]) & 0x3F) << 12) |
                          (uint32_t(uint8_t(s[i + 2]) & 0x3F) << 6) | (uint8_t(s[i + 3]) & 0x3F));
            i += 4;
        } else {
            out.push_back(0xFFFD);
            i += 1;
        }
    }
    return out;
}

void append_utf8(std::string & out, uint32_t c) {
    if (c < 0x80) {
        out.push_back(char(c));
    } else if (c < 0x800) {
        out.push_back(char(0xC0 | (c >> 6)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(char(0xE0 | (c >> 12)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x110000) {
        out.push_back(char(0xF0 | (c >> 18)));
        out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else {
        out += "\xEF\xBF\xBD";
    }
}

uint32_t byte_to_cpt(uint8_t byte) { return byte_map().to_cpt[byte]; }

int cpt_to_byte(uint32_t cpt) {
    const auto & m = byte_map();
    return cpt < m.from_cpt.size() ? m.from_cpt[cpt] : -1;
}

std::vector<std::string> pre_tokenize(std::string_view text, PreTokenizer kind, bool byte_encode) {
    const std::vector<uint32_t> cpts = decode_utf8_lossy(text);
    Chunks chunks = {cpts.size()};
    switch (kind) {
        case PreTokenizer::Default:
            chunks = split_runs(cpts, chunks, is_default_punct);
            chunks = split_gpt2_like(cpts, chunks, false, Digits::Run);
            chunks = split_runs(cpts, chunks, is_number_collapsed);
            chunks = split_digit_triples(cpts, chunks);
            break;
        case PreTokenizer::Gpt2:   chunks = split_gpt2_like(cpts, chunks, false, Digits::Run); break;
        case PreTokenizer::Llama3: chunks = split_gpt2_like(cpts, chunks, true, Digits::UpTo3); break;
        case PreTokenizer::Qwen2:  chunks = split_gpt2_like(cpts, chunks, true, Digits::Single); break;
    }

    std::vector<std::string> words;
    words.reserve(chunks.size());
    size_t start = 0;
    std::string utf8;
    for (const size_t len : chunks) {
        utf8.clear();
        for (size_t i = start; i < start + len; ++i) append_utf8(utf8, cpts[i]);
        start += len;
        if (!byte_encode) {
            words.push_back(utf8);
            continue;
        }
        std::string encoded;
        encoded.reserve(utf8.size() * 2);
        for (const char ch : utf8) append_utf8(encoded, byte_to_cpt(uint8_t(ch)));
        words.push_back(std::move(encoded));
    }
    return words;
}

}  // namespace gb::unicode
