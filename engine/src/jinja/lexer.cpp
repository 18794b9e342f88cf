// Jinja tokenizer: text/tag splitting with jinja2's whitespace rules and the
// expression tokens inside tags (names, numbers, strings, operators).
#include "jinja/lexer.h"

#include <algorithm>
#include <cstring>

namespace gb::jinja {

SourceMap::SourceMap(std::string_view source) {
    m_line_starts.push_back(0);
    for (size_t i = 0; i < source.size(); ++i)
        if (source[i] == '\n') m_line_starts.push_back(i + 1);
}

std::string SourceMap::where(size_t offset) const {
    auto it = std::upper_bound(m_line_starts.begin(), m_line_starts.end(), offset);
    const size_t line = size_t(it - m_line_starts.begin());
    const size_t col = offset - m_line_starts[line - 1] + 1;
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

std::string normalize_source(std::string_view source) {
    std::string out;
    out.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            out += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            out += source[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

void append_utf8(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

class Lexer {
  public:
    Lexer(const std::string & src, const LexOptions & opt) : m_src(src), m_opt(opt), m_map(src) {}

    Result<std::vector<Token>> run() {
        bool line_starting = true;
        while (m_pos < m_src.size()) {
            const size_t start = find_tag(m_pos);
            std::string text = m_src.substr(m_pos, start - m_pos);
            if (start == m_src.size()) {
                push_text(std::move(text), m_pos);
                break;
            }
            const char kind = m_src[start + 1];  // '{', '%' or '#'
            const char sign = start + 2 < m_src.size() ? m_src[start + 2] : 0;
            if (sign == '-') {
                text.erase(text.find_last_not_of(" \t\n\r\f\v") + 1);
            } else if (sign != '+' && m_opt.lstrip_blocks && kind != '{') {
                const size_t nl = text.rfind('\n');
                const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
                    text.find_first_not_of(" \t\r\f\v", l_pos) == std::string::npos)
                    text.erase(l_pos);
            }
            push_text(std::move(text), m_pos);
            m_pos = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
            bool ok = true;
            if (kind == '#') ok = lex_comment(start);
            else ok = lex_tag(kind, start);
            if (!ok) return m_error;
            line_starting = m_pos > 0 && m_src[m_pos - 1] == '\n';
        }
        m_tokens.push_back(Token{TokType::Eof, "", m_src.size()});
        return std::move(m_tokens);
    }

  private:
    size_t find_tag(size_t from) const {
        for (size_t i = from; i + 1 < m_src.size(); ++i) {
            if (m_src[i] == '{' && (m_src[i + 1] == '{' || m_src[i + 1] == '%' || m_src[i + 1] == '#')) return i;
        }
        return m_src.size();
    }

    void push_text(std::string text, size_t offset) {
        if (!text.empty()) m_tokens.push_back(Token{TokType::Text, std::move(text), offset});
    }

    bool error(size_t offset, const std::string & msg) {
        m_error = make_error(ErrorCode::InvalidArgument, "chat template " + m_map.where(offset) + ": " + msg);
        return false;
    }

    // After a tag end: '-' strips all following whitespace; trim_blocks drops one newline.
    void after_tag_end(char end_sign, bool is_block) {
        if (end_sign == '-') {
            while (m_pos < m_src.size() && is_space(m_src[m_pos])) ++m_pos;
        } else if (end_sign != '+' && is_block && m_opt.trim_blocks && m_pos < m_src.size() && m_src[m_pos] == '\n') {
            ++m_pos;
        }
    }

    bool lex_comment(size_t start) {
        const size_t end = m_src.find("#}", m_pos);
        if (end == std::string::npos) return error(start, "unterminated comment");
        const char end_sign = end > m_pos && m_src[end - 1] == '-' ? '-' : 0;
        m_pos = end + 2;
        after_tag_end(end_sign, true);
        return true;
    }

    bool lex_tag(char kind, size_t start) {
        const bool is_block = kind == '%';
        const char close = is_block ? '%' : '}';
        const size_t first_token = m_tokens.size();
        m_tokens.push_back(Token{is_block ? TokType::BlockBegin : TokType::VarBegin, "", start});
        int depth = 0;
        for (;;) {
            while (m_pos < m_src.size() && is_space(m_src[m_pos])) ++m_pos;
            if (m_pos >= m_src.size())
                return error(start, is_block ? "unterminated block tag '{%'" : "unterminated expression '{{'");
            const char c = m_src[m_pos];
            // Tag end, possibly with a whitespace-control sign; not inside brackets.
            if (depth == 0) {
                char end_sign = 0;
                size_t at = m_pos;
                if ((c == '-' || c == '+') && at + 2 < m_src.size() + 0 && m_src[at + 1] == close && m_src[at + 2] == '}') {
                    end_sign = c;
                    ++at;
                }
                if (m_src[at] == close && at + 1 < m_src.size() && m_src[at + 1] == '}') {
                    m_tokens.push_back(Token{is_block ? TokType::BlockEnd : TokType::VarEnd, "", m_pos});
                    m_pos = at + 2;
                    after_tag_end(end_sign, is_block);
                    if (is_block) return maybe_raw(first_token, start);
                    return true;
                }
            }
            if (!lex_expr_token(depth)) return false;
        }
    }

    bool lex_expr_token(int & depth) {
        const size_t at = m_pos;
        const char c = m_src[at];
        if (is_name_start(c)) {
            size_t e = at;
            while (e < m_src.size() && is_name_char(m_src[e])) ++e;
            m_tokens.push_back(Token{TokType::Name, m_src.substr(at, e - at), at});
            m_pos = e;
            return true;
        }
        if (is_digit(c)) return lex_number();
        if (c == '\'' || c == '"') return lex_string();
        static const char * const k_ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                             ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        for (const char * op : k_ops) {
            const size_t n = std::strlen(op);
            if (m_src.compare(at, n, op) == 0) {
                if (op[0] == '(' || op[0] == '[' || op[0] == '{') ++depth;
                if (n == 1 && (op[0] == ')' || op[0] == ']' || op[0] == '}')) {
                    if (depth == 0) return error(at, std::string("unexpected '") + op + "'");
                    --depth;
                }
                m_tokens.push_back(Token{TokType::Op, op, at});
                m_pos = at + n;
                return true;
            }
        }
        return error(at, std::string("unexpected character '") + c + "'");
    }

    bool lex_number() {
        const size_t at = m_pos;
        size_t e = at;
        auto digits = [&](size_t & p) {
            while (p < m_src.size() && (is_digit(m_src[p]) || (m_src[p] == '_' && p + 1 < m_src.size() && is_digit(m_src[p + 1]))))
                ++p;
        };
        digits(e);
        bool is_float = false;
        if (e + 1 < m_src.size() && m_src[e] == '.' && is_digit(m_src[e + 1])) {
            is_float = true;
            ++e;
            digits(e);
        }
        if (e < m_src.size() && (m_src[e] == 'e' || m_src[e] == 'E')) {
            size_t p = e + 1;
            if (p < m_src.size() && (m_src[p] == '+' || m_src[p] == '-')) ++p;
            if (p < m_src.size() && is_digit(m_src[p])) {
                is_float = true;
                e = p;
                digits(e);
            }
        }
        std::string text;
        for (size_t i = at; i < e; ++i)
            if (m_src[i] != '_') text += m_src[i];
        m_tokens.push_back(Token{is_float ? TokType::Float : TokType::Integer, text, at});
        m_pos = e;
        return true;
    }

    // Python-style escapes, as jinja2's unicode-escape decoding of literals.
    bool lex_string() {
        const size_t at = m_pos;
        const char quote = m_src[at];
        std::string out;
        size_t i = at + 1;
        for (;;) {
            if (i >= m_src.size()) return error(at, "unterminated string literal");
            const char c = m_src[i];
            if (c == quote) break;
            if (c != '\\') {
                out += c;
                ++i;
                continue;
            }
            if (i + 1 >= m_src.size()) return error(at, "unterminated string literal");
            const char e = m_src[i + 1];
            i += 2;
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case '\\': out += '\\'; break;
                case '\'': out += '\''; break;
                case '"': out += '"'; break;
                case 'a': out += '\a'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'v': out += '\v'; break;
                case '\n': break;
                case 'x': case 'u': case 'U': {
                    const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (i + n > m_src.size()) return error(i, "truncated \\" + std::string(1, e) + " escape");
                    uint32_t cp = 0;
                    for (size_t k = 0; k < n; ++k) {
                        const char h = m_src[i + k];
                        const int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                        if (d < 0) return error(i, "invalid \\" + std::string(1, e) + " escape");
                        cp = cp * 16 + uint32_t(d);
                    }
                    i += n;
                    append_utf8(out, cp);
                    break;
                }
                default:
                    if (e >= '0' && e <= '7') {
                        uint32_t cp = uint32_t(e - '0');
                        for (int k = 0; k < 2 && i < m_src.size() && m_src[i] >= '0' && m_src[i] <= '7'; ++k, ++i)
                            cp = cp * 8 + uint32_t(m_src[i] - '0');
                        append_utf8(out, cp);
                    } else {
                        out += '\\';
                        out += e;
                    }
            }
        }
        m_tokens.push_back(Token{TokType::String, std::move(out), at});
        m_pos = i + 1;
        return true;
    }

    // {% raw %}...{% endraw %}: the body becomes one text token.
    bool maybe_raw(size_t first_token, size_t start) {
        if (m_tokens.size() - first_token != 3 || m_tokens[first_token + 1].type != TokType::Name ||
            m_tokens[first_token + 1].value != "raw")
            return true;
        m_tokens.resize(first_token);
        for (size_t search = m_pos;;) {
            const size_t open = m_src.find("{%", search);
            if (open == std::string::npos) return error(start, "missing '{% endraw %}'");
            size_t p = open + 2;
            const bool strip_before = p < m_src.size() && m_src[p] == '-';
            if (p < m_src.size() && (m_src[p] == '-' || m_src[p] == '+')) ++p;
            while (p < m_src.size() && is_space(m_src[p])) ++p;
            if (m_src.compare(p, 6, "endraw") != 0) {
                search = open + 2;
                continue;
            }
            p += 6;
            while (p < m_src.size() && is_space(m_src[p])) ++p;
            char end_sign = 0;
            if (p < m_src.size() && (m_src[p] == '-' || m_src[p] == '+')) end_sign = m_src[p++];
            if (m_src.compare(p, 2, "%}") != 0) {
                search = open + 2;
                continue;
            }
            std::string body = m_src.substr(m_pos, open - m_pos);
            if (strip_before) body.erase(body.find_last_not_of(" \t\n\r\f\v") + 1);
            push_text(std::move(body), m_pos);
            m_pos = p + 2;
            after_tag_end(end_sign, true);
            return true;
        }
    }

    const std::string &  m_src;
    LexOptions           m_opt;
    SourceMap            m_map;
    size_t               m_pos = 0;
    std::vector<Token>   m_tokens;
    Error                m_error;
};

}  // namespace

Result<std::vector<Token>> tokenize(const std::string & source, const LexOptions & options) {
    Lexer lexer(source, options);
    return lexer.run();
}

}  // namespace gb::jinja
