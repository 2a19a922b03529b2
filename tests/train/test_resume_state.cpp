// train::parse_resume_state (a checkpoint's state.json as resume reads it): every key,
// type and range is checked and named with the file. The fuzz target
// tests/fuzz/fuzz_state_json.cpp runs the same function on arbitrary bytes.
#include <cmath>
#include <limits>

#include "common/catch.h"
#include "train/resume_state.h"
#include "util/error.h"

using namespace lawcat;

namespace {
const char* kGood = R"({"step": 4, "tokens": 128, "wall_s": 1.5,
  "scheduler": {"lr": 0.01, "best": 0.4, "num_bad": 0},
  "loader": {"epoch": 0, "index": 8, "consumed": 8}, "adam_steps": {"w": 4},
  "world": 1, "init_val": 0.44, "best_val": 0.40, "best_step": 4, "final_val": null})";

std::string error_of(const std::string& text) {
  try {
    train::parse_resume_state(text, "ck/state.json");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}
std::string with(const std::string& key, const std::string& value) {
  std::string t = kGood;
  const auto at = t.find("\"" + key + "\": ") + key.size() + 4;
  t.replace(at, t.find_first_of(",}", at) - at, value);
  return t;
}
}  // namespace

TEST_CASE("state.json: a good one is read whole", "[train]") {
  const auto s = train::parse_resume_state(kGood, "ck/state.json");
  CHECK(s.step == 4);
  CHECK(s.tokens == 128);
  CHECK(s.loader_index == 8);
  CHECK(s.adam_steps.at("w") == 4);
  CHECK(s.best_step == 4);
  CHECK(std::isnan(s.final_val));
}

TEST_CASE("state.json: an integer stored as a huge float is an error, not undefined behaviour (found by "
          "fuzz_state_json)",
          "[train]") {
  // nlohmann's get<int64_t>() on 6.7e60 converted a float out of int64's range (UBSan:
  // "6.66667e+60 is outside the range of representable values of type 'long'").
  CHECK_THAT(error_of(with("step", "6.7e60")), LAWCAT_CONTAINS("ck/state.json: key 'step': expected an integer, got 6.7e+60"));
  CHECK_THAT(error_of(with("tokens", "1.5")), LAWCAT_CONTAINS("key 'tokens': expected an integer, got 1.5"));
  CHECK_THAT(error_of(with("num_bad", "1e300")), LAWCAT_CONTAINS("key 'scheduler.num_bad': expected an integer"));
  CHECK_THAT(error_of(with("w", "4e40")), LAWCAT_CONTAINS("key 'adam_steps.w': expected an integer"));
  CHECK_THAT(error_of(with("world", "2.5")), LAWCAT_CONTAINS("key 'world': expected an integer"));
}

TEST_CASE("state.json: missing keys, wrong types and negative counts name the file and the key", "[train]") {
  CHECK_THAT(error_of("[1, 2]"), LAWCAT_CONTAINS("ck/state.json: expected a JSON object, got array"));
  CHECK_THAT(error_of("{\"step\": 4"), LAWCAT_CONTAINS("ck/state.json: not valid JSON"));
  CHECK_THAT(error_of(with("step", "-3")), LAWCAT_CONTAINS("key 'step' must be >= 0, got -3"));
  CHECK_THAT(error_of(with("index", "\"8\"")), LAWCAT_CONTAINS("key 'loader.index': expected an integer, got string"));
}
