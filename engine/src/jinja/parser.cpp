// Recursive-descent parser for the Jinja subset, following jinja2's grammar and
// operator precedence (filters and tests bind tighter than arithmetic).
#include "jinja/parser.h"

#include "jinja/builtins.h"

#include <charconv>
#include <set>

namespace gb::jinja {

namespace {

class Parser {
  public:
    Parser(const std::vector<Token> & tokens, const SourceMap & map) : m_tok(tokens), m_map(map) {}

    Body parse_all() {
        Body body = subparse({});
        if (cur().type != TokType::Eof) error(cur().offset, "unexpected '" + cur().value + "'");
        return body;
    }

  private:
    // ---- token helpers ----
    const Token & cur() const { return m_tok[m_pos]; }
    const Token & peek(size_t n = 1) const { return m_tok[std::min(m_pos + n, m_tok.size() - 1)]; }
    void          advance() { if (m_pos + 1 < m_tok.size()) ++m_pos; }
    bool is_op(std::string_view op) const { return cur().type == TokType::Op && cur().value == op; }
    bool is_name(std::string_view name) const { return cur().type == TokType::Name && cur().value == name; }
    bool skip_op(std::string_view op) {
        if (!is_op(op)) return false;
        advance();
        return true;
    }
    bool skip_name(std::string_view name) {
        if (!is_name(name)) return false;
        advance();
        return true;
    }

    [[noreturn]] void error(size_t offset, const std::string & msg, ErrorCode code = ErrorCode::InvalidArgument) {
        fail("chat template " + m_map.where(offset) + ": " + msg, code);
    }
    std::string describe(const Token & t) const {
        switch (t.type) {
            case TokType::Eof: return "end of template";
            case TokType::BlockEnd: return "'%}'";
            case TokType::VarEnd: return "'}}'";
            case TokType::Text: return "template text";
            default: return "'" + t.value + "'";
        }
    }
    void expect_op(std::string_view op) {
        if (!skip_op(op)) error(cur().offset, "expected '" + std::string(op) + "', got " + describe(cur()));
    }
    std::string expect_name() {
        if (cur().type != TokType::Name) error(cur().offset, "expected a name, got " + describe(cur()));
        std::string n = cur().value;
        advance();
        return n;
    }
    void expect_block_end() {
        if (cur().type != TokType::BlockEnd) error(cur().offset, "expected '%}', got " + describe(cur()));
        advance();
    }

    // ---- statements ----

    // Parses until a block tag whose name is in `ends`; stops on that name token.
    Body subparse(const std::set<std::string> & ends) {
        Body body;
        for (;;) {
            const Token & t = cur();
            if (t.type == TokType::Eof) {
                if (!ends.empty()) error(t.offset, "unexpected end of template, expected '" + *ends.begin() + "'");
                return body;
            }
            if (t.type == TokType::Text) {
                auto s = std::make_unique<Stmt>(StmtKind::Text, t.offset);
                s->text = t.value;
                body.push_back(std::move(s));
                advance();
            } else if (t.type == TokType::VarBegin) {
                auto s = std::make_unique<Stmt>(StmtKind::Output, t.offset);
                advance();
                s->expr = parse_tuple(true);
                if (cur().type != TokType::VarEnd) error(cur().offset, "expected '}}', got " + describe(cur()));
                advance();
                body.push_back(std::move(s));
            } else if (t.type == TokType::BlockBegin) {
                advance();
                if (cur().type != TokType::Name) error(cur().offset, "expected a statement name, got " + describe(cur()));
                if (ends.count(cur().value)) return body;
                body.push_back(parse_statement());
            } else {
                error(t.offset, "unexpected " + describe(t));
            }
        }
    }

    // Bounds recursion on hostile input (deeply nested brackets or blocks).
    struct DepthGuard {
        Parser & p;
        DepthGuard(Parser & parser, size_t offset) : p(parser) {
            if (++p.m_depth > k_max_nesting) p.error(offset, "template nesting too deep", ErrorCode::Unsupported);
        }
        ~DepthGuard() { --p.m_depth; }
    };
    static constexpr int k_max_nesting = 100;

    StmtPtr parse_statement() {
        DepthGuard guard(*this, cur().offset);
        const Token & t = cur();
        const std::string & kw = t.value;
        if (kw == "if") return parse_if();
        if (kw == "for") return parse_for();
        if (kw == "set") return parse_set();
        if (kw == "macro") return parse_macro();
        if (kw == "filter") return parse_filter_block();
        if (kw == "with") return parse_with();
        if (kw == "generation") return parse_scope("endgeneration");
        if (kw == "break" || kw == "continue") {
            if (m_loop_depth == 0) error(t.offset, "'" + kw + "' outside of a loop");
            auto s = std::make_unique<Stmt>(kw == "break" ? StmtKind::Break : StmtKind::Continue, t.offset);
            advance();
            expect_block_end();
            return s;
        }
        static const std::set<std::string> k_unsupported = {"block", "extends", "include", "import", "from", "call",
                                                            "autoescape", "do", "trans", "raw"};
        if (k_unsupported.count(kw))
            error(t.offset, "the '" + kw + "' statement is not supported", ErrorCode::Unsupported);
        error(t.offset, "unknown statement '" + kw + "'", ErrorCode::Unsupported);
    }

    void expect_end(const std::string & name) {
        if (!is_name(name)) error(cur().offset, "expected '" + name + "'");
        advance();
        expect_block_end();
    }

    StmtPtr parse_if() {
        auto s = std::make_unique<Stmt>(StmtKind::If, cur().offset);
        advance();  // if
        for (;;) {
            s->exprs.push_back(parse_tuple(false));
            expect_block_end();
            s->bodies.push_back(subparse({"elif", "else", "endif"}));
            if (skip_name("elif")) continue;
            if (skip_name("else")) {
                expect_block_end();
                s->else_body = subparse({"endif"});
            }
            expect_end("endif");
            return s;
        }
    }

    StmtPtr parse_for() {
        auto s = std::make_unique<Stmt>(StmtKind::For, cur().offset);
        advance();  // for
        do {
            s->names.push_back(expect_name());
        } while (skip_op(","));
        if (!skip_name("in")) error(cur().offset, "expected 'in', got " + describe(cur()));
        s->expr = parse_tuple(false);
        if (skip_name("if")) s->cond = parse_expression(true);
        if (is_name("recursive")) error(cur().offset, "recursive loops are not supported", ErrorCode::Unsupported);
        expect_block_end();
        ++m_loop_depth;
        s->body = subparse({"endfor", "else"});
        --m_loop_depth;
        if (skip_name("else")) {
            expect_block_end();
            s->else_body = subparse({"endfor"});
        }
        expect_end("endfor");
        return s;
    }

    StmtPtr parse_set() {
        const size_t offset = cur().offset;
        advance();  // set
        ExprPtr target = parse_assign_target();
        if (skip_op("=")) {
            auto s = std::make_unique<Stmt>(StmtKind::Set, offset);
            s->target = std::move(target);
            s->expr = parse_tuple(true);
            expect_block_end();
            return s;
        }
        if (target->kind != ExprKind::Name) error(offset, "block assignment needs a plain name");
        auto s = std::make_unique<Stmt>(StmtKind::SetBlock, offset);
        s->text = target->name;
        expect_block_end();
        s->body = subparse({"endset"});
        expect_end("endset");
        return s;
    }

    ExprPtr parse_assign_target() {
        const size_t offset = cur().offset;
        auto first = std::make_unique<Expr>(ExprKind::Name, offset);
        first->name = expect_name();
        if (skip_op(".")) {
            auto attr = std::make_unique<Expr>(ExprKind::GetAttr, offset);
            attr->a = std::move(first);
            attr->name = expect_name();
            return attr;
        }
        if (!is_op(",")) return first;
        auto tuple = std::make_unique<Expr>(ExprKind::Tuple, offset);
        tuple->items.push_back(std::move(first));
        while (skip_op(",")) {
            auto n = std::make_unique<Expr>(ExprKind::Name, cur().offset);
            n->name = expect_name();
            tuple->items.push_back(std::move(n));
        }
        return tuple;
    }

    StmtPtr parse_macro() {
        auto s = std::make_unique<Stmt>(StmtKind::Macro, cur().offset);
        advance();  // macro
        s->text = expect_name();
        expect_op("(");
        while (!is_op(")")) {
            if (!s->names.empty()) expect_op(",");
            if (is_op(")")) break;
            s->names.push_back(expect_name());
            s->exprs.push_back(skip_op("=") ? parse_expression(true) : nullptr);
        }
        expect_op(")");
        expect_block_end();
        s->body = subparse({"endmacro"});
        expect_end("endmacro");
        return s;
    }

    StmtPtr parse_filter_block() {
        auto s = std::make_unique<Stmt>(StmtKind::FilterBlock, cur().offset);
        advance();  // filter
        ExprPtr chain;
        do {
            chain = parse_filter(std::move(chain));
        } while (skip_op("|"));
        s->expr = std::move(chain);
        expect_block_end();
        s->body = subparse({"endfilter"});
        expect_end("endfilter");
        return s;
    }

    StmtPtr parse_with() {
        auto s = std::make_unique<Stmt>(StmtKind::With, cur().offset);
        advance();  // with
        while (cur().type != TokType::BlockEnd) {
            if (!s->names.empty()) expect_op(",");
            s->names.push_back(expect_name());
            expect_op("=");
            s->exprs.push_back(parse_expression(true));
        }
        expect_block_end();
        s->body = subparse({"endwith"});
        expect_end("endwith");
        return s;
    }

    StmtPtr parse_scope(const std::string & end) {
        auto s = std::make_unique<Stmt>(StmtKind::Scope, cur().offset);
        advance();
        expect_block_end();
        s->body = subparse({end});
        expect_end(end);
        return s;
    }

    // ---- expressions ----

    ExprPtr parse_tuple(bool with_condexpr) {
        const size_t offset = cur().offset;
        ExprPtr first = parse_expression(with_condexpr);
        if (!is_op(",")) return first;
        auto tuple = std::make_unique<Expr>(ExprKind::Tuple, offset);
        tuple->items.push_back(std::move(first));
        while (skip_op(",")) {
            if (cur().type == TokType::VarEnd || cur().type == TokType::BlockEnd || is_op(")")) break;
            tuple->items.push_back(parse_expression(with_condexpr));
        }
        return tuple;
    }

    ExprPtr parse_expression(bool with_condexpr) {
        DepthGuard guard(*this, cur().offset);
        if (!with_condexpr) return parse_or();
        ExprPtr expr = parse_or();
        while (is_name("if")) {
            auto cond = std::make_unique<Expr>(ExprKind::Cond, cur().offset);
            advance();
            cond->b = parse_or();
            if (skip_name("else")) cond->c = parse_expression(true);
            cond->a = std::move(expr);
            expr = std::move(cond);
        }
        return expr;
    }

    ExprPtr binary(std::string op, size_t offset, ExprPtr a, ExprPtr b) {
        auto e = std::make_unique<Expr>(ExprKind::Binary, offset);
        e->name = std::move(op);
        e->a = std::move(a);
        e->b = std::move(b);
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (is_name("or")) {
            const size_t off = cur().offset;
            advance();
            left = binary("or", off, std::move(left), parse_and());
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (is_name("and")) {
            const size_t off = cur().offset;
            advance();
            left = binary("and", off, std::move(left), parse_not());
        }
        return left;
    }

    ExprPtr parse_not() {
        DepthGuard guard(*this, cur().offset);
        if (is_name("not")) {
            auto e = std::make_unique<Expr>(ExprKind::Unary, cur().offset);
            advance();
            e->name = "not";
            e->a = parse_not();
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        const size_t offset = cur().offset;
        ExprPtr first = parse_math1();
        std::unique_ptr<Expr> cmp;
        for (;;) {
            std::string op;
            if (cur().type == TokType::Op && (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
                                              cur().value == ">" || cur().value == "<=" || cur().value == ">=")) {
                op = cur().value;
                advance();
            } else if (is_name("in")) {
                op = "in";
                advance();
            } else if (is_name("not") && peek().type == TokType::Name && peek().value == "in") {
                op = "notin";
                advance();
                advance();
            } else {
                break;
            }
            if (!cmp) {
                cmp = std::make_unique<Expr>(ExprKind::Compare, offset);
                cmp->a = std::move(first);
            }
            cmp->ops.push_back(op);
            cmp->items.push_back(parse_math1());
        }
        return cmp ? std::move(cmp) : std::move(first);
    }

    ExprPtr parse_math1() {
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            const std::string op = cur().value;
            const size_t off = cur().offset;
            advance();
            left = binary(op, off, std::move(left), parse_concat());
        }
        return left;
    }

    ExprPtr parse_concat() {
        ExprPtr left = parse_math2();
        while (is_op("~")) {
            const size_t off = cur().offset;
            advance();
            left = binary("~", off, std::move(left), parse_math2());
        }
        return left;
    }

    ExprPtr parse_math2() {
        ExprPtr left = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string op = cur().value;
            const size_t off = cur().offset;
            advance();
            left = binary(op, off, std::move(left), parse_pow());
        }
        return left;
    }

    ExprPtr parse_pow() {
        ExprPtr left = parse_unary(true);
        while (is_op("**")) {
            const size_t off = cur().offset;
            advance();
            left = binary("**", off, std::move(left), parse_unary(true));
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(*this, cur().offset);
        ExprPtr node;
        if (is_op("-") || is_op("+")) {
            node = std::make_unique<Expr>(ExprKind::Unary, cur().offset);
            node->name = cur().value;
            advance();
            node->a = parse_unary(false);
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr parse_primary() {
        const Token & t = cur();
        const size_t offset = t.offset;
        if (t.type == TokType::Name) {
            auto e = std::make_unique<Expr>(ExprKind::Literal, offset);
            if (t.value == "true" || t.value == "True") e->value = Value(true);
            else if (t.value == "false" || t.value == "False") e->value = Value(false);
            else if (t.value == "none" || t.value == "None") e->value = Value::none();
            else {
                e->kind = ExprKind::Name;
                e->name = t.value;
            }
            advance();
            return e;
        }
        if (t.type == TokType::String) {
            std::string s;
            while (cur().type == TokType::String) {
                s += cur().value;
                advance();
            }
            auto e = std::make_unique<Expr>(ExprKind::Literal, offset);
            e->value = Value(std::move(s));
            return e;
        }
        if (t.type == TokType::Integer || t.type == TokType::Float) {
            auto e = std::make_unique<Expr>(ExprKind::Literal, offset);
            if (t.type == TokType::Integer) {
                int64_t v = 0;
                auto r = std::from_chars(t.value.data(), t.value.data() + t.value.size(), v);
                if (r.ec != std::errc()) error(offset, "integer literal out of range", ErrorCode::Unsupported);
                e->value = Value(v);
            } else {
                e->value = Value(std::stod(t.value));
            }
            advance();
            return e;
        }
        if (skip_op("(")) {
            if (skip_op(")")) {
                auto e = std::make_unique<Expr>(ExprKind::Tuple, offset);
                return e;
            }
            ExprPtr inner = parse_tuple(true);
            expect_op(")");
            return inner;
        }
        if (skip_op("[")) {
            auto e = std::make_unique<Expr>(ExprKind::List, offset);
            while (!is_op("]")) {
                if (!e->items.empty()) expect_op(",");
                if (is_op("]")) break;
                e->items.push_back(parse_expression(true));
            }
            expect_op("]");
            return e;
        }
        if (skip_op("{")) {
            auto e = std::make_unique<Expr>(ExprKind::DictLit, offset);
            while (!is_op("}")) {
                if (!e->items.empty()) expect_op(",");
                if (is_op("}")) break;
                e->items.push_back(parse_expression(true));
                expect_op(":");
                e->items.push_back(parse_expression(true));
            }
            expect_op("}");
            return e;
        }
        error(offset, "unexpected " + describe(t));
    }

    ExprPtr parse_postfix(ExprPtr node) {
        for (;;) {
            if (is_op(".")) {
                const size_t off = cur().offset;
                advance();
                if (cur().type == TokType::Integer) {
                    auto e = std::make_unique<Expr>(ExprKind::GetItem, off);
                    e->a = std::move(node);
                    e->b = parse_primary();
                    node = std::move(e);
                    continue;
                }
                auto e = std::make_unique<Expr>(ExprKind::GetAttr, off);
                e->a = std::move(node);
                e->name = expect_name();
                node = std::move(e);
            } else if (is_op("[")) {
                node = parse_subscript(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr node) {
        const size_t off = cur().offset;
        advance();  // [
        ExprPtr start;
        if (!is_op(":")) {
            start = parse_expression(true);
            if (skip_op("]")) {
                auto e = std::make_unique<Expr>(ExprKind::GetItem, off);
                e->a = std::move(node);
                e->b = std::move(start);
                return e;
            }
        }
        auto e = std::make_unique<Expr>(ExprKind::Slice, off);
        e->a = std::move(node);
        e->b = std::move(start);
        expect_op(":");
        if (!is_op("]") && !is_op(":")) e->c = parse_expression(true);
        if (skip_op(":") && !is_op("]")) e->d = parse_expression(true);
        expect_op("]");
        return e;
    }

    void parse_args(Expr & e) {
        expect_op("(");
        bool first = true;
        while (!is_op(")")) {
            if (!first) expect_op(",");
            first = false;
            if (is_op(")")) break;
            if (is_op("*") || is_op("**")) error(cur().offset, "*args and **kwargs are not supported", ErrorCode::Unsupported);
            if (cur().type == TokType::Name && peek().type == TokType::Op && peek().value == "=") {
                std::string key = cur().value;
                advance();
                advance();
                e.kwargs.emplace_back(std::move(key), parse_expression(true));
            } else {
                if (!e.kwargs.empty()) error(cur().offset, "positional argument after keyword argument");
                e.items.push_back(parse_expression(true));
            }
        }
        expect_op(")");
    }

    ExprPtr parse_call(ExprPtr node) {
        auto e = std::make_unique<Expr>(ExprKind::Call, cur().offset);
        e->a = std::move(node);
        parse_args(*e);
        return e;
    }

    ExprPtr parse_filter(ExprPtr operand) {
        const size_t off = cur().offset;
        auto e = std::make_unique<Expr>(ExprKind::Filter, off);
        e->a = std::move(operand);
        e->name = expect_name();
        if (!is_known_filter(e->name)) error(off, "unknown filter '" + e->name + "'", ErrorCode::Unsupported);
        if (is_op("(")) parse_args(*e);
        return e;
    }

    ExprPtr parse_filter_expr(ExprPtr node) {
        for (;;) {
            if (skip_op("|")) {
                node = parse_filter(std::move(node));
            } else if (is_name("is")) {
                const size_t off = cur().offset;
                advance();
                auto e = std::make_unique<Expr>(ExprKind::Test, off);
                e->negated = skip_name("not");
                e->a = std::move(node);
                e->name = expect_name();
                // Comparison-named tests: "is ==" is not valid syntax, names only.
                if (!is_known_test(e->name)) error(off, "unknown test '" + e->name + "'", ErrorCode::Unsupported);
                if (is_op("(")) {
                    parse_args(*e);
                } else if ((cur().type == TokType::Name || cur().type == TokType::String ||
                            cur().type == TokType::Integer || cur().type == TokType::Float || is_op("(") ||
                            is_op("[") || is_op("{")) &&
                           !is_name("else") && !is_name("or") && !is_name("and")) {
                    e->items.push_back(parse_postfix(parse_primary()));
                }
                node = std::move(e);
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    const std::vector<Token> & m_tok;
    const SourceMap &          m_map;
    size_t                     m_pos = 0;
    int                        m_loop_depth = 0;
    int                        m_depth = 0;
};

}  // namespace

Result<std::shared_ptr<const Program>> parse_program(std::string_view source) {
    auto program = std::make_shared<Program>(normalize_source(source));
    auto tokens = tokenize(program->source, LexOptions{});
    if (!tokens.ok()) return tokens.error();
    try {
        Parser parser(*tokens, program->map);
        program->body = parser.parse_all();
    } catch (const RenderError & e) {
        return make_error(e.code, e.message);
    }
    return std::shared_ptr<const Program>(std::move(program));
}

}  // namespace gb::jinja
