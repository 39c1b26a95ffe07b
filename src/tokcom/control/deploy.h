// Deployment evaluation (SPEC 8.5, Table II): the controller, continued from its state after the
// proxy simulation, drives the real split model image by image (batch 1, random order): each slot
// draws an SNR, decides (α, r) from the proxy table, sends the payload through the channel at that
// SNR, and observes the ζ the payload actually cost.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "tokcom/comm/channel.h"
#include "tokcom/control/lyapunov.h"
#include "tokcom/control/simulate.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/data/dataset.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

struct DeployOptions {
  int64_t max_images = 0;  // > 0: only the first images of the shuffled order (quick runs)
  uint64_t seed = 0;       // image order, SNR draws and channel noise derive from (seed, repeat)
  c10::Device device = c10::Device("cpu");
};

struct DeploySummary {
  int64_t slots = 0;
  double accuracy = 0.0;              // correct / slots
  double constrained_accuracy = 0.0;  // correct and ζ(t) ≤ ζ_max, / slots
  double zeta = 0.0;                  // mean ζ actually sent
  double queue_final = 0.0;
};

// The split model's bank must hold the table's ratios in the table's order (decision.ratio_index
// indexes both). Runs one repeat from the controller's current state (which it advances).
DeploySummary deploy(SplitModel& model, const Channel& channel, LyapunovController& controller, SnrProcess& snr,
                     const ImageDataset& data, const Config& config, const DeployOptions& options, uint64_t repeat,
                     std::vector<SlotRecord>* trace = nullptr);

}  // namespace tokcom
