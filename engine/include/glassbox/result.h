// Error values for the engine API: nothing is thrown across it. Functions that
// can fail on user input return Result<T> (a value or an Error with context).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gb {

enum class ErrorCode {
    Io,            // file cannot be opened / read / written
    InvalidFile,   // malformed or hostile file content
    Unsupported,   // valid input we do not support (type, architecture, template feature)
    InvalidArgument,
    OutOfRange,    // e.g. prompt longer than the context
    OutOfMemory,
    Cancelled,
    Internal,
};

const char * error_code_name(ErrorCode code);

struct Error {
    ErrorCode   code = ErrorCode::Internal;
    std::string message;  // human readable, with context (file, offset, tensor, ...)

    std::string to_string() const { return std::string(error_code_name(code)) + ": " + message; }
};

inline Error make_error(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

// A value or an error. Minimal std::expected stand-in (C++20).
template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : m_v(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return m_v.index() == 0; }
    explicit operator bool() const { return ok(); }

    T &       value() &       { assert(ok()); return std::get<0>(m_v); }
    const T & value() const & { assert(ok()); return std::get<0>(m_v); }
    T &&      value() &&      { assert(ok()); return std::get<0>(std::move(m_v)); }
    T *       operator->()       { return &value(); }
    const T * operator->() const { return &value(); }
    T &       operator*()  &      { return value(); }
    const T & operator*() const & { return value(); }

    const Error & error() const { assert(!ok()); return std::get<1>(m_v); }

  private:
    std::variant<T, Error> m_v;
};

// Success or an error, for functions with no value.
class [[nodiscard]] Status {
  public:
    Status() = default;
    Status(Error error) : m_error(std::move(error)) {}
    static Status success() { return Status(); }

    bool ok() const { return !m_error.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error & error() const { assert(!ok()); return *m_error; }

  private:
    std::optional<Error> m_error;
};

}  // namespace gb

// Propagate an error from an expression yielding Status or Result<T>.
#define GB_TRY_STATUS(expr)                                \
    do {                                                   \
        auto gb_try_s_ = (expr);                           \
        if (!gb_try_s_.ok()) return gb_try_s_.error();     \
    } while (0)
