#include "train/optim.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace lawcat::train {

ReduceLROnPlateau::ReduceLROnPlateau(double lr, double factor, int64_t patience, double min_lr, double threshold)
    : lr_(lr), factor_(factor), min_lr_(min_lr), threshold_(threshold), patience_(patience),
      best_(std::numeric_limits<double>::infinity()) {}

bool ReduceLROnPlateau::step(double metric) {
  if (metric < best_ * (1.0 - threshold_)) {
    best_ = metric;
    num_bad_ = 0;
  } else {
    ++num_bad_;
  }
  if (num_bad_ > patience_) {
    num_bad_ = 0;
    const double next = std::max(lr_ * factor_, min_lr_);
    if (lr_ - next > 1e-8 * lr_) {  // PyTorch's eps: ignore negligible changes
      lr_ = next;
      return true;
    }
  }
  return false;
}

nlohmann::json ReduceLROnPlateau::state() const {
  return {{"lr", lr_}, {"best", std::isfinite(best_) ? nlohmann::json(best_) : nlohmann::json(nullptr)},
          {"num_bad", num_bad_}, {"factor", factor_}, {"patience", patience_}, {"min_lr", min_lr_}};
}

void ReduceLROnPlateau::load_state(const nlohmann::json& j) {
  lr_ = j.at("lr").get<double>();
  best_ = j.at("best").is_null() ? std::numeric_limits<double>::infinity() : j.at("best").get<double>();
  num_bad_ = j.at("num_bad").get<int64_t>();
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedTensors& params, double lr, double weight_decay) {
  std::vector<at::Tensor> ps;
  for (const auto& [n, p] : params) ps.push_back(p);
  return std::make_unique<torch::optim::AdamW>(ps, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

NamedTensors adamw_state_tensors(torch::optim::AdamW& opt, const NamedTensors& params,
                                 std::map<std::string, int64_t>& steps) {
  NamedTensors out;
  auto& state = opt.state();
  for (const auto& [name, p] : params) {
    auto it = state.find(p.unsafeGetTensorImpl());
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    out.emplace_back(name + ".exp_avg", s.exp_avg().detach().cpu().contiguous());
    out.emplace_back(name + ".exp_avg_sq", s.exp_avg_sq().detach().cpu().contiguous());
    steps[name] = s.step();
  }
  return out;
}

void load_adamw_state(torch::optim::AdamW& opt, const NamedTensors& params,
                      const std::map<std::string, at::Tensor>& tensors, const std::map<std::string, int64_t>& steps,
                      const std::string& where) {
  auto& state = opt.state();
  for (const auto& [name, p] : params) {
    auto st = steps.find(name);
    if (st == steps.end()) continue;  // no state yet for this parameter
    auto a = tensors.find(name + ".exp_avg"), b = tensors.find(name + ".exp_avg_sq");
    LAWCAT_CHECK(a != tensors.end() && b != tensors.end(), CheckpointError,
                 where << ": optimizer state of '" << name << "' is missing (exp_avg / exp_avg_sq)");
    LAWCAT_CHECK(a->second.sizes() == p.sizes() && b->second.sizes() == p.sizes(), CheckpointError,
                 where << ": optimizer state of '" << name << "' has shape " << a->second.sizes()
                       << ", the parameter has " << p.sizes());
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(st->second);
    s->exp_avg(a->second.to(p.device(), p.scalar_type()).clone());
    s->exp_avg_sq(b->second.to(p.device(), p.scalar_type()).clone());
    state[p.unsafeGetTensorImpl()] = std::move(s);
  }
}

double grad_norm(const NamedTensors& params) {
  at::Tensor sq;  // one device sync at the end, not one per parameter
  for (const auto& [n, p] : params) {
    if (!p.grad().defined()) continue;
    at::Tensor s = p.grad().to(at::kFloat).pow(2).sum().to(at::kDouble);
    sq = sq.defined() ? sq + s.to(sq.device()) : s;
  }
  return sq.defined() ? std::sqrt(sq.item<double>()) : 0.0;
}

}  // namespace lawcat::train
