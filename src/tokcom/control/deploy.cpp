#include "tokcom/control/deploy.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/link_eval.h"

namespace tokcom {

DeploySummary deploy(SplitModel& model, const Channel& channel, LyapunovController& controller, SnrProcess& snr,
                     const ImageDataset& data, const Config& config, const DeployOptions& o, uint64_t repeat,
                     std::vector<SlotRecord>* trace, RemoteDecider* remote) {
  const ProxyTable& table = controller.table();
  if (model.device->num_ratios() != static_cast<int64_t>(table.ratios().size())) {
    throw UsageError(fmt::format("deploy: the bank holds {} ratios, the proxy table {}", model.device->num_ratios(),
                                 table.ratios().size()));
  }
  for (size_t i = 0; i < table.ratios().size(); ++i) {
    if (std::abs(model.device->ratio(static_cast<int64_t>(i)) - table.ratios()[i]) > 1e-12) {
      throw UsageError(fmt::format("deploy: bank ratio {} is {}, the table's is {} (load the bank with the table's "
                                   "ratios, in its order)",
                                   i, model.device->ratio(static_cast<int64_t>(i)), table.ratios()[i]));
    }
  }
  const int64_t n = data.size();
  if (n == 0) throw DataError("deploy: the split '" + data.split + "' of " + data.name + " has no images");
  std::seed_seq seq{o.seed, repeat, uint64_t{0xDE9}};
  std::mt19937_64 rng(seq);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t slots = o.max_images > 0 ? std::min(o.max_images, n) : n;
  snr.reset();
  if (remote) remote->begin(controller);
  bool warned = false;

  torch::NoGradGuard no_grad;
  const TransformOptions transform = transform_options(config, data);
  const double zeta_max = controller.options().zeta_max;
  DeploySummary s;
  Progress progress(fmt::format("deploy {} zeta_max={} repeat {}", snr.spec(), zeta_max, repeat), slots, "img");
  for (int64_t t = 0; t < slots; ++t) {
    const double snr_db = snr.next(rng);
    double z_before = controller.queue();
    Decision d = controller.decide(snr_db);
    if (remote) {
      const Decision mirror = d;
      const double mirror_queue = z_before;
      d = remote->decide(snr_db, &z_before);
      if (!warned && (d.ratio_index != mirror.ratio_index || d.budget != mirror.budget || z_before != mirror_queue)) {
        spdlog::warn("slot {}: the remote controller decided (α {}, r {}) at Z = {}, this device's mirror (α {}, r {}) at "
                     "Z = {}: the server's proxy table or options differ from the device's",
                     t, d.budget, d.ratio, z_before, mirror.budget, mirror.ratio, mirror_queue);
        warned = true;
      }
    }
    const int64_t index = order[t];
    const torch::Tensor image = eval_transform(data.images.slice(0, index, index + 1), transform).to(o.device);
    const Payload sent = model.device->encode(image, d);
    torch::Generator noise = make_generator(o.seed ^ (repeat * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(t) << 20));
    const Received rx = channel.apply(sent, torch::full({1}, snr_db, torch::dtype(torch::kFloat).device(o.device)), noise);
    const int64_t label = data.labels[index].item<int64_t>();
    if (o.note) o.note(SlotNote{t, snr_db, d.budget, d.ratio, z_before, zeta_max, label});
    const int64_t pred = model.server->decode(rx.payload).argmax(1).item<int64_t>();
    const double zeta = symbols_per_image(sent)[0].item<double>() / static_cast<double>(model.input_values);
    controller.observe(zeta);
    const bool correct = pred == label;
    s.accuracy += correct;
    s.constrained_accuracy += correct && zeta <= zeta_max;
    s.zeta += zeta;
    if (trace) trace->push_back(SlotRecord{t, snr_db, d.ratio, d.budget, zeta, z_before, correct ? 1.0 : 0.0});
    progress.tick(1);
  }
  progress.finish();
  s.slots = slots;
  s.accuracy /= static_cast<double>(slots);
  s.constrained_accuracy /= static_cast<double>(slots);
  s.zeta /= static_cast<double>(slots);
  s.queue_final = controller.queue();
  return s;
}

}  // namespace tokcom
