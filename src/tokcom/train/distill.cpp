#include "tokcom/train/distill.h"

#include <torch/torch.h>

#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"

namespace tokcom {

namespace {

// The frozen teacher `arch` (vit | mobilenet | mobilenet-v3-small | mobilenet-v3-large) from
// t.weights, every tensor required, in eval mode without gradients on `device`.
// `key` names where the weights came from in messages.
void load_teacher(const Config& config, const std::string& teacher_arch, const std::string& key, torch::Device device,
                  Teacher& t) {
  torch::nn::Module* module = nullptr;
  if (teacher_arch == "vit") {
    VitOptions options = vit_options_from_config(config);
    options.adaptive_blocks({}).calibration_kept({}).calibration_budget({}).budget_cap(false).budget_cap_train(false).drop_path(0.0);
    t.vit = Vit(options);
    module = t.vit.get();
  } else {
    MobileNetV3Options options = mobilenet_options_from_config(config);
    if (teacher_arch != "mobilenet") options.variant(mobilenet_variant_from_model_name(teacher_arch));
    t.mobilenet = MobileNetV3(options);
    module = t.mobilenet.get();
  }
  const LoadReport report = load_module(t.weights, *module, /*strict=*/false);
  if (!report.missing.empty()) {
    throw ConfigError(fmt::format("{}: {} lacks {} tensors of the teacher (the first: '{}'); expected the weights of a "
                                  "trained {} with this config's shape",
                                  key, t.weights, report.missing.size(), report.missing.front(), teacher_arch));
  }
  module->to(device);
  module->eval();
  for (auto& p : module->parameters()) p.requires_grad_(false);
}

}  // namespace

Teacher make_teacher(const Config& config, const std::string& stage, const std::string& arch, torch::Device device) {
  Teacher t;
  t.kl = config.get_double("train.distill_kl");
  t.tokens = config.get_double("train.distill_tokens");
  t.temperature = config.get_double("train.distill_temperature");
  t.hard = config.get_double("train.distill_hard");
  if (!t.active()) return t;
  std::string teacher_arch = config.get_string("train.teacher_model");
  if (teacher_arch == "same") teacher_arch = arch;
  if (teacher_arch != "vit" && teacher_arch != "mobilenet" && teacher_arch != "mobilenet-v3-small" &&
      teacher_arch != "mobilenet-v3-large") {
    throw ConfigError("train.teacher_model: '" + teacher_arch +
                      "', expected same, vit, mobilenet-v3-small or mobilenet-v3-large");
  }
  if (t.tokens > 0.0 && (stage != "adaptive" || arch != "vit" || teacher_arch != "vit")) {
    throw ConfigError("train.distill_tokens: token distillation weighs the kept tokens of the adaptive ViT against a "
                      "ViT teacher's; set it only with train.stage=adaptive and a ViT teacher (it is " + stage +
                      ", train.model " + arch + ", teacher " + teacher_arch + ")");
  }
  t.weights = config.get_string("train.teacher");
  if (t.weights.empty() && stage == "adaptive") t.weights = config.get_string("train.init");
  if (t.weights.empty()) {
    throw ConfigError("train.distill_kl / train.distill_hard / train.distill_tokens need a teacher: set train.teacher "
                      "to its safetensors (the adaptive stage uses train.init when train.teacher is empty)");
  }
  load_teacher(config, teacher_arch, config.get_string("train.teacher").empty() ? "train.init" : "train.teacher", device, t);
  spdlog::info("distilling from {} ({}; hard-label weight {}, KL weight {}, token weight {}, T = {})", t.weights,
               teacher_arch, t.hard, t.kl, t.tokens, t.temperature);
  return t;
}

Teacher make_clean_teacher(const Config& config, const std::string& arch, torch::Device device) {
  Teacher t;
  t.kl = config.get_double("train.jscc_distill_kl");
  t.temperature = config.get_double("train.distill_temperature");
  if (!(std::isfinite(t.kl) && t.kl >= 0.0 && t.kl <= 1e3)) {
    throw ConfigError(fmt::format("train.jscc_distill_kl: {}, expected a finite number in [0, 1000] (0 = the paper's CE)", t.kl));
  }
  if (!t.active()) return t;
  t.weights = config.get_string("train.init");
  load_teacher(config, arch, "train.init", device, t);
  spdlog::info("jscc: KL to the clean model's logits ({}, every token, no channel), weight {}, T = {}", t.weights, t.kl,
               t.temperature);
  return t;
}

TeacherOutput Teacher::forward(const torch::Tensor& images) const {
  torch::NoGradGuard no_grad;  // not InferenceMode: its tensors could not enter the student's graph
  TeacherOutput out;
  if (vit) {
    Vit v = vit;
    out.tokens = v->forward_blocks(v->embed(images), 0, v->options.depth(), SelectionMode::kSoft);
    out.logits = v->forward_head(out.tokens);
  } else {
    MobileNetV3 m = mobilenet;
    out.logits = m->forward(images);
  }
  return out;
}

torch::Tensor distillation_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature) {
  if (student_logits.sizes() != teacher_logits.sizes()) {
    throw ShapeError(fmt::format("distillation_kl: student logits {} and teacher logits {} differ in shape",
                                 c10::str(student_logits.sizes()), c10::str(teacher_logits.sizes())));
  }
  const torch::Tensor log_p_teacher = torch::log_softmax(teacher_logits.to(torch::kFloat) / temperature, 1);
  const torch::Tensor log_p_student = torch::log_softmax(student_logits.to(torch::kFloat) / temperature, 1);
  return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1).mean() * (temperature * temperature);
}

torch::Tensor token_distillation(Vit& student, const TokenState& student_tokens, Vit& teacher,
                                 const TokenState& teacher_tokens) {
  const int64_t n = student->options.num_patches();
  using torch::indexing::Slice;
  if (teacher_tokens.x.size(1) < 1 + n || student_tokens.x.size(1) < 1 + n) {
    throw ShapeError(fmt::format("token_distillation: expected at least 1 + {} tokens (soft path), got student {} and "
                                 "teacher {}",
                                 n, student_tokens.x.size(1), teacher_tokens.x.size(1)));
  }
  const torch::Tensor s = student->norm(student_tokens.x.index({Slice(), Slice(1, 1 + n)}));
  const torch::Tensor t = teacher->norm(teacher_tokens.x.index({Slice(), Slice(1, 1 + n)}));
  const torch::Tensor per_token = (s.to(torch::kFloat) - t.to(torch::kFloat)).pow(2).mean(-1);  // (B, N)
  if (!student_tokens.mask.defined()) return per_token.mean();
  const torch::Tensor m = student_tokens.mask.index({Slice(), Slice(1, 1 + n)}).to(torch::kFloat);
  return (per_token * m).sum() / m.sum().clamp_min(1e-6);
}

}  // namespace tokcom
