// lawcat's error types. Messages say where (file, key, tensor), what, expected
// vs got, and a hint. Layers add context by nesting (see with_context); the CLI
// prints the whole chain and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lawcat {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};
// Bad YAML / CLI settings (key paths, ranges, cross-field checks).
class ConfigError : public Error { using Error::Error; };
// Unreadable or inconsistent checkpoint files (safetensors, config.json, llama2.c).
class CheckpointError : public Error { using Error::Error; };
// Corpora, tokenizers, eval data.
class DataError : public Error { using Error::Error; };

// Runs fn(); if it throws, rethrows a nested exception adding `context`
// ("while loading <dir>") while keeping the original error type as the cause.
template <typename Fn>
decltype(auto) with_context(const std::string& context, Fn&& fn) {
  try {
    return fn();
  } catch (...) {
    std::throw_with_nested(Error(context));
  }
}

// "outer: inner: innermost" chain of a (possibly nested) exception.
std::string describe_exception(const std::exception& e);

}  // namespace lawcat

// LAWCAT_CHECK(cond, ErrorType, "message " << value): throws ErrorType with the streamed message.
#include <sstream>
#define LAWCAT_CHECK(cond, ErrorType, msg)       \
  do {                                           \
    if (!(cond)) {                               \
      std::ostringstream lawcat_check_os_;       \
      lawcat_check_os_ << msg;                   \
      throw ErrorType(lawcat_check_os_.str());   \
    }                                            \
  } while (0)
