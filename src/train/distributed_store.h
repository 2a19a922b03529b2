// Internal to train/distributed*.cpp: the c10d store both communicators rendezvous through.
#pragma once
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "train/distributed.h"

namespace lawcat::train::detail {

// A c10d::TCPStore at master_addr:master_port (rank 0 hosts it and waits for all
// `world` ranks). Throws Error naming the address on failure.
c10::intrusive_ptr<c10d::Store> connect_store(const DistributedOptions& options);

}  // namespace lawcat::train::detail
