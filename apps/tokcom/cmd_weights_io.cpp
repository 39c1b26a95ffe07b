// `tokcom weights import|export`: timm/DeiT safetensors ↔ our ViT (src/tokcom/model/weights_io.h).
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "tokcom/core/config.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/model/weights_io.h"

namespace tokcom::cli {
namespace {

struct WeightsIoArgs {
  std::string file, config, out;
  bool timm_only = false;
  std::vector<std::string> overrides;
};

void run_import(const WeightsIoArgs& a) {
  const Config config = Config::load(a.config, a.overrides);
  Vit model = make_vit(config);  // method tensors and a resized head start from this init (--seed)
  import_timm_weights(model, read_safetensors(a.file).tensors, a.file);
  save_module(a.out, *model, {{"source", a.file}, {"config", config.name()}, {"config_digest", config.digest()}});
  spdlog::info("wrote {}", a.out);
}

void run_export(const WeightsIoArgs& a) {
  const Config config = Config::load(a.config, a.overrides);
  Vit model = make_vit(config);
  load_module(a.file, *model, /*strict=*/true);  // checks the checkpoint against the config
  const TensorMap tensors = export_timm_weights(model, a.timm_only);
  write_safetensors(a.out, tensors, {{"source", a.file}, {"format", a.timm_only ? "timm" : "tokcom"}});
  spdlog::info("wrote {} ({} tensors)", a.out, tensors.size());
}

void add_options(CLI::App* cmd, const std::shared_ptr<WeightsIoArgs>& args, const std::string& file_help) {
  cmd->add_option("file", args->file, file_help)->required()->check(CLI::ExistingFile);
  cmd->add_option("-c,--config", args->config, "Named config in configs/ or a YAML path (model section)")
      ->capture_default_str();
  cmd->add_option("-o,--out", args->out, "safetensors file to write (temp file + rename)")->required();
  cmd->add_option("overrides", args->overrides, "key.sub=value ...");
}

void add_weights_io(CLI::App& app) {
  CLI::App* weights = group(app, "weights", "Inspect, import and export safetensors weights");
  auto in = std::make_shared<WeightsIoArgs>();
  CLI::App* import = weights->add_subcommand(
      "import", "Load a timm/DeiT safetensors checkpoint into the configured ViT (new head / budget "
                "tokens / gates initialised fresh) and save it");
  add_options(import, in, "timm-named .safetensors (e.g. deit_tiny_patch16_224)");
  set_action(import, [in] { run_import(*in); });

  auto out = std::make_shared<WeightsIoArgs>();
  CLI::App* exp = weights->add_subcommand("export", "Write a checkpoint of the configured ViT as timm-loadable safetensors");
  add_options(exp, out, "tokcom ViT checkpoint (.safetensors)");
  exp->add_flag("--timm-only", out->timm_only, "Drop the method's tensors (budget tokens, gates, thresholds)");
  set_action(exp, [out] { run_export(*out); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(31, add_weights_io);
}  // namespace tokcom::cli
