// Unicode helpers for the tokenizers: llama.cpp-compatible lossy UTF-8
// decoding, codepoint category flags, the GPT-2 byte<->unicode mapping and the
// hand-written BPE pre-tokenizer splits (no std::regex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gb::unicode {

// Category bits, same values as llama.cpp's unicode_cpt_flags.
enum CptFlag : uint16_t {
    k_undefined   = 0x0001,  // unassigned (Cn)
    k_number      = 0x0002,  // \p{N}
    k_letter      = 0x0004,  // \p{L}
    k_separator   = 0x0008,  // \p{Z}
    k_mark        = 0x0010,  // \p{M}
    k_punctuation = 0x0020,  // \p{P}
    k_symbol      = 0x0040,  // \p{S}
    k_control     = 0x0080,  // \p{C}
    k_categories  = 0x00FF,
    k_whitespace  = 0x0100,  // \s (Unicode White_Space)
};

struct CptRange {
    uint32_t start;
    uint8_t  flags;
};
extern const CptRange k_cpt_ranges[];  // generated: unicode_tables.cpp
extern const size_t   k_n_cpt_ranges;

// Category flags plus k_whitespace; codepoints past U+10FFFF are undefined.
uint16_t cpt_flags(uint32_t cpt);

// Byte length of a UTF-8 sequence from its lead byte, without validation
// (continuation bytes count as 1), as llama.cpp's unicode_len_utf8.
inline size_t utf8_len(uint8_t lead) {
    static constexpr uint8_t k_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k_len[lead >> 4];
}

// Decodes like llama.cpp's unicode_cpts_from_utf8: lead byte decides the
// length, continuation bytes are checked but overlong forms and surrogates are
// accepted; a bad byte becomes U+FFFD and decoding resumes at the next byte.
std::vector<uint32_t> decode_utf8_lossy(std::string_view text);
// Appends cpt as UTF-8; codepoints past U+10FFFF append U+FFFD.
void append_utf8(std::string & out, uint32_t cpt);

// GPT-2 byte-level mapping: every byte has a printable codepoint.
uint32_t byte_to_cpt(uint8_t byte);
int      cpt_to_byte(uint32_t cpt);  // -1 if cpt is not in the mapping

enum class PreTokenizer {
    Default,  // llama.cpp LLAMA_VOCAB_PRE_TYPE_DEFAULT (four regexes in sequence)
    Gpt2,     // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    Llama3,   // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    Qwen2,    // as Llama3 with \p{N} single digits
};

// Splits text into words as llama.cpp's unicode_regex_split does, then
// re-encodes each word from its codepoints (invalid bytes become U+FFFD) and,
// when byte_encode, maps every byte through the GPT-2 byte mapping.
std::vector<std::string> pre_tokenize(std::string_view text, PreTokenizer kind, bool byte_encode = true);

}  // namespace gb::unicode
