// Tokenizer for the Jinja subset: splits template text from {{ }}, {% %} and
// {# #} tags and applies whitespace control (-/+, trim_blocks, lstrip_blocks).
#pragma once

#include "glassbox/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace gb::jinja {

enum class TokType {
    Text,        // literal template text (already whitespace-controlled)
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,
    String,      // value holds the unescaped string
    Integer,
    Float,
    Op,          // operator or punctuation: + - * / // % ** ~ == != < > <= >= = ( ) [ ] { } , . : |
    Eof,
};

struct Token {
    TokType     type = TokType::Eof;
    std::string value;
    size_t      offset = 0;  // into the normalized source
};

struct LexOptions {
    bool trim_blocks = true;    // drop the first newline after a block tag
    bool lstrip_blocks = true;  // strip spaces before a block tag at line start
};

// Maps offsets of the normalized source to "line L, column C".
class SourceMap {
  public:
    explicit SourceMap(std::string_view source);
    std::string where(size_t offset) const;

  private:
    std::vector<size_t> m_line_starts;
};

// The source with newlines normalized ("\r\n", "\r" -> "\n") and one trailing
// newline removed, as jinja2 does (keep_trailing_newline=False).
std::string normalize_source(std::string_view source);

// Tokenizes a normalized source. Errors name the line and column.
Result<std::vector<Token>> tokenize(const std::string & source, const LexOptions & options);

}  // namespace gb::jinja
