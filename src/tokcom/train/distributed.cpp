#include "tokcom/train/distributed.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tokcom/core/errors.h"

#ifndef USE_C10D_GLOO
#error "tokcom/train/distributed.cpp needs USE_C10D_GLOO (CMakeLists.txt sets it; libgloo-dev supplies the headers)"
#endif

namespace tokcom {

struct Distributed::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

// An integer environment variable or flag value; UsageError naming it otherwise.
int parse_int(const std::string& name, const std::string& value) {
  try {
    size_t pos = 0;
    const long v = std::stol(value, &pos);
    if (pos == value.size() && v >= INT32_MIN && v <= INT32_MAX) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw UsageError(fmt::format("{}: '{}' is not an integer", name, value));
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::pair<std::string, uint16_t> split_master(const std::string& master) {
  const size_t colon = master.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == master.size()) {
    throw UsageError(fmt::format("--master: '{}' is not ADDR:PORT (e.g. 10.0.0.1:29500)", master));
  }
  const int port = parse_int("--master port", master.substr(colon + 1));
  if (port < 1 || port > 65535) throw UsageError(fmt::format("--master: port {} is not in 1..65535", port));
  std::string host = master.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, static_cast<uint16_t>(port)};
}

// c10::Error's what() carries a C++ backtrace; the short form names the cause.
std::string short_message(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    std::string m = c10_error->what_without_backtrace();
    const size_t cut = m.find("\nException raised from");
    return cut == std::string::npos ? m : m.substr(0, cut);
  }
  return e.what();
}

}  // namespace

DistributedOptions resolve_distributed_options(DistributedOptions o,
                                               const std::function<const char*(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  if (o.world_size == 0) {
    if (const std::string v = env("WORLD_SIZE"); !v.empty()) o.world_size = parse_int("WORLD_SIZE", v);
    else if (const std::string s = env("SLURM_STEP_NUM_TASKS"); !s.empty()) o.world_size = parse_int("SLURM_STEP_NUM_TASKS", s);
    else o.world_size = 1;
  }
  if (o.world_size < 1) throw UsageError(fmt::format("--world-size: {} (expected at least 1)", o.world_size));
  if (o.rank < 0) {
    if (const std::string v = env("RANK"); !v.empty()) o.rank = parse_int("RANK", v);
    else if (const std::string s = env("SLURM_PROCID"); !s.empty() && o.world_size > 1) o.rank = parse_int("SLURM_PROCID", s);
    else o.rank = 0;
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    throw UsageError(fmt::format("--rank: {} is not in 0..{} (world size {})", o.rank, o.world_size - 1, o.world_size));
  }
  if (!(o.timeout_s > 0)) throw UsageError(fmt::format("--dist-timeout: {} s (expected > 0)", o.timeout_s));
  if (!o.store.empty() && (o.store.rfind("file:", 0) != 0 || o.store.size() == 5)) {
    throw UsageError(fmt::format("--dist-store: '{}' (expected file:PATH, or nothing for the TCPStore at --master)", o.store));
  }
  if (o.master.empty()) {
    const std::string addr = env("MASTER_ADDR"), port = env("MASTER_PORT");
    if (!addr.empty() || !port.empty()) {
      if (addr.empty() || port.empty()) {
        throw UsageError(fmt::format("MASTER_ADDR='{}' MASTER_PORT='{}': set both or neither", addr, port));
      }
      o.master = addr + ":" + port;
    }
  }
  if (!o.master.empty()) split_master(o.master);  // validates ADDR:PORT
  if (o.world_size > 1 && o.master.empty() && o.store.empty()) {
    throw UsageError(fmt::format("a world of {} ranks needs a rendezvous: --master ADDR:PORT (or MASTER_ADDR and "
                                 "MASTER_PORT) or --dist-store file:PATH",
                                 o.world_size));
  }
  if (o.bucket_bytes < 1) throw UsageError("distributed bucket_bytes must be positive");
  return o;
}

Distributed::Distributed() = default;
Distributed::~Distributed() = default;

Distributed::Distributed(const DistributedOptions& options) : options_(resolve_distributed_options(options)) {
  world_size_ = options_.world_size;
  rank_ = options_.rank;
  if (world_size_ == 1) return;  // no store, no group: the single-process path
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000.0));
  auto group = std::make_unique<Group>();
  std::string device_host;
  try {
    if (!options_.store.empty()) {
      const std::string path = options_.store.substr(5);
      where_ = "file:" + path;
      group->store = c10::make_intrusive<c10d::FileStore>(path, world_size_);
      group->store->setTimeout(timeout);
    } else {
      const auto [host, port] = split_master(options_.master);
      where_ = fmt::format("tcp://{}:{}", host, port);
      c10d::TCPStoreOptions so;
      so.port = port;
      so.isServer = rank_ == 0;
      so.numWorkers = world_size_;
      so.waitWorkers = false;  // the group's own rendezvous below waits for every rank (once, with the timeout)
      so.timeout = timeout;
      group->store = c10::make_intrusive<c10d::TCPStore>(host, so);
      if (is_loopback(host)) device_host = "127.0.0.1";  // every rank on this machine
    }
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (!device_host.empty()) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(device_host));
    } else {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    gloo->threads = 2;
    group->group = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, rank_, world_size_, gloo);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rendezvous (did every rank start, with the same world size and rendezvous address?)", e);
  }
  group_ = std::move(group);
  spdlog::info("distributed: rank {} of {} joined at {} (gloo, timeout {} s)", rank_, world_size_, where_,
               options_.timeout_s);
}

void Distributed::fail(const std::string& what, const std::exception& e) const {
  throw UsageError(fmt::format("distributed rank {} of {} at {}: {} failed (timeout {} s; a rank that died, left or "
                               "never joined makes the others fail here): {}",
                               rank_, world_size_, where_.empty() ? "?" : where_, what, options_.timeout_s,
                               short_message(e)));
}

void Distributed::allreduce_flat(std::vector<torch::Tensor>& flat, const char* what) {
  try {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& t : flat) {
      std::vector<at::Tensor> one{t};
      works.push_back(group_->group->allreduce(one));  // gloo runs them in order; all in flight at once
    }
    for (auto& w : works) w->wait();
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Distributed::step(const std::vector<torch::Tensor>& params, double weight, double clip,
                       torch::optim::Optimizer& optimizer) {
  allreduce_gradients(params, weight);
  if (clip > 0) torch::nn::utils::clip_grad_norm_(params, clip);
  optimizer.step();
}

void Distributed::allreduce_gradients(const std::vector<torch::Tensor>& params, double weight) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  // Which gradients exist anywhere (an empty shard on some rank leaves its gradients undefined).
  auto defined = torch::zeros({static_cast<int64_t>(params.size())}, torch::kFloat64);
  auto* d = defined.data_ptr<double>();
  for (size_t i = 0; i < params.size(); ++i) d[i] = params[i].grad().defined() ? 1.0 : 0.0;
  std::vector<torch::Tensor> flags{defined};
  allreduce_flat(flags, "gradient allreduce (which gradients exist)");

  // Buckets of ≤ bucket_bytes, one dtype each, in parameter order (the same on every rank).
  struct Bucket {
    std::vector<size_t> members;
    int64_t bytes = 0;
    c10::ScalarType dtype;
  };
  std::vector<Bucket> buckets;
  std::map<c10::ScalarType, size_t> open;  // the bucket still filling, per dtype
  for (size_t i = 0; i < params.size(); ++i) {
    if (d[i] == 0.0) continue;  // undefined on every rank: stays undefined
    const auto& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    auto it = open.find(p.scalar_type());
    if (it == open.end() || (buckets[it->second].bytes > 0 && buckets[it->second].bytes + bytes > options_.bucket_bytes)) {
      buckets.push_back({{}, 0, p.scalar_type()});
      it = open.insert_or_assign(p.scalar_type(), buckets.size() - 1).first;
    }
    buckets[it->second].members.push_back(i);
    buckets[it->second].bytes += bytes;
  }
  std::vector<torch::Tensor> flat;
  for (const auto& b : buckets) {
    std::vector<torch::Tensor> views;
    for (size_t i : b.members) views.push_back(params[i].grad().reshape({-1}));
    flat.push_back(torch::cat(views).mul_(weight));
  }
  allreduce_flat(flat, "gradient allreduce");
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t offset = 0;
    for (size_t i : buckets[k].members) {
      auto& g = params[i].mutable_grad();
      const int64_t n = g.numel();
      g.copy_(flat[k].narrow(0, offset, n).view_as(g));
      offset += n;
    }
  }
}

void Distributed::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  // One flat tensor per dtype (parameters and buffers are small next to a gradient step).
  std::vector<c10::ScalarType> dtypes;
  for (const auto& t : tensors) {
    if (std::find(dtypes.begin(), dtypes.end(), t.scalar_type()) == dtypes.end()) dtypes.push_back(t.scalar_type());
  }
  for (const auto dtype : dtypes) {
    std::vector<torch::Tensor> views;
    std::vector<size_t> members;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].scalar_type() != dtype) continue;
      views.push_back(tensors[i].reshape({-1}));
      members.push_back(i);
    }
    std::vector<at::Tensor> flat{torch::cat(views)};
    try {
      c10d::BroadcastOptions bo;
      bo.rootRank = 0;
      group_->group->broadcast(flat, bo)->wait();
    } catch (const std::exception& e) {
      fail("broadcast of rank 0's parameters", e);
    }
    int64_t offset = 0;
    for (size_t i : members) {
      torch::Tensor t = tensors[i];
      t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

std::vector<double> Distributed::allreduce_sum(std::vector<double> values) {
  if (!active() || values.empty()) return values;
  std::vector<torch::Tensor> flat{torch::tensor(values, torch::kFloat64)};
  allreduce_flat(flat, "metric allreduce");
  const double* p = flat[0].data_ptr<double>();
  return std::vector<double>(p, p + values.size());
}

void Distributed::barrier() {
  if (!active()) return;
  try {
    group_->group->barrier()->wait();
  } catch (const std::exception& e) {
    fail("barrier", e);
  }
}

void Distributed::expect_same(double value, const std::string& what) {
  if (!active()) return;
  // Equal values ⇔ N·Σv² = (Σv)² (Cauchy–Schwarz), exact for the small integers this is used with.
  const std::vector<double> s = allreduce_sum({value, value * value, rank_ == 0 ? value : 0.0});
  if (world_size_ * s[1] != s[0] * s[0]) {
    throw UsageError(fmt::format("distributed rank {} of {}: {} differs between ranks ({} here, {} on rank 0)", rank_,
                                 world_size_, what, value, s[2]));
  }
}

ImageDataset shard_rows(const ImageDataset& data, int64_t limit, int world_size, int rank) {
  const int64_t n = limit > 0 ? std::min(limit, data.size()) : data.size();
  const int64_t lo = n * rank / world_size, hi = n * (rank + 1) / world_size;
  ImageDataset out = data;
  out.images = data.images.narrow(0, lo, hi - lo);
  out.labels = data.labels.narrow(0, lo, hi - lo);
  return out;
}

}  // namespace tokcom
