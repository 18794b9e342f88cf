// Tree-walking evaluator of the Jinja subset: statements write to an output
// string, expressions produce Values with Python's operator semantics.
#include "jinja/interpreter.h"

#include "jinja/builtins.h"

#include <cmath>

namespace gb::jinja {

namespace {

constexpr size_t k_max_output = size_t(64) << 20;  // runaway templates
constexpr int    k_max_depth = 100;                // macro recursion

struct Scope {
    Scope * parent = nullptr;
    Dict    vars;

    const Value * lookup(const std::string & name) const {
        for (const Scope * s = this; s; s = s->parent)
            if (const Value * v = s->vars.find(name)) return v;
        return nullptr;
    }
};

enum class Flow { Normal, Break, Continue };

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

[[noreturn]] void bad_operands(const std::string & op, const Value & a, const Value & b) {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    fail("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value repeat(const Value & seq, int64_t n) {
    if (n < 0) n = 0;
    if (seq.is_string()) {
        if (seq.as_string().size() * size_t(n) > k_max_output) fail("repeated string too large");
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return Value(std::move(out));
    }
    List out;
    for (int64_t i = 0; i < n; ++i)
        for (const Value & x : seq.list_items()) out.push_back(x);
    return Value::list(std::move(out));
}

Value arithmetic(const std::string & op, const Value & a, const Value & b) {
    if (op == "~") return Value(to_str(a) + to_str(b));
    if (op == "+") {
        if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
        if (a.is_list() && b.is_list()) {
            List out = a.list_items();
            out.insert(out.end(), b.list_items().begin(), b.list_items().end());
            return Value::list(std::move(out), a.is_tuple());
        }
    }
    if (op == "*") {
        if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
        if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
    }
    if (op == "%" && a.is_string()) fail("printf-style '%' string formatting is not supported", ErrorCode::Unsupported);
    if (!a.is_number() || !b.is_number()) bad_operands(op, a, b);
    const bool ints = !a.is_float() && !b.is_float();
    if (op == "/") {
        if (b.as_double() == 0.0) fail("division by zero");
        return Value(a.as_double() / b.as_double());
    }
    if (ints) {
        const int64_t x = a.as_int(), y = b.as_int();
        if (op == "+") return Value(x + y);
        if (op == "-") return Value(x - y);
        if (op == "*") return Value(x * y);
        if (op == "//" || op == "%") {
            if (y == 0) fail("integer division or modulo by zero");
            const int64_t q = floor_div(x, y);
            return op == "//" ? Value(q) : Value(x - q * y);
        }
        if (op == "**") {
            if (y < 0) return Value(std::pow(double(x), double(y)));
            int64_t r = 1;
            for (int64_t i = 0; i < y; ++i) r *= x;
            return Value(r);
        }
    } else {
        const double x = a.as_double(), y = b.as_double();
        if (op == "+") return Value(x + y);
        if (op == "-") return Value(x - y);
        if (op == "*") return Value(x * y);
        if (op == "//" || op == "%") {
            if (y == 0.0) fail("float division or modulo by zero");
            double m = std::fmod(x, y);
            if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
            return op == "%" ? Value(m) : Value(std::floor(x / y));
        }
        if (op == "**") return Value(std::pow(x, y));
    }
    bad_operands(op, a, b);
}

bool contains(const Value & container, const Value & item) {
    switch (container.type()) {
        case Value::Type::Undefined: return false;
        case Value::Type::String:
            if (!item.is_string()) fail("'in <string>' requires string as left operand, not " + std::string(item.type_name()));
            return container.as_string().find(item.as_string()) != std::string::npos;
        case Value::Type::List:
            for (const Value & x : container.list_items())
                if (equals(x, item)) return true;
            return false;
        case Value::Type::Dict:
            if (container.is_namespace()) break;
            return item.is_string() && container.dict_ref().find(item.as_string()) != nullptr;
        default: break;
    }
    fail(std::string("argument of type '") + container.type_name() + "' is not iterable");
}

bool compare(const std::string & op, const Value & a, const Value & b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "<") return less_than(a, b);
    if (op == ">") return less_than(b, a);
    if (op == "<=") return !less_than(b, a);
    if (op == ">=") return !less_than(a, b);
    if (op == "in") return contains(b, a);
    return !contains(b, a);  // notin
}

class Interpreter {
  public:
    explicit Interpreter(const Program & program) : m_program(program) {}

    Result<std::string> run(const Dict & context) {
        add_globals(m_globals.vars);
        for (const auto & kv : context.items) m_globals.vars.set(kv.first, kv.second);
        std::string out;
        m_out = &out;
        try {
            exec_body(m_program.body, m_globals);
        } catch (const RenderError & e) {
            if (e.raised_by_template) return make_error(e.code, e.message);
            return make_error(e.code, "chat template " + m_program.map.where(m_offset) + ": " + e.message);
        }
        return out;
    }

  private:
    void emit(const std::string & s) {
        *m_out += s;
        if (m_out->size() > k_max_output) fail("template output exceeds 64 MiB");
    }

    Flow exec_body(const Body & body, Scope & scope) {
        for (const StmtPtr & s : body) {
            const Flow f = exec(*s, scope);
            if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
    }

    std::string capture(const Body & body, Scope & scope) {
        std::string buf;
        std::string * saved = m_out;
        m_out = &buf;
        exec_body(body, scope);
        m_out = saved;
        return buf;
    }

    Flow exec(const Stmt & s, Scope & scope) {
        m_offset = s.offset;
        switch (s.kind) {
            case StmtKind::Text: emit(s.text); return Flow::Normal;
            case StmtKind::Output: emit(to_str(eval(*s.expr, scope))); return Flow::Normal;
            case StmtKind::If:
                for (size_t i = 0; i < s.exprs.size(); ++i)
                    if (truthy(eval(*s.exprs[i], scope))) return exec_body(s.bodies[i], scope);
                return exec_body(s.else_body, scope);
            case StmtKind::For: exec_for(s, scope); return Flow::Normal;
            case StmtKind::Set: assign(*s.target, eval(*s.expr, scope), scope); return Flow::Normal;
            case StmtKind::SetBlock: {
                Scope inner{&scope, {}};
                scope.vars.set(s.text, Value(capture(s.body, inner)));
                return Flow::Normal;
            }
            case StmtKind::Macro: define_macro(s, scope); return Flow::Normal;
            case StmtKind::FilterBlock: {
                Scope inner{&scope, {}};
                const Value text(capture(s.body, inner));
                emit(to_str(eval_filter_chain(*s.expr, text, scope)));
                return Flow::Normal;
            }
            case StmtKind::With: {
                Scope inner{&scope, {}};
                for (size_t i = 0; i < s.names.size(); ++i) inner.vars.set(s.names[i], eval(*s.exprs[i], scope));
                return exec_body(s.body, inner);
            }
            case StmtKind::Scope: return exec_body(s.body, scope);
            case StmtKind::Break: return Flow::Break;
            case StmtKind::Continue: return Flow::Continue;
        }
        return Flow::Normal;
    }

    void bind_targets(const std::vector<std::string> & names, const Value & item, Scope & scope) {
        if (names.size() == 1) {
            scope.vars.set(names[0], item);
            return;
        }
        List parts = iterate(item);
        if (parts.size() != names.size())
            fail(parts.size() < names.size() ? "not enough values to unpack (expected " + std::to_string(names.size()) + ")"
                                             : "too many values to unpack (expected " + std::to_string(names.size()) + ")");
        for (size_t i = 0; i < names.size(); ++i) scope.vars.set(names[i], parts[i]);
    }

    void exec_for(const Stmt & s, Scope & scope) {
        const Value iterable = eval(*s.expr, scope);
        List items = iterate(iterable);
        if (s.cond) {
            List kept;
            for (const Value & item : items) {
                Scope probe{&scope, {}};
                bind_targets(s.names, item, probe);
                if (truthy(eval(*s.cond, probe))) kept.push_back(item);
            }
            items = std::move(kept);
        }
        if (items.empty()) {
            Scope inner{&scope, {}};
            exec_body(s.else_body, inner);
            return;
        }
        const int64_t n = int64_t(items.size());
        for (int64_t i = 0; i < n; ++i) {
            Scope inner{&scope, {}};
            bind_targets(s.names, items[size_t(i)], inner);
            Value loop = Value::dict();
            Dict & d = loop.dict_ref();
            d.set("index", Value(i + 1));
            d.set("index0", Value(i));
            d.set("revindex", Value(n - i));
            d.set("revindex0", Value(n - i - 1));
            d.set("first", Value(i == 0));
            d.set("last", Value(i == n - 1));
            d.set("length", Value(n));
            d.set("depth", Value(1));
            d.set("depth0", Value(0));
            if (i > 0) d.set("previtem", items[size_t(i - 1)]);
            if (i + 1 < n) d.set("nextitem", items[size_t(i + 1)]);
            d.set("cycle", Value::callable("cycle", [i](CallArgs & args) -> Value {
                if (args.positional.empty()) fail("no items for cycling given");
                return args.positional[size_t(i) % args.positional.size()];
            }));
            inner.vars.set("loop", loop);
            const Flow f = exec_body(s.body, inner);
            if (f == Flow::Break) break;
        }
    }

    void assign(const Expr & target, Value v, Scope & scope) {
        if (target.kind == ExprKind::Name) {
            scope.vars.set(target.name, std::move(v));
        } else if (target.kind == ExprKind::GetAttr) {
            const Value obj = eval(*target.a, scope);
            if (!obj.is_namespace()) fail("cannot assign attribute on non-namespace object");
            obj.dict_ref().set(target.name, std::move(v));
        } else {
            std::vector<std::string> names;
            for (const ExprPtr & e : target.items) names.push_back(e->name);
            bind_targets(names, v, scope);
        }
    }

    void define_macro(const Stmt & s, Scope & scope) {
        const Stmt * macro = &s;
        scope.vars.set(s.text, Value::callable(s.text, [this, macro](CallArgs & args) { return call_macro(*macro, args); }));
    }

    Value call_macro(const Stmt & m, CallArgs & args) {
        if (++m_depth > k_max_depth) fail("macro recursion too deep");
        if (args.positional.size() > m.names.size()) fail("macro '" + m.text + "' takes not more than " +
                                                          std::to_string(m.names.size()) + " argument(s)");
        Scope inner{&m_globals, {}};
        for (const auto & kv : args.named)
            if (std::find(m.names.begin(), m.names.end(), kv.first) == m.names.end())
                fail("macro '" + m.text + "' takes no keyword argument '" + kv.first + "'");
        for (size_t i = 0; i < m.names.size(); ++i) {
            if (args.has(i, m.names[i])) inner.vars.set(m.names[i], args.get(i, m.names[i]));
            else if (m.exprs[i]) inner.vars.set(m.names[i], eval(*m.exprs[i], inner));
            else inner.vars.set(m.names[i], Value::undefined("'" + m.names[i] + "' is undefined"));
        }
        const size_t saved_offset = m_offset;
        Value out(capture(m.body, inner));
        m_offset = saved_offset;
        --m_depth;
        return out;
    }

    CallArgs eval_args(const Expr & e, Scope & scope) {
        CallArgs args;
        for (const ExprPtr & a : e.items) args.positional.push_back(eval(*a, scope));
        for (const auto & kv : e.kwargs) args.named.emplace_back(kv.first, eval(*kv.second, scope));
        return args;
    }

    Value eval_filter_chain(const Expr & e, const Value & base, Scope & scope) {
        const Value operand = e.a ? eval_filter_chain(*e.a, base, scope) : base;
        CallArgs args = eval_args(e, scope);
        return apply_filter(e.name, operand, args);
    }

    Value eval(const Expr & e, Scope & scope) {
        m_offset = e.offset;
        switch (e.kind) {
            case ExprKind::Literal: return e.value;
            case ExprKind::Name: {
                if (const Value * v = scope.lookup(e.name)) return *v;
                return Value::undefined("'" + e.name + "' is undefined");
            }
            case ExprKind::List:
            case ExprKind::Tuple: {
                List items;
                for (const ExprPtr & x : e.items) items.push_back(eval(*x, scope));
                return Value::list(std::move(items), e.kind == ExprKind::Tuple);
            }
            case ExprKind::DictLit: {
                Value d = Value::dict();
                for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
                    const Value key = eval(*e.items[i], scope);
                    if (!key.is_string()) fail("only string keys are supported in dict literals", ErrorCode::Unsupported);
                    d.dict_ref().set(key.as_string(), eval(*e.items[i + 1], scope));
                }
                return d;
            }
            case ExprKind::Unary: {
                const Value v = eval(*e.a, scope);
                if (e.name == "not") return Value(!truthy(v));
                if (v.is_undefined()) fail_undefined(v);
                if (!v.is_number()) fail("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
                if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
                return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
            }
            case ExprKind::Binary: {
                if (e.name == "and" || e.name == "or") {
                    Value a = eval(*e.a, scope);
                    if (truthy(a) == (e.name == "or")) return a;
                    return eval(*e.b, scope);
                }
                const Value a = eval(*e.a, scope);
                const Value b = eval(*e.b, scope);
                m_offset = e.offset;
                return arithmetic(e.name, a, b);
            }
            case ExprKind::Compare: {
                Value left = eval(*e.a, scope);
                for (size_t i = 0; i < e.ops.size(); ++i) {
                    Value right = eval(*e.items[i], scope);
                    m_offset = e.offset;
                    if (!compare(e.ops[i], left, right)) return Value(false);
                    left = std::move(right);
                }
                return Value(true);
            }
            case ExprKind::Cond:
                if (truthy(eval(*e.b, scope))) return eval(*e.a, scope);
                if (e.c) return eval(*e.c, scope);
                return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
            case ExprKind::GetAttr: {
                const Value obj = eval(*e.a, scope);
                m_offset = e.offset;
                return get_attr(obj, e.name);
            }
            case ExprKind::GetItem: {
                const Value obj = eval(*e.a, scope);
                const Value key = eval(*e.b, scope);
                m_offset = e.offset;
                return get_item(obj, key);
            }
            case ExprKind::Slice: {
                const Value obj = eval(*e.a, scope);
                const Value b = e.b ? eval(*e.b, scope) : Value::none();
                const Value c = e.c ? eval(*e.c, scope) : Value::none();
                const Value d = e.d ? eval(*e.d, scope) : Value::none();
                m_offset = e.offset;
                return get_slice(obj, &b, &c, &d);
            }
            case ExprKind::Call: {
                const Value fn = eval(*e.a, scope);
                CallArgs args = eval_args(e, scope);
                m_offset = e.offset;
                if (fn.is_undefined()) fail_undefined(fn);
                if (!fn.is_callable()) fail(std::string("'") + fn.type_name() + "' object is not callable");
                return fn.callable_ref().fn(args);
            }
            case ExprKind::Filter: {
                const Value operand = eval(*e.a, scope);
                CallArgs args = eval_args(e, scope);
                m_offset = e.offset;
                return apply_filter(e.name, operand, args);
            }
            case ExprKind::Test: {
                const Value operand = eval(*e.a, scope);
                CallArgs args = eval_args(e, scope);
                m_offset = e.offset;
                return Value(apply_test(e.name, operand, args) != e.negated);
            }
        }
        fail("unknown expression", ErrorCode::Internal);
    }

    const Program & m_program;
    Scope           m_globals;
    std::string *   m_out = nullptr;
    size_t          m_offset = 0;
    int             m_depth = 0;
};

}  // namespace

Result<std::string> render_program(const Program & program, const Dict & context) {
    Interpreter interp(program);
    return interp.run(context);
}

}  // namespace gb::jinja
