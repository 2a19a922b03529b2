// `lawcat info`: build configuration (LibTorch version, CUDA kernels, threads).
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <torch/version.h>

#include <iostream>

#include "cli/command.h"
#include "train/distributed.h"

namespace {
lawcat::cli::Runner setup_info(CLI::App& app) {
  return [] {
    std::cout << "lawcat 0.1.0\n"
              << "libtorch " << TORCH_VERSION << "\n"
#ifdef LAWCAT_HAVE_CUDA
              << "cuda kernels: built\n"
#else
              << "cuda kernels: not built\n"
#endif
              << "cuda device: " << (at::hasCUDA() ? "yes" : "no") << "\n"
              << "nccl data parallel: " << (lawcat::train::have_nccl() ? "built" : "not built (store all-reduce only)")
              << "\n"
              << "threads: " << at::get_num_threads() << "\n";
    return 0;
  };
}
LAWCAT_COMMAND("info", "Show build configuration (LibTorch, CUDA, threads)", setup_info);
}  // namespace
