// Scoring functions on hand-made outputs; missing or malformed eval data gives
// a DataError naming the file.
#include <filesystem>
#include <fstream>

#include "common/catch.h"
#include "eval/babilong.h"
#include "eval/eval_runner.h"
#include "eval/niah.h"
#include "eval/passkey.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::eval;

namespace {
void write_file(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

template <typename Fn>
std::string data_error_message(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return describe_exception(e);
  } catch (const std::exception& e) {
    FAIL("expected a DataError, got: " << describe_exception(e));
  }
  FAIL("expected a DataError, nothing was thrown");
  return "";
}
}  // namespace

TEST_CASE("passkey scoring: the continuation contains the key", "[eval]") {
  CHECK(passkey_correct(" 12345. Remember it.", "12345"));
  CHECK(passkey_correct("12345", "12345"));
  CHECK_FALSE(passkey_correct(" 1234 5", "12345"));
  CHECK_FALSE(passkey_correct(" the pass key", "12345"));
  CHECK_FALSE(passkey_correct("anything", ""));
}

TEST_CASE("S-NIAH scoring: fraction of the reference values found, case-insensitive", "[eval]") {
  CHECK(niah_score(" 1234567.", {"1234567"}) == 1.0);
  CHECK(niah_score(" 123456", {"1234567"}) == 0.0);
  CHECK(niah_score("uuid: 3F2504E0-4F89-41D3-9A0C-0305E82C3301", {"3f2504e0-4f89-41d3-9a0c-0305e82c3301"}) == 1.0);
  CHECK(niah_score("1111111 and 3333333", {"1111111", "2222222", "3333333", "4444444"}) == 0.5);
  CHECK(niah_score("anything", {}) == 0.0);
}

TEST_CASE("BABILong scoring: first sentence, lower-cased; strict = BABILong compare_answers", "[eval]") {
  const std::string q2 = "Where is the football?";
  auto s = babilong_score("The football is in the Hallway.", "hallway", q2);
  CHECK(s.score == 1.0);
  CHECK(s.strict == 1.0);
  // Only the first sentence counts.
  s = babilong_score("The football is in the kitchen. No, the hallway.", "hallway", q2);
  CHECK(s.score == 0.0);
  CHECK(s.strict == 0.0);
  // Two locations: the spec rule accepts, BABILong's strict rule does not.
  s = babilong_score("The football is in the hallway or the office", "hallway", q2);
  CHECK(s.score == 1.0);
  CHECK(s.strict == 0.0);
  // qa3: the location named in the question does not count against the answer.
  const std::string q3 = "Where was the apple before the kitchen?";
  s = babilong_score("Before the kitchen the apple was in the bathroom.", "bathroom", q3);
  CHECK(s.score == 1.0);
  CHECK(s.strict == 1.0);
  s = babilong_score("Before the kitchen the apple was in the garden.", "bathroom", q3);
  CHECK(s.score == 0.0);
  CHECK(s.strict == 0.0);
  // Raw probe: the next word.
  CHECK(raw_probe_score(" hallway. Then", "hallway") == 1.0);
  CHECK(raw_probe_score(" Hallway", "hallway") == 1.0);
  CHECK(raw_probe_score(" big hallway", "hallway") == 0.0);
  CHECK(raw_probe_score("", "hallway") == 0.0);
  CHECK(raw_probe_prefix("Where is the milk? ") == "The milk is in the");
  CHECK(raw_probe_prefix("Where was the milk before the office?") == "Before the office the milk was in the");
  CHECK_THROWS_AS(raw_probe_prefix("Who is in the garden?"), DataError);
}

TEST_CASE("missing or malformed eval data: a DataError naming the file", "[eval]") {
  const auto dir = test::scratch_dir("eval_data_errors");
  // bAbI: missing, malformed line, no questions.
  CHECK_THAT(data_error_message([&] { load_babi(dir / "qa2_missing_test.txt"); }),
             LAWCAT_CONTAINS("qa2_missing_test.txt"));
  write_file(dir / "bad.txt", "1 Mary went to the kitchen.\nMary got the ball.\n");
  CHECK_THAT(data_error_message([&] { load_babi(dir / "bad.txt"); }), LAWCAT_CONTAINS("bad.txt:2"));
  // Found by fuzz_babi: a line number too large for int64 escaped as std::out_of_range (stoll).
  write_file(dir / "big.txt", "1 Mary went to the kitchen.\n99999999999999999999 Where is Mary?\tkitchen\t1\n");
  CHECK_THAT(data_error_message([&] { load_babi(dir / "big.txt"); }),
             LAWCAT_CONTAINS("big.txt:2: malformed bAbI line: line number '99999999999999999999' is out of range"));
  write_file(dir / "noq.txt", "1 Mary went to the kitchen.\n");
  CHECK_THAT(data_error_message([&] { load_babi(dir / "noq.txt"); }), LAWCAT_CONTAINS("noq.txt"));
  CHECK_THAT(data_error_message([&] { babi_test_file(dir, "qa2"); }), LAWCAT_CONTAINS("qa2_*_test.txt"));
  // BABILong indices.
  write_file(dir / "idx.json", "{\"qa2\": [1, 2,");
  CHECK_THAT(data_error_message([&] { load_babilong_indices(dir / "idx.json", "qa2"); }), LAWCAT_CONTAINS("idx.json"));
  write_file(dir / "idx2.json", "{\"qa1\": [1, 2]}");
  CHECK_THAT(data_error_message([&] { load_babilong_indices(dir / "idx2.json", "qa2"); }),
             LAWCAT_CONTAINS("idx2.json"));
  // RULER data: missing word list, malformed essay JSON.
  const auto ruler = dir / "ruler";
  CHECK_THAT(data_error_message([&] { load_niah_data(ruler, niah_variant("s-niah-1")); }),
             LAWCAT_CONTAINS("wonderwords_adjectivelist.txt"));
  write_file(ruler / "wonderwords_adjectivelist.txt", "red\nblue\n");
  write_file(ruler / "wonderwords_nounlist.txt", "\n\n");
  CHECK_THAT(data_error_message([&] { load_niah_data(ruler, niah_variant("s-niah-1")); }),
             LAWCAT_CONTAINS("wonderwords_nounlist.txt"));
  write_file(ruler / "wonderwords_nounlist.txt", "cat\ndog\n");
  CHECK_NOTHROW(load_niah_data(ruler, niah_variant("s-niah-1")));
  write_file(ruler / "PaulGrahamEssays.json", "{\"txt\": \"no text key\"}");
  CHECK_THAT(data_error_message([&] { load_niah_data(ruler, niah_variant("s-niah-2")); }),
             LAWCAT_CONTAINS("PaulGrahamEssays.json"));
  write_file(ruler / "PaulGrahamEssays.json", "not json");
  CHECK_THAT(data_error_message([&] { load_niah_data(ruler, niah_variant("s-niah-3")); }),
             LAWCAT_CONTAINS("PaulGrahamEssays.json"));
  // Background book.
  CHECK_THAT(data_error_message([&] { load_background_sentences(dir / "book.txt"); }), LAWCAT_CONTAINS("book.txt"));
}

TEST_CASE("run_eval checks the eval data before loading any model", "[eval]") {
  const auto dir = test::scratch_dir("eval_data_first");
  std::filesystem::create_directories(dir / "model");  // never loaded: the data check fails first
  std::filesystem::create_directories(dir / "data" / "eval" / "ruler");
  EvalOptions o;
  o.task = "niah";
  o.models = {(dir / "model").string()};
  o.data = dir / "data";
  o.out = dir / "out";
  o.progress = o.plot = o.print_table = false;
  CHECK_THAT(data_error_message([&] { run_eval(o); }), LAWCAT_CONTAINS("wonderwords_adjectivelist.txt"));
  o.task = "babilong";
  CHECK_THAT(data_error_message([&] { run_eval(o); }), LAWCAT_CONTAINS("moby_dick.txt"));
  o.task = "ppl";
  o.text = dir / "missing.txt";
  CHECK_THAT(data_error_message([&] { run_eval(o); }), LAWCAT_CONTAINS("missing.txt"));
}
