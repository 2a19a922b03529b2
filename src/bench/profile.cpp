#include "bench/profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace lawcat::bench {

namespace {
void sync_device() {
#ifdef LAWCAT_HAVE_CUDA
  if (at::cuda::is_available()) at::cuda::getCurrentCUDAStream().synchronize();
#endif
}
}  // namespace

std::string profile_region(const std::function<void()>& fn, const ProfileOptions& options) {
  namespace tp = torch::profiler::impl;
  namespace ap = torch::autograd::profiler;
  std::ostringstream os;
  std::unique_ptr<ap::ProfilerResult> result;
  double wall_ms = 0;
  try {
    const tp::ProfilerConfig config(tp::ProfilerState::KINETO);
    std::set<tp::ActivityType> activities{tp::ActivityType::CPU};
#ifdef LAWCAT_HAVE_CUDA
    if (at::cuda::is_available()) activities.insert(tp::ActivityType::CUDA);
#endif
    sync_device();
    ap::prepareProfiler(config, activities);
    ap::enableProfiler(config, activities);
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    sync_device();
    wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    result = ap::disableProfiler();
  } catch (const std::exception& e) {
    return std::string("profile: not available (") + e.what() + ")\n";
  }
  struct Agg {
    int64_t count = 0;
    uint64_t ns = 0;
  };
  std::map<std::string, Agg> kernels;
  int64_t n_kernels = 0, n_ops = 0;
  uint64_t kernel_ns = 0;
  for (const auto& e : result->events()) {
    if (e.deviceType() == c10::DeviceType::CUDA) {
      auto& a = kernels[e.name()];
      ++a.count;
      a.ns += e.durationNs();
      ++n_kernels;
      kernel_ns += e.durationNs();
    } else {
      ++n_ops;
    }
  }
  std::vector<std::pair<std::string, Agg>> sorted(kernels.begin(), kernels.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  char line[512];
  std::snprintf(line, sizeof(line), "  %6s %10s %6s  %s\n", "count", "total ms", "share", "kernel");
  os << line;
  for (size_t i = 0; i < sorted.size() && static_cast<int>(i) < options.top; ++i) {
    std::string name = sorted[i].first;
    if (name.size() > 110) name = name.substr(0, 107) + "...";
    std::snprintf(line, sizeof(line), "  %6lld %10.3f %5.1f%%  %s\n", static_cast<long long>(sorted[i].second.count),
                  sorted[i].second.ns * 1e-6, kernel_ns ? 100.0 * sorted[i].second.ns / kernel_ns : 0.0,
                  name.c_str());
    os << line;
  }
  std::snprintf(line, sizeof(line),
                "  wall %.3f ms (host clock, profiler on) | kernels %.3f ms in %lld launches (%zu distinct) | %lld "
                "CPU operator events\n",
                wall_ms, kernel_ns * 1e-6, static_cast<long long>(n_kernels), kernels.size(),
                static_cast<long long>(n_ops));
  os << line;
  if (!options.trace_path.empty()) {
    try {
      result->save(options.trace_path);
      os << "  trace: " << options.trace_path << "\n";
    } catch (const std::exception& e) {
      os << "  trace not written: " << e.what() << "\n";
    }
  }
  return os.str();
}

}  // namespace lawcat::bench
