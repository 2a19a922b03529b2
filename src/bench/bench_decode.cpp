#include "bench/bench_decode.h"

#include <functional>
#include <iomanip>
#include <sstream>
#include <vector>

#include "util/format.h"

namespace lawcat::bench {

BenchPrefillOptions decode_bench_options(BenchPrefillOptions o) {
  o.command = "bench decode";
  o.warmup = 0;
  o.reps = 1;
  return o;
}

std::string format_bench_decode(const BenchPrefillResult& r) {
  auto find = [&](const std::string& kind, int64_t T) { return find_row(r, kind, T); };
  std::ostringstream os;
  os << describe_model(r);
  os << "decode = greedy tokens/s at context T; rss = resident memory of the process after prefill + decode "
        "(MiB); state = KV cache (allocated capacity, grows by doubling) / LAWCAT state (MiB); prefill = one prefill of T tokens (s)\n";
  os << std::setw(7) << "T" << " |" << std::setw(11) << "sm tok/s" << std::setw(11) << "lc tok/s" << std::setw(8)
     << "lc/sm" << " |" << std::setw(9) << "sm rss" << std::setw(9) << "lc rss" << " |" << std::setw(10)
     << "sm state" << std::setw(10) << "lc state" << " |" << std::setw(11) << "sm prefill" << std::setw(11)
     << "lc prefill" << "\n";
  auto cell = [](const BenchPrefillRow* row, const std::function<std::string(const BenchPrefillRow&)>& f) {
    if (!row) return std::string("-");
    if (!row->error.empty()) return std::string("OOM");
    return f(*row);
  };
  auto tps = [](const BenchPrefillRow& x) { return format::fixed(x.decode_tokens_per_s, 1); };
  auto rss = [](const BenchPrefillRow& x) { return x.rss_mib >= 0 ? format::fixed(x.rss_mib, 0) : std::string("n/a"); };
  auto state = [](const BenchPrefillRow& x) { return format::fixed(x.state_mib, x.state_mib < 10 ? 2 : 0); };
  auto prefill = [](const BenchPrefillRow& x) { return format::fixed(x.prefill_ms * 1e-3, 2); };
  for (int64_t T : row_lengths(r)) {
    const auto* s = find("softmax", T);
    const auto* l = find("lawcat", T);
    std::string ratio = "-";
    if (s && l && s->error.empty() && l->error.empty() && s->decode_tokens_per_s > 0)
      ratio = format::fixed(l->decode_tokens_per_s / s->decode_tokens_per_s, 2) + "x";
    os << std::setw(7) << T << " |" << std::setw(11) << cell(s, tps) << std::setw(11) << cell(l, tps) << std::setw(8)
       << ratio << " |" << std::setw(9) << cell(s, rss) << std::setw(9) << cell(l, rss) << " |" << std::setw(10)
       << cell(s, state) << std::setw(10) << cell(l, state) << " |" << std::setw(11) << cell(s, prefill)
       << std::setw(11) << cell(l, prefill) << "\n";
  }
  return os.str();
}

}  // namespace lawcat::bench
