// Values of the Jinja subset interpreter, with Python semantics where templates
// can observe them: str()/repr() text, truthiness, equality, ordering, json.dumps.
#pragma once

#include "glassbox/result.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gb::jinja {

class Value;
using List = std::vector<Value>;
struct Dict;
struct Callable;
struct CallArgs;

// Thrown inside the interpreter only; render() turns it into a gb::Error.
struct RenderError {
    ErrorCode   code = ErrorCode::InvalidArgument;
    std::string message;
    bool        raised_by_template = false;  // raise_exception(): message shown as is
};
[[noreturn]] void fail(std::string message, ErrorCode code = ErrorCode::InvalidArgument);

class Value {
  public:
    enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };

    Value() = default;  // undefined
    Value(bool b) : m_type(Type::Bool), m_int(b ? 1 : 0) {}
    Value(int i) : m_type(Type::Int), m_int(i) {}
    Value(int64_t i) : m_type(Type::Int), m_int(i) {}
    Value(double f) : m_type(Type::Float), m_float(f) {}
    Value(std::string s) : m_type(Type::String), m_str(std::move(s)) {}
    Value(std::string_view s) : m_type(Type::String), m_str(s) {}
    Value(const char * s) : m_type(Type::String), m_str(s) {}

    // `hint` says why the value is undefined ("'x' is undefined"), for errors.
    static Value undefined(std::string hint);
    static Value none();
    static Value list(List items = {}, bool tuple = false);
    static Value dict();
    static Value namespace_object();
    static Value callable(std::string name, std::function<Value(CallArgs &)> fn);

    Type type() const { return m_type; }
    bool is_undefined() const { return m_type == Type::Undefined; }
    bool is_none() const { return m_type == Type::None; }
    bool is_bool() const { return m_type == Type::Bool; }
    bool is_int() const { return m_type == Type::Int; }
    bool is_float() const { return m_type == Type::Float; }
    bool is_number() const { return m_type == Type::Int || m_type == Type::Float || m_type == Type::Bool; }
    bool is_string() const { return m_type == Type::String; }
    bool is_list() const { return m_type == Type::List; }
    bool is_dict() const { return m_type == Type::Dict; }
    bool is_callable() const { return m_type == Type::Callable; }
    bool is_tuple() const { return m_type == Type::List && m_tuple; }
    bool is_namespace() const;

    bool                 as_bool() const { return m_int != 0; }
    int64_t              as_int() const { return m_int; }      // Int or Bool
    double               as_double() const;                    // any number
    const std::string &  as_string() const { return m_str; }   // String (or undefined hint)
    const std::string &  undefined_hint() const { return m_str; }
    List &               list_items() const { return *m_list; }
    Dict &               dict_ref() const { return *m_dict; }
    const Callable &     callable_ref() const { return *m_fn; }
    const std::shared_ptr<List> & list_ptr() const { return m_list; }
    const std::shared_ptr<Dict> & dict_ptr() const { return m_dict; }

    const char * type_name() const;  // Python's name: 'str', 'dict', ...

  private:
    Type                      m_type = Type::Undefined;
    bool                      m_tuple = false;
    int64_t                   m_int = 0;
    double                    m_float = 0.0;
    std::string               m_str;
    std::shared_ptr<List>     m_list;
    std::shared_ptr<Dict>     m_dict;
    std::shared_ptr<Callable> m_fn;
};

// Insertion-ordered string-keyed mapping (Python dicts preserve order).
struct Dict {
    std::vector<std::pair<std::string, Value>> items;
    bool is_namespace = false;

    const Value * find(std::string_view key) const;
    void          set(std::string key, Value value);
};

struct CallArgs {
    std::vector<Value>                         positional;
    std::vector<std::pair<std::string, Value>> named;

    // Argument `index` or keyword `name`, else `fallback`.
    Value get(size_t index, std::string_view name, Value fallback = Value()) const;
    bool  has(size_t index, std::string_view name) const;
};

struct Callable {
    std::string                       name;
    std::function<Value(CallArgs &)>  fn;
};

// Python str(): what {{ }} prints. Undefined prints as "".
std::string to_str(const Value & v);
// Python repr(), used inside str() of lists and dicts.
std::string repr(const Value & v);
// json.dumps(v, ensure_ascii=False, indent=indent (<0: none), sort_keys=sort_keys,
// separators=(item_sep, key_sep)); empty separators mean Python's defaults.
std::string to_json(const Value & v, int indent, bool sort_keys, std::string item_sep = {}, std::string key_sep = {});
// Python repr() of a float ("1.0", "0.1", "1e+20").
std::string format_float(double d);

bool truthy(const Value & v);
bool equals(const Value & a, const Value & b);
// a < b with Python rules (numbers, strings, lists); fails on other types.
bool less_than(const Value & a, const Value & b);
// Python len(); fails where len() would.
int64_t length(const Value & v);
// Items of a for loop / list(): list items, dict keys, string characters.
List iterate(const Value & v);
// Error text for using an undefined value.
[[noreturn]] void fail_undefined(const Value & v);

// UTF-8 helpers: strings are indexed and sliced by code point like Python's.
std::vector<std::string> utf8_chars(std::string_view s);
bool                     is_py_space(std::string_view ch);  // one UTF-8 character

}  // namespace gb::jinja
