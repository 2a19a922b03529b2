// `lawcat info`: build configuration (LibTorch version, CUDA kernels, threads,
// compressed corpora).
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <torch/version.h>

#include <iostream>

#include "cli/command.h"
#include "dataset/decompress.h"
#include "text/unicode.h"
#include "train/distributed.h"

namespace {
// "xz gzip zstd" (those built in), with the missing ones after "not built:".
std::string compressions() {
  using lawcat::dataset::Compression;
  std::string built, missing;
  for (Compression c : {Compression::kXz, Compression::kGzip, Compression::kZstd}) {
    std::string& to = lawcat::dataset::compression_built_in(c) ? built : missing;
    to += (to.empty() ? "" : " ") + std::string(lawcat::dataset::compression_name(c));
  }
  if (built.empty()) built = "none";
  return missing.empty() ? built : built + " (not built: " + missing + ")";
}

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
              << "compressed corpora: " << compressions() << "\n"
#ifdef LAWCAT_HAVE_PCRE2
              << "tokenizer.json (byte-level BPE): built, NFC normalizer "
              << (lawcat::text::unicode::nfc_available() ? "built (ICU)" : "not built (no ICU: input taken as NFC)") << "\n"
#else
              << "tokenizer.json (byte-level BPE): not built (no PCRE2)\n"
#endif
              << "threads: " << at::get_num_threads() << "\n";
    return 0;
  };
}
LAWCAT_COMMAND("info", "Show build configuration (LibTorch, CUDA, compression, threads)", setup_info);
}  // namespace
