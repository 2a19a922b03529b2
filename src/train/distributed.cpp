#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/log.h"

namespace lawcat::train {

namespace {
class StoreCommunicator : public Communicator {
 public:
  StoreCommunicator(const DistributedOptions& o) : rank_(o.rank), world_(o.world) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world);
    so.waitWorkers = true;
    so.timeout = std::chrono::seconds(o.timeout_s);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    } catch (const std::exception& e) {
      throw Error("data parallel: rank " + std::to_string(o.rank) + " cannot reach the store at " + o.master_addr + ":" +
                  std::to_string(o.master_port) + ": " + e.what());
    }
    log::info("data parallel: rank ", rank_, " of ", world_, " connected to ", o.master_addr, ":", o.master_port);
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
  c10::intrusive_ptr<c10d::TCPStore> store_;
};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  LAWCAT_CHECK(end && *end == '\0', ConfigError, "environment variable " << name << "='" << v << "' is not an integer");
  return static_cast<int>(x);
}
}  // namespace

std::unique_ptr<Communicator> make_store_communicator(const DistributedOptions& o) {
  LAWCAT_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world, ConfigError,
               "data parallel: RANK " << o.rank << " is outside 0.." << o.world - 1 << " (WORLD_SIZE " << o.world << ")");
  return std::make_unique<StoreCommunicator>(o);
}

std::unique_ptr<Communicator> communicator_from_env(const std::string& device) {
  const int world = env_int("WORLD_SIZE", 1);
  if (world <= 1) return nullptr;
  DistributedOptions o;
  o.world = world;
  o.rank = env_int("RANK", -1);
  LAWCAT_CHECK(o.rank >= 0, ConfigError, "WORLD_SIZE is " << world << " but RANK is not set");
  if (const char* a = std::getenv("MASTER_ADDR")) o.master_addr = a;
  o.master_port = env_int("MASTER_PORT", 29500);
  return make_store_communicator(o);
}

}  // namespace lawcat::train
