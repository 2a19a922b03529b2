#include "ops/rope.h"

namespace lawcat::ops {

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t D = x.size(-1);
  TORCH_CHECK(cos.size(-1) == D && sin.size(-1) == D && cos.size(0) == x.size(-2),
              "apply_rope: x ", x.sizes(), " vs cos ", cos.sizes(), " sin ", sin.sizes());
  at::Tensor x1 = x.narrow(-1, 0, D / 2);
  at::Tensor x2 = x.narrow(-1, D / 2, D / 2);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

}  // namespace lawcat::ops
