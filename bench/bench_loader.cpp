// Loader throughput: decoded-and-augmented Imagenette-64 images per second, batch 128, 2 worker
// threads (bench/torch_loader.py times PyTorch's DataLoader + torchvision on the same images).
// The images are decoded once (cached uint8 tensor) before timing, as in training epochs ≥ 2.
#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <time.h>

#include "tokcom/core/config.h"
#include "tokcom/core/startup.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"

namespace {

// CPU seconds of the whole process (all threads): on a loaded shared machine wall-clock rates
// drop with the load; images per CPU-second do not.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

const tokcom::ImageDataset& train_set() {
  static const tokcom::ImageDataset ds =
      tokcom::load_dataset(tokcom::Config::load("", {"data.dataset=imagenette", "data.image_size=64"}), "train");
  return ds;
}

const char* kAugments[] = {"none", "crop-flip", "randaugment"};

// One full epoch of Imagenette-64 train (9,469 images) per iteration.
void BM_LoaderEpoch(benchmark::State& state) {
  const auto& ds = train_set();
  const std::string augment = kAugments[state.range(0)];
  const auto cfg = tokcom::Config::load("", {"data.dataset=imagenette", "data.image_size=64",
                                             "data.augment=" + augment});
  tokcom::LoaderOptions options;
  options.batch_size = 128;
  options.workers = int(state.range(1));
  options.prefetch = 4;
  options.augment = augment != "none";
  tokcom::Loader loader(ds, tokcom::transform_options(cfg, ds), options);
  int64_t images = 0, epoch = 0;
  const double cpu_start = process_cpu_seconds();
  for (auto _ : state) {
    loader.start_epoch(epoch++);
    tokcom::Batch batch;
    while (loader.next(batch)) {
      images += batch.images.size(0);
      benchmark::DoNotOptimize(batch.images.data_ptr<float>());
    }
  }
  const double cpu = process_cpu_seconds() - cpu_start;
  state.SetLabel(augment);
  state.counters["images/s"] = benchmark::Counter(double(images), benchmark::Counter::kIsRate);
  state.counters["images/cpu_s"] = benchmark::Counter(cpu > 0 ? double(images) / cpu : 0.0);
}
BENCHMARK(BM_LoaderEpoch)
    ->ArgsProduct({{0, 1, 2}, {2}})
    ->ArgNames({"augment", "workers"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);

// Decoding the tarball (no cache): JPEG decode of 9,469 64-px images on 2 threads.
void BM_DecodeTarball(benchmark::State& state) {
  tokcom::FolderReadOptions options;
  options.image_size = 64;
  options.threads = 2;
  const std::string tar = tokcom::find_imagenette_tar(tokcom::Config::load("", {"data.image_size=64"}));
  int64_t images = 0;
  for (auto _ : state) {
    auto ds = tokcom::read_image_tar(tar, "train", options);
    images += ds.size();
  }
  state.counters["images/s"] = benchmark::Counter(double(images), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeTarball)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

int main(int argc, char** argv) {
  tokcom::StartupOptions options;
  options.threads = 2;
  options.log_level = "warn";
  tokcom::startup(options);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  train_set();  // decode (or read the cache) before timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
