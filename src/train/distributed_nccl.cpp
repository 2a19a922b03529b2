// The NCCL communicator (see train/distributed.h): LibTorch's c10d::ProcessGroupNCCL
// over the rendezvous TCPStore. Only this file includes ProcessGroupNCCL.hpp; the
// build defines LAWCAT_HAVE_NCCL (and USE_C10D_NCCL) and adds the torch wheel's
// nccl.h for it alone (cmake/lawcat_nccl.cmake). Without them it compiles to the
// stubs at the bottom.
#include "train/distributed.h"

#include "util/error.h"
#include "util/log.h"

#if defined(LAWCAT_HAVE_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>

#include "train/distributed_store.h"
#endif

namespace lawcat::train {

#if defined(LAWCAT_HAVE_NCCL)
namespace {
class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const DistributedOptions& o, int cuda_index)
      : rank_(o.rank), world_(o.world), device_(at::kCUDA, static_cast<c10::DeviceIndex>(cuda_index)) {
    // NCCL, the caching allocator and the recipe's model all work on this GPU.
    c10::cuda::set_device(device_.index());
    store_ = detail::connect_store(o);
    const std::string where = "data parallel (NCCL): rank " + std::to_string(rank_) + " on " + device_.str();
    try {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s) * 1000);
      opts->group_name = "0";  // the default (world) group, as torch.distributed names it
      opts->group_desc = "lawcat_data_parallel";
      pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store_),
                                                        rank_, world_, opts);
      // Bind the group to our GPU (barrier() then needs no guess) and build the
      // communicator now, so a broken NCCL setup fails here rather than at step 1.
      pg_->setBoundDeviceId(device_);
      pg_->eagerConnectSingleDevice(device_);
    } catch (const std::exception& e) {
      throw Error(where + ": cannot create the NCCL process group: " + e.what());
    }
    log::info("data parallel: rank ", rank_, " of ", world_, " on ", device_.str(), " connected to ", o.master_addr,
              ":", o.master_port, " (NCCL all-reduce)");
  }

  ~NcclCommunicator() override {
    try {
      pg_->shutdown();
      // Rank 0 hosts the store: it waits (briefly) until every rank has shut its
      // communicator down, so none loses the store while still tearing down.
      if (store_->add("nccl_exit", 1) == world_) store_->set("nccl_exit/go", std::vector<uint8_t>{1});
      if (rank_ == 0) store_->wait({"nccl_exit/go"}, std::chrono::seconds(30));
    } catch (const std::exception& e) {
      log::warn("data parallel (NCCL): rank ", rank_, ": shutdown: ", e.what());
    }
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  void all_reduce_mean(std::vector<at::Tensor>& tensors) override {
    if (tensors.empty()) return;
    c10::cuda::CUDAGuard guard(device_);
    at::NoGradGuard no_grad;
    // One flat buffer on our GPU: fp64 when every tensor is, fp32 otherwise (the
    // trainable parameters and their gradients are fp32).
    bool all_double = true;
    for (const auto& t : tensors) all_double = all_double && t.scalar_type() == at::kDouble;
    const at::ScalarType dtype = all_double ? at::kDouble : at::kFloat;
    std::vector<at::Tensor> flat;
    flat.reserve(tensors.size());
    for (const auto& t : tensors) flat.push_back(t.detach().to(device_, dtype).reshape({-1}));
    std::vector<at::Tensor> buf{at::cat(flat)};
    c10d::AllreduceOptions ao;
    ao.reduceOp = c10d::ReduceOp::SUM;
    try {
      // wait(): our stream waits for NCCL's, so the division below sees the sum.
      pg_->allreduce(buf, ao)->wait();
    } catch (const std::exception& e) {
      throw Error("data parallel (NCCL): rank " + std::to_string(rank_) + ": all-reduce of " +
                  std::to_string(buf[0].numel()) + " values failed: " + e.what());
    }
    at::Tensor mean = buf[0].div_(static_cast<double>(world_));
    int64_t off = 0;
    for (auto& t : tensors) {
      t.copy_(mean.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }

  void barrier() override {
    c10::cuda::CUDAGuard guard(device_);
    c10d::BarrierOptions bo;
    bo.device_ids = {static_cast<int64_t>(device_.index())};
    pg_->barrier(bo)->wait();
    // Host-blocking, whatever wait() does for a barrier in this torch version: the
    // recipe's other ranks read files rank 0 wrote before the barrier.
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
  }

 private:
  int rank_, world_;
  at::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
};
}  // namespace

bool have_nccl() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(const DistributedOptions& o, int cuda_index) {
  LAWCAT_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world, ConfigError,
               "data parallel: RANK " << o.rank << " is outside 0.." << o.world - 1 << " (WORLD_SIZE " << o.world << ")");
  const int n = static_cast<int>(c10::cuda::device_count());
  LAWCAT_CHECK(cuda_index >= 0 && cuda_index < n, ConfigError,
               "data parallel (NCCL): rank " << o.rank << " wants cuda:" << cuda_index << " (LOCAL_RANK, or the config's "
                                             << "device), but this machine has " << n << " CUDA device(s)");
  return std::make_unique<NcclCommunicator>(o, cuda_index);
}

#else  // built without NCCL

bool have_nccl() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(const DistributedOptions&, int) {
  throw ConfigError(
      "data parallel: this build has no NCCL support (it needs the CUDA kernels built, libtorch_cuda and the torch "
      "wheel's nccl.h at configure time); use the store backend (LAWCAT_DP_BACKEND=store)");
}

#endif

}  // namespace lawcat::train
