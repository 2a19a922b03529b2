// Data parallel: 2 processes (this executable re-run as workers) exchanging
// gradients end with the same weights as one process with the same global batch:
// on the CPU over a loopback c10d TCPStore, on 2 GPUs over NCCL ([cuda]; skips
// with fewer than 2 CUDA devices or a build without NCCL). Plus the backend
// choice of communicator_from_env (LAWCAT_DP_BACKEND).
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/catch.h"
#include "train/train_helpers.h"
#include "io/safetensors.h"
#include "model/swap.h"
#include "model/llama.h"
#include "train/distill.h"
#include "train/distributed.h"
#include "train/finetune.h"
#include "train/loop.h"
#include "util/error.h"

extern char** environ;

using namespace lawcat;
namespace stdfs = std::filesystem;

namespace {
dataset::DataSplits ddp_data() {
  dataset::TokenizedCorpus c;
  c.files = {"synthetic"};
  c.doc_offsets = {0};
  at::manual_seed(21);
  at::Tensor t = at::randint(3, 64, {24 * 40}, at::kLong);
  for (int d = 0; d < 24; ++d) {
    for (int64_t i = 0; i < 40; ++i) c.tokens.push_back(static_cast<int32_t>(t[d * 40 + i].item<int64_t>()));
    c.doc_offsets.push_back(c.num_tokens());
  }
  return dataset::make_splits(c, nullptr, 16, 0.2, 1);
}

// Trains the tiny LAWCAT model on `device` for 4 steps of a global batch of 2
// sequences; returns the LAWCAT parameters (on the CPU).
train::NamedTensors train_tiny(train::Communicator* comm, const stdfs::path& dir, at::Device device = at::kCPU) {
  // IEEE fp32 matmuls on CUDA in the workers and in the reference alike, whatever
  // an earlier test case of this process set (the recipe turns TF32 on).
  struct Fp32Highest {
    at::Float32MatmulPrecision saved = at::globalContext().float32MatmulPrecision();
    Fp32Highest() { at::globalContext().setFloat32MatmulPrecision("highest"); }
    ~Fp32Highest() {
      at::globalContext().setFloat32MatmulPrecision(
          saved == at::Float32MatmulPrecision::HIGHEST ? "highest"
          : saved == at::Float32MatmulPrecision::HIGH  ? "high"
                                                        : "medium");
    }
  } fp32_highest;
  at::set_num_threads(1);
  at::manual_seed(8);
  auto net = model::build_llama(test::tiny_train_config());
  train::init_from_scratch(*net, 0.2);
  net->to(device);  // LAWCAT weights are drawn on the CPU and placed on the teacher's device
  config::AttentionConfig a;
  a.gate_rank = 4;
  model::swap_to_lawcat(*net, a);
  config::StageConfig s;
  s.steps = 4;
  s.lr = 1e-2;
  s.batch_size = 1;
  s.grad_accum = comm ? 1 : 2;  // one process: 2 micro-batches of 1; two ranks: 1 each
  s.eval_every = 2;
  s.val_batches = 2;
  auto spec = train::make_distill_stage(*net, s);
  train::LoopOptions lo;
  lo.dir = dir;
  lo.tokens_per_example = 16;
  lo.progress = false;
  lo.comm = comm;
  auto data = ddp_data();
  train::run_stage(spec, data, lo);
  train::NamedTensors out;
  for (auto& [n, p] : spec.params) out.emplace_back(n, p.detach().to(at::kCPU).clone());
  return out;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// Runs this executable's hidden worker case as ranks 0 and 1 of a data-parallel
// run on loopback; `env` is added to (and overrides) the inherited environment.
// Returns whether both exited with status 0.
bool run_two_ranks(const stdfs::path& dir, const std::vector<std::string>& extra) {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<std::string> env = {"RANK=" + std::to_string(rank),
                                    "LOCAL_RANK=" + std::to_string(rank),
                                    "WORLD_SIZE=2",
                                    "MASTER_ADDR=127.0.0.1",
                                    "MASTER_PORT=" + std::to_string(port),
                                    "LAWCAT_TEST_DDP_OUT=" + dir.string(),
                                    "LAWCAT_LOG=warn"};
    env.insert(env.end(), extra.begin(), extra.end());
    auto overridden = [&](const std::string& e) {
      for (const auto& x : env)
        if (e.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0) return true;
      return false;
    };
    for (char** e = environ; *e; ++e)
      if (!overridden(*e)) env.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string self = stdfs::read_symlink("/proc/self/exe").string(), tag = "[.ddp-worker]";
    char* argv[] = {self.data(), tag.data(), nullptr};
    pid_t pid = 0;
    if (::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()) != 0) return false;
    pids.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return ok;
}

// Sets (or, with nullptr, unsets) environment variables for one scope.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (auto& [k, v] : vars) {
      const char* old = std::getenv(k);
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) ::setenv(k, v, 1); else ::unsetenv(k);
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_)
      if (v) ::setenv(k.c_str(), v->c_str(), 1); else ::unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};
}  // namespace

// Run by the tests below in child processes (hidden from normal runs).
// LAWCAT_TEST_DDP_DEVICE: cpu (default) or cuda (the GPU is cuda:LOCAL_RANK).
TEST_CASE("ddp worker", "[.ddp-worker]") {
  const char* out = std::getenv("LAWCAT_TEST_DDP_OUT");
  if (!out) LAWCAT_SKIP("only run as a child of the data-parallel tests");
  const char* dev = std::getenv("LAWCAT_TEST_DDP_DEVICE");
  const std::string device = dev && *dev ? dev : "cpu";
  auto comm = train::communicator_from_env(device);
  REQUIRE(comm);
  const at::Device d = device == "cuda" ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(
                                                                    train::local_rank_from_env(comm->rank())))
                                        : at::Device(at::kCPU);
  auto params = train_tiny(comm.get(), stdfs::path(out) / "run", d);
  io::save_safetensors(stdfs::path(out) / ("rank" + std::to_string(comm->rank()) + ".safetensors"), params);
}

TEST_CASE("2 processes over a loopback store give one process's weights", "[train][distributed]") {
  auto dir = test::scratch_dir("ddp");
  CHECK(run_two_ranks(dir, {"LAWCAT_DP_BACKEND=store", "LAWCAT_TEST_DDP_DEVICE=cpu"}));
  REQUIRE(stdfs::exists(dir / "rank0.safetensors"));
  REQUIRE(stdfs::exists(dir / "rank1.safetensors"));
  // Only rank 0 wrote the run's files.
  CHECK(stdfs::exists(dir / "run" / "metrics.jsonl"));
  auto single = train_tiny(nullptr, test::scratch_dir("ddp_single"));
  io::SafetensorsFile r0(dir / "rank0.safetensors"), r1(dir / "rank1.safetensors");
  for (auto& [n, p] : single) {
    CAPTURE(n);
    at::Tensor a = r0.load(n), b = r1.load(n);
    CHECK(at::equal(a, b));                         // ranks agree bitwise
    CHECK(at::allclose(a, p, 1e-4, 1e-6));          // = one process (up to summation order)
    CHECK_FALSE(at::equal(p, at::zeros_like(p)));
  }
}

TEST_CASE("2 GPUs over NCCL give one GPU's weights", "[train][distributed][cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  const auto gpus = torch::cuda::device_count();
  if (gpus < 2) LAWCAT_SKIP("needs 2 CUDA devices, found " << gpus << ": NCCL data-parallel test skipped");
  if (!train::have_nccl())
    LAWCAT_SKIP("this build has no NCCL support (nccl.h not found at configure time): NCCL test skipped");
  auto dir = test::scratch_dir("ddp_nccl");
  CHECK(run_two_ranks(dir, {"LAWCAT_DP_BACKEND=nccl", "LAWCAT_TEST_DDP_DEVICE=cuda"}));
  REQUIRE(stdfs::exists(dir / "rank0.safetensors"));
  REQUIRE(stdfs::exists(dir / "rank1.safetensors"));
  CHECK(stdfs::exists(dir / "run" / "metrics.jsonl"));
  // The reference: one process on cuda:0, 2 micro-batches of 1 (the ranks run the
  // same shapes, so only the gradient sum order and the kernels' atomics differ).
  auto single = train_tiny(nullptr, test::scratch_dir("ddp_nccl_single"), at::Device(at::kCUDA, 0));
  io::SafetensorsFile r0(dir / "rank0.safetensors"), r1(dir / "rank1.safetensors");
  for (auto& [n, p] : single) {
    CAPTURE(n);
    at::Tensor a = r0.load(n), b = r1.load(n);
    CHECK(at::equal(a, b));  // NCCL hands every rank the same sum: ranks agree bitwise
    const double max_diff = (a - p).abs().max().item<double>();
    CAPTURE(max_diff);
    // fp32 sum-order differences through 4 AdamW steps of lr 1e-2; a missing or
    // wrong average moves weights by ~lr.
    CHECK(at::allclose(a, p, 1e-3, 1e-4));
    CHECK_FALSE(at::equal(p, at::zeros_like(p)));
  }
}

TEST_CASE("LAWCAT_DP_BACKEND picks or rejects a data-parallel backend", "[train][distributed]") {
  SECTION("a bad value names the variable, even for one process") {
    ScopedEnv env({{"LAWCAT_DP_BACKEND", "gloo"}, {"WORLD_SIZE", nullptr}});
    CHECK_THROWS_AS(train::communicator_from_env("cpu"), ConfigError);
    CHECK_THROWS_WITH(train::communicator_from_env("cpu"), LAWCAT_CONTAINS("LAWCAT_DP_BACKEND='gloo'"));
  }
  SECTION("one process: no communicator") {
    ScopedEnv env({{"LAWCAT_DP_BACKEND", "nccl"}, {"WORLD_SIZE", "1"}});
    CHECK(train::communicator_from_env("cpu") == nullptr);
  }
  SECTION("nccl on a CPU run (or a build without NCCL) is refused before connecting") {
    ScopedEnv env({{"LAWCAT_DP_BACKEND", "nccl"}, {"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "1"}});
    CHECK_THROWS_AS(train::communicator_from_env("cpu"), ConfigError);
    CHECK_THROWS_WITH(train::communicator_from_env("cpu"), LAWCAT_CONTAINS("LAWCAT_DP_BACKEND=nccl"));
  }
  SECTION("without NCCL support, nccl is refused on CUDA runs too") {
    if (train::have_nccl()) LAWCAT_SKIP("this build has NCCL support");
    ScopedEnv env({{"LAWCAT_DP_BACKEND", "nccl"}, {"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "1"}});
    CHECK_THROWS_WITH(train::communicator_from_env("cuda"), LAWCAT_CONTAINS("no NCCL support"));
  }
  SECTION("a bad LOCAL_RANK is a config error") {
    ScopedEnv env({{"LOCAL_RANK", "x"}});
    CHECK_THROWS_AS(train::local_rank_from_env(0), ConfigError);
  }
  SECTION("LOCAL_RANK falls back to the rank") {
    ScopedEnv env({{"LOCAL_RANK", nullptr}});
    CHECK(train::local_rank_from_env(3) == 3);
  }
}
