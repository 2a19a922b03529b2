// `lawcat eval --task longppl`: a bucket is marked `*` only when its positions go past
// a softmax model's max_position_embeddings, not every bucket of a document that does.
#include <filesystem>
#include <sstream>

#include "common/catch.h"
#include "eval/eval_helpers.h"
#include "eval/eval_runner.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::eval;

TEST_CASE("eval longppl: only buckets ending past max_position_embeddings are marked", "[eval][runner]") {
  test::SingleThread single_thread;
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  const auto dir = test::scratch_dir("eval_longppl_positions");
  test::write_tiny_model_dir(dir / "teacher", tok512, 1, false, /*max_positions=*/64);
  test::write_tiny_model_dir(dir / "student", tok512, 2, true, /*max_positions=*/64);
  std::string doc;
  for (int i = 0; i < 40; ++i) doc += "Once upon a time a little fox found a red ball in the garden. ";
  fs::atomic_write_text(dir / "long.txt", doc + "\n");
  EvalOptions o;
  o.task = "longppl";
  o.models = {(dir / "teacher").string(), (dir / "student").string()};
  o.lengths = {128};  // positions 1..127 in buckets ending at 32, 64, 96, 128
  o.bucket = 32;
  o.samples = 1;
  o.text = dir / "long.txt";
  o.out = dir / "out";
  o.progress = o.plot = o.print_table = false;
  const auto s = run_eval(o);
  CHECK(s.ran == 8);
  REQUIRE(s.cells.size() == 8);
  for (const auto& c : s.cells) {
    CAPTURE(c.model, c.length);
    CHECK(c.n == 1);
    // Bucket 64 reads positions up to 64, the teacher's last; 96 and 128 go past. LAWCAT: never.
    CHECK(c.beyond_positions == (c.model == "teacher" && c.length > 64));
  }
  std::istringstream table(s.table);
  int marked = 0;
  for (std::string line; std::getline(table, line);) {
    if (line.rfind("      32 |", 0) == 0 || line.rfind("      64 |", 0) == 0) CHECK(line.find('*') == std::string::npos);
    if (line.rfind("      96 |", 0) == 0 || line.rfind("     128 |", 0) == 0) marked += line.find('*') != std::string::npos;
  }
  CHECK(marked == 2);
  CHECK_THAT(s.table, LAWCAT_CONTAINS("* the bucket's positions go past max_position_embeddings"));
}
