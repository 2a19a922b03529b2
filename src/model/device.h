// Device and dtype names as the CLI and configs spell them ("cuda:1", "bf16", "auto").
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "io/hf_config.h"

namespace lawcat::model {

// "float32" / "bfloat16" / "float16" <-> ScalarType (ConfigError on others).
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(at::ScalarType dtype);
// "cpu", "cuda", "cuda:N" -> Device (ConfigError when CUDA is asked for but unavailable).
at::Device parse_device(const std::string& name);
// "auto": float32 on the CPU; on CUDA the config's torch_dtype when it is
// bfloat16 or float16, else float32. Anything else: parse_dtype.
at::ScalarType resolve_dtype(const std::string& name, at::Device device, const io::LlamaConfig& config);

}  // namespace lawcat::model
