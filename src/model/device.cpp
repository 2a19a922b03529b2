#include "model/device.h"

#include <ATen/Context.h>

#include "util/error.h"

namespace lawcat::model {

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  if (name == "float64" || name == "fp64" || name == "double") return at::kDouble;
  throw ConfigError("unknown dtype '" + name + "' (float32, bfloat16, float16, float64)");
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kDouble: return "float64";
    default: return c10::toString(dtype);
  }
}

at::Device parse_device(const std::string& name) {
  at::Device device = at::kCPU;
  try {
    device = at::Device(name);
  } catch (const std::exception&) {
    throw ConfigError("unknown device '" + name + "' (cpu, cuda, cuda:N)");
  }
  if (device.is_cuda()) {
    LAWCAT_CHECK(at::hasCUDA(), ConfigError, "device '" << name << "' requested but CUDA is not available");
  } else {
    LAWCAT_CHECK(device.is_cpu(), ConfigError, "unsupported device '" << name << "' (cpu, cuda, cuda:N)");
  }
  return device;
}

at::ScalarType resolve_dtype(const std::string& name, at::Device device, const io::LlamaConfig& config) {
  if (name != "auto") return parse_dtype(name);
  if (!device.is_cuda()) return at::kFloat;
  if (config.torch_dtype == "bfloat16" || config.torch_dtype == "float16") return parse_dtype(config.torch_dtype);
  return at::kFloat;
}

}  // namespace lawcat::model
