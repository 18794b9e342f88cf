// GGUF metadata values: constructors, typed accessors and a short display
// rendering (used by `glassbox-cli info`).
#include "glassbox/gguf.h"

#include <cinttypes>
#include <algorithm>
#include <cstdio>
#include <limits>

namespace gb::gguf {

const char * value_type_name(ValueType t) {
    switch (t) {
        case ValueType::UINT8: return "uint8";
        case ValueType::INT8: return "int8";
        case ValueType::UINT16: return "uint16";
        case ValueType::INT16: return "int16";
        case ValueType::UINT32: return "uint32";
        case ValueType::INT32: return "int32";
        case ValueType::FLOAT32: return "float32";
        case ValueType::BOOL: return "bool";
        case ValueType::STRING: return "string";
        case ValueType::ARRAY: return "array";
        case ValueType::UINT64: return "uint64";
        case ValueType::INT64: return "int64";
        case ValueType::FLOAT64: return "float64";
    }
    return "unknown";
}

Value Value::u64(ValueType t, uint64_t v) {
    Value r;
    r.m_type = t;
    r.m_v = v;
    return r;
}

Value Value::i64(ValueType t, int64_t v) {
    Value r;
    r.m_type = t;
    r.m_v = v;
    return r;
}

Value Value::f64(ValueType t, double v) {
    Value r;
    r.m_type = t;
    r.m_v = v;
    return r;
}

Value Value::boolean(bool v) {
    Value r;
    r.m_type = ValueType::BOOL;
    r.m_v = v;
    return r;
}

Value Value::string(std::string v) {
    Value r;
    r.m_type = ValueType::STRING;
    r.m_v = std::move(v);
    return r;
}

Value Value::array(ValueType elem_type, std::vector<Value> items) {
    Value r;
    r.m_type = ValueType::ARRAY;
    auto a = std::make_shared<Array>();
    a->elem_type = elem_type;
    a->items = std::move(items);
    r.m_v = std::move(a);
    return r;
}

bool Value::is_integer() const {
    switch (m_type) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
        case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
            return true;
        default:
            return false;
    }
}

bool Value::is_float() const { return m_type == ValueType::FLOAT32 || m_type == ValueType::FLOAT64; }

std::optional<int64_t> Value::as_int() const {
    if (const auto * u = std::get_if<uint64_t>(&m_v)) {
        if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
        return static_cast<int64_t>(*u);
    }
    if (const auto * i = std::get_if<int64_t>(&m_v)) return *i;
    if (const auto * b = std::get_if<bool>(&m_v)) return *b ? 1 : 0;
    return std::nullopt;
}

std::optional<uint64_t> Value::as_uint() const {
    if (const auto * u = std::get_if<uint64_t>(&m_v)) return *u;
    if (const auto * i = std::get_if<int64_t>(&m_v)) {
        if (*i < 0) return std::nullopt;
        return static_cast<uint64_t>(*i);
    }
    return std::nullopt;
}

std::optional<double> Value::as_float() const {
    if (const auto * d = std::get_if<double>(&m_v)) return *d;
    if (const auto * u = std::get_if<uint64_t>(&m_v)) return static_cast<double>(*u);
    if (const auto * i = std::get_if<int64_t>(&m_v)) return static_cast<double>(*i);
    return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
    if (const auto * b = std::get_if<bool>(&m_v)) return *b;
    return std::nullopt;
}

const std::string * Value::as_string() const { return std::get_if<std::string>(&m_v); }

const Value::Array * Value::as_array() const {
    if (const auto * a = std::get_if<std::shared_ptr<Array>>(&m_v)) return a->get();
    return nullptr;
}

namespace {

// Quoted, with control characters escaped and long strings cut.
std::string quote(const std::string & s, size_t max_chars) {
    std::string out = "\"";
    size_t n = 0;
    for (unsigned char c : s) {
        if (n >= max_chars) {
            out += "...";
            break;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\x%02x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
        // Count characters, not UTF-8 continuation bytes.
        if ((c & 0xc0) != 0x80) ++n;
    }
    out += '"';
    return out;
}

}  // namespace

std::string Value::to_display(size_t max_items) const {
    char buf[64];
    if (const auto * a = as_array()) {
        // e.g. string[262144] ["<pad>", "<eos>", ...]
        std::string out = value_type_name(a->elem_type);
        out += '[';
        out += std::to_string(a->items.size());
        out += ']';
        if (max_items > 0) {
            out += " [";
            const size_t shown = std::min(max_items, a->items.size());
            for (size_t i = 0; i < shown; ++i) {
                if (i) out += ", ";
                out += a->items[i].to_display(std::max<size_t>(1, max_items / 2));
            }
            if (shown < a->items.size()) out += shown ? ", ..." : "...";
            out += "]";
        }
        return out;
    }
    if (const auto * s = as_string()) return quote(*s, 80);
    if (const auto * b = std::get_if<bool>(&m_v)) return *b ? "true" : "false";
    if (const auto * d = std::get_if<double>(&m_v)) {
        std::snprintf(buf, sizeof buf, m_type == ValueType::FLOAT32 ? "%.9g" : "%.17g", *d);
        return buf;
    }
    if (const auto * u = std::get_if<uint64_t>(&m_v)) {
        std::snprintf(buf, sizeof buf, "%" PRIu64, *u);
        return buf;
    }
    if (const auto * i = std::get_if<int64_t>(&m_v)) {
        std::snprintf(buf, sizeof buf, "%" PRId64, *i);
        return buf;
    }
    return "?";
}

}  // namespace gb::gguf
