// Distillation from a frozen teacher (backbone and adaptive stages; docs/model.md "Distillation"):
// DeiT's hard-label distillation (CE to the teacher's argmax, weighed against the labels' CE), the
// KL between the teacher's and the student's logits at temperature T (Hinton; DynamicViT's
// self-distillation of the adaptive model from its backbone) and DynamicViT's token distillation,
// the kept tokens' distance to the teacher's final tokens. The teacher is the student's architecture
// (a static ViT from the `model` section, or MobileNetV3 from `mobilenet`) or, by
// train.teacher_model, a MobileNetV3 of either size (a convnet teacher for the ViT, as DeiT's); it
// runs in eval mode without gradients on the same (mixed) images as the student.
#pragma once
#include <torch/types.h>

#include <string>

#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/model/vit.h"

namespace tokcom {
class Config;

struct TeacherOutput {
  torch::Tensor logits;  // (B, classes)
  TokenState tokens;     // the ViT's final tokens (B, 1 + N, D); undefined for MobileNet
};

struct Teacher {
  double kl = 0.0, tokens = 0.0, temperature = 1.0;  // train.distill_kl, train.distill_tokens, train.distill_temperature
  double hard = 0.0;                                // train.distill_hard: loss = (1 − hard)·CE(labels) + hard·CE(argmax)
  bool active() const { return kl > 0.0 || tokens > 0.0 || hard > 0.0; }
  std::string weights;                              // where the teacher was loaded from ("" = no teacher)
  Vit vit{nullptr};
  MobileNetV3 mobilenet{nullptr};
  TeacherOutput forward(const torch::Tensor& images) const;
};

// No teacher (weights "") when every weight is 0. Otherwise train.teacher_model (same = the student's
// architecture `arch`, vit | mobilenet; vit; mobilenet-v3-small | mobilenet-v3-large; a ViT teacher
// has no adaptive blocks or calibration) with every tensor from train.teacher, or in the adaptive
// stage without one from train.init. ConfigError when no weights file is named, when the file lacks
// a tensor of the model, for an unknown teacher_model, or for token distillation other than from a ViT
// to the adaptive ViT.
Teacher make_teacher(const Config& config, const std::string& stage, const std::string& arch, torch::Device device);

// The JSCC stage's clean model (train.jscc_distill_kl > 0; else no teacher): the pair's starting model
// (train.init: the adaptive ViT, the backbone, or the MobileNet backbone; `arch` vit | mobilenet) as a
// static model, every token, no codec and no channel — the logits the link should reproduce. A
// deviation from the paper's CE, behind the switch. ConfigError for a weight outside [0, 1000].
Teacher make_clean_teacher(const Config& config, const std::string& arch, torch::Device device);

// T² · KL(softmax(teacher / T) ‖ softmax(student / T)), summed over classes, mean over the batch.
torch::Tensor distillation_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature);

// Σ over patches of m · mean over channels of (LN_s(x_s) − LN_t(x_t))² / Σ m: the student's final patch
// tokens (after its final norm) against the teacher's, weighted by the student's cumulative mask m (1
// where there is none), so dropped tokens do not count. Budget token and class token excluded.
torch::Tensor token_distillation(Vit& student, const TokenState& student_tokens, Vit& teacher,
                                 const TokenState& teacher_tokens);

}  // namespace tokcom
