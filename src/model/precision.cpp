#include "model/precision.h"

#include <ATen/Context.h>

#include "util/log.h"

namespace lawcat::model {

void use_tf32_on_cuda(const c10::Device& device) {
  if (!device.is_cuda()) return;
  at::globalContext().setFloat32MatmulPrecision("high");
  log::info("fp32 matmuls on TF32 tensor cores (", device.str(), ")");
}

}  // namespace lawcat::model
