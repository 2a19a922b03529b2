#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>

#include "train/distributed_store.h"
#include "util/error.h"
#include "util/log.h"

namespace lawcat::train {

namespace {
class StoreCommunicator : public Communicator {
 public:
  StoreCommunicator(const DistributedOptions& o)
      : rank_(o.rank), world_(o.world), store_(detail::connect_store(o)) {
    log::info("data parallel: rank ", rank_, " of ", world_, " connected to ", o.master_addr, ":", o.master_port,
              " (store all-reduce)");
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  void all_reduce_mean(std::vector<at::Tensor>& tensors) override {
    const std::string tag = "ar/" + std::to_string(seq_++) + "/";
    // Flatten to one fp32 host buffer.
    int64_t n = 0;
    for (const auto& t : tensors) n += t.numel();
    std::vector<at::Tensor> flat;
    for (const auto& t : tensors) flat.push_back(t.detach().to(at::kCPU, at::kFloat).reshape({-1}));
    at::Tensor mine = at::cat(flat).contiguous();
    std::vector<uint8_t> bytes(static_cast<size_t>(n) * 4);
    std::memcpy(bytes.data(), mine.data_ptr<float>(), bytes.size());
    store_->set(tag + std::to_string(rank_), bytes);
    at::Tensor sum = at::zeros({n}, at::kDouble);
    for (int r = 0; r < world_; ++r) {  // fixed order: identical result on every rank
      std::vector<uint8_t> b = store_->get(tag + std::to_string(r));
      TORCH_CHECK(static_cast<int64_t>(b.size()) == n * 4, "all_reduce: rank ", r, " sent ", b.size(),
                  " bytes, expected ", n * 4, " (ranks disagree on the parameters)");
      sum.add_(at::from_blob(b.data(), {n}, at::kFloat).to(at::kDouble));
    }
    at::Tensor mean = (sum / static_cast<double>(world_)).to(at::kFloat);
    int64_t off = 0;
    for (auto& t : tensors) {
      at::NoGradGuard no_grad;
      t.copy_(mean.narrow(0, off, t.numel()).view(t.sizes()).to(t.device(), t.scalar_type()));
      off += t.numel();
    }
    // The last rank to finish reading removes the keys.
    if (store_->add(tag + "read", 1) == world_)
      for (int r = 0; r < world_; ++r) store_->deleteKey(tag + std::to_string(r));
  }

  void barrier() override {
    const std::string key = "barrier/" + std::to_string(seq_++);
    if (store_->add(key, 1) == world_) store_->set(key + "/go", std::vector<uint8_t>{1});
    store_->wait({key + "/go"});
  }

 private:
  int rank_, world_;
  int64_t seq_ = 0;
  c10::intrusive_ptr<c10d::Store> store_;
};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  LAWCAT_CHECK(end && *end == '\0', ConfigError, "environment variable " << name << "='" << v << "' is not an integer");
  return static_cast<int>(x);
}

void check_rank(const DistributedOptions& o) {
  LAWCAT_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world, ConfigError,
               "data parallel: RANK " << o.rank << " is outside 0.." << o.world - 1 << " (WORLD_SIZE " << o.world << ")");
}

// "cpu", "cuda", "cuda:N", "auto" (CUDA when a device is present, as the recipe resolves it).
bool names_cuda(const std::string& device) {
  if (device == "auto") return at::hasCUDA();
  return device.rfind("cuda", 0) == 0;
}
}  // namespace

namespace detail {
c10::intrusive_ptr<c10d::Store> connect_store(const DistributedOptions& o) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.master_port);
  so.isServer = o.rank == 0;
  so.numWorkers = static_cast<size_t>(o.world);
  so.waitWorkers = true;
  so.timeout = std::chrono::seconds(o.timeout_s);
  try {
    return c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    throw Error("data parallel: rank " + std::to_string(o.rank) + " cannot reach the store at " + o.master_addr + ":" +
                std::to_string(o.master_port) + ": " + e.what());
  }
}
}  // namespace detail

std::unique_ptr<Communicator> make_store_communicator(const DistributedOptions& o) {
  check_rank(o);
  return std::make_unique<StoreCommunicator>(o);
}

int local_rank_from_env(int rank) { return env_int("LOCAL_RANK", rank); }

std::unique_ptr<Communicator> communicator_from_env(const std::string& device) {
  // The backend variable is checked even for one process, so a typo shows up at once.
  std::string backend;
  if (const char* b = std::getenv("LAWCAT_DP_BACKEND")) backend = b;
  LAWCAT_CHECK(backend.empty() || backend == "auto" || backend == "store" || backend == "nccl", ConfigError,
               "environment variable LAWCAT_DP_BACKEND='"
                   << backend << "' is not a data-parallel backend: use store or nccl (or leave it unset: "
                   << "nccl for CUDA runs of a build with NCCL support, store otherwise)");
  const int world = env_int("WORLD_SIZE", 1);
  if (world <= 1) return nullptr;
  DistributedOptions o;
  o.world = world;
  o.rank = env_int("RANK", -1);
  LAWCAT_CHECK(o.rank >= 0, ConfigError, "WORLD_SIZE is " << world << " but RANK is not set");
  check_rank(o);
  if (const char* a = std::getenv("MASTER_ADDR")) o.master_addr = a;
  o.master_port = env_int("MASTER_PORT", 29500);

  const bool cuda = names_cuda(device);
  if (backend == "nccl") {
    LAWCAT_CHECK(have_nccl(), ConfigError,
                 "environment variable LAWCAT_DP_BACKEND=nccl, but this build has no NCCL support (it needs the CUDA "
                 "kernels built and the torch wheel's nccl.h found at configure time; `lawcat info` shows it). "
                 "Use LAWCAT_DP_BACKEND=store or leave it unset");
    LAWCAT_CHECK(cuda, ConfigError,
                 "environment variable LAWCAT_DP_BACKEND=nccl needs a CUDA device, but the run's device is '"
                     << device << "'" << (device == "auto" ? " (no CUDA device found)" : "")
                     << ". Use LAWCAT_DP_BACKEND=store for CPU runs");
  }
  const bool nccl = backend == "nccl" || ((backend.empty() || backend == "auto") && cuda && have_nccl());
  if (!nccl) return make_store_communicator(o);
  // The GPU: the config's index when it names one, else LOCAL_RANK (as the recipe picks it).
  int index = -1;
  if (device.rfind("cuda:", 0) == 0) {
    char* end = nullptr;
    index = static_cast<int>(std::strtol(device.c_str() + 5, &end, 10));
    LAWCAT_CHECK(end && *end == '\0' && index >= 0, ConfigError, "device '" << device << "' is not cuda:N");
  } else {
    index = local_rank_from_env(o.rank);
  }
  return make_nccl_communicator(o, index);
}

}  // namespace lawcat::train
