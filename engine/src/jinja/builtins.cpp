// Attribute and item access, str/dict methods, tests and global functions of the
// Jinja subset (filters are in filters.cpp).
#include "jinja/builtins.h"

#include "jinja/string_ops.h"

#include <algorithm>
#include <ctime>
#include <set>

namespace gb::jinja {

namespace {

Value bound(const Value & obj, const std::string & name, Value (*fn)(const Value &, const std::string &, CallArgs &)) {
    return Value::callable(name, [obj, name, fn](CallArgs & args) { return fn(obj, name, args); });
}

std::string arg_string(const CallArgs & args, size_t i, std::string_view name, const char * what) {
    Value v = args.get(i, name);
    if (!v.is_string()) fail(std::string(what) + " expects a string argument, got '" + v.type_name() + "'");
    return v.as_string();
}

Value dict_method(const Value & obj, const std::string & name, CallArgs & args) {
    const Dict & d = obj.dict_ref();
    if (name == "items") {
        List out;
        for (const auto & kv : d.items) out.push_back(Value::list({Value(kv.first), kv.second}, true));
        return Value::list(std::move(out));
    }
    if (name == "keys") {
        List out;
        for (const auto & kv : d.items) out.emplace_back(kv.first);
        return Value::list(std::move(out));
    }
    if (name == "values") {
        List out;
        for (const auto & kv : d.items) out.push_back(kv.second);
        return Value::list(std::move(out));
    }
    // get(key, default=None)
    const Value key = args.get(0, "key");
    if (key.is_string()) {
        if (const Value * v = d.find(key.as_string())) return *v;
    }
    return args.get(1, "default", Value::none());
}

Value str_method(const Value & obj, const std::string & name, CallArgs & args) {
    const std::string & s = obj.as_string();
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const Value chars = args.get(0, "chars", Value::none());
        const bool left = name != "rstrip";
        const bool right = name != "lstrip";
        return Value(chars.is_none() ? py_strip(s, nullptr, left, right) : py_strip(s, &chars.as_string(), left, right));
    }
    if (name == "split" || name == "rsplit") {
        const Value sep = args.get(0, "sep", Value::none());
        const Value maxsplit = args.get(1, "maxsplit", Value(-1));
        List out;
        for (auto & part : py_split(s, sep.is_none() ? nullptr : &sep.as_string(), maxsplit.as_int(), name == "rsplit"))
            out.emplace_back(std::move(part));
        return Value::list(std::move(out));
    }
    if (name == "startswith" || name == "endswith") {
        const Value arg = args.get(0, "prefix");
        List options = arg.is_tuple() || arg.is_list() ? arg.list_items() : List{arg};
        for (const Value & o : options) {
            if (!o.is_string()) fail(name + " expects a string or a tuple of strings");
            const std::string & p = o.as_string();
            if (p.size() > s.size()) continue;
            if (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0)
                return Value(true);
        }
        return Value(false);
    }
    if (name == "upper") return Value(ascii_upper(s));
    if (name == "lower") return Value(ascii_lower(s));
    if (name == "title") return Value(py_title(s));
    if (name == "capitalize") return Value(py_capitalize(s));
    if (name == "replace") {
        const std::string from = arg_string(args, 0, "old", "replace");
        const std::string to = arg_string(args, 1, "new", "replace");
        return Value(py_replace(s, from, to, args.get(2, "count", Value(-1)).as_int()));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
        const std::string sub = arg_string(args, 0, "sub", name.c_str());
        const size_t at = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
        if (at == std::string::npos) {
            if (name == "index" || name == "rindex") fail("substring not found");
            return Value(-1);
        }
        return Value(int64_t(utf8_chars(std::string_view(s).substr(0, at)).size()));
    }
    if (name == "count") {
        const std::string sub = arg_string(args, 0, "sub", "count");
        if (sub.empty()) return Value(int64_t(utf8_chars(s).size()) + 1);
        int64_t n = 0;
        for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
        return Value(n);
    }
    if (name == "join") {
        std::string out;
        bool first = true;
        for (const Value & item : iterate(args.get(0, "iterable"))) {
            if (!item.is_string()) fail(std::string("sequence item: expected str instance, ") + item.type_name() + " found");
            if (!first) out += s;
            first = false;
            out += item.as_string();
        }
        return Value(std::move(out));
    }
    if (name == "format") return Value(py_format(s, args));
    // is* predicates over ASCII classes
    auto all_of = [&](auto pred) {
        if (s.empty()) return Value(false);
        return Value(std::all_of(s.begin(), s.end(), [&](char c) { return pred(static_cast<unsigned char>(c)); }));
    };
    if (name == "isdigit") return all_of([](unsigned char c) { return c >= '0' && c <= '9'; });
    if (name == "isalpha") return all_of([](unsigned char c) { return std::isalpha(c) != 0; });
    if (name == "isalnum") return all_of([](unsigned char c) { return std::isalnum(c) != 0; });
    if (name == "isspace") return all_of([](unsigned char c) { return std::isspace(c) != 0; });
    if (name == "islower") return Value(ascii_lower(s) == s && ascii_upper(s) != s);
    if (name == "isupper") return Value(ascii_upper(s) == s && ascii_lower(s) != s);
    fail("str has no method '" + name + "'", ErrorCode::Unsupported);
}

// Undefined for a missing attribute, with jinja2's wording. (Built with append:
// GCC 12 warns falsely (-Wrestrict) on "'" + std::string(...).)
Value no_attribute(const Value & obj, const std::string & name) {
    std::string hint = "'";
    hint.append(obj.type_name()).append(" object' has no attribute '").append(name).append("'");
    return Value::undefined(std::move(hint));
}

const std::set<std::string> & str_methods() {
    static const std::set<std::string> k = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith",
                                            "upper", "lower", "title", "capitalize", "replace", "find", "rfind",
                                            "index", "rindex", "count", "join", "format", "isdigit", "isalpha",
                                            "isalnum", "isspace", "islower", "isupper"};
    return k;
}

}  // namespace

Value get_attr(const Value & obj, const std::string & name) {
    switch (obj.type()) {
        case Value::Type::Undefined: fail_undefined(obj);
        case Value::Type::Dict:
            if (!obj.is_namespace() && (name == "items" || name == "keys" || name == "values" || name == "get"))
                return bound(obj, name, dict_method);
            if (const Value * v = obj.dict_ref().find(name)) return *v;
            break;
        case Value::Type::String:
            if (str_methods().count(name)) return bound(obj, name, str_method);
            break;
        default: break;
    }
    return no_attribute(obj, name);
}

Value get_item(const Value & obj, const Value & key) {
    if (obj.is_undefined()) fail_undefined(obj);
    if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
        int64_t i = key.as_int();
        if (obj.is_list()) {
            const List & items = obj.list_items();
            if (i < 0) i += int64_t(items.size());
            if (i >= 0 && i < int64_t(items.size())) return items[size_t(i)];
        } else {
            auto chars = utf8_chars(obj.as_string());
            if (i < 0) i += int64_t(chars.size());
            if (i >= 0 && i < int64_t(chars.size())) return Value(chars[size_t(i)]);
        }
        return Value::undefined(std::string(obj.type_name()) + " object has no element " + std::to_string(key.as_int()));
    }
    if (obj.is_dict() && key.is_string()) {
        if (const Value * v = obj.dict_ref().find(key.as_string())) return *v;
    }
    if (key.is_string()) return get_attr(obj, key.as_string());
    return no_attribute(obj, to_str(key));
}

Value get_slice(const Value & obj, const Value * start, const Value * stop, const Value * step) {
    if (obj.is_undefined()) fail_undefined(obj);
    if (!obj.is_list() && !obj.is_string()) fail(std::string("'") + obj.type_name() + "' object is not subscriptable");
    auto as_index = [](const Value * v, const char * what) -> std::optional<int64_t> {
        if (!v || v->is_none()) return std::nullopt;
        if (!v->is_int() && !v->is_bool()) fail(std::string("slice ") + what + " must be an integer or None");
        return v->as_int();
    };
    const auto b = as_index(start, "start");
    const auto e = as_index(stop, "stop");
    const int64_t st = as_index(step, "step").value_or(1);
    if (st == 0) fail("slice step cannot be zero");
    std::vector<size_t> picks;
    const int64_t n = obj.is_list() ? int64_t(obj.list_items().size()) : int64_t(utf8_chars(obj.as_string()).size());
    // Python's PySlice_AdjustIndices.
    auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
        if (!v) return dflt;
        int64_t x = *v;
        if (x < 0) {
            x += n;
            if (x < 0) x = st < 0 ? -1 : 0;
        } else if (x >= n) {
            x = st < 0 ? n - 1 : n;
        }
        return x;
    };
    const int64_t lo = adjust(b, st < 0 ? n - 1 : 0);
    const int64_t hi = adjust(e, st < 0 ? -1 : n);
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) picks.push_back(size_t(i));
    if (obj.is_list()) {
        List out;
        for (size_t i : picks) out.push_back(obj.list_items()[i]);
        return Value::list(std::move(out), obj.is_tuple());
    }
    auto chars = utf8_chars(obj.as_string());
    std::string out;
    for (size_t i : picks) out += chars[i];
    return Value(std::move(out));
}

// ---- tests ----

bool is_known_test(std::string_view name) {
    static const std::set<std::string_view> k = {
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string",
        "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "ne",
        "lt", "lessthan", "le", "gt", "greaterthan", "ge", "in", "sameas", "lower", "upper", "escaped"};
    return k.count(name) != 0;
}

bool apply_test(std::string_view name, const Value & v, CallArgs & args) {
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.is_bool();
    if (name == "true") return v.is_bool() && v.as_bool();
    if (name == "false") return v.is_bool() && !v.as_bool();
    if (name == "integer") return v.is_int();
    if (name == "float") return v.is_float();
    if (name == "number") return v.is_number();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict() && !v.is_namespace();
    if (name == "iterable" || name == "sequence")
        return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
    if (name == "callable") return v.is_callable();
    if (name == "escaped") return false;
    if (name == "lower") return v.is_string() && ascii_lower(v.as_string()) == v.as_string();
    if (name == "upper") return v.is_string() && ascii_upper(v.as_string()) == v.as_string();
    if (name == "odd" || name == "even" || name == "divisibleby") {
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_int() && !v.is_bool()) fail(std::string("test '") + std::string(name) + "' needs an integer");
        const int64_t n = name == "divisibleby" ? args.get(0, "num").as_int() : 2;
        if (n == 0) fail("integer modulo by zero");
        const bool divisible = v.as_int() % n == 0;
        return name == "odd" ? !divisible : divisible;
    }
    const Value other = args.get(0, "other");
    if (name == "eq" || name == "equalto") return equals(v, other);
    if (name == "ne") return !equals(v, other);
    if (name == "lt" || name == "lessthan") return less_than(v, other);
    if (name == "gt" || name == "greaterthan") return less_than(other, v);
    if (name == "le") return !less_than(other, v);
    if (name == "ge") return !less_than(v, other);
    if (name == "sameas") {
        if (v.is_none() || v.is_bool() || v.is_undefined()) return v.type() == other.type() && equals(v, other);
        if (v.is_list() && other.is_list()) return v.list_ptr() == other.list_ptr();
        if (v.is_dict() && other.is_dict()) return v.dict_ptr() == other.dict_ptr();
        return false;
    }
    if (name == "in") {
        const Value seq = args.get(0, "seq");
        if (seq.is_string()) return v.is_string() && seq.as_string().find(v.as_string()) != std::string::npos;
        if (seq.is_dict()) return v.is_string() && seq.dict_ref().find(v.as_string()) != nullptr;
        for (const Value & x : iterate(seq))
            if (equals(x, v)) return true;
        return false;
    }
    fail("unknown test '" + std::string(name) + "'", ErrorCode::Unsupported);
}

// ---- globals ----

void add_globals(Dict & g) {
    g.set("range", Value::callable("range", [](CallArgs & args) {
        int64_t start = 0, stop = 0, step = 1;
        const size_t n = args.positional.size();
        for (const Value & a : args.positional)
            if (!a.is_int() && !a.is_bool()) fail("range() arguments must be integers");
        if (n == 1) {
            stop = args.positional[0].as_int();
        } else if (n == 2 || n == 3) {
            start = args.positional[0].as_int();
            stop = args.positional[1].as_int();
            if (n == 3) step = args.positional[2].as_int();
        } else {
            fail("range() takes 1 to 3 arguments");
        }
        if (step == 0) fail("range() arg 3 must not be zero");
        List out;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (out.size() >= 1000000) fail("range() too large");
            out.emplace_back(i);
        }
        return Value::list(std::move(out));
    }));
    auto make_mapping = [](CallArgs & args, Value out) {
        for (const Value & p : args.positional) {
            if (!p.is_dict()) fail("expected a mapping argument");
            for (const auto & kv : p.dict_ref().items) out.dict_ref().set(kv.first, kv.second);
        }
        for (auto & kv : args.named) out.dict_ref().set(kv.first, kv.second);
        return out;
    };
    g.set("namespace", Value::callable("namespace", [make_mapping](CallArgs & args) {
        return make_mapping(args, Value::namespace_object());
    }));
    g.set("dict", Value::callable("dict", [make_mapping](CallArgs & args) { return make_mapping(args, Value::dict()); }));
    g.set("raise_exception", Value::callable("raise_exception", [](CallArgs & args) -> Value {
        throw RenderError{ErrorCode::InvalidArgument, to_str(args.get(0, "message")), true};
    }));
    g.set("strftime_now", Value::callable("strftime_now", [](CallArgs & args) {
        const Value fmt = args.get(0, "format");
        if (!fmt.is_string()) fail("strftime_now() expects a format string");
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        char buf[256];
        const size_t n = std::strftime(buf, sizeof(buf), fmt.as_string().c_str(), &tm);
        return Value(std::string(buf, n));
    }));
}

}  // namespace gb::jinja
