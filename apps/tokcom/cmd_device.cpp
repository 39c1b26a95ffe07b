// `tokcom device`: an edge device against a running `tokcom serve` (issue "deployment"). Runs the
// device half on images, applies the simulated wireless channel at the sender (so the server gets
// what a receiver would decode), runs the controller with the measured ζ of each payload, and
// writes the same per-slot CSV as `tokcom optimize --bank` (for the same seed, the same file).
#include <unistd.h>

#include <fmt/format.h>

#include "command.h"
#include "optimize_args.h"
#include "tokcom/net/credentials.h"

namespace tokcom::cli {
namespace {

struct DeviceArgs {
  OptimizeArgs optimize;
  std::string dataset, auth_token_file, controller = "device";
};

void run_device(DeviceArgs a) {
  if (!a.dataset.empty()) a.optimize.overrides.push_back("data.dataset=" + a.dataset);
  if (a.optimize.server.device_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    a.optimize.server.device_name = fmt::format("{}:{}", host, getpid());
  }
  if (!a.auth_token_file.empty()) a.optimize.server.auth_token = net::read_token(a.auth_token_file, "--auth-token-file");
  a.optimize.server_controller = a.controller == "server";
  run_optimize(a.optimize);
}

void add_device(CLI::App& app) {
  auto a = std::make_shared<DeviceArgs>();
  OptimizeArgs& o = a->optimize;
  CLI::App* cmd = app.add_subcommand(
      "device",
      "Edge device against `tokcom serve`: device half + simulated channel here, server half there, the\n"
      "Lyapunov controller in the loop (picked by the same search as `tokcom optimize`, or --V/--mu).\n"
      "Writes DIR/deploy/trace_*.csv and DIR/deploy_summary.csv as `tokcom optimize --bank` does.");
  cmd->add_option("--server", o.server.address, "Edge server host:port")->required();
  cmd->add_option("--bank", o.bank, "This device's bank folder (train.stage=jscc): the device half and encoders")
      ->required();
  cmd->add_option("--table", o.table, "Proxy table CSV (sweep output) the controller decides from")->required();
  cmd->add_option("--dataset", a->dataset, "Images to send (default: the bank's data.dataset)");
  cmd->add_option("--deploy-split", o.deploy_split, "Split of the data set")->capture_default_str();
  cmd->add_option("--images", o.deploy_images, "> 0: only this many images (slots) per run")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("--repeats", o.repeats, "Repeats (0: 3 for random scenarios, 1 for fixed SNRs)")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("--scenario", o.scenario, "SNR process (see `tokcom optimize --help`), e.g. gauss:10,2.5")
      ->required();
  cmd->add_option("--zeta-max", o.zeta_max, "Long-term zeta bound(s), comma list")->required();
  cmd->add_option("--V", o.tradeoff, "Lyapunov trade-off V (with --mu; default: searched as optimize does)")
      ->check(kFinitePositive);
  cmd->add_option("--mu", o.queue_step, "Queue step size mu")->check(kFinitePositive);
  cmd->add_option("--method", o.method, "Keep table rows of this method");
  cmd->add_option("--channel", o.channel, "Keep table rows of this channel (also the channel applied here)");
  cmd->add_option("--regime", o.regime, "Keep table rows of this regime (robust|noiseless)");
  cmd->add_option("--controller", a->controller,
                  "Where the controller runs: device (here) or server (the server's, started from this device's "
                  "picked controller; `tokcom serve --table`)")
      ->check(CLI::IsMember({"device", "server"}))->capture_default_str();
  cmd->add_option("--name", o.server.device_name,
                  "This device's name on the server's live page and /metrics (default: host:pid; printable ASCII)");
  cmd->add_flag("--send-labels", o.send_labels,
                "Send each image's true label beside its payload, so the server's monitor shows accuracy (a "
                "simulated device knows them; the server never uses them to classify)");
  cmd->add_option("--tls-ca", o.server.tls_ca, "PEM root certificate: connect with TLS");
  cmd->add_option("--auth-token-file", a->auth_token_file, "File whose first line is the server's shared token");
  cmd->add_option("--connect-timeout", o.server.connect_timeout_s, "Seconds to wait for the server")
      ->capture_default_str()->check(kFiniteNonNegative);
  o.server.reconnect_s = 30;
  cmd->add_option("--reconnect", o.server.reconnect_s,
                  "Seconds to keep reconnecting (backoff 0.1 s doubling to 2 s) when the server goes away mid-run; "
                  "the unanswered requests are then resent under their ids, each image counted once (0: fail at once)")
      ->capture_default_str()->check(kFiniteNonNegative);
  cmd->add_flag("--no-plots", o.no_plots, "Skip the gnuplot figures");
  cmd->add_option("-o,--out", o.out, "Output folder")->required();
  cmd->add_option("overrides", o.overrides, "key.sub=value overrides of the bank's config");
  cmd->footer(
      "Example: tokcom device --server 127.0.0.1:50051 --bank runs/fmnist-bank --table runs/proxy.csv \\\n"
      "           --scenario gauss:10,2.5 --zeta-max 0.01 -o runs/device-1");
  set_action(cmd, [a] { run_device(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(71, add_device);
}  // namespace tokcom::cli
