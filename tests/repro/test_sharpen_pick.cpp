// scripts/sharpen_pick.py, the sharpen stage's choice of scale (scripts/repro.sh): the mean passkey
// score per scale weighted by scored samples, scales without a readable summary or without scored
// samples left out, `best` (ties to the smaller scale) and `smallest95`.
#include <fstream>
#include <string>

#include "common/catch.h"
#include "common/python.h"
#include "common/text_file.h"

namespace {
namespace sfs = std::filesystem;

// passkey.json with cells of (score, samples)
void summary(const sfs::path& dir, const std::string& cells_json) {
  sfs::create_directories(dir);
  std::ofstream(dir / "passkey.json") << "{\"cells\": " << cells_json << "}";
}

std::string pick(const std::string& py, const sfs::path& dir, const std::string& rule, const std::string& scales) {
  const sfs::path out = dir / ("pick_" + rule + ".txt");
  const std::string cmd = lawcat::test::shell_quote(py) + " " +
                          lawcat::test::shell_quote(std::string(LAWCAT_SOURCE_DIR) + "/scripts/sharpen_pick.py") +
                          " --rule " + rule + " " + lawcat::test::shell_quote(dir.string()) + " " + scales;
  REQUIRE(lawcat::test::run_logged(cmd, out.string()) == 0);
  std::string r = lawcat::test::read_text(out);
  while (!r.empty() && (r.back() == '\n' || r.back() == ' ')) r.pop_back();
  return r;
}
}  // namespace

TEST_CASE("sharpen_pick.py: best and smallest95 over the scored scales", "[repro]") {
  std::string tried;
  const std::string py = lawcat::test::find_python(tried, "json");
  if (py.empty()) LAWCAT_SKIP("no Python (tried " << tried << ")");
  const sfs::path dir = lawcat::test::scratch_dir("sharpen_pick");
  // x2: 0.85; x3: (1.0 x 1 + 0.8 x 3) / 4 = 0.85; x4: 0.92; x6: 0.95 (the best); x8: no scored
  // sample; x10: no summary at all.
  summary(dir / "eval_x2", R"([{"score": 0.85, "samples": 10}])");
  summary(dir / "eval_x3", R"([{"score": 1.0, "samples": 1}, {"score": 0.8, "samples": 3}])");
  summary(dir / "eval_x4", R"([{"score": 0.92, "samples": 10}])");
  summary(dir / "eval_x6", R"([{"score": 0.95, "samples": 10}])");
  summary(dir / "eval_x8", R"([{"score": 0.0, "samples": 0}])");
  CHECK(pick(py, dir, "best", "2 3 4 6 8 10") == "6");
  CHECK(pick(py, dir, "smallest95", "2 3 4 6 8 10") == "4");  // 0.92 >= 0.95 * 0.95; 0.85 is not
  // the order the scales are given in does not matter; of equal means `best` takes the smaller
  summary(dir / "eval_x4", R"([{"score": 0.95, "samples": 10}])");
  CHECK(pick(py, dir, "best", "10 8 6 4 3 2") == "4");
  // the mean is weighted by samples: x3's cells (1.0 x 1, 0.85 x 3) mean 0.8875 < 0.95 x 0.95 (their
  // plain mean, 0.925, would pass)
  summary(dir / "eval_x3", R"([{"score": 1.0, "samples": 1}, {"score": 0.85, "samples": 3}])");
  CHECK(pick(py, dir, "smallest95", "2 3 4 6") == "4");
  // nothing scored: no output (repro.sh then skips the student)
  CHECK(pick(py, dir, "best", "8 10").empty());
}
