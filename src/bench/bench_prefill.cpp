#include "bench/bench_prefill.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iomanip>
#include <sstream>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "config/yaml.h"
#include "bench/graph_decode.h"
#include "bench/profile.h"
#include "io/hf_config.h"
#include "model/device.h"
#include "model/swap.h"
#include "model/llama.h"
#include "util/error.h"
#include "util/format.h"
#include "util/log.h"
#include "util/memory.h"
#include "util/stats.h"

namespace lawcat::bench {

namespace {

// Wall time of fn() in ms: CUDA events on the current stream on the GPU.
double time_ms(bool cuda, const std::function<void()>& fn) {
#ifdef LAWCAT_HAVE_CUDA
  if (cuda) {
    auto stream = at::cuda::getCurrentCUDAStream();
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record(stream);
    fn();
    stop.record(stream);
    stop.synchronize();
    return start.elapsed_time(stop);
  }
#endif
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void synchronize(bool cuda) {
#ifdef LAWCAT_HAVE_CUDA
  if (cuda) at::cuda::getCurrentCUDAStream().synchronize();
#endif
}

// Allocated bytes on the device: {current, peak}; {-1, -1} without CUDA.
std::pair<int64_t, int64_t> cuda_allocated(bool cuda, int device_index) {
#ifdef LAWCAT_HAVE_CUDA
  if (cuda) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device_index));
    const auto& a = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return {a.current, a.peak};
  }
#endif
  return {-1, -1};
}

void reset_peak(bool cuda, int device_index) {
#ifdef LAWCAT_HAVE_CUDA
  if (cuda) c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device_index));
#endif
}

void empty_cache(bool cuda) {
#ifdef LAWCAT_HAVE_CUDA
  if (cuda) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

std::string device_description(const at::Device& d) {
#ifdef LAWCAT_HAVE_CUDA
  if (d.is_cuda()) {
    const auto* p = at::cuda::getDeviceProperties(d.has_index() ? d.index() : at::cuda::current_device());
    return std::string(p->name) + " (" + std::to_string(p->totalGlobalMem >> 20) + " MiB)";
  }
#endif
  return d.str();
}

// A decode state of KV caches for every layer (the teacher mode of a swapped model).
model::DecodeState kv_cache_state(model::LlamaForCausalLMImpl& m) {
  model::DecodeState s;
  s.batch = 1;
  for (int64_t i = 0; i < m.num_layers(); ++i) s.layers.push_back(std::make_unique<model::KVCache>());
  return s;
}

constexpr double kMiB = 1024.0 * 1024.0;

void check_options(const BenchPrefillOptions& o) {
  LAWCAT_CHECK(o.model_dir.empty() != o.config_json.empty(), ConfigError,
               o.command << ": give exactly one of --model DIR or --config config.json");
  LAWCAT_CHECK(!o.lengths.empty(), ConfigError, o.command << ": --lengths is empty");
  for (int64_t T : o.lengths) LAWCAT_CHECK(T > 0, ConfigError, o.command << ": lengths must be positive, got " << T);
  LAWCAT_CHECK(o.prefill_chunk >= 0, ConfigError, o.command << ": --prefill-chunk must be >= 0, got " << o.prefill_chunk);
  // one check per option, so that the message names the option the user gave
  LAWCAT_CHECK(o.reps > 0, ConfigError, o.command << ": --reps must be >= 1, got " << o.reps);
  LAWCAT_CHECK(o.warmup >= 0, ConfigError, o.command << ": --warmup must be >= 0, got " << o.warmup);
  LAWCAT_CHECK(o.decode_tokens >= 0, ConfigError, o.command << ": --decode-tokens must be >= 0, got " << o.decode_tokens);
  LAWCAT_CHECK(o.decode_warmup >= 0, ConfigError, o.command << ": --decode-warmup must be >= 0, got " << o.decode_warmup);
  LAWCAT_CHECK(o.softmax || o.lawcat, ConfigError, o.command << ": nothing to time (both kinds disabled)");
}

// The model under test: random weights from o.config_json (swapped to LAWCAT by its "lawcat"
// section, else by o.attention), or the checkpoint o.model_dir (swapped by o.attention when it
// has no LAWCAT layers); LAWCAT parameters in fp32, eval mode. Fills result's model fields.
model::LlamaForCausalLM build_model(const BenchPrefillOptions& o, const at::Device& device, BenchPrefillResult& result) {
  model::LlamaForCausalLM m{nullptr};
  io::LlamaConfig cfg;
  if (!o.config_json.empty()) {
    cfg = io::load_llama_config(o.config_json);
    model::validate_llama_config(cfg, o.config_json);
    const at::ScalarType dtype =
        o.dtype == "auto" ? (device.is_cuda() ? at::kBFloat16 : at::kFloat) : model::parse_dtype(o.dtype);
    result.source = o.config_json + " (random weights)";
    m = model::build_llama(cfg);
    if (cfg.lawcat.is_null() || cfg.lawcat.empty()) {
      model::swap_to_lawcat(*m, o.attention);
    } else {
      model::swap_to_lawcat(*m, config::attention_from_json(cfg.lawcat, o.config_json));
    }
    m->to(device, dtype);
    for (auto& [n, t] : model::lawcat_parameters(*m)) t.set_data(t.to(device, at::kFloat));
  } else {
    cfg = io::load_llama_config(std::filesystem::path(o.model_dir) / "config.json");
    result.source = o.model_dir;
    m = model::load_model(o.model_dir, device, model::resolve_dtype(o.dtype, device, cfg));
    if (model::lawcat_layers(*m).empty()) {
      model::swap_to_lawcat(*m, o.attention);
      for (auto& [n, t] : model::lawcat_parameters(*m)) t.set_data(t.to(device, at::kFloat));
    }
  }
  m->eval();
  result.dtype = model::dtype_name(m->dtype());
  result.num_layers = m->num_layers();
  result.lawcat_layers = static_cast<int64_t>(model::lawcat_layers(*m).size());
  result.model_config = io::to_json(m->config());
  int64_t bytes = 0;
  for (const auto& p : m->parameters()) {
    result.parameters += p.numel();
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  result.weights_mib = static_cast<double>(bytes) / kMiB;
  return m;
}

// One (kind, T) cell: the model in the kind's mode, the T prompt tokens and the device.
struct PrefillCell {
  model::LlamaForCausalLMImpl& m;
  const BenchPrefillOptions& o;
  const at::Tensor& ids;  // [1, T]
  int64_t T;
  bool teacher, cuda;
  int dev_index;

  model::DecodeState fresh_state() const { return teacher ? kv_cache_state(m) : m.new_decode_state(1); }
  // Prefill: [1, T] -> logits of the last position [1, V].
  at::Tensor prefill(model::DecodeState& st) const {
    const int64_t step = o.prefill_chunk > 0 ? o.prefill_chunk : T;
    at::Tensor h;
    for (int64_t a = 0; a < T; a += step)                    // chunks continue from the state
      h = m.hidden_states(ids.slice(1, a, std::min(T, a + step)), &st);  // [1, chunk, D]
    return m.logits(h.select(1, h.size(1) - 1));             // [1, V]
  }
  // One greedy step: [1, 1] -> [1, 1], staying on the device.
  at::Tensor decode_step(const at::Tensor& next, model::DecodeState& st) const {
    return m.forward(next, st).select(1, 0).argmax(-1).view({1, 1});
  }
};

// Warm-up prefills, then the median and min of o.reps timed ones.
void time_prefill(const PrefillCell& c, BenchPrefillRow& row) {
  for (int i = 0; i < c.o.warmup; ++i) {
    model::DecodeState st = c.fresh_state();
    c.prefill(st);
  }
  synchronize(c.cuda);
  std::vector<double> times;
  for (int i = 0; i < c.o.reps; ++i) {
    model::DecodeState st = c.fresh_state();
    times.push_back(time_ms(c.cuda, [&] { c.prefill(st); }));
  }
  row.prefill_ms = stats::median(times);
  row.prefill_min_ms = *std::min_element(times.begin(), times.end());
  row.prefill_tokens_per_s = row.prefill_ms > 0 ? static_cast<double>(c.T) / (row.prefill_ms * 1e-3) : 0;
}

// Greedy tokens of n eager steps after a fresh prefill, as host ids.
std::vector<int64_t> eager_tokens(const PrefillCell& c, int64_t n) {
  model::DecodeState st = c.fresh_state();
  at::Tensor next = c.prefill(st).argmax(-1).view({1, 1});
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(next = c.decode_step(next, st));
  std::vector<int64_t> ids;
  for (const auto& t : out) ids.push_back(t.item<int64_t>());
  return ids;
}

// One more prefill, then decode_warmup untimed and decode_tokens timed greedy steps, with the
// peak device memory tracked; the state's size and the process's resident memory after them.
// With o.cuda_graph (on a GPU), the steps replay one captured graph (the softmax model's KV
// caches made static first), whose first tokens are compared with eager_tokens' first.
void time_decode(const PrefillCell& c, BenchPrefillRow& row) {
  // (a softmax model that cannot be captured, e.g. with a sliding window, decodes eagerly:
  // bench_prefill warned; a LAWCAT one was refused up front)
  const bool graph = c.o.cuda_graph && c.cuda && graph_decode_unsupported(c.m).empty();
  constexpr int kGraphWarmup = 2;
  const int64_t checked = kGraphWarmup + 16;
  const std::vector<int64_t> reference = graph ? eager_tokens(c, checked) : std::vector<int64_t>{};
  synchronize(c.cuda);
  const int64_t base = cuda_allocated(c.cuda, c.dev_index).first;
  reset_peak(c.cuda, c.dev_index);
  model::DecodeState st = c.fresh_state();
  at::Tensor logits = c.prefill(st);
  at::Tensor next = logits.argmax(-1).view({1, 1});  // [1, 1], stays on the device
  std::function<void()> step = [&] { next = c.decode_step(next, st); };
  std::unique_ptr<GraphedGreedyStep> graphed;
  if (graph) {
    row.decode_mode = "cuda graph";
    graphed = std::make_unique<GraphedGreedyStep>(c.m, st, next, kGraphWarmup,
                                                  checked - kGraphWarmup + c.o.decode_warmup + c.o.decode_tokens);
    std::vector<int64_t> got;
    for (const auto& t : graphed->warmup_tokens()) got.push_back(t.item<int64_t>());
    while (static_cast<int64_t>(got.size()) < checked) got.push_back(graphed->step().item<int64_t>());
    row.graph_tokens_equal = got == reference ? 1 : 0;
    if (!row.graph_tokens_equal)
      log::warn(c.o.command, ": ", row.kind, " T=", c.T, ": the CUDA graph's greedy tokens differ from the eager step's");
    step = [&] { graphed->step(); };
  }
  for (int64_t i = 0; i < c.o.decode_warmup; ++i) step();
  synchronize(c.cuda);
  if (c.o.decode_tokens > 0) {
    const double ms = time_ms(c.cuda, [&] {
      for (int64_t i = 0; i < c.o.decode_tokens; ++i) step();
    });
    row.decode_ms_per_token = ms / static_cast<double>(c.o.decode_tokens);
    row.decode_tokens_per_s = ms > 0 ? static_cast<double>(c.o.decode_tokens) / (ms * 1e-3) : 0;
  }
  synchronize(c.cuda);
  const auto [cur, peak] = cuda_allocated(c.cuda, c.dev_index);
  (void)cur;
  if (peak >= 0) {
    row.peak_mib = static_cast<double>(peak) / kMiB;
    row.peak_above_base_mib = static_cast<double>(peak - base) / kMiB;
  }
  row.state_mib = static_cast<double>(st.memory_bytes()) / kMiB;
  const auto rss = memory::resident();
  if (rss.current_bytes >= 0) row.rss_mib = static_cast<double>(rss.current_bytes) / kMiB;
  if (rss.peak_bytes >= 0) row.peak_rss_mib = static_cast<double>(rss.peak_bytes) / kMiB;
}

// Kernel profiles of one prefill and of o.profile_decode decode steps after it.
std::string profile_cell(const PrefillCell& c, const std::string& kind) {
  ProfileOptions po;
  const std::string tag = kind + "_T" + std::to_string(c.T);
  if (!c.o.profile_trace_dir.empty()) po.trace_path = c.o.profile_trace_dir + "/prefill_" + tag + ".json";
  model::DecodeState pst = c.fresh_state();
  at::Tensor last;
  std::string text = "profile " + kind + " T=" + std::to_string(c.T) + ": one prefill\n" +
                     profile_region([&] { last = c.prefill(pst); }, po);
  at::Tensor tok = last.argmax(-1).view({1, 1});
  if (!c.o.profile_trace_dir.empty()) po.trace_path = c.o.profile_trace_dir + "/decode_" + tag + ".json";
  text += "profile " + kind + " T=" + std::to_string(c.T) + ": " + std::to_string(c.o.profile_decode) +
          " decode steps\n" + profile_region([&] {
            for (int64_t i = 0; i < c.o.profile_decode; ++i) tok = c.decode_step(tok, pst);
          }, po);
  return text;
}

// One row: prefill timings, decode timings and memory, the profile when asked; an
// out-of-memory is reported in the row.
BenchPrefillRow bench_row(model::LlamaForCausalLMImpl& m, const BenchPrefillOptions& o, const std::string& kind,
                          const at::Tensor& ids, bool cuda, int dev_index) {
  BenchPrefillRow row;
  row.kind = kind;
  row.T = ids.size(1);
  const bool teacher = kind == "softmax";
  model::set_mixer_mode(m, teacher ? model::MixerMode::kTeacher : model::MixerMode::kStudent);
  const PrefillCell c{m, o, ids, row.T, teacher, cuda, dev_index};
  try {
    time_prefill(c, row);
    time_decode(c, row);
    if (std::find(o.profile_lengths.begin(), o.profile_lengths.end(), row.T) != o.profile_lengths.end())
      row.profile = profile_cell(c, kind);
  } catch (const c10::OutOfMemoryError&) {
    row.error = "out of memory";
    log::warn(o.command, ": ", kind, " T=", row.T, ": out of memory");
  }
  empty_cache(cuda);
  log::info(o.command, ": ", kind, " T=", row.T, ": prefill ", row.prefill_ms, " ms, decode ",
            row.decode_tokens_per_s, " tok/s", row.error.empty() ? "" : " (" + row.error + ")");
  return row;
}

}  // namespace

BenchPrefillResult bench_prefill(const BenchPrefillOptions& o) {
  check_options(o);
  torch::NoGradGuard no_grad;
  const at::Device device = model::parse_device(o.device);
  const bool cuda = device.is_cuda();
  const int dev_index = cuda ? (device.has_index() ? device.index() : 0) : -1;
#ifdef LAWCAT_HAVE_CUDA
  if (cuda) c10::cuda::set_device(static_cast<c10::DeviceIndex>(dev_index));
#else
  LAWCAT_CHECK(!cuda, ConfigError, o.command << ": lawcat was built without CUDA; use --device cpu");
#endif

  BenchPrefillResult result;
  result.device = device_description(device);
  at::manual_seed(o.seed);
  model::LlamaForCausalLM m = build_model(o, device, result);
  log::info(o.command, ": ", result.source, ", ", result.num_layers, " layers (", result.lawcat_layers,
            " LAWCAT), ", result.parameters, " parameters, ", result.dtype, " on ", result.device);
  if (o.cuda_graph) {
    LAWCAT_CHECK(cuda, ConfigError, o.command << ": --cuda-graph needs --device cuda");
    if (o.lawcat) {
      const std::string why = graph_decode_unsupported(*m);
      LAWCAT_CHECK(why.empty(), ConfigError, o.command << ": --cuda-graph: the LAWCAT model cannot be captured: " << why);
    }
    if (o.softmax) {
      model::set_mixer_mode(*m, model::MixerMode::kTeacher);
      const std::string why = graph_decode_unsupported(*m);
      model::set_mixer_mode(*m, model::MixerMode::kStudent);
      if (!why.empty()) log::warn(o.command, ": --cuda-graph: the softmax model decodes eagerly: ", why);
    }
  }

  const auto ids_opts = at::TensorOptions().dtype(at::kLong).device(device);
  std::vector<std::string> kinds;
  if (o.softmax) kinds.push_back("softmax");
  if (o.lawcat) kinds.push_back("lawcat");
  for (int64_t T : o.lengths) {
    const at::Tensor ids = at::randint(0, m->vocab_size(), {1, T}, ids_opts);  // [1, T]
    for (const auto& kind : kinds) result.rows.push_back(bench_row(*m, o, kind, ids, cuda, dev_index));
  }
  model::set_mixer_mode(*m, model::MixerMode::kStudent);
  return result;
}

const BenchPrefillRow* find_row(const BenchPrefillResult& r, const std::string& kind, int64_t T) {
  for (const auto& row : r.rows)
    if (row.kind == kind && row.T == T) return &row;
  return nullptr;
}

std::vector<int64_t> row_lengths(const BenchPrefillResult& r) {
  std::vector<int64_t> Ts;
  for (const auto& row : r.rows)
    if (std::find(Ts.begin(), Ts.end(), row.T) == Ts.end()) Ts.push_back(row.T);
  return Ts;
}

std::string describe_model(const BenchPrefillResult& r) {
  std::string s = "model: " + r.source + " | " + std::to_string(r.num_layers) + " layers, " +
                  std::to_string(r.parameters) + " parameters (" + format::fixed(r.weights_mib, 0) + " MiB), " +
                  r.dtype + " | device: " + r.device + "\n";
  int graphed = 0, equal = 0;
  for (const auto& row : r.rows)
    if (row.decode_mode == "cuda graph" && row.graph_tokens_equal >= 0) ++graphed, equal += row.graph_tokens_equal == 1;
  if (graphed > 0)
    s += "decode: one CUDA graph replay per token (softmax: static KV cache); greedy tokens equal to the eager "
         "step's in " + std::to_string(equal) + " of " + std::to_string(graphed) + " rows\n";
  return s;
}

std::string format_bench_prefill(const BenchPrefillResult& r) {
  auto fmt = [](double x, int prec) { return format::fixed(x, prec); };
  auto find = [&](const std::string& kind, int64_t T) { return find_row(r, kind, T); };
  const std::vector<int64_t> Ts = row_lengths(r);
  std::ostringstream os;
  os << describe_model(r);
  os << "prefill = median ms of the full model over T tokens (last-position logits); decode = greedy tokens/s "
        "after a prefill of T; peak = CUDA allocator peak over prefill + decode; state = decode state MiB\n";
  os << std::setw(7) << "T" << " |" << std::setw(12) << "softmax ms" << std::setw(12) << "lawcat ms" << std::setw(9)
     << "speedup" << " |" << std::setw(11) << "sm tok/s" << std::setw(11) << "lc tok/s" << " |" << std::setw(11)
     << "sm peak" << std::setw(11) << "lc peak" << " |" << std::setw(10) << "sm state" << std::setw(10)
     << "lc state" << "\n";
  auto cell = [&](const BenchPrefillRow* row, const std::function<std::string(const BenchPrefillRow&)>& f) {
    if (!row) return std::string("-");
    if (!row->error.empty()) return std::string("OOM");
    return f(*row);
  };
  for (int64_t T : Ts) {
    const auto* s = find("softmax", T);
    const auto* l = find("lawcat", T);
    std::string speedup = "-";
    if (s && l && s->error.empty() && l->error.empty() && l->prefill_ms > 0)
      speedup = fmt(s->prefill_ms / l->prefill_ms, 2) + "x";
    auto ms = [&](const BenchPrefillRow& x) { return fmt(x.prefill_ms, x.prefill_ms < 10 ? 2 : 1); };
    auto tps = [&](const BenchPrefillRow& x) { return fmt(x.decode_tokens_per_s, 1); };
    auto peak = [&](const BenchPrefillRow& x) { return x.peak_mib >= 0 ? fmt(x.peak_mib, 0) : std::string("n/a"); };
    auto state = [&](const BenchPrefillRow& x) { return fmt(x.state_mib, x.state_mib < 10 ? 2 : 0); };
    os << std::setw(7) << T << " |" << std::setw(12) << cell(s, ms) << std::setw(12) << cell(l, ms) << std::setw(9)
       << speedup << " |" << std::setw(11) << cell(s, tps) << std::setw(11) << cell(l, tps) << " |" << std::setw(11)
       << cell(s, peak) << std::setw(11) << cell(l, peak) << " |" << std::setw(10) << cell(s, state)
       << std::setw(10) << cell(l, state) << "\n";
  }
  return os.str();
}

nlohmann::json bench_prefill_json(const BenchPrefillResult& r, const BenchPrefillOptions& o) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json j = {{"kind", row.kind},
                        {"T", row.T},
                        {"prefill_ms", row.prefill_ms},
                        {"prefill_min_ms", row.prefill_min_ms},
                        {"prefill_tokens_per_s", row.prefill_tokens_per_s},
                        {"decode_ms_per_token", row.decode_ms_per_token},
                        {"decode_tokens_per_s", row.decode_tokens_per_s},
                        {"decode_mode", row.decode_mode},
                        {"graph_tokens_equal", row.graph_tokens_equal},
                        {"state_mib", row.state_mib}};
    if (row.rss_mib >= 0) {
      j["rss_mib"] = row.rss_mib;
      j["peak_rss_mib"] = row.peak_rss_mib;
    }
    if (row.peak_mib >= 0) {
      j["peak_mib"] = row.peak_mib;
      j["peak_above_base_mib"] = row.peak_above_base_mib;
    }
    if (!row.error.empty()) j["error"] = row.error;
    rows.push_back(std::move(j));
  }
  return {{"device", r.device},
          {"dtype", r.dtype},
          {"source", r.source},
          {"num_layers", r.num_layers},
          {"lawcat_layers", r.lawcat_layers},
          {"parameters", r.parameters},
          {"weights_mib", r.weights_mib},
          {"warmup", o.warmup},
          {"reps", o.reps},
          {"decode_tokens", o.decode_tokens},
          {"decode_warmup", o.decode_warmup},
          {"prefill_chunk", o.prefill_chunk},
          {"model_config", r.model_config},
          {"rows", rows}};
}

}  // namespace lawcat::bench
