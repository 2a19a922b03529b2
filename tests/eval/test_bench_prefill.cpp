// `bench prefill` on the CPU at small lengths: both kinds timed from one model,
// the KV cache grows with T while the LAWCAT state does not.
#include <filesystem>

#include "common/catch.h"
#include "bench/bench_decode.h"
#include "bench/bench_prefill.h"
#include "bench/graph_decode.h"
#include "eval/eval_helpers.h"
#include "io/hf_config.h"
#include "model/llama.h"
#include "model/swap.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::bench;

namespace {

// Options over the tiny eval config written into a fresh scratch folder, on the CPU.
BenchPrefillOptions tiny_cpu_options(const std::string& scratch) {
  const auto dir = test::scratch_dir(scratch);
  io::save_llama_config(dir / "config.json", test::tiny_eval_config());
  BenchPrefillOptions o;
  o.config_json = (dir / "config.json").string();
  o.device = "cpu";
  return o;
}

}  // namespace

TEST_CASE("bench prefill on the CPU from a config.json (random weights)", "[eval][bench]") {
  test::SingleThread single_thread;
  BenchPrefillOptions o = tiny_cpu_options("bench_prefill");
  o.lengths = {32, 128};
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
  bad.model_dir = std::filesystem::path(o.config_json).parent_path().string();  // both given
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
  BenchPrefillOptions o = tiny_cpu_options("bench_decode");
  o.lengths = {16, 256};
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

TEST_CASE("bench decode --prefill-chunk: runs, same decode state size as one pass", "[eval][bench]") {
  test::SingleThread single_thread;
  BenchPrefillOptions o = tiny_cpu_options("bench_decode_chunks");
  o.lengths = {200};
  o.decode_tokens = 2;
  o.decode_warmup = 0;
  const auto one = bench_prefill(decode_bench_options(o));
  o.prefill_chunk = 64;  // 64 + 64 + 64 + 8: the KV cache and the LAWCAT state carry across chunks
  const auto chunked = bench_prefill(decode_bench_options(o));
  REQUIRE(one.rows.size() == 2);
  REQUIRE(chunked.rows.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CAPTURE(one.rows[i].kind);
    CHECK(chunked.rows[i].error.empty());
    CHECK(chunked.rows[i].decode_tokens_per_s > 0);
    // LAWCAT: the same constant state; softmax: a KV cache of 202 positions either way (its buffer
    // doubles as it fills, so the capacity depends on the chunking)
    if (one.rows[i].kind == "lawcat") CHECK(chunked.rows[i].state_mib == one.rows[i].state_mib);
    else CHECK(chunked.rows[i].state_mib > 0);
  }
  o.prefill_chunk = -1;
  CHECK_THROWS_AS(bench_prefill(decode_bench_options(o)), ConfigError);
}

TEST_CASE("a prefill in chunks through the decode state equals one pass (softmax and LAWCAT)", "[eval][bench]") {
  test::SingleThread single_thread;
  torch::NoGradGuard no_grad;
  for (const bool lawcat : {false, true}) {
    CAPTURE(lawcat);
    at::manual_seed(3);
    auto m = model::build_llama(test::tiny_eval_config());
    if (lawcat) model::swap_to_lawcat(*m, config::AttentionConfig{});
    m->eval();
    const at::Tensor ids = at::randint(0, m->vocab_size(), {1, 200}, at::kLong);  // [1, 200]
    auto one = m->new_decode_state(1);
    const at::Tensor h_one = m->hidden_states(ids, &one);  // [1, 200, D]
    auto chunked = m->new_decode_state(1);
    at::Tensor h_last;
    for (int64_t a = 0; a < 200; a += 64) h_last = m->hidden_states(ids.slice(1, a, std::min<int64_t>(200, a + 64)), &chunked);
    CHECK(at::allclose(h_one.select(1, 199), h_last.select(1, h_last.size(1) - 1), 1e-4, 1e-5));
    // and the states carry on alike: one decode step from each
    const at::Tensor next = at::full({1, 1}, 5, at::kLong);
    CHECK(at::allclose(m->forward(next, one), m->forward(next, chunked), 1e-4, 1e-5));
  }
}

TEST_CASE("bench --cuda-graph: which models can be captured; the CPU is refused", "[eval][bench]") {
  test::SingleThread single_thread;
  const auto c = test::tiny_eval_config();
  auto student = test::tiny_random_model(c, 1, true);
  CHECK(graph_decode_unsupported(*student).empty());
  CHECK_FALSE(graph_decode_needs_static_cache(*student));
  auto teacher = test::tiny_random_model(c, 1, false);  // softmax layers: captured with static KV caches
  CHECK(graph_decode_unsupported(*teacher).empty());
  CHECK(graph_decode_needs_static_cache(*teacher));
  model::set_mixer_mode(*student, model::MixerMode::kTeacher);  // the bench's softmax rows
  CHECK(graph_decode_needs_static_cache(*student));
  model::set_mixer_mode(*student, model::MixerMode::kStudent);
  auto windowed = test::tiny_random_model(c, 1, true, 16);
  CHECK_THAT(graph_decode_unsupported(*windowed), LAWCAT_CONTAINS("softmax window"));

  model::DecodeState st = student->new_decode_state(1);
  CHECK_THROWS_WITH(GraphedGreedyStep(*student, st, at::zeros({1, 1}, at::kLong)),
                    LAWCAT_CONTAINS("one id on the GPU"));
  BenchPrefillOptions o = tiny_cpu_options("bench_graph_cpu");
  o.lengths = {32};
  o.warmup = 0;
  o.reps = 1;
  o.decode_tokens = 1;
  o.cuda_graph = true;
  CHECK_THROWS_WITH(bench_prefill(o), LAWCAT_CONTAINS("--cuda-graph needs --device cuda"));
}

TEST_CASE("CUDA: bench decode with --cuda-graph gives the eager step's greedy tokens", "[cuda][eval][bench]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  BenchPrefillOptions o = tiny_cpu_options("bench_graph_cuda");
  o.device = "cuda";
  o.lengths = {64, 300};
  o.warmup = 0;
  o.reps = 1;
  o.decode_tokens = 8;
  o.decode_warmup = 2;
  o.cuda_graph = true;
  const auto r = bench_prefill(o);
  REQUIRE(r.rows.size() == 4);
  for (const auto& row : r.rows) {
    CAPTURE(row.kind, row.T, row.error);
    CHECK(row.error.empty());
    CHECK(row.decode_tokens_per_s > 0);
    CHECK(row.decode_mode == "cuda graph");  // both models: the softmax one with static KV caches
    CHECK(row.graph_tokens_equal == 1);
  }
  CHECK_THAT(format_bench_prefill(r), LAWCAT_CONTAINS("equal to the eager step's in 4 of 4 rows"));
}
