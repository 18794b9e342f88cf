// Python str operations used by filters and methods (strip, split, replace,
// title, format), code point aware where Python is.
#pragma once

#include "jinja/value.h"

#include <string>
#include <vector>

namespace gb::jinja {

std::string ascii_upper(std::string s);
std::string ascii_lower(std::string s);
std::string py_title(const std::string & s);       // str.title()
std::string jinja_title(const std::string & s);    // the |title filter
std::string py_capitalize(const std::string & s);  // str.capitalize()
// str.strip(chars): chars == nullptr strips Unicode whitespace.
std::string py_strip(const std::string & s, const std::string * chars, bool left, bool right);
// str.split(sep, maxsplit) / rsplit; sep == nullptr splits on whitespace runs.
std::vector<std::string> py_split(const std::string & s, const std::string * sep, int64_t maxsplit, bool from_right);
std::string py_replace(const std::string & s, const std::string & from, const std::string & to, int64_t count);
// str.format with {}, {0} and {name} fields (no format specs).
std::string py_format(const std::string & fmt, const CallArgs & args);

}  // namespace gb::jinja
