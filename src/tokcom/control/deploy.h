// Deployment evaluation (METHOD §8.5, Table II): the controller, continued from its state after the
// proxy simulation, drives the real split model image by image (batch 1, random order): each slot
// draws an SNR, decides (α, r) from the proxy table, sends the payload through the channel at that
// SNR, and observes the ζ the payload actually cost.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "tokcom/comm/channel.h"
#include "tokcom/control/lyapunov.h"
#include "tokcom/control/simulate.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/data/dataset.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

// What one slot is, for a server that watches its devices (`tokcom serve --http`): given to
// DeployOptions::note before the payload is decoded. Monitoring only: nothing here classifies.
struct SlotNote {
  int64_t slot = 0;
  double snr_db = 0, budget = 0, ratio = 0;
  double queue = 0;     // the virtual queue Z the decision was taken at
  double zeta_max = 0;  // the controller's long-term bound
  int64_t label = -1;   // the image's true class
};

struct DeployOptions {
  int64_t max_images = 0;  // > 0: only the first images of the shuffled order (quick runs)
  uint64_t seed = 0;       // image order, SNR draws and channel noise derive from (seed, repeat)
  c10::Device device = c10::Device("cpu");
  std::function<void(const SlotNote&)> note;  // optional: called once per slot, before the decode
};

struct DeploySummary {
  int64_t slots = 0;
  double accuracy = 0.0;              // correct / slots
  double constrained_accuracy = 0.0;  // correct and ζ(t) ≤ ζ_max, / slots
  double zeta = 0.0;                  // mean ζ actually sent
  double queue_final = 0.0;
};

// Decisions taken elsewhere: an edge server running the controller for this device (net/client.h,
// `tokcom device --controller server`). deploy() keeps its own controller as a mirror: it sends the
// mirror's state when a run begins, takes the remote decision, and observes the same ζ locally, so
// the trace and the final queue read the same as an in-process run (a remote decision or queue that
// differs from the mirror's is logged once: the server's table or options are not the device's).
class RemoteDecider {
 public:
  virtual ~RemoteDecider() = default;
  // A run starts: the next decision continues from `mirror`'s state.
  virtual void begin(const LyapunovController& mirror) = 0;
  // The slot's decision at `snr_db` (ratio in the device's bank), and the queue Z it was taken at.
  virtual Decision decide(double snr_db, double* queue) = 0;
};

// The split model's bank must hold the table's ratios in the table's order (decision.ratio_index
// indexes both). Runs one repeat from the controller's current state (which it advances).
DeploySummary deploy(SplitModel& model, const Channel& channel, LyapunovController& controller, SnrProcess& snr,
                     const ImageDataset& data, const Config& config, const DeployOptions& options, uint64_t repeat,
                     std::vector<SlotRecord>* trace = nullptr, RemoteDecider* remote = nullptr);

}  // namespace tokcom
