// `tokcom predict`: top-5 classes of image files, or a tensor-in/tensor-out forward pass
// (`--input X.safetensors --out Y.safetensors [--hidden]`) so anyone can check our numbers.
#include <cstdio>
#include <regex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/image_codec.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/checkpoint_config.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/model/vit.h"

namespace tokcom::cli {
namespace {

struct PredictArgs {
  std::string checkpoint, config, mode = "hard", input, out, model = "vit";
  double alpha = 1.0;
  bool hidden = false;
  std::vector<std::string> images, overrides, set_overrides;
};

std::vector<std::string> class_names_for(const Config& config) {
  const std::string d = config.get_string("data.dataset");
  if (d == "imagenette") return imagenette_names();
  if (d == "fashion-mnist") return fashion_mnist_names();
  std::vector<std::string> names;
  for (int64_t i = 0; i < config.get_int("model.num_classes"); ++i) names.push_back("class " + std::to_string(i));
  return names;
}

// Decodes an image file to uint8 (C, H, W) with the model's channel count.
torch::Tensor read_image(const std::string& path, int64_t channels) {
  DecodedImage img = decode_image(read_file(path), path);
  if (channels == 3 && img.channels == 1) expand_to_rgb(img);
  torch::Tensor t = torch::from_blob(img.pixels.data(), {img.channels, img.height, img.width}, torch::kUInt8).clone();
  if (channels == 1 && img.channels == 3) {  // ITU-R 601 luma, as PIL's convert("L")
    const auto f = t.to(torch::kFloat);
    t = (f[0] * 0.299 + f[1] * 0.587 + f[2] * 0.114).round().clamp(0, 255).to(torch::kUInt8).unsqueeze(0);
  }
  return t;
}

// MobileNetV3 (torchvision names): the same two forms, no budget (METHOD §6.2).
void print_top5(const std::string& path, const std::string& note, const torch::Tensor& logits,
                const std::vector<std::string>& names) {
  const torch::Tensor prob = torch::softmax(logits, 0);
  const auto top = prob.topk(std::min<int64_t>(5, prob.size(0)));
  std::printf("%s%s\n", path.c_str(), note.c_str());
  for (int64_t k = 0; k < std::get<0>(top).size(0); ++k) {
    const int64_t c = std::get<1>(top)[k].item<int64_t>();
    std::printf("  %6.2f%%  %s\n", 100.0 * std::get<0>(top)[k].item<double>(),
                c < static_cast<int64_t>(names.size()) ? names[c].c_str() : "?");
  }
}

void run_predict_mobilenet(const PredictArgs& args) {
  std::vector<std::string> overrides = args.overrides;
  overrides.push_back("mobilenet.variant=" + mobilenet_variant_from_model_name(args.model));
  const Config config = checkpoint_config(args.checkpoint, args.config, overrides);
  MobileNetV3 model = make_mobilenet(config);
  load_module(args.checkpoint, *model, /*strict=*/true);
  model->eval();
  torch::NoGradGuard no_grad;
  const int64_t channels = config.get_int("mobilenet.in_chans");
  if (!args.input.empty()) {
    if (args.out.empty()) throw UsageError("--input needs --out Y.safetensors");
    const Safetensors in = read_safetensors(args.input);
    auto it = in.tensors.find("input");
    if (it == in.tensors.end()) throw FormatError(args.input + ": no tensor named 'input' (expected N×C×H×W, normalised)");
    const torch::Tensor x = it->second.to(torch::kFloat);
    check_shape("tokcom predict", "input", x, {-1, channels, -1, -1});
    const TensorMap outputs = mobilenet_predict_outputs(model, x, args.hidden);
    write_safetensors(args.out, outputs, {{"model", args.model}});
    spdlog::info("wrote {} ({} tensors)", args.out, outputs.size());
    return;
  }
  if (args.images.empty()) throw UsageError("give image files, or --input X.safetensors --out Y.safetensors");
  const auto names = class_names_for(config);
  ImageDataset meta;
  meta.name = config.get_string("data.dataset");
  meta.class_names = names;
  const TransformOptions t = transform_options(config, meta);
  for (const auto& path : args.images) {
    const torch::Tensor x = eval_transform(read_image(path, channels).unsqueeze(0), t);
    print_top5(path, "", model->forward(x)[0], names);
  }
}

void run_predict(const PredictArgs& args) {
  if (args.model != "vit") return run_predict_mobilenet(args);
  const Config config = checkpoint_config(args.checkpoint, args.config, args.overrides);
  Vit model = make_vit(config);
  load_module(args.checkpoint, *model, /*strict=*/true);
  model->eval();
  torch::NoGradGuard no_grad;
  if (!(args.alpha > 0 && args.alpha <= 1)) throw UsageError(fmt::format("--alpha {} is outside (0, 1]", args.alpha));
  const SelectionMode mode = parse_mode(args.mode);

  if (!args.input.empty()) {
    if (args.out.empty()) throw UsageError("--input needs --out Y.safetensors");
    const Safetensors in = read_safetensors(args.input);
    auto it = in.tensors.find("input");
    if (it == in.tensors.end()) throw FormatError(args.input + ": no tensor named 'input' (expected N×C×H×W, normalised)");
    const auto& o = model->options;
    const torch::Tensor x = it->second.to(torch::kFloat);
    check_shape("tokcom predict", "input", x, {-1, o.in_chans(), o.image_size(), o.image_size()});
    torch::Tensor budget;
    if (args.alpha < 1.0) budget = torch::full({x.size(0)}, args.alpha);
    TensorMap outputs;
    outputs["logits"] = model->forward(x, budget, mode).logits.contiguous();
    if (args.hidden)
      for (auto& [name, t] : model->forward_hidden(x, budget)) outputs["hidden." + name] = t.contiguous();
    write_safetensors(args.out, outputs, {{"alpha", fmt::format("{}", args.alpha)}, {"mode", args.mode}});
    spdlog::info("wrote {} ({} tensors)", args.out, outputs.size());
    return;
  }
  if (args.images.empty()) throw UsageError("give image files, or --input X.safetensors --out Y.safetensors");
  const auto names = class_names_for(config);
  ImageDataset meta;  // transform_options only reads the data set's identity
  meta.name = config.get_string("data.dataset");
  meta.class_names = names;
  TransformOptions t = transform_options(config, meta);
  t.image_size = model->options.image_size();
  for (const auto& path : args.images) {
    const torch::Tensor img = read_image(path, model->options.in_chans()).unsqueeze(0);
    const torch::Tensor x = eval_transform(img, t);
    torch::Tensor budget;
    if (args.alpha < 1.0) budget = torch::full({1}, args.alpha);
    const VitOutput out = model->forward(x, budget, mode);
    const std::string kept = out.stats.empty() ? ""
                                               : fmt::format("  (kept {}/{} patches)", out.stats.back().kept[0].item<int64_t>(),
                                                             model->options.num_patches());
    print_top5(path, kept, out.logits[0], names);
  }
}

void add_predict(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Top-5 classes of image files, or logits/hidden states of a tensor");
  cmd->add_option("--checkpoint,--weights", args->checkpoint, "Model weights (safetensors)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-c,--config", args->config, "Config (default: <stem>.config.yaml, else config.yaml, beside the checkpoint)");
  cmd->add_option("--model", args->model, "vit | mobilenet-v3-small | mobilenet-v3-large")
      ->check(CLI::IsMember({"vit", "mobilenet-v3-small", "mobilenet-v3-large"}))
      ->capture_default_str();
  cmd->add_option("--alpha", args->alpha, "Budget α in (0, 1]; 1 = static path")
      ->capture_default_str()
      ->check(kBudget);
  cmd->add_option("--mode", args->mode, "soft | hard")->check(CLI::IsMember({"soft", "hard"}))->capture_default_str();
  cmd->add_option("--input", args->input, "safetensors with tensor `input` (N×C×H×W, normalised)")->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", args->out, "safetensors to write: `logits` (+ `hidden.embed`, `hidden.block.{i}`)");
  cmd->add_flag("--hidden", args->hidden, "Also write the tokens after the positional embedding and every block's output");
  cmd->add_option("images", args->images, "JPEG/PNG files, and key.sub=value config overrides (as in every verb)");
  cmd->add_option("--set", args->set_overrides, "key.sub=value config overrides (the same as positional ones)");
  set_action(cmd, [args] {
    // Positional words of the form key.sub=value are overrides, the rest image files.
    static const std::regex override_form(R"(^[a-z_]+\.[a-z_.]+=.*)");
    std::vector<std::string> images;
    for (const std::string& word : args->images) {
      if (std::regex_match(word, override_form)) args->overrides.push_back(word);
      else images.push_back(word);
    }
    args->images = images;
    args->overrides.insert(args->overrides.end(), args->set_overrides.begin(), args->set_overrides.end());
    run_predict(*args);
  });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(42, add_predict);
}  // namespace tokcom::cli
