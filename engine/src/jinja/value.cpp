// Value semantics for the Jinja interpreter: Python's str/repr/json.dumps text,
// truthiness, comparisons and UTF-8 code point helpers.
#include "jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace gb::jinja {

void fail(std::string message, ErrorCode code) { throw RenderError{code, std::move(message)}; }

Value Value::undefined(std::string hint) {
    Value v;
    v.m_str = std::move(hint);
    return v;
}

Value Value::none() {
    Value v;
    v.m_type = Type::None;
    return v;
}

Value Value::list(List items, bool tuple) {
    Value v;
    v.m_type = Type::List;
    v.m_tuple = tuple;
    v.m_list = std::make_shared<List>(std::move(items));
    return v;
}

Value Value::dict() {
    Value v;
    v.m_type = Type::Dict;
    v.m_dict = std::make_shared<Dict>();
    return v;
}

Value Value::namespace_object() {
    Value v = dict();
    v.m_dict->is_namespace = true;
    return v;
}

Value Value::callable(std::string name, std::function<Value(CallArgs &)> fn) {
    Value v;
    v.m_type = Type::Callable;
    v.m_fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
    return v;
}

bool Value::is_namespace() const { return m_type == Type::Dict && m_dict->is_namespace; }

double Value::as_double() const { return m_type == Type::Float ? m_float : double(m_int); }

const char * Value::type_name() const {
    switch (m_type) {
        case Type::Undefined: return "Undefined";
        case Type::None:      return "NoneType";
        case Type::Bool:      return "bool";
        case Type::Int:       return "int";
        case Type::Float:     return "float";
        case Type::String:    return "str";
        case Type::List:      return m_tuple ? "tuple" : "list";
        case Type::Dict:      return m_dict->is_namespace ? "Namespace" : "dict";
        case Type::Callable:  return "function";
    }
    return "object";
}

const Value * Dict::find(std::string_view key) const {
    for (const auto & kv : items)
        if (kv.first == key) return &kv.second;
    return nullptr;
}

void Dict::set(std::string key, Value value) {
    for (auto & kv : items) {
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    }
    items.emplace_back(std::move(key), std::move(value));
}

Value CallArgs::get(size_t index, std::string_view name, Value fallback) const {
    if (index < positional.size()) return positional[index];
    for (const auto & kv : named)
        if (kv.first == name) return kv.second;
    return fallback;
}

bool CallArgs::has(size_t index, std::string_view name) const {
    if (index < positional.size()) return true;
    for (const auto & kv : named)
        if (kv.first == name) return true;
    return false;
}

// ---- text ----

std::string format_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
    // Shortest round-trip digits, then Python's layout: fixed for 1e-4 <= |d| < 1e16.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    const size_t e = sci.find('e');
    std::string mant = sci.substr(0, e);
    const int exp10 = std::stoi(sci.substr(e + 1));
    const bool neg = mant[0] == '-';
    if (neg) mant.erase(0, 1);
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    std::string out = neg ? "-" : "";
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out += "0." + std::string(size_t(-exp10 - 1), '0') + digits;
        } else if (size_t(exp10) + 1 >= digits.size()) {
            out += digits + std::string(size_t(exp10) + 1 - digits.size(), '0') + ".0";
        } else {
            out += digits.substr(0, size_t(exp10) + 1) + "." + digits.substr(size_t(exp10) + 1);
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    return out + ebuf;
}

static std::string repr_string(const std::string & s) {
    const bool has_single = s.find('\'') != std::string::npos;
    const bool has_double = s.find('"') != std::string::npos;
    const char quote = (has_single && !has_double) ? '"' : '\'';
    std::string out(1, quote);
    for (unsigned char c : s) {
        if (c == quote || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    out += quote;
    return out;
}

std::string repr(const Value & v) {
    switch (v.type()) {
        case Value::Type::String: return repr_string(v.as_string());
        case Value::Type::List: {
            std::string out = v.is_tuple() ? "(" : "[";
            const List & items = v.list_items();
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) out += ", ";
                out += repr(items[i]);
            }
            if (v.is_tuple() && items.size() == 1) out += ",";
            return out + (v.is_tuple() ? ")" : "]");
        }
        case Value::Type::Dict: {
            std::string out = v.is_namespace() ? "<Namespace {" : "{";
            bool first = true;
            for (const auto & kv : v.dict_ref().items) {
                if (!first) out += ", ";
                first = false;
                out += repr_string(kv.first) + ": " + repr(kv.second);
            }
            return out + (v.is_namespace() ? "}>" : "}");
        }
        default: return to_str(v);
    }
}

std::string to_str(const Value & v) {
    switch (v.type()) {
        case Value::Type::Undefined: return "";
        case Value::Type::None:      return "None";
        case Value::Type::Bool:      return v.as_bool() ? "True" : "False";
        case Value::Type::Int:       return std::to_string(v.as_int());
        case Value::Type::Float:     return format_float(v.as_double());
        case Value::Type::String:    return v.as_string();
        case Value::Type::List:
        case Value::Type::Dict:      return repr(v);
        case Value::Type::Callable:  return "<function " + v.callable_ref().name + ">";
    }
    return "";
}

static void json_string(const std::string & s, std::string & out) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"':  out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                    out += buf;
                } else {
                    out += char(c);
                }
        }
    }
    out += '"';
}

namespace {
struct JsonStyle {
    int         indent;
    bool        sort_keys;
    std::string item_sep;
    std::string key_sep;
};
}  // namespace

static void json_value(const Value & v, const JsonStyle & st, int depth, std::string & out) {
    const int indent = st.indent;
    auto newline = [&](int d) {
        out += '\n';
        out.append(size_t(indent) * size_t(d), ' ');
    };
    switch (v.type()) {
        case Value::Type::None: out += "null"; return;
        case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; return;
        case Value::Type::Int: out += std::to_string(v.as_int()); return;
        case Value::Type::Float: {
            const double d = v.as_double();
            if (std::isnan(d)) out += "NaN";
            else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
            else out += format_float(d);
            return;
        }
        case Value::Type::String: json_string(v.as_string(), out); return;
        case Value::Type::List: {
            const List & items = v.list_items();
            if (items.empty()) {
                out += "[]";
                return;
            }
            out += '[';
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) out += st.item_sep;
                if (indent >= 0) newline(depth + 1);
                json_value(items[i], st, depth + 1, out);
            }
            if (indent >= 0) newline(depth);
            out += ']';
            return;
        }
        case Value::Type::Dict: {
            if (v.is_namespace()) fail("Object of type Namespace is not JSON serializable");
            std::vector<const std::pair<std::string, Value> *> items;
            for (const auto & kv : v.dict_ref().items) items.push_back(&kv);
            if (st.sort_keys)
                std::stable_sort(items.begin(), items.end(), [](auto * a, auto * b) { return a->first < b->first; });
            if (items.empty()) {
                out += "{}";
                return;
            }
            out += '{';
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) out += st.item_sep;
                if (indent >= 0) newline(depth + 1);
                json_string(items[i]->first, out);
                out += st.key_sep;
                json_value(items[i]->second, st, depth + 1, out);
            }
            if (indent >= 0) newline(depth);
            out += '}';
            return;
        }
        case Value::Type::Undefined:
            fail("Object of type Undefined is not JSON serializable");
        case Value::Type::Callable:
            fail("Object of type function is not JSON serializable");
    }
}

std::string to_json(const Value & v, int indent, bool sort_keys, std::string item_sep, std::string key_sep) {
    if (item_sep.empty()) item_sep = indent >= 0 ? "," : ", ";
    if (key_sep.empty()) key_sep = ": ";
    std::string out;
    json_value(v, JsonStyle{indent, sort_keys, item_sep, key_sep}, 0, out);
    return out;
}

// ---- semantics ----

bool truthy(const Value & v) {
    switch (v.type()) {
        case Value::Type::Undefined:
        case Value::Type::None:     return false;
        case Value::Type::Bool:
        case Value::Type::Int:      return v.as_int() != 0;
        case Value::Type::Float:    return v.as_double() != 0.0;
        case Value::Type::String:   return !v.as_string().empty();
        case Value::Type::List:     return !v.list_items().empty();
        case Value::Type::Dict:     return v.is_namespace() || !v.dict_ref().items.empty();
        case Value::Type::Callable: return true;
    }
    return false;
}

bool equals(const Value & a, const Value & b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
        return a.as_int() == b.as_int();
    }
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case Value::Type::Undefined:
        case Value::Type::None:   return true;
        case Value::Type::String: return a.as_string() == b.as_string();
        case Value::Type::List: {
            const List & x = a.list_items();
            const List & y = b.list_items();
            if (x.size() != y.size()) return false;
            for (size_t i = 0; i < x.size(); ++i)
                if (!equals(x[i], y[i])) return false;
            return true;
        }
        case Value::Type::Dict: {
            if (a.dict_ptr() == b.dict_ptr()) return true;
            if (a.is_namespace() || b.is_namespace()) return false;
            const auto & x = a.dict_ref().items;
            if (x.size() != b.dict_ref().items.size()) return false;
            for (const auto & kv : x) {
                const Value * other = b.dict_ref().find(kv.first);
                if (!other || !equals(kv.second, *other)) return false;
            }
            return true;
        }
        case Value::Type::Callable: return &a.callable_ref() == &b.callable_ref();
        default: return false;
    }
}

bool less_than(const Value & a, const Value & b) {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
        return a.as_int() < b.as_int();
    }
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    if (a.is_list() && b.is_list()) {
        const List & x = a.list_items();
        const List & y = b.list_items();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!equals(x[i], y[i])) return less_than(x[i], y[i]);
        }
        return x.size() < y.size();
    }
    fail(std::string("'<' not supported between instances of '") + a.type_name() + "' and '" + b.type_name() + "'");
}

int64_t length(const Value & v) {
    switch (v.type()) {
        case Value::Type::Undefined: return 0;
        case Value::Type::String:    return int64_t(utf8_chars(v.as_string()).size());
        case Value::Type::List:      return int64_t(v.list_items().size());
        case Value::Type::Dict:
            if (!v.is_namespace()) return int64_t(v.dict_ref().items.size());
            [[fallthrough]];
        default:
            fail(std::string("object of type '") + v.type_name() + "' has no len()");
    }
}

List iterate(const Value & v) {
    switch (v.type()) {
        case Value::Type::Undefined: return {};
        case Value::Type::List:      return v.list_items();
        case Value::Type::String: {
            List out;
            for (auto & ch : utf8_chars(v.as_string())) out.emplace_back(std::move(ch));
            return out;
        }
        case Value::Type::Dict:
            if (!v.is_namespace()) {
                List out;
                for (const auto & kv : v.dict_ref().items) out.emplace_back(kv.first);
                return out;
            }
            [[fallthrough]];
        default:
            fail(std::string("'") + v.type_name() + "' object is not iterable");
    }
}

void fail_undefined(const Value & v) {
    fail(v.undefined_hint().empty() ? std::string("value is undefined") : v.undefined_hint());
}

std::vector<std::string> utf8_chars(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
        if (i + n > s.size()) n = s.size() - i;
        out.emplace_back(s.substr(i, n));
        i += n;
    }
    return out;
}

bool is_py_space(std::string_view ch) {
    if (ch.size() == 1) {
        const unsigned char c = static_cast<unsigned char>(ch[0]);
        return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
    }
    static const char * const k_spaces[] = {
        "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83",
        "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89",
        "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
    };
    for (const char * sp : k_spaces)
        if (ch == sp) return true;
    return false;
}

}  // namespace gb::jinja
