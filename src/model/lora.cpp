#include "model/lora.h"

#include <set>

#include "util/error.h"
#include "util/log.h"

namespace lawcat::model {

bool is_lora_parameter_name(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

LoraAdapters::LoraAdapters(std::vector<Adapter> adapters, LoraOptions options)
    : adapters_(std::move(adapters)), options_(std::move(options)) {}

LoraAdapters::~LoraAdapters() {
  if (attached_) restore();
}

void LoraAdapters::refresh() {
  const double s = options_.scale();
  for (auto& a : adapters_) {
    // [out, r] @ [r, in] in fp32, then W's dtype; W itself has no grad.
    at::Tensor delta = at::mm(a.B->weight, a.A->weight).mul(s);
    a.base->weight = a.frozen + delta.to(a.frozen.scalar_type());
  }
}

void LoraAdapters::restore() {
  for (auto& a : adapters_) a.base->weight = a.frozen;
}

void LoraAdapters::detach() {
  if (!attached_) return;
  restore();
  for (auto& a : adapters_) {
    a.base->unregister_module("lora_A");
    a.base->unregister_module("lora_B");
  }
  attached_ = false;
}

std::vector<std::pair<std::string, at::Tensor>> LoraAdapters::parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& a : adapters_) {
    out.emplace_back(a.name + ".lora_A.weight", a.A->weight);
    out.emplace_back(a.name + ".lora_B.weight", a.B->weight);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> LoraAdapters::merged_weights(at::ScalarType dtype) const {
  at::NoGradGuard no_grad;
  std::vector<std::pair<std::string, at::Tensor>> out;
  const double s = options_.scale();
  for (const auto& a : adapters_) {
    at::Tensor w = a.frozen.to(at::kFloat) + at::mm(a.B->weight, a.A->weight).mul(s);
    out.emplace_back(a.name + ".weight", w.to(dtype));
  }
  return out;
}

namespace {

// A projection of a decoder layer: model.layers.N.self_attn.<leaf> or model.layers.N.mlp.<leaf>
// (deeper modules such as the LAWCAT gate or an earlier lora_A are not projections).
struct Projection {
  std::string name, leaf;
  int64_t layer = -1;
  std::shared_ptr<torch::nn::LinearImpl> linear;
};

std::vector<Projection> decoder_projections(LlamaForCausalLMImpl& model) {
  std::vector<Projection> out;
  std::set<const void*> seen;
  for (auto& item : model.named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    if (name.rfind("model.layers.", 0) != 0) continue;
    const auto attn = name.rfind(".self_attn."), mlp = name.rfind(".mlp.");
    const size_t start = attn != std::string::npos ? attn + 11 : mlp != std::string::npos ? mlp + 5 : std::string::npos;
    if (start == std::string::npos) continue;
    const std::string leaf = name.substr(start);
    if (leaf.find('.') != std::string::npos) continue;
    auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(item.value());
    if (!linear || !seen.insert(linear.get()).second) continue;
    out.push_back({name, leaf, std::stoll(name.substr(13, name.find('.', 13) - 13)), linear});  // model.layers.<N>.…
  }
  return out;
}

// The options checked against the model; returns the projections that get adapters.
std::vector<Projection> chosen_projections(LlamaForCausalLMImpl& model, const LoraOptions& o) {
  LAWCAT_CHECK(o.rank > 0, ConfigError, "lora.lora_rank: must be > 0 (got " << o.rank << ")");
  LAWCAT_CHECK(o.alpha > 0, ConfigError, "lora.lora_alpha: must be > 0 (got " << o.alpha << ")");
  LAWCAT_CHECK(o.dropout == 0.0, ConfigError,
               "lora.lora_dropout: only 0 is supported (got " << o.dropout
                                                              << "): the LoRA update is folded into the projection "
                                                                 "weight, which leaves no place for input dropout");
  LAWCAT_CHECK(!o.targets.empty(), ConfigError, "lora.lora_targets: empty (e.g. [q_proj, k_proj, v_proj, o_proj])");
  const std::set<int64_t> layers(o.layers.begin(), o.layers.end());
  const int64_t num_layers = model.num_layers();
  for (int64_t l : layers)
    LAWCAT_CHECK(l >= 0 && l < num_layers, ConfigError,
                 "lora.lora_layers: layer " << l << " is not in the model (decoder layers 0.." << num_layers - 1 << ")");
  const std::set<std::string> wanted(o.targets.begin(), o.targets.end());
  std::set<std::string> matched, available;
  std::vector<Projection> chosen;
  for (auto& p : decoder_projections(model)) {
    available.insert(p.leaf);
    if (!wanted.count(p.leaf) || (!layers.empty() && !layers.count(p.layer))) continue;
    LAWCAT_CHECK(!p.linear->named_children().contains("lora_A"), ConfigError, p.name << " already has a LoRA adapter");
    matched.insert(p.leaf);
    chosen.push_back(std::move(p));
  }
  std::string missing;
  for (const auto& t : wanted)
    if (!matched.count(t)) missing += (missing.empty() ? "" : ", ") + t;
  if (!missing.empty()) {
    std::string avail;
    for (const auto& t : available) avail += (avail.empty() ? "" : ", ") + t;
    throw ConfigError("lora.lora_targets: no projection named " + missing + " in the decoder layers (the model has: " + avail + ")");
  }
  return chosen;
}

}  // namespace

void check_lora_options(LlamaForCausalLMImpl& model, const LoraOptions& o) { (void)chosen_projections(model, o); }

std::shared_ptr<LoraAdapters> apply_lora(LlamaForCausalLMImpl& model, const LoraOptions& o) {
  std::vector<LoraAdapters::Adapter> adapters;
  for (const Projection& p : chosen_projections(model, o)) {
    const at::Tensor w = p.linear->weight;
    const int64_t out = w.size(0), in = w.size(1);
    LoraAdapters::Adapter a;
    a.name = p.name;
    a.base = p.linear;
    a.frozen = w;
    a.A = torch::nn::Linear(torch::nn::LinearOptions(in, o.rank).bias(false));  // kaiming-uniform(a=√5)
    a.B = torch::nn::Linear(torch::nn::LinearOptions(o.rank, out).bias(false));
    {
      at::NoGradGuard no_grad;
      a.B->weight.zero_();
    }
    a.A->to(w.device(), at::kFloat);
    a.B->to(w.device(), at::kFloat);
    p.linear->register_module("lora_A", a.A);
    p.linear->register_module("lora_B", a.B);
    adapters.push_back(std::move(a));
  }
  int64_t n = 0;
  for (const auto& a : adapters) n += a.A->weight.numel() + a.B->weight.numel();
  log::info("LoRA: rank ", o.rank, ", alpha ", o.alpha, " on ", adapters.size(), " projections (", n, " parameters)");
  return std::make_shared<LoraAdapters>(std::move(adapters), o);
}

}  // namespace lawcat::model
