// Data parallel training across processes, launched torchrun-style:
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
//
// Rendezvous and collectives go through LibTorch's c10d::TCPStore (rank 0
// hosts it). The gradient all-reduce gathers every rank's gradients through
// the store and sums them in rank order in fp64, so every rank ends with
// bit-identical gradients (and weights) whatever the arrival order.
//
// Why not ProcessGroupGloo / ProcessGroupNCCL: the torch wheel ships neither
// the gloo headers that ProcessGroupGloo.hpp includes nor a way to build a
// process group by name from C++; the store path is exact and enough for the
// small gradients of stage 1 (LAWCAT parameters) and stage 2 (LoRA), staged
// through host memory on GPUs. Full-model pretraining over many ranks would
// want NCCL (see docs/training.md).
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

// From the torchrun variables; null when WORLD_SIZE is unset or 1. ConfigError
// for inconsistent variables.
std::unique_ptr<Communicator> communicator_from_env(const std::string& device);

}  // namespace lawcat::train
