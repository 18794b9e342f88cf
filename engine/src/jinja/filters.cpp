// Built-in filters of the Jinja subset with jinja2's behaviour; tojson follows
// transformers' override (json.dumps with ensure_ascii=False).
#include "jinja/builtins.h"
#include "jinja/string_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

namespace gb::jinja {

namespace {

// Attribute path "a.b" or an integer index, as jinja2's make_attrgetter.
Value attr_path(const Value & item, const Value & attribute) {
    if (attribute.is_int()) return get_item(item, attribute);
    Value v = item;
    const std::string path = to_str(attribute);
    size_t start = 0;
    for (;;) {
        const size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        v = numeric ? get_item(v, Value(int64_t(std::stoll(part)))) : get_item(v, Value(part));
        if (dot == std::string::npos) return v;
        start = dot + 1;
    }
}

// Rest of the call args from index `from` (a test's own arguments).
CallArgs tail_args(const CallArgs & args, size_t from) {
    CallArgs out;
    for (size_t i = from; i < args.positional.size(); ++i) out.positional.push_back(args.positional[i]);
    out.named = args.named;
    return out;
}

Value select_like(const Value & v, CallArgs & args, bool by_attr, bool keep) {
    List out;
    const Value attribute = by_attr ? args.get(0, "attribute") : Value();
    const size_t test_at = by_attr ? 1 : 0;
    const bool has_test = test_at < args.positional.size();
    const std::string test = has_test ? to_str(args.positional[test_at]) : std::string();
    if (has_test && !is_known_test(test)) fail("unknown test '" + test + "'", ErrorCode::Unsupported);
    CallArgs test_args = tail_args(args, test_at + 1);
    if (by_attr) test_args.named.clear();
    for (const Value & item : iterate(v)) {
        const Value subject = by_attr ? attr_path(item, attribute) : item;
        const bool ok = has_test ? apply_test(test, subject, test_args) : truthy(subject);
        if (ok == keep) out.push_back(item);
    }
    return Value::list(std::move(out));
}

// Sort key comparison with jinja2's case_sensitive=False default.
Value sort_key(const Value & v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value(ascii_lower(v.as_string()));
    return v;
}

std::string html_escape(const std::string & s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

Value to_int(const Value & v, const Value & fallback) {
    if (v.is_int() || v.is_bool()) return Value(v.as_int());
    if (v.is_float()) return std::isfinite(v.as_double()) ? Value(int64_t(v.as_double())) : fallback;
    if (v.is_string()) {
        std::string s = py_strip(v.as_string(), nullptr, true, true);
        s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
        if (s.empty()) return fallback;
        char * end = nullptr;
        const long long i = std::strtoll(s.c_str(), &end, 10);
        if (*end == 0) return Value(int64_t(i));
        const double d = std::strtod(s.c_str(), &end);
        if (*end == 0 && std::isfinite(d)) return Value(int64_t(d));
    }
    return fallback;
}

Value to_float(const Value & v, const Value & fallback) {
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string()) {
        const std::string s = py_strip(v.as_string(), nullptr, true, true);
        char * end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && *end == 0) return Value(d);
    }
    return fallback;
}

std::string indent_text(std::string s, const Value & width, bool first, bool blank) {
    const std::string pad = width.is_string() ? width.as_string() : std::string(size_t(std::max<int64_t>(0, width.as_int())), ' ');
    s += "\n";
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t at = s.find('\n'); at != std::string::npos; at = s.find('\n', start)) {
        lines.push_back(s.substr(start, at - start));
        start = at + 1;
    }
    std::string rv;
    if (blank) {
        for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + pad : "") + lines[i];
    } else {
        rv = lines[0];
        for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : pad) + lines[i];
    }
    return first ? pad + rv : rv;
}

Value minmax(const Value & v, CallArgs & args, bool want_max) {
    const bool cs = truthy(args.get(0, "case_sensitive", Value(false)));
    const Value attribute = args.get(1, "attribute", Value::none());
    List items = iterate(v);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    const Value * best = &items[0];
    for (const Value & item : items) {
        const Value a = sort_key(attribute.is_none() ? item : attr_path(item, attribute), cs);
        const Value b = sort_key(attribute.is_none() ? *best : attr_path(*best, attribute), cs);
        if (want_max ? less_than(b, a) : less_than(a, b)) best = &item;
    }
    return *best;
}

}  // namespace

bool is_known_filter(std::string_view name) {
    static const std::set<std::string_view> k = {
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
        "title", "tojson", "trim", "unique", "upper"};
    return k.count(name) != 0;
}

Value apply_filter(std::string_view name, const Value & v, CallArgs & args) {
    if (name == "default" || name == "d") {
        const bool boolean = truthy(args.get(1, "boolean", Value(false)));
        if (v.is_undefined() || (boolean && !truthy(v))) return args.get(0, "default_value", Value(""));
        return v;
    }
    if (name == "length" || name == "count") return Value(length(v));
    if (name == "string") return Value(to_str(v));
    if (name == "safe") return v;
    if (name == "trim") {
        const Value chars = args.get(0, "chars", Value::none());
        return Value(py_strip(to_str(v), chars.is_none() ? nullptr : &chars.as_string(), true, true));
    }
    if (name == "upper") return Value(ascii_upper(to_str(v)));
    if (name == "lower") return Value(ascii_lower(to_str(v)));
    if (name == "capitalize") return Value(py_capitalize(to_str(v)));
    if (name == "title") return Value(jinja_title(to_str(v)));
    if (name == "e" || name == "escape") return Value(html_escape(to_str(v)));
    if (name == "replace") {
        const Value count = args.get(2, "count", Value::none());
        return Value(py_replace(to_str(v), to_str(args.get(0, "old")), to_str(args.get(1, "new")),
                                count.is_none() ? -1 : count.as_int()));
    }
    if (name == "tojson") {
        if (truthy(args.get(0, "ensure_ascii", Value(false))))
            fail("tojson(ensure_ascii=True) is not supported", ErrorCode::Unsupported);
        const Value indent = args.get(1, "indent", Value::none());
        const Value seps = args.get(2, "separators", Value::none());
        std::string item_sep, key_sep;
        if (seps.is_list() && seps.list_items().size() == 2) {
            item_sep = to_str(seps.list_items()[0]);
            key_sep = to_str(seps.list_items()[1]);
        }
        return Value(to_json(v, indent.is_none() ? -1 : int(indent.as_int()), truthy(args.get(3, "sort_keys", Value(false))),
                             item_sep, key_sep));
    }
    if (name == "int") return to_int(v, args.get(0, "default", Value(0)));
    if (name == "float") return to_float(v, args.get(0, "default", Value(0.0)));
    if (name == "abs") {
        if (v.is_float()) return Value(std::fabs(v.as_double()));
        if (v.is_int() || v.is_bool()) return Value(int64_t(std::llabs(v.as_int())));
        fail(std::string("bad operand type for abs(): '") + v.type_name() + "'");
    }
    if (name == "round") {
        const int64_t precision = args.get(0, "precision", Value(0)).as_int();
        const std::string method = to_str(args.get(1, "method", Value("common")));
        const double scale = std::pow(10.0, double(precision));
        const double x = v.as_double() * scale;
        const double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::nearbyint(x);
        return Value(r / scale);
    }
    if (name == "items") {
        if (v.is_undefined()) return Value::list();
        if (!v.is_dict() || v.is_namespace()) fail("Can only get item pairs from a mapping.");
        List out;
        for (const auto & kv : v.dict_ref().items) out.push_back(Value::list({Value(kv.first), kv.second}, true));
        return Value::list(std::move(out));
    }
    if (name == "list") return Value::list(iterate(v));
    if (name == "first" || name == "last") {
        List items = iterate(v);
        if (items.empty()) return Value::undefined(std::string("No ") + std::string(name) + " item, sequence was empty.");
        return name == "first" ? items.front() : items.back();
    }
    if (name == "reverse") {
        if (v.is_string()) {
            auto chars = utf8_chars(v.as_string());
            std::string out;
            for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
            return Value(std::move(out));
        }
        List items = iterate(v);
        std::reverse(items.begin(), items.end());
        return Value::list(std::move(items));
    }
    if (name == "join") {
        const std::string sep = to_str(args.get(0, "d", Value("")));
        const Value attribute = args.get(1, "attribute", Value::none());
        std::string out;
        bool first = true;
        for (const Value & item : iterate(v)) {
            if (!first) out += sep;
            first = false;
            out += to_str(attribute.is_none() ? item : attr_path(item, attribute));
        }
        return Value(std::move(out));
    }
    if (name == "attr") {
        // getattr() only: a dict's keys are not attributes (namespaces' are).
        const std::string attr = to_str(args.get(0, "name"));
        if (v.is_dict() && !v.is_namespace() && attr != "items" && attr != "keys" && attr != "values" && attr != "get")
            return Value::undefined("'dict object' has no attribute '" + attr + "'");
        return get_attr(v, attr);
    }
    if (name == "map") {
        List out;
        if (args.has(99, "attribute")) {
            const Value attribute = args.get(99, "attribute");
            const Value dflt = args.get(99, "default");
            for (const Value & item : iterate(v)) {
                Value x = attr_path(item, attribute);
                out.push_back(x.is_undefined() && args.has(99, "default") ? dflt : x);
            }
        } else {
            const std::string filter = to_str(args.get(0, "filter"));
            if (!is_known_filter(filter)) fail("unknown filter '" + filter + "'", ErrorCode::Unsupported);
            CallArgs rest = tail_args(args, 1);
            for (const Value & item : iterate(v)) out.push_back(apply_filter(filter, item, rest));
        }
        return Value::list(std::move(out));
    }
    if (name == "select") return select_like(v, args, false, true);
    if (name == "reject") return select_like(v, args, false, false);
    if (name == "selectattr") return select_like(v, args, true, true);
    if (name == "rejectattr") return select_like(v, args, true, false);
    if (name == "sort" || name == "unique") {
        const bool reverse = name == "sort" && truthy(args.get(0, "reverse", Value(false)));
        const bool cs = truthy(args.get(name == "sort" ? 1 : 0, "case_sensitive", Value(false)));
        const Value attribute = args.get(name == "sort" ? 2 : 1, "attribute", Value::none());
        List items = iterate(v);
        auto key = [&](const Value & item) { return sort_key(attribute.is_none() ? item : attr_path(item, attribute), cs); };
        if (name == "unique") {
            List out, seen;
            for (const Value & item : items) {
                const Value k = key(item);
                if (std::none_of(seen.begin(), seen.end(), [&](const Value & s) { return equals(s, k); })) {
                    seen.push_back(k);
                    out.push_back(item);
                }
            }
            return Value::list(std::move(out));
        }
        std::stable_sort(items.begin(), items.end(), [&](const Value & a, const Value & b) {
            return reverse ? less_than(key(b), key(a)) : less_than(key(a), key(b));
        });
        return Value::list(std::move(items));
    }
    if (name == "dictsort") {
        if (!v.is_dict()) fail("dictsort expects a mapping");
        const bool cs = truthy(args.get(0, "case_sensitive", Value(false)));
        const bool by_value = to_str(args.get(1, "by", Value("key"))) == "value";
        const bool reverse = truthy(args.get(2, "reverse", Value(false)));
        List items;
        for (const auto & kv : v.dict_ref().items) items.push_back(Value::list({Value(kv.first), kv.second}, true));
        std::stable_sort(items.begin(), items.end(), [&](const Value & a, const Value & b) {
            const Value ka = sort_key(a.list_items()[by_value ? 1 : 0], cs);
            const Value kb = sort_key(b.list_items()[by_value ? 1 : 0], cs);
            return reverse ? less_than(kb, ka) : less_than(ka, kb);
        });
        return Value::list(std::move(items));
    }
    if (name == "sum") {
        const Value attribute = args.get(0, "attribute", Value::none());
        Value total = args.get(1, "start", Value(0));
        for (const Value & item : iterate(v)) {
            const Value x = attribute.is_none() ? item : attr_path(item, attribute);
            if (!x.is_number() || !total.is_number()) fail("sum expects numbers");
            total = (x.is_float() || total.is_float()) ? Value(total.as_double() + x.as_double()) : Value(total.as_int() + x.as_int());
        }
        return total;
    }
    if (name == "min") return minmax(v, args, false);
    if (name == "max") return minmax(v, args, true);
    if (name == "indent") {
        return Value(indent_text(to_str(v), args.get(0, "width", Value(4)), truthy(args.get(1, "first", Value(false))),
                                 truthy(args.get(2, "blank", Value(false)))));
    }
    fail("unknown filter '" + std::string(name) + "'", ErrorCode::Unsupported);
}

}  // namespace gb::jinja
