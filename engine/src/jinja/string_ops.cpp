// Python str operations for the Jinja interpreter. Case mapping is ASCII-only;
// whitespace and stripping follow Python's Unicode rules.
#include "jinja/string_ops.h"

#include <algorithm>
#include <cctype>

namespace gb::jinja {

std::string ascii_upper(std::string s) {
    for (char & c : s)
        if (c >= 'a' && c <= 'z') c = char(c - 32);
    return s;
}

std::string ascii_lower(std::string s) {
    for (char & c : s)
        if (c >= 'A' && c <= 'Z') c = char(c + 32);
    return s;
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string py_title(const std::string & s) {
    std::string out = s;
    bool prev_cased = false;
    for (char & c : out) {
        if (is_alpha(c)) {
            c = prev_cased ? char(std::tolower(static_cast<unsigned char>(c))) : char(std::toupper(static_cast<unsigned char>(c)));
            prev_cased = true;
        } else {
            prev_cased = false;
        }
    }
    return out;
}

std::string jinja_title(const std::string & s) {
    // Words start after runs of '-', whitespace, '(', '{', '[', '<'.
    std::string out;
    bool word_start = true;
    for (char c : s) {
        const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || std::isspace(static_cast<unsigned char>(c));
        if (sep) {
            out += c;
            word_start = true;
        } else {
            out += word_start ? char(std::toupper(static_cast<unsigned char>(c))) : char(std::tolower(static_cast<unsigned char>(c)));
            word_start = false;
        }
    }
    return out;
}

std::string py_capitalize(const std::string & s) {
    std::string out = ascii_lower(s);
    if (!out.empty()) out[0] = char(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
}

std::string py_strip(const std::string & s, const std::string * chars, bool left, bool right) {
    auto chs = utf8_chars(s);
    std::vector<std::string> set;
    if (chars) set = utf8_chars(*chars);
    auto strip_me = [&](const std::string & ch) {
        return chars ? std::find(set.begin(), set.end(), ch) != set.end() : is_py_space(ch);
    };
    size_t b = 0, e = chs.size();
    if (left)
        while (b < e && strip_me(chs[b])) ++b;
    if (right)
        while (e > b && strip_me(chs[e - 1])) --e;
    std::string out;
    for (size_t i = b; i < e; ++i) out += chs[i];
    return out;
}

std::vector<std::string> py_split(const std::string & s, const std::string * sep, int64_t maxsplit, bool from_right) {
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty()) fail("empty separator");
        if (!from_right) {
            size_t start = 0;
            for (size_t at = s.find(*sep); at != std::string::npos && (maxsplit < 0 || int64_t(out.size()) < maxsplit);
                 at = s.find(*sep, start)) {
                out.push_back(s.substr(start, at - start));
                start = at + sep->size();
            }
            out.push_back(s.substr(start));
        } else {
            size_t end = s.size();
            while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
                if (end < sep->size()) break;
                const size_t at = s.rfind(*sep, end - sep->size());
                if (at == std::string::npos) break;
                out.push_back(s.substr(at + sep->size(), end - at - sep->size()));
                end = at;
            }
            out.push_back(s.substr(0, end));
            std::reverse(out.begin(), out.end());
        }
        return out;
    }
    // Whitespace split: runs of whitespace separate, no empty strings.
    auto chs = utf8_chars(s);
    std::vector<std::pair<size_t, size_t>> words;  // char ranges
    for (size_t i = 0; i < chs.size();) {
        while (i < chs.size() && is_py_space(chs[i])) ++i;
        if (i == chs.size()) break;
        size_t j = i;
        while (j < chs.size() && !is_py_space(chs[j])) ++j;
        words.emplace_back(i, j);
        i = j;
    }
    auto join = [&](size_t b, size_t e) {
        std::string w;
        for (size_t k = b; k < e; ++k) w += chs[k];
        return w;
    };
    if (maxsplit < 0 || int64_t(words.size()) <= maxsplit + 1) {
        for (auto & w : words) out.push_back(join(w.first, w.second));
        return out;
    }
    const size_t m = size_t(maxsplit);
    if (!from_right) {
        for (size_t k = 0; k < m; ++k) out.push_back(join(words[k].first, words[k].second));
        // The remainder runs from the next word to the end, trailing whitespace kept.
        out.push_back(join(words[m].first, chs.size()));
    } else {
        const size_t first_tail = words.size() - m;
        out.push_back(join(0, words[first_tail - 1].second));
        for (size_t k = first_tail; k < words.size(); ++k) out.push_back(join(words[k].first, words[k].second));
    }
    return out;
}

std::string py_replace(const std::string & s, const std::string & from, const std::string & to, int64_t count) {
    std::string out;
    int64_t done = 0;
    if (from.empty()) {
        auto chs = utf8_chars(s);
        for (size_t i = 0; i <= chs.size(); ++i) {
            if (count < 0 || done < count) {
                out += to;
                ++done;
            }
            if (i < chs.size()) out += chs[i];
        }
        return out;
    }
    size_t start = 0;
    for (size_t at = s.find(from); at != std::string::npos && (count < 0 || done < count); at = s.find(from, start)) {
        out.append(s, start, at - start);
        out += to;
        start = at + from.size();
        ++done;
    }
    out.append(s, start, std::string::npos);
    return out;
}

std::string py_format(const std::string & fmt, const CallArgs & args) {
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
        } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
            out += '}';
            ++i;
        } else if (c == '{') {
            const size_t close = fmt.find('}', i);
            if (close == std::string::npos) fail("Single '{' encountered in format string");
            const std::string field = fmt.substr(i + 1, close - i - 1);
            if (field.find_first_of(":!.[") != std::string::npos)
                fail("format specs in str.format are not supported", ErrorCode::Unsupported);
            Value v;
            if (field.empty()) {
                if (auto_index >= args.positional.size()) fail("Replacement index out of range for positional args");
                v = args.positional[auto_index++];
            } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
                const size_t k = size_t(std::stoul(field));
                if (k >= args.positional.size()) fail("Replacement index out of range for positional args");
                v = args.positional[k];
            } else {
                bool found = false;
                for (const auto & kv : args.named) {
                    if (kv.first == field) {
                        v = kv.second;
                        found = true;
                    }
                }
                if (!found) fail("KeyError: '" + field + "'");
            }
            out += to_str(v);
            i = close;
        } else if (c == '}') {
            fail("Single '}' encountered in format string");
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace gb::jinja
