// The paper reproduction's driver (scripts/repro.sh) on a tiny CPU slice: one student trained for
// two steps per stage at 128 tokens through `lawcat sweep configs/repro/students.yaml`, then every
// eval group (passkey, S-NIAH, BABILong, ppl, longppl) on the teacher and the student, then the
// report. The GPU run is the same script without REPRO_SMOKE; this guards that the configs, the
// sweep, the evals and the report still fit together.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/catch.h"

namespace {
std::string read(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("scripts/repro.sh on a tiny CPU slice: train a student, evaluate it beside the teacher, report",
          "[repro]") {
  LAWCAT_SHARED_OR_SKIP(teacher, "models/retriever13m/config.json");
  const std::filesystem::path out = lawcat::test::scratch_dir("repro_smoke");
  const std::string cmd = std::string("cd '") + LAWCAT_SOURCE_DIR + "' && REPRO_SMOKE=1 REPRO_ONLY=lawcat REPRO_OUT='" +
                          (out / "runs").string() + "' REPRO_DOCS='" + (out / "docs").string() +
                          "' LAWCAT_BIN='" + LAWCAT_BINARY_DIR + "/lawcat' scripts/repro.sh train eval report > '" +
                          (out / "log.txt").string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
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
}
