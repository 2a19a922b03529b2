#include "ops/rope.h"

namespace lawcat::ops {

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t D = x.size(-1);
  TORCH_CHECK(cos.size(-1) == D && sin.size(-1) == D && cos.size(-2) == x.size(-2) &&
                  (cos.dim() == 2 || (cos.dim() >= 3 && x.dim() == 4 && cos.size(0) == x.size(0))),
              "apply_rope: x ", x.sizes(), " vs cos ", cos.sizes(), " sin ", sin.sizes());
  if (cos.dim() == 3) return apply_rope(x, cos.unsqueeze(1), sin.unsqueeze(1));  // [B, T, D]: per-row positions
  at::Tensor x1 = x.narrow(-1, 0, D / 2);
  at::Tensor x2 = x.narrow(-1, D / 2, D / 2);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

}  // namespace lawcat::ops
