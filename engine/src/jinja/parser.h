// Parser for the Jinja subset: tokens -> statement tree. Constructs outside the
// subset (extends, include, call blocks, unknown filters/tests) are errors.
#pragma once

#include "jinja/ast.h"
#include "jinja/lexer.h"

#include <memory>
#include <string>
#include <string_view>

namespace gb::jinja {

struct Program {
    std::string source;  // normalized
    SourceMap   map;
    Body        body;

    explicit Program(std::string src) : source(std::move(src)), map(source) {}
};

// Parses with trim_blocks and lstrip_blocks on, as transformers renders chat templates.
Result<std::shared_ptr<const Program>> parse_program(std::string_view source);

}  // namespace gb::jinja
