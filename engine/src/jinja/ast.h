// Syntax tree of a parsed Jinja template: expressions and statements, each with
// the source offset used in error messages.
#pragma once

#include "jinja/value.h"

#include <memory>
#include <string>
#include <vector>

namespace gb::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
    Literal,   // value
    Name,      // name
    List,      // items
    Tuple,     // items
    DictLit,   // items as key, value pairs (even: key, odd: value)
    Unary,     // op ("-", "+", "not"), a
    Binary,    // op ("+", "-", "*", "/", "//", "%", "**", "~", "and", "or"), a, b
    Compare,   // a, then ops[i] applied with items[i]
    Cond,      // a if b else c (c may be null)
    GetAttr,   // a.name
    GetItem,   // a[b]
    Slice,     // a[b:c:d], each of b/c/d may be null
    Call,      // a(args)
    Filter,    // a | name(args); a null inside {% filter %}
    Test,      // a is [not] name(args)
};

struct Expr {
    ExprKind                 kind;
    size_t                   offset = 0;
    Value                    value;      // Literal
    std::string              name;       // Name, GetAttr, Filter, Test; op for Unary/Binary
    ExprPtr                  a, b, c, d;
    std::vector<ExprPtr>     items;      // List, Tuple, DictLit, Compare operands, Call/Filter/Test positional args
    std::vector<std::string> ops;        // Compare operators
    std::vector<std::pair<std::string, ExprPtr>> kwargs;  // Call/Filter/Test keyword args
    bool                     negated = false;              // Test

    Expr(ExprKind k, size_t off) : kind(k), offset(off) {}
};

enum class StmtKind {
    Text,        // text
    Output,      // {{ expr }}
    If,          // conds[i] -> bodies[i]; else_body
    For,         // targets in expr [if cond]: body; else_body
    Set,         // target = expr
    SetBlock,    // {% set name %}body{% endset %}
    Macro,       // name(params = defaults): body
    FilterBlock, // {% filter f %}body{% endfilter %}
    With,        // {% with a = x %}body{% endwith %}
    Scope,       // body rendered in place (e.g. {% generation %})
    Break,
    Continue,
};

struct Stmt {
    StmtKind                 kind;
    size_t                   offset = 0;
    std::string              text;         // Text; Macro/SetBlock name
    ExprPtr                  expr;         // Output, For (iterable), Set (value), FilterBlock (filter chain)
    ExprPtr                  target;       // Set target (Name, GetAttr or Tuple of Names)
    ExprPtr                  cond;         // For's inline filter
    std::vector<std::string> names;        // For targets; Macro params; With names
    std::vector<ExprPtr>     exprs;        // If conditions; Macro defaults (null: none); With values
    std::vector<Body>        bodies;       // If bodies
    Body                     body;         // For, SetBlock, Macro, FilterBlock, With, Scope
    Body                     else_body;    // If, For

    Stmt(StmtKind k, size_t off) : kind(k), offset(off) {}
};

}  // namespace gb::jinja
