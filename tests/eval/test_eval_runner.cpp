// `lawcat eval` end to end on tiny models: resume (finished cells are skipped,
// a torn last line is rerun), several models side by side, a length beyond a
// softmax model's max_position_embeddings (warning, cell still reported), the
// ppl task, CSV / JSON outputs; and the stories260K teacher vs its LAWCAT swap
// on the passkey and S-NIAH grids.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/catch.h"
#include "eval/eval_helpers.h"
#include "eval/eval_runner.h"
#include "io/llama2c_checkpoint.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::eval;

namespace {
int64_t count_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line))
    if (!line.empty()) ++n;
  return n;
}
}  // namespace

TEST_CASE("eval resumes: finished samples are skipped, new cells run, a torn line is redone", "[eval][runner]") {
  test::SingleThread single_thread;
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  const auto dir = test::scratch_dir("eval_resume");
  test::write_tiny_model_dir(dir / "teacher", tok512, 1, false, /*max_positions=*/230);
  test::write_tiny_model_dir(dir / "student", tok512, 2, true, /*max_positions=*/230);
  EvalOptions o;
  o.task = "passkey";
  o.models = {(dir / "teacher").string(), (dir / "student").string()};
  o.lengths = {200, 256};
  o.depths = {0, 100};
  o.samples = 1;
  o.max_new_tokens = 3;
  o.out = dir / "out";
  o.progress = o.plot = o.print_table = false;
  const auto first = run_eval(o);
  CHECK(first.ran == 8);
  CHECK(first.skipped == 0);
  CHECK(count_lines(dir / "out" / "results.jsonl") == 8);
  REQUIRE(first.cells.size() == 8);
  for (const auto& c : first.cells) {
    CHECK(c.n == 1);
    // 256 + 3 > 230 positions: beyond the softmax teacher's limit, still reported; never for LAWCAT.
    CHECK(c.beyond_positions == (c.model == "teacher" && c.length == 256));
  }
  CHECK_THAT(first.table, LAWCAT_CONTAINS("teacher"));
  CHECK_THAT(first.table, LAWCAT_CONTAINS("student"));
  CHECK_THAT(first.table, LAWCAT_CONTAINS("*"));
  CHECK(std::filesystem::exists(dir / "out" / "passkey.csv"));
  CHECK(std::filesystem::exists(dir / "out" / "passkey.json"));
  const auto csv = fs::read_text(dir / "out" / "passkey.csv");
  CHECK(count_lines(dir / "out" / "passkey.csv") == 9);

  // Rerun: everything is reused, same table.
  const auto second = run_eval(o);
  CHECK(second.ran == 0);
  CHECK(second.skipped == 8);
  CHECK(second.table == first.table);
  CHECK(fs::read_text(dir / "out" / "passkey.csv") == csv);

  // An interrupted write: drop the last record and leave half of it.
  {
    std::string text = fs::read_text(dir / "out" / "results.jsonl");
    text.pop_back();  // the final '\n'
    const size_t last = text.rfind('\n');
    text = text.substr(0, last + 1) + text.substr(last + 1, 25);
    fs::atomic_write_text(dir / "out" / "results.jsonl", text);
  }
  // More depth: the torn sample and the new cells run; the others are reused.
  o.depths = {0, 50, 100};
  const auto third = run_eval(o);
  CHECK(third.ran == 1 + 4);
  CHECK(third.skipped == 7);
  CHECK(third.cells.size() == 12);
  const auto again = run_eval(o);
  CHECK(again.ran == 0);
  // The torn line was moved aside (kept, not dropped): results.jsonl parses line by line again.
  CHECK(count_lines(dir / "out" / "results.jsonl.unreadable") == 1);
  {
    std::istringstream in(fs::read_text(dir / "out" / "results.jsonl"));
    for (std::string line; std::getline(in, line);) CHECK_NOTHROW(nlohmann::json::parse(line));
  }

  // A different seed is a different sample (not reused).
  o.seed = 1;
  o.lengths = {200};
  o.depths = {50};
  o.models = {(dir / "student").string()};
  CHECK(run_eval(o).ran == 1);
}

TEST_CASE("eval ppl task: several context lengths, beyond-limit warning, JSON cells", "[eval][runner]") {
  test::SingleThread single_thread;
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  LAWCAT_SHARED_OR_SKIP(text, "corpora/tinystories/tinystories_val_head.txt");
  const auto dir = test::scratch_dir("eval_ppl");
  test::write_tiny_model_dir(dir / "teacher", tok512, 1, false, 100);
  test::write_tiny_model_dir(dir / "student", tok512, 2, true, 100);
  EvalOptions o;
  o.task = "ppl";
  o.models = {(dir / "teacher").string(), (dir / "student").string()};
  o.lengths = {64, 256};
  o.text = text;
  o.ppl_max_tokens = 1024;
  o.out = dir / "out";
  o.progress = o.plot = o.print_table = false;
  const auto s = run_eval(o);
  CHECK(s.ran == 4);
  REQUIRE(s.cells.size() == 4);
  for (const auto& c : s.cells) {
    CHECK(c.tokens == 1024);  // the same predictions at every ctx
    CHECK(c.score > 1.0);
    CHECK(std::abs(std::log(c.score) - c.nll) < 1e-6);
    CHECK(c.beyond_positions == (c.model == "teacher" && c.length == 256));
  }
  const auto j = nlohmann::json::parse(fs::read_text(dir / "out" / "ppl.json"));
  CHECK(j["cells"].size() == 4);
  CHECK(j["models"][1]["lawcat_layers"] == 2);
  CHECK(run_eval(o).ran == 0);
}

TEST_CASE("stories260K teacher vs its LAWCAT swap: passkey and S-NIAH grids end to end", "[eval][runner][stories260k]") {
  test::SingleThread single_thread;
  LAWCAT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  LAWCAT_SHARED_OR_SKIP(ruler, "eval/ruler/PaulGrahamEssays.json");
  const auto dir = test::scratch_dir("eval_stories260k");
  io::convert_llama2c(bin, tok512, dir / "stories260K");
  EvalOptions o;
  o.models = {(dir / "stories260K").string(), "swap:" + (dir / "stories260K").string()};
  o.lengths = {256, 512};
  o.depths = {0, 50, 100};
  o.samples = 1;
  o.out = dir / "out";
  o.data = ruler.parent_path().parent_path().parent_path();
  o.progress = o.print_table = false;
  o.plot = true;
  o.task = "passkey";
  const auto p = run_eval(o);
  CHECK(p.ran == 12);
  REQUIRE(p.cells.size() == 12);
  for (const auto& c : p.cells) {
    CHECK(c.n == 1);
    CHECK(std::abs(c.mean_tokens - static_cast<double>(c.length)) <= 0.02 * c.length);
  }
  CHECK(p.model_names == std::vector<std::string>{"stories260K", "stories260K+swap"});
  if (have_gnuplot()) CHECK(std::filesystem::exists(dir / "out" / "passkey.png"));
  o.task = "niah";
  o.variants = {"s-niah-1", "s-niah-3"};
  o.lengths = {256};
  o.depths = {50};
  o.max_new_tokens = 16;
  const auto n = run_eval(o);
  CHECK(n.ran == 4);
  CHECK(n.cells.size() == 4);
  if (have_gnuplot()) CHECK(std::filesystem::exists(dir / "out" / "niah_s-niah-3.png"));
}
