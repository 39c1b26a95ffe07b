// Stage 3 of `tokcom train` (train.stage=jscc, METHOD §5.6, 7, 10 P10, P12, P22): for every ratio r
// of train.ratios and every regime of comm.train_regime, a JSCC encoder/decoder is trained
// together with the server blocks [comm.split, depth); the device half (embedding, tokens, blocks
// [0, split) with their selection heads) runs frozen in eval mode, and the final LayerNorm and head
// stay frozen. Frozen parameters have requires_grad off, so they neither accumulate gradients nor
// enter the clip norm. Each (regime, r) is its own file jscc-<regime>-r<r>.safetensors in
// train.out, its own epochs-<regime>-r<r>.csv and its own resumable checkpoint folder.
#pragma once
#include <string>
#include <vector>

#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"
#include "tokcom/train/trainer.h"

namespace tokcom {

struct JsccEpochRecord {
  std::string regime;
  double ratio = 0;
  int64_t epoch = 0;
  double lr = 0, loss = 0, train_accuracy = 0, images_per_s = 0;
  std::vector<double> val_accuracy;  // hard mode, α = 1 (every token), at each of jscc_eval_snrs()
};

// train.ratios: "all" (every comm.ratios entry) or a comma list of values that are in comm.ratios.
std::vector<double> jscc_ratios(const Config& config);
// comm.train_regime: robust | noiseless | both (= robust, noiseless).
std::vector<std::string> jscc_regimes(const Config& config);
// SNRs (dB) of the per-epoch validation.
std::vector<double> jscc_eval_snrs();
// epochs-<regime>-r<ratio>.csv: its own columns, then val_accuracy_snr<s> per eval SNR (numbers).
const csv::Schema& jscc_epochs_schema();

// Trains every (regime, r) not finished yet (a finished one has its .safetensors; with
// run.resume a half-trained one continues from its checkpoint). Returns the records of the
// (regime, r) pairs trained or resumed by this call.
std::vector<JsccEpochRecord> train_jscc(const Config& config, const TrainRunOptions& run);

}  // namespace tokcom
