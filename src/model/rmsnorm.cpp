#include "model/rmsnorm.h"

#include <c10/util/irange.h>

namespace lawcat::model {

RMSNormImpl::RMSNormImpl(const RMSNormOptions& options_) : options(options_) { reset(); }

void RMSNormImpl::reset() {
  TORCH_CHECK(options.dim() > 0, "RMSNorm: dim must be positive, got ", options.dim());
  weight = register_parameter("weight", at::ones({options.dim()}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.size(-1) == options.dim(), "RMSNorm: input last dim ", x.size(-1),
              " != weight dim ", options.dim());
  const auto dtype = x.scalar_type();
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);  // [..., 1]
  at::Tensor normed = (xf * at::rsqrt(var + options.eps())).to(dtype);
  return weight * normed;
}

}  // namespace lawcat::model
