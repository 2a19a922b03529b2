// Data parallel training across processes, launched torchrun-style:
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
//
// Rendezvous goes through LibTorch's c10d::TCPStore (rank 0 hosts it). Two
// gradient all-reduces sit behind the Communicator interface (train/loop.h):
//
//  * store (CPU runs, and any run with LAWCAT_DP_BACKEND=store): every rank
//    publishes its gradients in the store and all ranks sum them in rank order
//    in fp64, so every rank ends with bit-identical gradients (and weights)
//    whatever the arrival order. Gradients travel through host memory.
//  * nccl (CUDA runs of a build with NCCL support, train/distributed_nccl.cpp):
//    LibTorch's c10d::ProcessGroupNCCL over the same store; the gradients are
//    flattened into one CUDA buffer, summed by ncclAllReduce, divided by the
//    world size. NCCL gives every rank the same sum, so ranks still agree bitwise.
//
// ProcessGroupGloo is not an option for the CPU: the torch wheel does not ship
// the gloo headers that ProcessGroupGloo.hpp includes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "train/loop.h"

namespace lawcat::train {

struct DistributedOptions {
  int rank = 0, world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int timeout_s = 300;
};

// Connects (rank 0 also starts the store). Throws Error naming the address on failure.
std::unique_ptr<Communicator> make_store_communicator(const DistributedOptions& options);

// NCCL all-reduce on cuda:<cuda_index> (set as this process's current device).
// ConfigError when the build has no NCCL support (have_nccl() is false) or the
// index names no CUDA device; Error naming the rank when NCCL cannot connect.
std::unique_ptr<Communicator> make_nccl_communicator(const DistributedOptions& options, int cuda_index);

// Whether this build has the NCCL communicator (CUDA kernels built, libtorch_cuda
// linked, the torch wheel's nccl.h found at configure time: LAWCAT_HAVE_NCCL).
bool have_nccl();

// LOCAL_RANK when set (ConfigError when not an integer), else `rank`: the GPU a
// rank trains on when the config's device names none ("cuda", "auto").
int local_rank_from_env(int rank);

// From the torchrun variables; null when WORLD_SIZE is unset or 1. The backend:
// LAWCAT_DP_BACKEND=store|nccl forces one; unset (or "auto"): nccl when `device`
// ("cpu", "cuda", "cuda:N", "auto") is CUDA and have_nccl(), store otherwise.
// ConfigError for inconsistent variables, a bad LAWCAT_DP_BACKEND value, or nccl
// asked for without NCCL support or without a CUDA device.
std::unique_ptr<Communicator> communicator_from_env(const std::string& device);

}  // namespace lawcat::train
