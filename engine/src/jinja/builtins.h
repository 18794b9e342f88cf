// Built-in filters, tests, string/dict methods and global functions of the
// Jinja subset, with jinja2's (and Python's) behaviour.
#pragma once

#include "jinja/value.h"

#include <string_view>

namespace gb::jinja {

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

// Attribute lookup as jinja2's environment.getattr: methods of str/dict, else
// the dict key. Missing -> Undefined with a hint. Fails on Undefined objects.
Value get_attr(const Value & obj, const std::string & name);
// Subscript as environment.getitem: obj[key], falling back to get_attr.
Value get_item(const Value & obj, const Value & key);
// obj[start:stop:step] for lists and strings (null pointers: omitted).
Value get_slice(const Value & obj, const Value * start, const Value * stop, const Value * step);

bool  apply_test(std::string_view name, const Value & v, CallArgs & args);
// `call_filter` resolves a filter by name for map('name').
Value apply_filter(std::string_view name, const Value & v, CallArgs & args);

// Global functions: range, namespace, dict, raise_exception, strftime_now.
void add_globals(Dict & globals);

}  // namespace gb::jinja
