// Data parallel: 2 processes (this executable re-run as workers) exchanging
// gradients over a loopback c10d TCPStore end with the same weights as one
// process with the same global batch.
#include <ATen/Parallel.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/catch.h"
#include "train/train_helpers.h"
#include "io/safetensors.h"
#include "model/convert.h"
#include "model/llama.h"
#include "train/distill.h"
#include "train/distributed.h"
#include "train/finetune.h"
#include "train/loop.h"

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

// Trains the tiny LAWCAT model for 4 steps of a global batch of 2 sequences;
// returns the LAWCAT parameters.
train::NamedTensors train_tiny(train::Communicator* comm, const stdfs::path& dir) {
  at::set_num_threads(1);
  at::manual_seed(8);
  auto net = model::build_llama(test::tiny_train_config());
  train::init_from_scratch(*net, 0.2);
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
  for (auto& [n, p] : spec.params) out.emplace_back(n, p.detach().clone());
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
}  // namespace

// Run by the test below in child processes (hidden from normal runs).
TEST_CASE("ddp worker", "[.ddp-worker]") {
  const char* out = std::getenv("LAWCAT_TEST_DDP_OUT");
  if (!out) LAWCAT_SKIP("only run as a child of the data-parallel test");
  auto comm = train::communicator_from_env("cpu");
  REQUIRE(comm);
  auto params = train_tiny(comm.get(), stdfs::path(out) / "run");
  io::save_safetensors(stdfs::path(out) / ("rank" + std::to_string(comm->rank()) + ".safetensors"), params);
}

TEST_CASE("2 processes over a loopback store give one process's weights", "[train][distributed]") {
  auto dir = test::scratch_dir("ddp");
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("LOCAL_RANK=" + std::to_string(rank));
    env.push_back("WORLD_SIZE=2");
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    env.push_back("LAWCAT_TEST_DDP_OUT=" + dir.string());
    env.push_back("LAWCAT_LOG=warn");
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string self = stdfs::read_symlink("/proc/self/exe").string(), tag = "[.ddp-worker]";
    char* argv[] = {self.data(), tag.data(), nullptr};
    pid_t pid = 0;
    REQUIRE(::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
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
