// What `tokcom optimize` and `tokcom device` share: the controller's arguments and its run, with an
// optional deployment on a trained bank whose server half is in-process or a remote edge server.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/net/client.h"

namespace tokcom::cli {

struct OptimizeArgs {
  std::string table, method, channel, regime, write_table;
  bool synthetic = false, simulate = false, interpolate = false, no_plots = false;
  double tradeoff = std::nan(""), queue_step = std::nan("");
  std::string zeta_max = "0.0025,0.005,0.01,0.02,0.05,0.1";
  int64_t slots = 10000, window = 1000, oracle_samples = 100000;
  std::string scenario, snr_trace, selection = "paper";
  std::vector<std::string> scenarios;
  std::string v_grid = "1,10,100,1000,10000,100000", mu_grid = "1,10,100";
  std::string out;
  // Deployment (METHOD §8.5): the real split model driven by each picked (or given) controller.
  std::string bank, deploy_split = "val";
  int64_t deploy_images = 0, repeats = 0;
  std::vector<std::string> overrides;
  // Non-empty address: the server half runs on this edge server (`tokcom device`).
  net::ClientOptions server;
  bool server_controller = false;  // `tokcom device --controller server`: the server's controller decides
  bool send_labels = false;        // `tokcom device --send-labels`: true labels beside payloads (server's monitor)
};

void run_optimize(const OptimizeArgs& args);

}  // namespace tokcom::cli
