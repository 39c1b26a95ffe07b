// Data-parallel training on LibTorch's own c10d engine (ProcessGroupGloo over TCP): every rank holds
// the whole model, reads its shard of each global batch, and the gradients are summed by allreduce in
// flat buckets (like torch DDP), so one step of N ranks equals one step of one process on the global
// batch. Rendezvous through c10d's TCPStore (rank 0 serves it at MASTER_ADDR:MASTER_PORT) or a
// FileStore on a shared file system. A world of size 1 is the plain single-process path: no store,
// no process group, every call returns at once.
//
// Each collective waits at most `timeout_s`; a peer that died or never joined makes the others throw
// a UsageError naming the rank, the operation and the timeout instead of hanging.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tokcom/data/dataset.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace tokcom {

struct DistributedOptions {
  int world_size = 0;        // 0: from the environment (WORLD_SIZE, else SLURM_STEP_NUM_TASKS under srun), else 1
  int rank = -1;             // -1: from the environment (RANK, else SLURM_PROCID), else 0
  std::string master;        // "ADDR:PORT" of rank 0's TCPStore; empty: MASTER_ADDR + MASTER_PORT
  double timeout_s = 60;     // rendezvous and every collective
  std::string store;         // empty: TCPStore at `master`; "file:PATH": FileStore at PATH (shared file system)
  int64_t bucket_bytes = 25 << 20;  // gradient allreduce bucket (torch DDP's default 25 MiB)
};

// Fills the unset fields of `flags` from the environment (`getenv`, std::getenv by default) and
// validates them: world size ≥ 1, 0 ≤ rank < world size, a master or a file store when world > 1.
// Throws UsageError naming the flag / variable and its value.
DistributedOptions resolve_distributed_options(
    DistributedOptions flags, const std::function<const char*(const char*)>& getenv = nullptr);

class Distributed {
 public:
  // A world of one (no process group).
  Distributed();
  // Resolves `options` (resolve_distributed_options) and, for a world > 1, joins it: blocks until
  // every rank has connected or timeout_s passes.
  explicit Distributed(const DistributedOptions& options);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  bool active() const { return world_size_ > 1; }
  bool is_main() const { return rank_ == 0; }  // the rank that writes files and logs
  double timeout_s() const { return options_.timeout_s; }

  // Copies rank 0's values into every rank's tensors (parameters and buffers at the start).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Gradient averaging after backward: every rank scales its gradients by `weight` and the sum over
  // ranks replaces them. weight = local batch / global batch makes the result the gradient of the mean
  // loss over the global batch (1 / world_size for equal shards). A gradient undefined on every rank
  // stays undefined (the optimizer skips it as it would in one process); one defined on some ranks
  // only is taken as zero on the others.
  void allreduce_gradients(const std::vector<torch::Tensor>& params, double weight);
  // One training step after backward(): gradients averaged over ranks (weight = this rank's rows /
  // the global batch's; 0 for an empty shard, which only joins the sum), clipped to `clip` when
  // > 0 (after the average, as in one process), then optimizer.step().
  void step(const std::vector<torch::Tensor>& params, double weight, double clip, torch::optim::Optimizer& optimizer);
  // Element-wise sum over ranks (metrics: loss sums, correct counts, images).
  std::vector<double> allreduce_sum(std::vector<double> values);
  void barrier();
  // Throws UsageError on every rank unless every rank passed the same `value` (e.g. the epoch a resume
  // starts from: a train.out that is not shared between machines would make them disagree).
  void expect_same(double value, const std::string& what);

 private:
  struct Group;  // the c10d store and ProcessGroupGloo (distributed.cpp keeps the c10d headers)
  void allreduce_flat(std::vector<torch::Tensor>& flat, const char* what);
  [[noreturn]] void fail(const std::string& what, const std::exception& e) const;

  DistributedOptions options_;
  int world_size_ = 1, rank_ = 0;
  std::string where_;  // "tcp://ADDR:PORT" or "file:PATH", for messages
  std::unique_ptr<Group> group_;
};

// Rank `rank`'s part of the first `limit` rows (≤ 0: all) of `data`: rows [limit·rank/world,
// limit·(rank+1)/world). The union over ranks is the prefix, in order.
ImageDataset shard_rows(const ImageDataset& data, int64_t limit, int world_size, int rank);

}  // namespace tokcom
