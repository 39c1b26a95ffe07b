// Data-parallel training (train/distributed.h): option resolution from flags and environment, the
// loader's shards of every global batch, gradient allreduce in buckets, broadcast and metric sums
// between two ranks (threads, FileStore), two CLI ranks over loopback giving the single-process step,
// and a rank that never joins or leaves making the other fail instead of hanging.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/data/loader.h"
#include "tokcom/train/distributed.h"

using namespace tokcom;

namespace {

std::function<const char*(const char*)> fake_env(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

// A TCP port nobody listens on right now (the kernel's pick for port 0).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Runs `f(rank)` for ranks 0 and 1 on two threads; rethrows the first failure.
void two_ranks(const std::function<void(int)>& f) {
  auto r0 = std::async(std::launch::async, f, 0), r1 = std::async(std::launch::async, f, 1);
  r0.get();
  r1.get();
}

DistributedOptions file_world(const std::string& path, int rank, double timeout_s = 20) {
  DistributedOptions o;
  o.world_size = 2;
  o.rank = rank;
  o.store = "file:" + path;
  o.timeout_s = timeout_s;
  return o;
}

}  // namespace

TEST(DistributedOptions, FlagsThenEnvironmentThenSlurm) {
  const auto none = fake_env({});
  const DistributedOptions one = resolve_distributed_options({}, none);
  EXPECT_EQ(one.world_size, 1);
  EXPECT_EQ(one.rank, 0);
  EXPECT_TRUE(one.master.empty());

  const auto torchrun = fake_env({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29501"}});
  const DistributedOptions env = resolve_distributed_options({}, torchrun);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.master, "10.0.0.7:29501");

  DistributedOptions flags;  // flags win over the environment
  flags.world_size = 2;
  flags.rank = 1;
  flags.master = "127.0.0.1:4000";
  const DistributedOptions both = resolve_distributed_options(flags, torchrun);
  EXPECT_EQ(both.world_size, 2);
  EXPECT_EQ(both.rank, 1);
  EXPECT_EQ(both.master, "127.0.0.1:4000");

  // srun: SLURM_STEP_NUM_TASKS / SLURM_PROCID when WORLD_SIZE / RANK are not set.
  const auto srun = fake_env({{"SLURM_STEP_NUM_TASKS", "3"}, {"SLURM_PROCID", "2"}, {"MASTER_ADDR", "node1"}, {"MASTER_PORT", "29500"}});
  const DistributedOptions slurm = resolve_distributed_options({}, srun);
  EXPECT_EQ(slurm.world_size, 3);
  EXPECT_EQ(slurm.rank, 2);
  EXPECT_EQ(slurm.master, "node1:29500");
}

TEST(DistributedOptions, BadValuesAreUsageErrorsNamingThem) {
  const auto none = fake_env({});
  DistributedOptions o;
  o.world_size = 2;
  o.rank = 2;
  o.master = "127.0.0.1:29500";
  EXPECT_NE(test::error_of([&] { resolve_distributed_options(o, none); }).find("--rank: 2 is not in 0..1"), std::string::npos);
  o.rank = 0;
  o.master.clear();
  EXPECT_NE(test::error_of([&] { resolve_distributed_options(o, none); }).find("needs a rendezvous"), std::string::npos);
  o.master = "127.0.0.1";
  EXPECT_NE(test::error_of([&] { resolve_distributed_options(o, none); }).find("is not ADDR:PORT"), std::string::npos);
  o.master = "127.0.0.1:70000";
  EXPECT_NE(test::error_of([&] { resolve_distributed_options(o, none); }).find("port 70000"), std::string::npos);
  o.master.clear();
  o.store = "nfs:/x";
  EXPECT_NE(test::error_of([&] { resolve_distributed_options(o, none); }).find("--dist-store"), std::string::npos);
  EXPECT_NE(test::error_of([&] { resolve_distributed_options({}, fake_env({{"WORLD_SIZE", "two"}})); }).find("WORLD_SIZE: 'two'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              resolve_distributed_options({}, fake_env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}}));
            }).find("MASTER_PORT=''"),
            std::string::npos);
}

// Rank k of K reads rows [n·k/K, n·(k+1)/K) of every global batch of n: together the batch of one process.
TEST(Loader, ShardsOfEveryGlobalBatchFormTheSingleProcessBatch) {
  ImageDataset data;
  data.images = torch::randint(0, 255, {14, 1, 4, 4}).to(torch::kUInt8);
  data.labels = torch::arange(14);
  TransformOptions t;
  t.image_size = 4;
  LoaderOptions o;
  o.batch_size = 6;
  o.workers = 0;
  o.augment = false;
  o.seed = 5;
  Loader whole(data, t, o);
  std::vector<std::unique_ptr<Loader>> shards;
  for (int k = 0; k < 4; ++k) {
    LoaderOptions ok = o;
    ok.shard_count = 4;
    ok.shard_index = k;
    shards.push_back(std::make_unique<Loader>(data, t, ok));
  }
  for (int64_t b = 0; b < whole.batches_per_epoch(); ++b) {
    const Batch ref = whole.make_batch(1, b);
    std::vector<torch::Tensor> indices, images;
    for (auto& s : shards) {
      const Batch part = s->make_batch(1, b);
      const Loader::Shard sh = s->shard(b);
      EXPECT_EQ(part.indices.size(0), sh.end - sh.begin);
      EXPECT_EQ(sh.global, ref.indices.size(0));
      indices.push_back(part.indices);
      images.push_back(part.images);
    }
    EXPECT_TRUE(torch::equal(torch::cat(indices), ref.indices)) << "batch " << b;
    EXPECT_TRUE(torch::equal(torch::cat(images), ref.images)) << "batch " << b;
  }
  // The last batch holds 2 rows: shards 0 and 2 are empty, 1 and 3 get one row each.
  EXPECT_EQ(shards[0]->shard(2).end - shards[0]->shard(2).begin, 0);
  EXPECT_EQ(shards[1]->shard(2).begin, 0);
  EXPECT_EQ(shards[1]->shard(2).end, 1);
  EXPECT_EQ(shards[3]->shard(2).begin, 1);
  LoaderOptions bad = o;
  bad.shard_count = 2;
  bad.shard_index = 2;
  EXPECT_THROW(Loader(data, t, bad), ConfigError);
}

TEST(Distributed, WorldOfOneIsANoOp) {
  Distributed one;
  EXPECT_FALSE(one.active());
  EXPECT_TRUE(one.is_main());
  auto p = torch::ones({3}, torch::requires_grad());
  p.mutable_grad() = torch::full({3}, 2.0f);
  one.allreduce_gradients({p}, 0.5);  // no scaling either: nothing runs
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({3}, 2.0f)));
  EXPECT_EQ(one.allreduce_sum({1.5, 2.0}), (std::vector<double>{1.5, 2.0}));
  one.barrier();
}

// Weighted gradient sum over several buckets and two dtypes, the undefined-gradient rules, broadcast
// from rank 0 and metric sums, between two ranks on threads sharing a FileStore.
TEST(Distributed, TwoRanksSumWeightedGradientsInBucketsAndBroadcastRankZero) {
  const std::string dir = test::temp_dir("dist_pg");
  two_ranks([&](int rank) {
    DistributedOptions o = file_world(dir + "/store", rank);
    o.bucket_bytes = 40;  // 10 floats: the 7-, 5- and 12-element gradients take separate buckets
    Distributed dist(o);
    ASSERT_TRUE(dist.active());
    ASSERT_EQ(dist.rank(), rank);
    const double f = rank + 1.0;
    std::vector<torch::Tensor> params = {torch::zeros({7}, torch::requires_grad()),
                                         torch::zeros({5}, torch::dtype(torch::kFloat64).requires_grad(true)),
                                         torch::zeros({3, 4}, torch::requires_grad()),
                                         torch::zeros({2}, torch::requires_grad()),   // rank 0 only
                                         torch::zeros({2}, torch::requires_grad())};  // nowhere
    params[0].mutable_grad() = torch::arange(7, torch::kFloat32) * f;
    params[1].mutable_grad() = torch::arange(5, torch::kFloat64) * f;
    params[2].mutable_grad() = torch::full({3, 4}, f);
    if (rank == 0) params[3].mutable_grad() = torch::full({2}, 8.0f);
    const double weight = rank == 0 ? 0.25 : 0.75;  // e.g. 16 and 48 of a 64-image batch
    dist.allreduce_gradients(params, weight);
    // 0.25·1·g + 0.75·2·g = 1.75·g on both ranks.
    EXPECT_TRUE(torch::allclose(params[0].grad(), torch::arange(7, torch::kFloat32) * 1.75));
    EXPECT_EQ(params[1].grad().scalar_type(), torch::kFloat64);
    EXPECT_TRUE(torch::allclose(params[1].grad(), torch::arange(5, torch::kFloat64) * 1.75));
    EXPECT_TRUE(torch::allclose(params[2].grad(), torch::full({3, 4}, 1.75f)));
    ASSERT_TRUE(params[3].grad().defined());  // zero on rank 1
    EXPECT_TRUE(torch::allclose(params[3].grad(), torch::full({2}, 2.0f)));
    EXPECT_FALSE(params[4].grad().defined());

    std::vector<torch::Tensor> state = {torch::full({4}, 10.0f * f), torch::full({2}, int64_t(rank + 7))};
    dist.broadcast(state);
    EXPECT_TRUE(torch::equal(state[0], torch::full({4}, 10.0f)));
    EXPECT_TRUE(torch::equal(state[1], torch::full({2}, int64_t(7))));
    EXPECT_EQ(dist.allreduce_sum({1.0 * f, 0.5}), (std::vector<double>{3.0, 1.0}));
    dist.expect_same(4.0, "the epoch");  // equal everywhere: fine
    const std::string error = test::error_of([&] { dist.expect_same(rank == 0 ? 3.0 : 2.0, "the epoch to resume from"); });
    EXPECT_NE(error.find("the epoch to resume from differs between ranks (" + std::string(rank == 0 ? "3" : "2") +
                         " here, 3 on rank 0)"),
              std::string::npos)
        << error;  // every rank throws, not only the odd one
    dist.barrier();
  });
}

TEST(Distributed, ShardRowsSplitTheValidationPrefixInOrder) {
  ImageDataset data;
  data.images = torch::zeros({10, 1, 2, 2}, torch::kUInt8);
  data.labels = torch::arange(10);
  std::vector<torch::Tensor> parts;
  for (int k = 0; k < 3; ++k) parts.push_back(shard_rows(data, 8, 3, k).labels);  // prefix of 8: 2, 3, 3 rows
  EXPECT_EQ(parts[0].size(0), 2);
  EXPECT_EQ(parts[2].size(0), 3);
  EXPECT_TRUE(torch::equal(torch::cat(parts), torch::arange(8)));
  EXPECT_TRUE(torch::equal(shard_rows(data, 0, 2, 1).labels, torch::arange(5, 10)));  // 0: every row
}

TEST(Distributed, ARankThatNeverJoinsFailsWithinTheTimeoutNamingIt) {
  DistributedOptions o;
  o.world_size = 2;
  o.rank = 0;
  o.master = "127.0.0.1:" + std::to_string(free_port());
  o.timeout_s = 3;
  auto attempt = std::async(std::launch::async, [&] { return test::error_of([&] { Distributed d(o); }); });
  // A hang guard, not a timing check: the rendezvous gives up after its 3 s timeout.
  ASSERT_EQ(attempt.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "rank 0 hangs";
  const std::string error = attempt.get();
  std::printf("%s\n", error.c_str());
  EXPECT_NE(error.find("UsageError: distributed rank 0 of 2 at tcp://127.0.0.1:"), std::string::npos) << error;
  EXPECT_NE(error.find("rendezvous"), std::string::npos) << error;
  EXPECT_NE(error.find("timeout 3 s"), std::string::npos) << error;
}

TEST(Distributed, ARankThatLeavesOrGoesSilentMakesTheOtherFail) {
  const std::string dir = test::temp_dir("dist_leave");
  // Rank 1 joins and leaves at once (its process group closes, as when the process dies).
  std::promise<void> left;
  std::string error;
  two_ranks([&](int rank) {
    Distributed dist(file_world(dir + "/a", rank, 3));
    if (rank == 1) return left.set_value();
    left.get_future().wait();
    error = test::error_of([&] { dist.allreduce_sum({1.0}); });
  });
  EXPECT_NE(error.find("distributed rank 0 of 2 at file:"), std::string::npos) << error;
  EXPECT_NE(error.find("metric allreduce failed"), std::string::npos) << error;

  // Rank 1 stays but never calls the collective: rank 0 gives up after the timeout.
  std::promise<void> done;
  two_ranks([&](int rank) {
    Distributed dist(file_world(dir + "/b", rank, 3));
    if (rank == 1) return done.get_future().wait();
    auto p = torch::zeros({4}, torch::requires_grad());
    p.mutable_grad() = torch::ones({4});
    error = test::error_of([&] { dist.allreduce_gradients({p}, 0.5); });
    done.set_value();
  });
  EXPECT_NE(error.find("rank 0 of 2"), std::string::npos) << error;
  EXPECT_NE(error.find("timeout 3 s"), std::string::npos) << error;
}

namespace {
// `tokcom <args>` with extra environment variables, in the background; the exit code and output.
std::future<std::pair<int, std::string>> cli_async(const std::string& env, const std::string& args) {
  return std::async(std::launch::async, [env, args] {
    const char* cli = std::getenv("TOKCOM_CLI");
    std::string out;
    const int rc = test::run_shell(env + " " + (cli ? cli : "./tokcom") + " " + args, &out);
    return std::make_pair(rc, out);
  });
}
}  // namespace

// Issue 9's equality: two ranks (rank 0 from flags, rank 1 from torchrun's environment variables) for
// one step on halves of a 64-image batch give the weights of one process on the whole batch. Tiny ViT,
// no augmentation, no dropout, AdamW with clipping (so the clip must see the averaged gradient). The
// backbone stage leaves the selection heads of block 1 without gradient (they must stay untouched);
// the adaptive stage trains them, with budgets α drawn for the global batch and split between ranks.
TEST(DistributedTrain, TwoRanksOneStepEqualSingleProcessOnTheWholeBatch) {
  const std::string dir = test::temp_dir("dist_train");
  auto weights = [&](const std::string& run) { return read_safetensors(dir + "/" + run + "/model.safetensors").tensors; };
  auto loss_of = [&](const std::string& run) {  // column 3 of the epoch row
    const std::string csv = read_file(dir + "/" + run + "/epochs.csv");
    const std::string row = csv.substr(csv.find('\n') + 1);
    const size_t c1 = row.find(','), c2 = row.find(',', c1 + 1), c3 = row.find(',', c2 + 1);
    return std::stod(row.substr(c2 + 1, c3 - c2 - 1));
  };
  for (const std::string stage : {"backbone", "adaptive"}) {
    SCOPED_TRACE(stage);
    const std::string common =
        "--log-level warn --threads 1 --seed 11 train data.dataset=fashion-mnist data.image_size=28 "
        "data.augment=none data.workers=1 model.image_size=28 model.patch_size=7 model.in_chans=1 model.dim=32 "
        "model.depth=2 model.heads=2 'model.adaptive_blocks=[1]' train.stage=" + stage +
        " train.epochs=1 train.max_batches=1 train.batch_size=64 train.eval_batch_size=128 'train.eval_alphas=[0.5]' "
        "train.warmup_epochs=0 train.lr=1e-3 train.selection_lr=1e-3 train.grad_clip=0.5 train.optimizer=adamw ";
    const auto [single_rc, single_out] = cli_async("", common + "train.out=" + dir + "/" + stage + "-one").get();
    ASSERT_EQ(single_rc, 0) << single_out;

    const int port = free_port();
    auto r0 = cli_async("", common + "--world-size 2 --rank 0 --master 127.0.0.1:" + std::to_string(port) +
                                " --dist-timeout 30 train.out=" + dir + "/" + stage + "-two");
    auto r1 = cli_async("WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port),
                        common + "--dist-timeout 30 train.out=" + dir + "/" + stage + "-rank1");
    const auto [rc0, out0] = r0.get();
    const auto [rc1, out1] = r1.get();
    ASSERT_EQ(rc0, 0) << out0;
    ASSERT_EQ(rc1, 0) << out1;

    const auto one = weights(stage + "-one"), two = weights(stage + "-two");
    ASSERT_EQ(one.size(), two.size());
    double max_diff = 0;
    for (const auto& [name, t] : one) {
      ASSERT_EQ(two.count(name), 1u) << name;
      max_diff = std::max(max_diff, (t.to(torch::kFloat64) - two.at(name).to(torch::kFloat64)).abs().max().item<double>());
    }
    EXPECT_LT(max_diff, 1e-5);
    std::printf("%s: 2 ranks vs 1 process, max |Δweight| after one step: %.3g\n", stage.c_str(), max_diff);
    // Only rank 0 writes files (rank 1 was given its own train.out); the epoch loss is the global batch's.
    EXPECT_FALSE(std::filesystem::exists(dir + "/" + stage + "-rank1"));
    EXPECT_NEAR(loss_of(stage + "-one"), loss_of(stage + "-two"), 1e-5);
  }
  // The step moved the weights (so the comparison can fail): against a 0-lr run's weights.
  const auto [zrc, zout] =
      cli_async("", "--log-level warn --threads 1 --seed 11 train data.dataset=fashion-mnist data.image_size=28 "
                    "model.image_size=28 model.patch_size=7 model.in_chans=1 model.dim=32 model.depth=2 model.heads=2 "
                    "'model.adaptive_blocks=[1]' train.stage=backbone train.epochs=1 train.max_batches=1 "
                    "train.batch_size=64 train.eval_batch_size=128 train.lr=0 train.out=" + dir + "/zero")
          .get();
  ASSERT_EQ(zrc, 0) << zout;
  const auto init = weights("zero"), one = weights("backbone-one");
  double moved = 0;
  for (const auto& [name, t] : init) moved = std::max(moved, (t - one.at(name)).abs().max().item<double>());
  EXPECT_GT(moved, 1e-4);
}

TEST(DistributedTrain, BatchNotDivisibleByTheWorldIsAConfigError) {
  const std::string dir = test::temp_dir("dist_div");
  // Both ranks join (FileStore), then each fails on its own with the ConfigError (exit code 2) before
  // any collective.
  const std::string common =
      "--log-level warn --threads 1 train data.dataset=fashion-mnist train.stage=backbone train.batch_size=63 "
      "--world-size 2 --dist-timeout 20 --dist-store file:" + dir + "/store train.out=" + dir + "/o ";
  auto r0 = cli_async("", common + "--rank 0");
  auto r1 = cli_async("", common + "--rank 1");
  const auto [rc0, out0] = r0.get();
  const auto [rc1, out1] = r1.get();
  EXPECT_EQ(rc0, 2) << out0;
  EXPECT_EQ(rc1, 2) << out1;
  EXPECT_NE(out0.find("train.batch_size: 63 is not divisible by the world size 2"), std::string::npos) << out0;
}
