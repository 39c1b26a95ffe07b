#include "common/tiny_vit.h"

#include <torch/torch.h>

#include "tokcom/core/config.h"

namespace tokcom::test {

std::vector<std::string> tiny_vit_overrides(const std::string& out, const std::string& augment) {
  return {"data.dataset=fashion-mnist", "data.image_size=28", "data.augment=" + augment, "model.image_size=28",
          "model.patch_size=7",         "model.in_chans=1",   "model.dim=32",              "model.depth=4",
          "model.heads=2",              "model.adaptive_blocks=[1, 2]", "comm.split=3",     "comm.ratios=[0.1, 0.5]",
          "train.batch_size=32",        "train.eval_batch_size=256",     "train.warmup_epochs=0",
          "train.out=" + out};
}

Vit random_tiny_vit(const Config& config, uint64_t seed) {
  torch::manual_seed(seed);
  Vit vit = make_vit(config);
  torch::NoGradGuard no_grad;
  for (int64_t b : {1, 2}) vit->blocks[b]->as<BlockImpl>()->gate->weight.normal_(0.0, 2.0);
  vit->eval();
  return vit;
}

}  // namespace tokcom::test
