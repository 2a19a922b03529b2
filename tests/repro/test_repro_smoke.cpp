// The paper reproduction's driver (scripts/repro.sh) on a tiny CPU slice: one student trained for
// two steps per stage at 128 tokens through `lawcat sweep configs/repro/students.yaml`, then every
// eval group (passkey, S-NIAH, BABILong, ppl, longppl) on the teacher and the student, then the
// report. With a Python that has torch + safetensors, the sharpen stage runs between them (two
// scales of one head's feature map, the pick evaluated like a student). The GPU run is the same
// script without REPRO_SMOKE; this guards that the configs, the sweep, the sharpen stage, the
// evals and the report still fit together.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/catch.h"
#include "common/python.h"
#include "common/text_file.h"

namespace {
std::string read(const std::filesystem::path& p) { return lawcat::test::read_text(p); }
}  // namespace

TEST_CASE("scripts/repro.sh on a tiny CPU slice: train a student, evaluate it beside the teacher, report",
          "[repro]") {
  LAWCAT_SHARED_OR_SKIP(teacher, "models/retriever13m/config.json");
  // repro.sh and its configs name ../shared/data, not $LAWCAT_SHARED_DATA
  if (!std::filesystem::exists(std::filesystem::path(LAWCAT_SOURCE_DIR) / "../shared/data/models/retriever13m/config.json"))
    LAWCAT_SKIP("scripts/repro.sh reads ../shared/data beside the checkout (" << LAWCAT_SOURCE_DIR
                                                                             << "/..); not found there");
  const std::filesystem::path out = lawcat::test::scratch_dir("repro_smoke");
  std::string tried;
  // the sharpen stage's `auto` finds the teacher's copying head in transformers (diagnose_teacher.py)
  const std::string py = lawcat::test::find_python(tried, "torch, safetensors.torch, transformers, sentencepiece");
  if (py.empty())
    WARN("no Python with torch, safetensors, transformers and sentencepiece (tried " << tried
                                                                                     << "): the sharpen stage is not run");
  const std::string stages = py.empty() ? "train eval report" : "train sharpen eval report";
  const std::string cmd = std::string("cd '") + LAWCAT_SOURCE_DIR + "' && REPRO_SMOKE=1 REPRO_ONLY=lawcat REPRO_OUT='" +
                          (out / "runs").string() + "' REPRO_DOCS='" + (out / "docs").string() +
                          "' REPRO_SHARPEN=lawcat:auto REPRO_SHARPEN_SCALES='2 3' REPRO_PYTHON=" +
                          lawcat::test::shell_quote(py.empty() ? "python3" : py) + " LAWCAT_BIN='" + LAWCAT_BINARY_DIR +
                          "/lawcat' scripts/repro.sh " + stages;
  const int rc = lawcat::test::run_logged(cmd, (out / "log.txt").string());
  INFO("log: " << read(out / "log.txt").substr(0, 6000));
  REQUIRE(rc == 0);
  // The student was trained by both stages and exported.
  CHECK(std::filesystem::exists(out / "runs/students/lawcat/export/config.json"));
  CHECK_THAT(read(out / "runs/students/lawcat/summary.md"), LAWCAT_CONTAINS("MSE"));
  // Every eval group wrote records for both models.
  for (const std::string m : {"teacher", "lawcat"})
    for (const std::string t : {"passkey", "niah", "babilong", "babilong_raw", "ppl_tinystories", "longppl"}) {
      CAPTURE(m, t);
      CHECK(std::filesystem::file_size(out / "runs/eval/parts" / m / t / "results.jsonl") > 0);
    }
  // The report: a headline row per model, the passkey grid and the position buckets.
  const std::string summary = read(out / "docs/summary.csv");
  CHECK_THAT(summary, LAWCAT_CONTAINS("teacher,"));
  CHECK_THAT(summary, LAWCAT_CONTAINS("lawcat,"));
  CHECK_THAT(read(out / "docs/passkey.csv"), LAWCAT_CONTAINS("lawcat,256,100,"));
  CHECK_THAT(read(out / "docs/longppl.csv"), LAWCAT_CONTAINS("teacher,512,"));
  CHECK_THAT(read(out / "docs/README.md"), LAWCAT_CONTAINS("## Headline"));
  if (!py.empty()) {
    // The teacher's copying head found (retriever13m: layer 3 head 3, docs/results/NOTES.md); both
    // scales scored on the tuning seed; the pick is a student evaluated beside the others, its
    // command recorded.
    CHECK_THAT(read(out / "runs/sharpen/teacher_circuit.json"), LAWCAT_CONTAINS("\"copy_head\""));
    for (const std::string sc : {"2", "3"}) {
      CAPTURE(sc);
      CHECK(std::filesystem::file_size(out / ("runs/sharpen/lawcat/eval_x" + sc) / "results.jsonl") > 0);
      CHECK_THAT(read(out / ("runs/sharpen/lawcat/eval_x" + sc) / "results.jsonl"), LAWCAT_CONTAINS("\"seed\":1"));
    }
    std::string picked;
    for (const auto& e : std::filesystem::directory_iterator(out / "runs/students"))
      if (e.path().filename().string().rfind("lawcat_L3h3x", 0) == 0) picked = e.path().filename().string();
    REQUIRE_FALSE(picked.empty());
    // The pick is the scale with the best mean score, the smaller one on a tie.
    auto mean_score = [&](const std::string& sc) {
      std::ifstream f(out / ("runs/sharpen/lawcat/eval_x" + sc) / "results.jsonl");
      double sum = 0;
      int n = 0;
      for (std::string line; std::getline(f, line);)
        if (!line.empty()) sum += nlohmann::json::parse(line).at("score").get<double>(), ++n;
      return n ? sum / n : -1.0;
    };
    CHECK(picked == (mean_score("3") > mean_score("2") ? "lawcat_L3h3x3" : "lawcat_L3h3x2"));
    CHECK(std::filesystem::exists(out / "runs/students" / picked / "export/model.safetensors"));
    CHECK_THAT(read(out / "runs/students" / picked / "perturb.txt"), LAWCAT_CONTAINS("--layers 3 --heads 3"));
    CHECK(std::filesystem::file_size(out / "runs/eval/parts" / picked / "passkey/results.jsonl") > 0);
    CHECK_THAT(summary, LAWCAT_CONTAINS(picked + ","));
    CHECK_THAT(read(out / "docs/README.md"), LAWCAT_CONTAINS("| " + picked + " | `"));  // the report says how it was made
  }
  // scripts/rebuild_export.py needs torch, safetensors and yaml only (not the sharpen stage's sentencepiece)
  std::string tried_rebuild;
  const std::string py_rebuild = lawcat::test::find_python(tried_rebuild, "torch, safetensors.torch, yaml");
  if (py_rebuild.empty()) {
    WARN("no Python with torch, safetensors and yaml (tried " << tried_rebuild << "): rebuild_export.py not checked");
  } else {
    // scripts/rebuild_export.py (how a device run's small checkpoints become exports here) writes
    // the export `lawcat distill` wrote: the same tensors bit for bit (the LoRA merge is one fp32
    // matmul on each side: bitwise equal while this Python's torch is the LibTorch lawcat links, as
    // scripts/setup.sh builds it), the same config.json, tokenizer and modeling files.
    namespace fs = std::filesystem;
    using lawcat::test::shell_quote;
    const fs::path run = out / "runs/students/lawcat", rebuilt = out / "rebuilt";
    const int rebuild_rc = lawcat::test::run_logged(
        "cd " + shell_quote(LAWCAT_SOURCE_DIR) + " && " + shell_quote(py_rebuild) + " scripts/rebuild_export.py --teacher " +
            shell_quote(fs::absolute(teacher).parent_path().string()) + " --run " + shell_quote(run.string()) +
            " --out " + shell_quote(rebuilt.string()),
        (out / "log_rebuild.txt").string());
    INFO(read(out / "log_rebuild.txt"));
    REQUIRE(rebuild_rc == 0);
    for (const auto& e : fs::directory_iterator(run / "export"))
      if (e.path().filename() != "model.safetensors") {
        CAPTURE(e.path().filename().string());
        REQUIRE(fs::exists(rebuilt / e.path().filename()));
        CHECK(read(rebuilt / e.path().filename()) == read(e.path()));
      }
    CHECK(fs::exists(rebuilt / "modeling_lawcat.py"));
    const std::string same =
        shell_quote(py_rebuild) +
        " -c 'import sys, torch; from safetensors.torch import load_file as L; a = L(sys.argv[1]); b = L(sys.argv[2]); "
        "bits = lambda t: t.reshape(-1).view(torch.uint8); "
        "bad = [k for k in sorted(set(a) | set(b)) if k not in a or k not in b or a[k].dtype != b[k].dtype or "
        "a[k].shape != b[k].shape or not torch.equal(bits(a[k]), bits(b[k]))]; "
        "print(len(a), \"tensors, differing:\", bad); sys.exit(1 if bad else 0)' " +
        shell_quote((run / "export/model.safetensors").string()) + " " + shell_quote((rebuilt / "model.safetensors").string());
    const int same_rc = lawcat::test::run_logged(same, (out / "log_rebuild_same.txt").string());
    INFO(read(out / "log_rebuild_same.txt"));
    CHECK(same_rc == 0);
  }
  // A later session reports its new runs beside the committed docs (--prior): with no runs at all it
  // rewrites the same tables; a model only the new runs evaluated joins the ones from the prior docs.
  const std::filesystem::path again = out / "runs_again", docs2 = out / "docs_again", docs3 = out / "docs_more";
  std::filesystem::create_directories(again);
  auto report = [&](const std::filesystem::path& docs) {
    const std::string c = std::string("cd '") + LAWCAT_SOURCE_DIR + "' && python3 scripts/repro_report.py --runs '" +
                          again.string() + "' --docs '" + docs.string() + "' --prior '" + (out / "docs").string() + "'";
    return lawcat::test::run_logged(c, (out / "log_prior.txt").string());
  };
  REQUIRE(report(docs2) == 0);
  CHECK(read(docs2 / "README.md") == read(out / "docs/README.md"));
  CHECK(read(docs2 / "summary.csv") == summary);
  CHECK(read(docs2 / "passkey.csv") == read(out / "docs/passkey.csv"));
  std::filesystem::create_directories(again / "eval/parts");
  std::filesystem::copy(out / "runs/eval/parts/teacher", again / "eval/parts/newcomer",
                        std::filesystem::copy_options::recursive);
  REQUIRE(report(docs3) == 0);
  const std::string more = read(docs3 / "summary.csv");
  CHECK_THAT(more, LAWCAT_CONTAINS("newcomer,"));
  CHECK_THAT(more, LAWCAT_CONTAINS("lawcat,"));
  CHECK_THAT(more, LAWCAT_CONTAINS("teacher,"));
  // The runs win where they hold scored records: the student re-evaluated (each score 0.5, which no real
  // prompt scores, so the cells can only come from these records) replaces
  // its prior passkey records; an eval folder without records (failed, or still running) replaces
  // nothing; a sweep of one new student keeps the prior's other rows of the training table.
  std::filesystem::create_directories(again / "eval/parts/lawcat/passkey");
  std::filesystem::create_directories(again / "eval/parts/teacher/longppl");  // no results.jsonl
  {
    std::ifstream in(out / "runs/eval/parts/lawcat/passkey/results.jsonl");
    std::ofstream o(again / "eval/parts/lawcat/passkey/results.jsonl");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) {
        auto j = nlohmann::json::parse(line);
        if (j.contains("score")) j["score"] = 0.5;
        o << j.dump() << "\n";
      }
  }
  std::filesystem::create_directories(again / "students");
  const std::string train_csv = read(out / "runs/students/results.csv");
  const std::string header = train_csv.substr(0, train_csv.find('\n') + 1);
  std::ofstream(again / "students/results.csv") << header << "added_run" << std::string(
      std::count(header.begin(), header.end(), ','), ',') << "\n";
  std::ofstream(again / "students/results.md") << "# t\n\nx\n| run |\n|---|\n| added_run |\n";
  const std::filesystem::path docs4 = out / "docs_rerun";
  REQUIRE(report(docs4) == 0);
  {
    std::istringstream rows(read(docs4 / "passkey.csv"));
    int student_cells = 0;
    for (std::string line; std::getline(rows, line);)
      if (line.rfind("lawcat,", 0) == 0) {  // model,length,depth,accuracy,samples
        ++student_cells;
        CHECK_THAT(line, LAWCAT_CONTAINS(",0.5,"));
      }
    CHECK(student_cells > 0);
  }
  {
    std::istringstream rows(read(out / "docs/longppl.csv"));
    int teacher_buckets = 0;
    for (std::string line; std::getline(rows, line);)
      if (line.rfind("teacher,", 0) == 0) {
        ++teacher_buckets;
        CHECK_THAT(read(docs4 / "longppl.csv"), LAWCAT_CONTAINS(line));
      }
    CHECK(teacher_buckets > 0);
  }
  const std::string merged_train = read(docs4 / "train_students.csv");
  CHECK_THAT(merged_train, LAWCAT_CONTAINS("\nlawcat,"));
  CHECK_THAT(merged_train, LAWCAT_CONTAINS("\nadded_run,"));
  // A mistyped --prior is an error, not an empty report.
  const std::string bad = std::string("cd '") + LAWCAT_SOURCE_DIR + "' && python3 scripts/repro_report.py --runs '" +
                          again.string() + "' --docs '" + (out / "docs_bad").string() + "' --prior '" +
                          (out / "no_such_docs").string() + "'";
  CHECK(lawcat::test::run_logged(bad, "/dev/null") != 0);
  // With REPRO_ONLY and REPRO_PRIOR, the eval stage scores those students and their sharpen picks
  // only: the teacher's records come from the prior report (here every record is reused).
  auto eval_only = [&](const std::string& only, const std::string& log) {
    const std::string c = std::string("cd '") + LAWCAT_SOURCE_DIR + "' && REPRO_SMOKE=1 REPRO_ONLY=" + only +
                          " REPRO_PRIOR='" + (out / "docs").string() + "' REPRO_OUT='" + (out / "runs").string() +
                          "' LAWCAT_BIN='" + LAWCAT_BINARY_DIR + "/lawcat' scripts/repro.sh eval";
    return lawcat::test::run_logged(c, (out / log).string());
  };
  REQUIRE(eval_only("lawcat", "log_only.txt") == 0);
  const std::string only_log = read(out / "log_only.txt");
  INFO(only_log.substr(0, 3000));
  CHECK_THAT(only_log, LAWCAT_CONTAINS(py.empty() ? "eval: 1 models" : "eval: 2 models"));  // lawcat (+ its pick)
  CHECK(only_log.find("retriever13m") == std::string::npos);                                // no teacher
  REQUIRE(eval_only("no_such_student", "log_none.txt") == 0);
  CHECK_THAT(read(out / "log_none.txt"), LAWCAT_CONTAINS("eval: no model to evaluate"));
}

// scripts/make_repeats.py (the `repeats` students' data): ordinary text in which spans reappear
// verbatim later. On a corpus of distinct words every repeated 5-gram is one of its copies.
TEST_CASE("make_repeats.py: each record repeats spans of its text at the asked distances; bad records name file:line",
          "[repro]") {
  const std::filesystem::path dir = lawcat::test::scratch_dir("make_repeats");
  {
    std::ofstream c(dir / "corpus.jsonl");
    for (int d = 0; d < 3; ++d) {
      std::string text;
      for (int w = 0; w < 300; ++w) text += "d" + std::to_string(d) + "w" + std::to_string(w) + " ";
      c << "{\"text\": \"" << text << "\"}\n";
    }
  }
  const std::string script = std::string(LAWCAT_SOURCE_DIR) + "/scripts/make_repeats.py";
  const std::string cmd = "python3 '" + script + "' --out '" + (dir / "rep.jsonl").string() +
                          "' --count 6 --words 100 --repeats 2 --span 5 8 --gap 10 40 --per-doc 2 '" +
                          (dir / "corpus.jsonl").string() + "'";
  REQUIRE(lawcat::test::run_logged(cmd, (dir / "log.txt").string()) == 0);
  std::ifstream in(dir / "rep.jsonl");
  std::string line;
  int records = 0;
  while (std::getline(in, line)) {
    ++records;
    const size_t a = line.find("\"text\": \"") + 9, b = line.rfind('"');
    std::istringstream ws(line.substr(a, b - a));
    std::vector<std::string> words{std::istream_iterator<std::string>(ws), {}};
    CAPTURE(records, words.size());
    CHECK(words.size() >= 100 + 5);  // at least one span fits in 100 words
    CHECK(words.size() <= 100 + 2 * 8);
    // a repeated 5-gram, its second copy 10..40 source words + the span after the first
    bool found = false;
    for (size_t i = 0; i + 5 <= words.size() && !found; ++i)
      for (size_t j = i + 5; j + 5 <= words.size() && !found; ++j)
        found = std::equal(words.begin() + i, words.begin() + i + 5, words.begin() + j) && j - i >= 5 + 10 &&
                j - i <= 8 + 40 + 8;
    CHECK(found);
  }
  CHECK(records == 6);
  // a record without the field: an error naming the file and line
  { std::ofstream(dir / "bad.jsonl") << "{\"text\": \"a b c\"}\n{\"body\": \"x\"}\n"; }
  const std::string bad = "python3 '" + script + "' --out '" + (dir / "bad_out.jsonl").string() + "' '" +
                          (dir / "bad.jsonl").string() + "'";
  CHECK(lawcat::test::run_logged(bad, (dir / "bad_log.txt").string()) != 0);
  CHECK_THAT(read(dir / "bad_log.txt"), LAWCAT_CONTAINS("bad.jsonl:2"));
  CHECK(!std::filesystem::exists(dir / "bad_out.jsonl"));
}
