// A kernel-level profile of one region of code, for the benchmarks' --profile flag:
// Kineto (CUPTI) records every CUDA kernel and CPU operator while fn() runs; the
// summary lists the kernels by total device time (count, total ms, share), then
// the totals: host wall time of the region, summed kernel time, kernel and
// operator counts. Device time well below the wall time means the region is
// bound by the host (launch and dispatch overhead) rather than by the GPU.
#pragma once
#include <functional>
#include <string>

namespace lawcat::bench {

struct ProfileOptions {
  int top = 20;            // kernels listed
  std::string trace_path;  // also write a Chrome trace here (empty: none)
};

// Runs fn() once under the profiler (synchronizing the device before and after)
// and returns the summary text. Without a profiler (or when it fails) the text says so.
std::string profile_region(const std::function<void()>& fn, const ProfileOptions& options = {});

}  // namespace lawcat::bench
