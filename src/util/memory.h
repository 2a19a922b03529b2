// Resident memory of this process (Linux /proc/self/status): what `bench decode` reports as
// the memory a decoder needs on the CPU, where there is no allocator statistic to ask.
#pragma once
#include <cstdint>

namespace lawcat::memory {

struct Resident {
  int64_t current_bytes = -1;  // VmRSS; -1 where unknown (not Linux)
  int64_t peak_bytes = -1;     // VmHWM: the high-water mark since the process started
};

Resident resident();

}  // namespace lawcat::memory
