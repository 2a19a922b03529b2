#include "eval/passkey.h"

#include <cmath>
#include <cstring>

#include "util/error.h"

namespace lawcat::eval {

namespace {
// The first n characters of kPasskeyGarbage repeated and joined by spaces.
std::string garbage_stream(int64_t n) {
  std::string out;
  out.reserve(static_cast<size_t>(n) + 128);
  const std::string block = kPasskeyGarbage;
  while (static_cast<int64_t>(out.size()) < n) {
    if (!out.empty()) out += ' ';
    out += block;
  }
  out.resize(static_cast<size_t>(n));
  return out;
}
}  // namespace

std::string passkey_needle(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
}

std::string passkey_prompt(int64_t garbage_chars, double depth, const std::string& key) {
  const int64_t n_prefix = std::llround(depth * static_cast<double>(garbage_chars));
  const int64_t n_suffix = garbage_chars - n_prefix;
  const std::string stream = garbage_stream(std::max(n_prefix, n_suffix));
  std::string p;
  p.reserve(static_cast<size_t>(garbage_chars) + 400);
  p += kPasskeyTask;
  p += '\n';
  p.append(stream, 0, static_cast<size_t>(n_prefix));
  p += '\n';
  p += passkey_needle(key);
  p += '\n';
  p.append(stream, 0, static_cast<size_t>(n_suffix));
  p += '\n';
  p += kPasskeyQuestion;
  return p;
}

PromptSample make_passkey_sample(const text::Tokenizer& tokenizer, int64_t target_tokens, double depth,
                                 uint64_t seed, int64_t* hint) {
  LAWCAT_CHECK(depth >= 0 && depth <= 1, ConfigError, "passkey: depth must be in [0, 100] %, got " << depth * 100);
  Rng rng(seed);
  const std::string key = std::to_string(rng.uniform_int(1, 50000));
  auto tokens_for = [&](int64_t n) {
    return static_cast<int64_t>(encode_prompt(tokenizer, passkey_prompt(n, depth, key)).size());
  };
  const FitResult fit = fit_units(tokens_for, target_tokens, 64 * target_tokens + 4096, hint ? *hint : 0);
  LAWCAT_CHECK(within_tolerance(fit.tokens, target_tokens), ConfigError,
               "passkey: cannot fit a prompt of " << target_tokens << " tokens (closest: " << fit.tokens
                                                  << " tokens with " << fit.units
                                                  << " garbage characters); the template alone is "
                                                  << tokens_for(0) << " tokens");
  if (hint) *hint = fit.units;
  PromptSample s;
  s.prompt = passkey_prompt(fit.units, depth, key);
  s.ids = encode_prompt(tokenizer, s.prompt);
  s.references = {key};
  s.target_tokens = target_tokens;
  s.measured_tokens = static_cast<int64_t>(s.ids.size());
  s.length_of = "prompt";
  s.needle_offset = static_cast<int64_t>(s.prompt.find(passkey_needle(key)));
  const int64_t ctx_begin = static_cast<int64_t>(std::strlen(kPasskeyTask)) + 1;
  s.meta = {{"key", key},
            {"garbage_chars", fit.units},
            {"fit_probes", fit.probes},
            {"needle_depth_chars",
             fit.units > 0 ? static_cast<double>(s.needle_offset - ctx_begin) / static_cast<double>(fit.units) : depth}};
  return s;
}

bool passkey_correct(const std::string& output, const std::string& key) {
  return !key.empty() && output.find(key) != std::string::npos;
}

}  // namespace lawcat::eval
