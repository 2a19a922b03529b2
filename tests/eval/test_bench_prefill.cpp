// `bench prefill` on the CPU at small lengths: both kinds timed from one model,
// the KV cache grows with T while the LAWCAT state does not.
#include <filesystem>

#include "common/catch.h"
#include "bench/bench_decode.h"
#include "bench/bench_prefill.h"
#include "eval/eval_helpers.h"
#include "io/hf_config.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::bench;

TEST_CASE("bench prefill on the CPU from a config.json (random weights)", "[eval][bench]") {
  test::SingleThread single_thread;
  const auto dir = test::scratch_dir("bench_prefill");
  io::save_llama_config(dir / "config.json", test::tiny_eval_config());
  BenchPrefillOptions o;
  o.config_json = (dir / "config.json").string();
  o.lengths = {32, 128};
  o.device = "cpu";
  o.warmup = 1;
  o.reps = 2;
  o.decode_tokens = 4;
  o.decode_warmup = 1;
  const auto r = bench_prefill(o);
  REQUIRE(r.rows.size() == 4);
  CHECK(r.num_layers == 2);
  CHECK(r.lawcat_layers == 2);
  CHECK(r.dtype == "float32");
  for (const auto& row : r.rows) {
    CAPTURE(row.kind, row.T);
    CHECK(row.error.empty());
    CHECK(row.prefill_ms > 0);
    CHECK(row.prefill_min_ms <= row.prefill_ms);
    CHECK(row.decode_tokens_per_s > 0);
    CHECK(row.peak_mib == -1);  // CPU: no allocator stats
    CHECK(row.state_mib > 0);
  }
  auto find = [&](const std::string& kind, int64_t T) {
    for (const auto& row : r.rows)
      if (row.kind == kind && row.T == T) return row;
    FAIL("no row " << kind << " " << T);
    return BenchPrefillRow{};
  };
  CHECK(find("softmax", 128).state_mib > find("softmax", 32).state_mib);
  CHECK(find("lawcat", 128).state_mib == find("lawcat", 32).state_mib);
  const std::string table = format_bench_prefill(r);
  CHECK_THAT(table, LAWCAT_CONTAINS("speedup"));
  const auto j = bench_prefill_json(r, o);
  CHECK(j["rows"].size() == 4);
  CHECK(j["rows"][0]["kind"] == "softmax");

  BenchPrefillOptions bad = o;
  bad.model_dir = dir.string();  // both given
  CHECK_THROWS_AS(bench_prefill(bad), ConfigError);
}

TEST_CASE("bench prefill on a checkpoint directory (a teacher, swapped for the LAWCAT rows)", "[eval][bench]") {
  test::SingleThread single_thread;
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  const auto dir = test::scratch_dir("bench_prefill_ckpt");
  test::write_tiny_model_dir(dir / "m", tok512, 4, false);
  BenchPrefillOptions o;
  o.model_dir = (dir / "m").string();
  o.lengths = {48};
  o.device = "cpu";
  o.warmup = 0;
  o.reps = 1;
  o.decode_tokens = 2;
  const auto r = bench_prefill(o);
  REQUIRE(r.rows.size() == 2);
  CHECK(r.lawcat_layers == 2);
}

TEST_CASE("bench decode: decode-first settings, resident memory, the softmax / LAWCAT table", "[eval][bench]") {
  test::SingleThread single_thread;
  const auto dir = test::scratch_dir("bench_decode");
  io::save_llama_config(dir / "config.json", test::tiny_eval_config());
  BenchPrefillOptions o;
  o.config_json = (dir / "config.json").string();
  o.lengths = {16, 256};
  o.device = "cpu";
  o.warmup = 3;  // decode_bench_options drops the warm-up prefills and times one
  o.reps = 4;
  o.decode_tokens = 3;
  o.decode_warmup = 1;
  const auto d = decode_bench_options(o);
  CHECK(d.warmup == 0);
  CHECK(d.reps == 1);
  CHECK(d.command == "bench decode");
  const auto r = bench_prefill(d);
  REQUIRE(r.rows.size() == 4);
  for (const auto& row : r.rows) {
    CAPTURE(row.kind, row.T);
    CHECK(row.decode_tokens_per_s > 0);
    CHECK(row.prefill_ms == row.prefill_min_ms);  // one timed prefill
#ifdef __linux__
    CHECK(row.rss_mib > 1);                       // /proc/self/status is read
    CHECK(row.peak_rss_mib >= row.rss_mib);
#endif
  }
  const std::string table = format_bench_decode(r);
  CHECK_THAT(table, LAWCAT_CONTAINS("lc/sm"));
  CHECK_THAT(table, LAWCAT_CONTAINS("    256 |"));
  const auto j = bench_prefill_json(r, d);
#ifdef __linux__
  CHECK(j["rows"][0].contains("rss_mib"));
#endif
  BenchPrefillOptions none = d;
  none.softmax = none.lawcat = false;
  CHECK_THROWS_WITH(bench_prefill(none), LAWCAT_CONTAINS("bench decode: nothing to time"));
}
