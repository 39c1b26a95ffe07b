// The device ↔ edge-server service: wire format and validation, cross-device packing, the gRPC
// server and client in-process (predictions, bad messages, disconnects, auth, drain), and the CLI
// end to end (`tokcom serve` + two `tokcom device` processes = in-process `tokcom optimize --bank`).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/helpers.h"
#include "common/serve_fixture.h"
#include "common/tiny_vit.h"
#include "edge.pb.h"
#include "tokcom/comm/zeta.h"
#include "tokcom/control/proxy_table.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/net/batcher.h"
#include "tokcom/net/client.h"
#include "tokcom/net/credentials.h"
#include "tokcom/net/http.h"
#include "tokcom/net/server.h"
#include "tokcom/net/wire.h"
#include "tokcom/split/digital_server.h"
#include "tokcom/split/proposal.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/trainer.h"

using namespace tokcom;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> tiny_overrides(const std::string& out) { return test::tiny_vit_overrides(out, "none"); }
Vit random_vit(const Config& config, uint64_t seed) { return test::random_tiny_vit(config, seed); }

// In-memory link with two ratios (0.1, 0.5): device and server halves sharing one random ViT.
SplitModel tiny_model(const Config& config) {
  Vit vit = random_vit(config, 7);
  torch::manual_seed(11);
  std::vector<JsccEncoder> enc;
  std::vector<JsccDecoder> dec;
  for (double r : {0.1, 0.5}) {
    JsccCodec codec(JsccOptions().dim(32).ratio(r));
    codec->eval();
    enc.push_back(codec->encoder);
    dec.push_back(codec->decoder);
  }
  ProposalOptions o;
  o.split = 3;
  SplitModel m;
  m.device = std::make_shared<ProposalDevice>(vit, enc, std::vector<double>{0.1, 0.5}, o);
  m.server = std::make_shared<ProposalServer>(std::vector<Vit>{vit, vit}, dec, o);
  m.input_values = input_values(config);
  return m;
}

net::ServedModel tiny_served(const Config& config) {
  return net::served_model(config, {0.1, 0.5}, "robust", "hard");
}

// A valid message for sample 0 of a fresh payload, to be broken field by field.
v1::Payload valid_message(SplitModel& m, int64_t ratio_index = 0) {
  torch::manual_seed(3);
  const Payload p = m.device->encode(torch::randn({1, 1, 28, 28}), Decision{0.5, ratio_index});
  v1::Payload msg;
  net::to_message(p, 0, ratio_index == 0 ? 0.1 : 0.5, &msg);
  return msg;
}

std::string error_of_message(const v1::Payload& msg, const net::ServedModel& served) {
  return test::error_of([&] { net::from_message(msg, served); });
}

struct LocalServer {
  std::unique_ptr<net::EdgeServer> server;
  std::string address;
  LocalServer(SplitModel& m, const Config& config, net::ServeOptions o = {}, const net::ServedModel* served = nullptr) {
    o.listen = "127.0.0.1:0";
    o.metrics_interval_s = 0;
    server = std::make_unique<net::EdgeServer>(m.server, served ? *served : tiny_served(config), o);
    server->start();
    address = "127.0.0.1:" + std::to_string(server->port());
  }
};

net::ClientOptions client_options(const std::string& address) {
  net::ClientOptions c;
  c.address = address;
  c.connect_timeout_s = 10;
  return c;
}

}  // namespace

TEST(Wire, RoundTripKeepsOnlyRealSlots) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  torch::manual_seed(5);
  const Payload batch = m.device->encode(torch::randn({4, 1, 28, 28}), Decision{0.4, 1});
  ASSERT_TRUE(batch.token_mask.defined());  // hard mode packs different lengths
  const net::ServedModel served = tiny_served(config);
  for (int64_t b = 0; b < 4; ++b) {
    v1::Payload msg;
    net::to_message(batch, b, 0.5, &msg);
    const int64_t real = batch.token_mask[b].sum().item<int64_t>();
    EXPECT_EQ(msg.tokens(), real);
    EXPECT_EQ(msg.symbols().size(), static_cast<size_t>(real * 16 * 8));  // d_r(0.5·32) = 16
    const net::DecodedRequest r = net::from_message(msg, served);
    EXPECT_EQ(r.payload.ratio_index, 1);
    const auto keep = batch.token_mask[b].nonzero().squeeze(1);
    EXPECT_TRUE(torch::equal(r.payload.symbols[0], batch.symbols[b].index_select(0, keep)));
    EXPECT_TRUE(msg.token_scale().empty());  // nothing outside ζ (comm.token_scale none)
    EXPECT_FALSE(r.payload.token_scale.defined());
    // ζ of the message = ζ the sender counted for that image.
    EXPECT_EQ(symbols_per_image(r.payload)[0].item<int64_t>(), batch.symbols_per_image(b));
  }
}

TEST(Wire, EveryMalformedFieldIsNamed) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  const net::ServedModel served = tiny_served(config);
  ASSERT_EQ(served.max_tokens, 18);  // cls + 16 patches + budget
  const v1::Payload good = valid_message(m);
  EXPECT_EQ(error_of_message(good, served), "<no error>");
  auto broken = [&](const std::function<void(v1::Payload&)>& f) {
    v1::Payload msg = good;
    f(msg);
    return error_of_message(msg, served);
  };
  auto has = [](const std::string& error, const std::string& part) {
    return error.find(part) != std::string::npos;
  };
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_method("jpeg"); }), "payload.method is 'jpeg'");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_ratio(0.25); }), "payload.ratio is 0.25");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_ratio(std::nan("")); }), "payload.ratio");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_symbols_per_token(16); }), "payload.symbols_per_token is 16");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_tokens(0); }), "payload.tokens is 0, expected in [1, 18]");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_tokens(19); }), "payload.tokens is 19");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_tokens(-5); }), "payload.tokens is -5");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_tokens(p.tokens() - 1); }), "payload.symbols has");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.mutable_symbols()->pop_back(); }), "payload.symbols has");
  // A hard payload carries nothing beside its symbols (METHOD §10 P27).
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_token_scale(std::string(4 * p.tokens(), '\0')); }),
               "payload.token_scale is set, expected empty");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_codec_bytes("\xff\xd8"); }), "payload.codec_bytes is set");
  EXPECT_PRED2(has, broken([](v1::Payload& p) {
    const float nan = std::nanf("");
    std::memcpy(p.mutable_symbols()->data() + 8, &nan, 4);
  }), "payload.symbols holds NaN or Inf");
  // The monitoring fields too (`serve --http` shows them): a device cannot poison the page.
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_snr_db(std::nan("")); }), "payload.snr_db is nan");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_budget(1.5); }), "payload.budget is 1.5, expected in [0, 1]");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_queue(-1); }), "payload.queue is -1");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_zeta_max(INFINITY); }), "payload.zeta_max is inf");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_label(10); }), "payload.label is 10, expected a class in [0, 10)");
  EXPECT_PRED2(has, broken([](v1::Payload& p) { p.set_label(-1); }), "payload.label is -1");
  {
    v1::Payload labelled = good;
    labelled.set_label(3);
    labelled.set_queue(2.5);
    labelled.set_zeta_max(0.01);
    const net::DecodedRequest r = net::from_message(labelled, served);
    EXPECT_EQ(r.report.label, 3);
    EXPECT_EQ(r.report.queue, 2.5);
    EXPECT_EQ(r.report.zeta_max, 0.01);
    EXPECT_EQ(net::from_message(good, served).report.label, -1);  // no label sent: none
  }
  // Soft-mode servers take full-length payloads only, whose token_scale says only which positions
  // were kept (0 or 1).
  net::ServedModel soft = served;
  soft.mode = "soft";
  EXPECT_PRED2(has, error_of_message(good, soft), "soft mode sends every position");
  v1::Payload full = good;
  full.set_tokens(18);
  full.set_symbols(std::string(18 * 3 * 8, '\0'));
  EXPECT_EQ(error_of_message(full, soft), "<no error>");
  std::vector<float> kept(18, 1.0f);
  kept[5] = 0.0f;
  full.set_token_scale(kept.data(), kept.size() * 4);
  EXPECT_EQ(error_of_message(full, soft), "<no error>");
  kept[6] = 0.5f;  // a soft mask value would be information outside ζ
  full.set_token_scale(kept.data(), kept.size() * 4);
  EXPECT_PRED2(has, error_of_message(full, soft), "payload.token_scale holds values other than 0 and 1");
  full.mutable_token_scale()->append("x");
  EXPECT_PRED2(has, error_of_message(full, soft), "payload.token_scale has");
}

TEST(Batcher, PackedBatchGivesTheSameLogitsAsSingleImages) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  const net::ServedModel served = tiny_served(config);
  torch::manual_seed(9);
  const torch::Tensor images = torch::randn({6, 1, 28, 28});
  std::vector<Payload> singles;
  std::vector<const Payload*> pointers;
  std::vector<torch::Tensor> expected;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < 6; ++i) {
    const Payload p = m.device->encode(images.slice(0, i, i + 1), Decision{i % 2 ? 0.3 : 0.8, 0});
    v1::Payload msg;
    net::to_message(p, 0, 0.1, &msg);
    singles.push_back(net::from_message(msg, served).payload);
    expected.push_back(m.server->decode(p));
  }
  for (const Payload& p : singles) pointers.push_back(&p);
  const Payload packed = net::pack_payloads(pointers, torch::kCPU);
  ASSERT_TRUE(packed.token_mask.defined());  // budgets 0.3 and 0.8 keep different numbers of tokens
  const torch::Tensor logits = m.server->decode(packed);
  for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(torch::allclose(logits[i], expected[i][0], 1e-5, 1e-5)) << i;
  // Mixed ratios never share a batch.
  Payload other = singles[0];
  other.ratio_index = 1;
  EXPECT_NE(test::error_of([&] { net::pack_payloads({&singles[0], &other}, torch::kCPU); }).find("FormatError"),
            std::string::npos);
}

TEST(Service, PredictionsMatchInProcessAndBadMessagesEndOnlyTheirStream) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  net::ServeOptions o;
  o.batching.max_batch = 8;
  o.batching.max_wait_ms = 20;
  LocalServer local(m, config, o);

  auto good = std::make_shared<net::EdgeClient>(client_options(local.address));
  net::EdgeClient other(client_options(local.address));  // a second device: batches wait for 2
  for (int i = 0; i < 400 && local.server->metrics().streams() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(good->healthy());
  EXPECT_EQ(good->served().ratios, (std::vector<double>{0.1, 0.5}));
  net::RemoteServer remote(good, {0.1, 0.5});
  torch::manual_seed(13);
  const torch::Tensor images = torch::randn({5, 1, 28, 28});
  const Payload p = m.device->encode(images, Decision{0.5, 1});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = m.server->decode(p);
  }
  // Five requests in flight at once: the server batches them (max wait 20 ms) and the answers
  // still land on the right rows.
  const torch::Tensor logits = remote.decode(p);
  EXPECT_TRUE(torch::allclose(logits, expected, 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(logits.argmax(1), expected.argmax(1)));
  EXPECT_EQ(local.server->metrics().requests(), 5);
  EXPECT_LT(local.server->metrics().batches(), 5);  // some of them shared a batch

  // A malformed request ends its own stream with INVALID_ARGUMENT naming the field ...
  {
    net::EdgeClient bad(client_options(local.address));
    v1::InferRequest request;
    request.set_request_id(77);
    *request.mutable_payload() = valid_message(m);
    request.mutable_payload()->set_tokens(999);
    bad.send_raw(request.SerializeAsString());
    const std::string error = test::error_of([&] { bad.receive(); });
    EXPECT_NE(error.find("INVALID_ARGUMENT"), std::string::npos) << error;
    EXPECT_NE(error.find("request_id 77: FormatError: request payload.tokens is 999"), std::string::npos) << error;
  }
  // ... so does a control request to a server that runs no controller ...
  {
    net::EdgeClient bad(client_options(local.address));
    EXPECT_FALSE(bad.served().controller);
    const std::string error = test::error_of([&] { bad.decide(10.0, "", 5, nullptr); });
    EXPECT_NE(error.find("INVALID_ARGUMENT"), std::string::npos) << error;
    EXPECT_NE(error.find("request_id 5: control: this server runs no controller"), std::string::npos) << error;
  }
  // ... garbage bytes in a field too, and a client that vanishes mid-stream with requests in flight ...
  {
    auto vanishing = std::make_unique<net::EdgeClient>(client_options(local.address));
    for (uint64_t i = 0; i < 4; ++i) vanishing->send(p, static_cast<int64_t>(i), 0.5, i);
    vanishing.reset();  // cancels the stream without reading
  }
  // ... and the first device's stream, and the server, go on.
  EXPECT_TRUE(torch::allclose(remote.decode(p), expected, 1e-5, 1e-5));
  EXPECT_TRUE(good->healthy());
  good->finish();
  EXPECT_GE(local.server->metrics().errors(), 1);
  EXPECT_GE(local.server->metrics().requests(), 10);
}

TEST(Service, DigitalPayloadsAreClassifiedByTheBackboneAndCorruptImagesEndOnlyTheirStream) {
  const Config config = Config::load("", tiny_overrides("x"));
  Vit backbone = random_vit(config, 21);
  auto digital = std::make_shared<DigitalServer>(backbone, "jpeg", config, torch::kCPU);
  SplitModel m;
  m.server = digital;
  net::ServeOptions o;
  o.batching.max_batch = 4;
  o.check_payload = [digital](const Payload& p) { digital->images(p); };
  const net::ServedModel served = net::served_digital_model(config, "jpeg", digital->max_codec_bytes());
  LocalServer local(m, config, o, &served);

  // Three images encoded at a generous budget: the server's answer is the backbone's on the
  // decoded images, whichever way they were batched.
  torch::manual_seed(4);
  const torch::Tensor raw = (torch::rand({3, 1, 28, 28}) * 255).to(torch::kUInt8);
  const auto codec = digital::make_codec("jpeg");
  Payload p;
  p.method = "jpeg";
  for (int64_t b = 0; b < 3; ++b) {
    const digital::Encoded e = codec->encode(raw[b], 200000);
    ASSERT_TRUE(e.fits);
    p.bytes.push_back(e.bytes);
  }
  const torch::Tensor expected = digital->decode(p);
  auto client = std::make_shared<net::EdgeClient>(client_options(local.address));
  EXPECT_EQ(client->served().method, "jpeg");
  EXPECT_TRUE(client->served().digital());
  net::RemoteServer remote(client, {});
  EXPECT_TRUE(torch::allclose(remote.decode(p), expected, 1e-5, 1e-5));

  // A corrupt image ends its own stream, naming the byte field; the first device goes on.
  {
    net::EdgeClient bad(client_options(local.address));
    Payload broken = p;
    broken.bytes = {std::string(50, 'x')};
    bad.send(broken, 0, 0.0, 9);
    const std::string error = test::error_of([&] { bad.receive(); });
    EXPECT_NE(error.find("INVALID_ARGUMENT"), std::string::npos) << error;
    EXPECT_NE(error.find("payload.bytes[0] (50 bytes) is not a decodable jpeg image"), std::string::npos) << error;
  }
  {
    net::EdgeClient bad(client_options(local.address));
    v1::InferRequest request;
    request.set_request_id(10);
    request.mutable_payload()->set_method("jpeg");
    bad.send_raw(request.SerializeAsString());
    const std::string error = test::error_of([&] { bad.receive(); });
    EXPECT_NE(error.find("payload.codec_bytes is empty"), std::string::npos) << error;
  }
  EXPECT_TRUE(torch::allclose(remote.decode(p), expected, 1e-5, 1e-5));
  client->finish();
}

TEST(Service, TokenAuthAndMessageSizeLimit) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  net::ServeOptions o;
  o.auth_token = "s3cret";
  LocalServer local(m, config, o);
  const std::string no_token = test::error_of([&] { net::EdgeClient c(client_options(local.address)); });
  EXPECT_NE(no_token.find("UNAUTHENTICATED"), std::string::npos) << no_token;
  net::ClientOptions wrong = client_options(local.address);
  wrong.auth_token = "guess";
  EXPECT_NE(test::error_of([&] { net::EdgeClient c(wrong); }).find("UNAUTHENTICATED"), std::string::npos);
  net::ClientOptions right = client_options(local.address);
  right.auth_token = "s3cret";
  net::EdgeClient client(right);
  // A message over the size limit is refused by gRPC itself (RESOURCE_EXHAUSTED), not parsed.
  v1::InferRequest huge;
  *huge.mutable_payload() = valid_message(m);
  huge.mutable_payload()->mutable_symbols()->append(std::string(1 << 20, '\0'));
  client.send_raw(huge.SerializeAsString());
  const std::string error = test::error_of([&] { client.receive(); });
  EXPECT_NE(error.find("RESOURCE_EXHAUSTED"), std::string::npos) << error;
}

TEST(Service, TlsWithTheServersCertificate) {
  const std::string dir = test::temp_dir("tls");
  const std::string key = dir + "/server.key", cert = dir + "/server.pem";
  const std::string make_cert = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
                                "subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " + key + " -out " + cert +
                                " > " + dir + "/openssl.log 2>&1";
  ASSERT_EQ(std::system(make_cert.c_str()), 0) << "openssl could not make a test certificate";
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  net::ServeOptions o;
  o.tls_cert = cert;
  o.tls_key = key;
  LocalServer local(m, config, o);
  net::ClientOptions secure = client_options(local.address);
  secure.tls_ca = cert;
  auto client = std::make_shared<net::EdgeClient>(secure);
  net::RemoteServer remote(client, {0.1, 0.5});
  torch::manual_seed(17);
  const Payload p = m.device->encode(torch::randn({2, 1, 28, 28}), Decision{0.5, 0});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(remote.decode(p), m.server->decode(p), 1e-5, 1e-5));
  client->finish();
  // A plaintext client cannot talk to it.
  net::ClientOptions plain = client_options(local.address);
  plain.connect_timeout_s = 1;
  EXPECT_NE(test::error_of([&] { net::EdgeClient c(plain); }).find("NetworkError"), std::string::npos);
}

TEST(Service, ShutdownAnswersEveryRequestAlreadyRead) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  net::ServeOptions o;
  o.batching.max_batch = 64;
  o.batching.max_wait_ms = 500;  // the requests are still queued when the shutdown starts
  o.drain_timeout_s = 1;         // the idle stream is closed then
  LocalServer local(m, config, o);
  net::EdgeClient client(client_options(local.address));
  // Sixteen more devices connected (idle): a batch may wait for up to 17 requests, so the 12 below
  // are still queued when the shutdown starts.
  std::vector<std::unique_ptr<net::EdgeClient>> idle;
  for (int i = 0; i < 16; ++i) idle.push_back(std::make_unique<net::EdgeClient>(client_options(local.address)));
  for (int i = 0; i < 400 && local.server->metrics().streams() < 17; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(local.server->metrics().streams(), 17);
  torch::manual_seed(21);
  const Payload p = m.device->encode(torch::randn({12, 1, 28, 28}), Decision{0.5, 0});
  for (uint64_t i = 0; i < 12; ++i) client.send(p, static_cast<int64_t>(i), 0.1, i);
  for (int i = 0; i < 400 && local.server->metrics().received() < 12; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(local.server->metrics().received(), 12);
  EXPECT_EQ(local.server->metrics().requests(), 0);  // none answered yet
  std::thread stopper([&] { local.server->shutdown(); });
  std::set<uint64_t> answered;
  std::string error;
  try {
    for (int i = 0; i < 12; ++i) answered.insert(client.receive().request_id);
  } catch (const Error& e) {
    error = e.what();
  }
  stopper.join();
  EXPECT_EQ(answered.size(), 12u) << error;
  EXPECT_EQ(local.server->metrics().requests(), 12);
}

using test::slurp;
using test::spawn_cli;
using test::wait_exit;

// Prometheus text format, read plainly: "name{labels} value" → value, comments skipped.
std::map<std::string, double> parse_prometheus(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(ServeCli, TwoDeviceProcessesWriteTheInProcessCsv) {
  const std::string dir = test::temp_dir("serve");
  const test::TinyDeployment tiny = test::tiny_deployment(dir);
  const std::string &bank = tiny.bank, &table = tiny.table, &common = tiny.common;

  std::string output;
  ASSERT_EQ(test::run_cli("--threads 1 --seed 5 optimize --bank " + bank + " " + common + " --deploy-images 24 -o " +
                              dir + "/local",
                          &output),
            0)
      << output;

  const std::string port_file = dir + "/port";
  // The server also runs the controller (for the device that asks it to: `--controller server`),
  // and the HTTP endpoint (its /metrics are checked against the devices' traces below).
  const pid_t server = spawn_cli("--threads 2 serve --checkpoint-dir " + bank +
                                     " --listen 127.0.0.1:0 --max-batch 8 --max-wait-ms 2 --metrics-interval 0 "
                                     "--table " + table + " --port-file " + port_file + " --http 0 --http-port-file " +
                                     dir + "/http-port",
                                 dir + "/serve.log");
  for (int i = 0; i < 600 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(port_file)) << slurp(dir + "/serve.log");
  const std::string address = "127.0.0.1:" + std::to_string(std::stoi(slurp(port_file)));
  std::vector<pid_t> devices;
  for (int k = 0; k < 2; ++k) {
    devices.push_back(spawn_cli("--threads 1 --seed 5 device --server " + address + " --bank " + bank + " " + common +
                                    " --images 24 --controller " + (k == 0 ? "device" : "server") + " -o " + dir +
                                    "/device" + std::to_string(k) + " --name dev-" + std::to_string(k) +
                                    (k == 0 ? " --send-labels" : ""),
                                dir + "/device" + std::to_string(k) + ".log"));
  }
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(wait_exit(devices[k]), 0) << slurp(dir + "/device" + std::to_string(k) + ".log");
  }
  const int http_port = test::read_port_file(dir + "/http-port", 1);
  ASSERT_GT(http_port, 0) << slurp(dir + "/serve.log");
  const test::HttpReply metrics = test::http_get(http_port, "/metrics");
  const test::HttpReply state = test::http_get(http_port, "/api/state");
  EXPECT_EQ(test::http_get(http_port, "/healthz").body, "ok\n");
  kill(server, SIGTERM);
  EXPECT_EQ(wait_exit(server), 0);
  const std::string serve_log = slurp(dir + "/serve.log");
  EXPECT_NE(serve_log.find("final metrics: requests 48 errors 0"), std::string::npos) << serve_log;
  EXPECT_NE(serve_log.find(" decisions 24\n"), std::string::npos) << serve_log;  // the server-controlled device's slots
  // The server's controller, continued from the device's picked state, decided exactly as the
  // device's own mirror (a divergence would be logged).
  EXPECT_EQ(slurp(dir + "/device1.log").find("remote controller decided"), std::string::npos) << slurp(dir + "/device1.log");

  const std::string trace = "/deploy/trace_gauss_10_2.5_zmax0.03_rep0.csv";
  const std::string expected = slurp(dir + "/local" + trace);
  ASSERT_GT(std::count(expected.begin(), expected.end(), '\n'), 24) << expected;
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(slurp(dir + "/device" + std::to_string(k) + trace), expected) << "device " << k;
    EXPECT_EQ(slurp(dir + "/device" + std::to_string(k) + "/deploy_summary.csv"), slurp(dir + "/local/deploy_summary.csv"));
  }
  // What the server's monitor says (`serve --http`) is what the devices sent, slot for slot.
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_EQ(metrics.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::map<std::string, double> series = parse_prometheus(metrics.body);
  EXPECT_EQ(series.at("tokcom_requests_answered_total"), 48);
  EXPECT_EQ(series.at("tokcom_request_errors_total"), 0);
  EXPECT_EQ(series.at("tokcom_streams_opened_total"), 2);
  EXPECT_EQ(series.at("tokcom_decisions_total"), 24);
  EXPECT_EQ(series.at("tokcom_devices_connected"), 0);
  EXPECT_EQ(series.at("tokcom_request_latency_seconds_count"), 48);
  EXPECT_EQ(series.at("tokcom_request_latency_seconds_bucket{le=\"+Inf\"}"), 48);
  EXPECT_EQ(series.at("tokcom_batch_size_sum"), 48);
  const nlohmann::json json = nlohmann::json::parse(state.body);
  ASSERT_EQ(json["devices"].size(), 2u) << state.body;
  for (int k = 0; k < 2; ++k) {
    const csv::Table t = csv::read(dir + "/device" + std::to_string(k) + trace, "trace");
    const size_t n = t.rows.size(), last = n - 1;
    double zeta_sum = 0, correct = 0;
    for (size_t i = 0; i < n; ++i) {
      zeta_sum += t.number(i, "zeta");
      correct += t.number(i, "correct");
    }
    auto value = [&](const std::string& name) {
      for (const auto& [key, v] : series)
        if (key.rfind(name + "{device=\"dev-" + std::to_string(k) + "\"", 0) == 0) return v;
      ADD_FAILURE() << name << " of dev-" << k << " not in /metrics:\n" << metrics.body;
      return -1.0;
    };
    EXPECT_EQ(value("tokcom_device_requests_total"), double(n)) << k;
    EXPECT_EQ(value("tokcom_device_connected"), 0) << k;
    EXPECT_EQ(value("tokcom_device_errors_total"), 0) << k;
    EXPECT_NEAR(value("tokcom_device_zeta_sum"), zeta_sum, 1e-9 * zeta_sum) << k;  // counted here = counted there
    EXPECT_EQ(value("tokcom_device_zeta_count"), double(n)) << k;
    EXPECT_EQ(value("tokcom_device_zeta_max"), 0.03) << k;
    EXPECT_NEAR(value("tokcom_device_queue"), t.number(last, "z_before"), 1e-6 * (1 + t.number(last, "z_before"))) << k;
    EXPECT_NEAR(value("tokcom_device_budget"), t.number(last, "budget"), 1e-9) << k;
    EXPECT_NEAR(value("tokcom_device_ratio"), t.number(last, "ratio"), 1e-9) << k;
    EXPECT_NEAR(value("tokcom_device_snr_db"), t.number(last, "snr_db"), 1e-6) << k;
    // Labels only from the device that sends them: accuracy where labels come with the requests.
    EXPECT_EQ(value("tokcom_device_labelled_total"), k == 0 ? double(n) : 0.0) << k;
    EXPECT_EQ(value("tokcom_device_correct_total"), k == 0 ? correct : 0.0) << k;
    const auto& d = json["devices"][k]["name"] == "dev-" + std::to_string(k) ? json["devices"][k] : json["devices"][1 - k];
    EXPECT_EQ(d["name"], "dev-" + std::to_string(k));
    EXPECT_EQ(d["status"], "OK");
    EXPECT_EQ(d["connected"], false);
    EXPECT_EQ(d["history"]["budget"].size(), n);
    EXPECT_EQ(d["history"]["budget"][last].get<double>(), value("tokcom_device_budget"));
    if (k == 0) {
      EXPECT_NEAR(d["accuracy"].get<double>(), correct / double(n), 1e-12);
    } else {
      EXPECT_TRUE(d["accuracy"].is_null());
    }
  }
  // An independent reader of the exposition format (Prometheus's Python client) reads it all.
  if (std::system("/usr/bin/python3 -c 'import prometheus_client' > /dev/null 2>&1") == 0) {
    write_file_atomic(dir + "/metrics.txt", metrics.body);
    std::string out;
    const std::string py = "/usr/bin/python3 -c \"import sys; from prometheus_client.parser import "
                           "text_string_to_metric_families as f; print(sum(len(m.samples) for m in f(open(sys.argv[1]).read())))\" " +
                           dir + "/metrics.txt";
    FILE* pipe = popen(py.c_str(), "r");
    char buf[64] = {};
    const size_t got = fread(buf, 1, sizeof(buf) - 1, pipe);
    EXPECT_EQ(pclose(pipe), 0);
    EXPECT_EQ(std::stoul(std::string(buf, got)), series.size()) << metrics.body;
  } else if (test::require_deps()) {
    ADD_FAILURE() << "python3-prometheus-client not installed (scripts/setup.sh installs it)";
  } else {
    std::cout << "[ NOTE ] python3-prometheus-client not installed: /metrics not read by an independent parser\n";
  }

  // No server: a clear error, not a hang.
  ASSERT_NE(test::run_cli("device --server 127.0.0.1:1 --connect-timeout 1 --bank " + bank + " " + common +
                              " --images 2 -o " + dir + "/nobody",
                          &output),
            0);
  EXPECT_NE(output.find("NetworkError: server 127.0.0.1:1: not reachable"), std::string::npos) << output;
}

// `tokcom serve` killed (SIGKILL) under two running `tokcom device`s (one deciding itself, one
// asking the server's controller) and started again on its port: each device reconnects with
// backoff, resends what was not answered under its ids, the server-controlled one restores the
// new stream's controller from its mirror, and each writes the CSV of an uninterrupted run.
TEST(ServeCli, DevicesFinishTheirRunAcrossAServerRestart) {
  const std::string dir = test::temp_dir("serve-restart");
  const test::TinyDeployment tiny = test::tiny_deployment(dir);
  const int images = 60;
  std::string output;
  ASSERT_EQ(test::run_cli("--threads 1 --seed 5 optimize --bank " + tiny.bank + " " + tiny.common +
                              " --deploy-images " + std::to_string(images) + " -o " + dir + "/local",
                          &output),
            0)
      << output;
  // Each batch waits up to 40 ms for a third device that never sends (the idle stream below), so
  // the run lasts seconds and the kill lands in its middle.
  auto serve = [&](const std::string& listen, const std::string& tag) {
    return spawn_cli("--threads 1 serve --checkpoint-dir " + tiny.bank + " --listen " + listen +
                         " --max-batch 8 --max-wait-ms 40 --metrics-interval 0 --table " + tiny.table +
                         " --port-file " + dir + "/port-" + tag + " --http 0 --http-port-file " + dir + "/http-" + tag,
                     dir + "/serve-" + tag + ".log");
  };
  const pid_t first = serve("127.0.0.1:0", "a");
  const int port = test::read_port_file(dir + "/port-a");
  ASSERT_GT(port, 0) << slurp(dir + "/serve-a.log");
  const int http_port = test::read_port_file(dir + "/http-a");
  ASSERT_GT(http_port, 0) << slurp(dir + "/serve-a.log");
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto idle = std::make_unique<net::EdgeClient>(client_options(address));
  std::vector<pid_t> devices;
  for (int k = 0; k < 2; ++k) {
    devices.push_back(spawn_cli("--threads 1 --seed 5 device --server " + address + " --bank " + tiny.bank + " " +
                                    tiny.common + " --images " + std::to_string(images) + " --reconnect 60" +
                                    " --controller " + (k == 0 ? "device" : "server") + " -o " + dir + "/device" +
                                    std::to_string(k),
                                dir + "/device" + std::to_string(k) + ".log"));
  }
  double answered = 0;
  for (int i = 0; i < 3000 && answered < 20; ++i) {
    const test::HttpReply r = test::http_get(http_port, "/metrics");
    if (r.status == 200) answered = parse_prometheus(r.body)["tokcom_requests_answered_total"];
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(answered, 20) << slurp(dir + "/serve-a.log");
  kill(first, SIGKILL);
  EXPECT_EQ(wait_exit(first), 128 + SIGKILL);
  ASSERT_LT(answered, 2 * images - 10);  // the devices were mid-run
  idle.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the devices are retrying now
  const pid_t second = serve(address, "b");
  for (int k = 0; k < 2; ++k) {
    const std::string log = dir + "/device" + std::to_string(k) + ".log";
    EXPECT_EQ(wait_exit(devices[k]), 0) << slurp(log);
    EXPECT_NE(slurp(log).find("reconnected after"), std::string::npos) << slurp(log);
    EXPECT_EQ(slurp(log).find("remote controller decided"), std::string::npos) << slurp(log);
  }
  kill(second, SIGTERM);
  EXPECT_EQ(wait_exit(second), 0) << slurp(dir + "/serve-b.log");
  const std::string trace = "/deploy/trace_gauss_10_2.5_zmax0.03_rep0.csv";
  const std::string expected = slurp(dir + "/local" + trace);
  ASSERT_EQ(std::count(expected.begin(), expected.end(), '\n'), images + 1) << expected;
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(slurp(dir + "/device" + std::to_string(k) + trace), expected) << "device " << k;
    EXPECT_EQ(slurp(dir + "/device" + std::to_string(k) + "/deploy_summary.csv"),
              slurp(dir + "/local/deploy_summary.csv"));
  }
  // The restarted server answered the rest: at least what the first had not, never more than all.
  const std::string log_b = slurp(dir + "/serve-b.log");
  const size_t at = log_b.find("final metrics: requests ");
  ASSERT_NE(at, std::string::npos) << log_b;
  const int by_second = std::stoi(log_b.substr(at + 24));
  EXPECT_GE(by_second, 2 * images - static_cast<int>(answered) - 2 * 8) << log_b;
  EXPECT_LE(by_second, 2 * images) << log_b;
}

// Every bad `serve` argument is refused before the port is bound, naming the argument and what
// was expected (a bad TLS certificate once read "address in use or malformed?").
TEST(ServeCli, BadArgumentsAreClearErrors) {
  const std::string dir = test::temp_dir("serve-args");
  const test::TinyDeployment tiny = test::tiny_deployment(dir);
  write_file_atomic(dir + "/not-a-pem.pem", "hello\n");
  // Two self-signed pairs: a's certificate with b's key is a mismatch.
  for (const std::string tag : {"a", "b"}) {
    const std::string make = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + dir +
                             "/" + tag + ".key -out " + dir + "/" + tag + ".pem > " + dir + "/openssl.log 2>&1";
    ASSERT_EQ(std::system(make.c_str()), 0) << "openssl could not make a test certificate";
  }
  const std::string serve = "serve --checkpoint-dir " + tiny.bank + " ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"serve --checkpoint-dir " + dir + "/missing", "--checkpoint-dir '" + dir + "/missing': no such folder"},
      {"serve --checkpoint-dir " + dir + "/a.pem", "--checkpoint-dir '" + dir + "/a.pem': is a file, expected a bank folder"},
      {"serve --checkpoint-dir " + dir, dir + "/config.yaml: not found (--checkpoint-dir must be a bank folder"},
      {serve + "--listen 127.0.0.1:99999", "--listen '127.0.0.1:99999': expected host:port with a port in 1–65535"},
      {serve + "--listen 127.0.0.1", "--listen '127.0.0.1': expected host:port"},
      {serve + "--listen 127.0.0.1:-5", "--listen '127.0.0.1:-5': expected host:port"},
      {serve + "--tls-cert " + dir + "/a.pem", "give both --tls-cert and --tls-key, or neither"},
      {serve + "--tls-cert " + dir + "/a.pem --tls-key " + dir + "/missing.key", "--tls-key '" + dir + "/missing.key': cannot read the file"},
      {serve + "--tls-cert " + dir + " --tls-key " + dir + "/a.key", "--tls-cert '" + dir + "': is a folder, expected a PEM file"},
      {serve + "--tls-cert " + dir + "/not-a-pem.pem --tls-key " + dir + "/a.key",
       "--tls-cert '" + dir + "/not-a-pem.pem': expected a PEM certificate"},
      {serve + "--tls-cert " + dir + "/a.pem --tls-key " + dir + "/a.pem", "--tls-key '" + dir + "/a.pem': expected a PEM private key"},
      {serve + "--tls-cert " + dir + "/a.pem --tls-key " + dir + "/b.key",
       "--tls-key '" + dir + "/b.key' is not the private key of --tls-cert '" + dir + "/a.pem'"},
      {serve + "--auth-token-file " + dir + "/missing", "--auth-token-file '" + dir + "/missing': cannot read the file"},
      {serve + "--table " + dir + "/missing.csv", "'" + dir + "/missing.csv': no such file"},
  };
  for (const auto& [args, expected] : cases) {
    std::string out;
    EXPECT_NE(test::run_cli("--threads 1 " + args + " --port-file " + dir + "/port", &out), 0) << args;
    EXPECT_NE(out.find(expected), std::string::npos) << args << "\n" << out;
    EXPECT_FALSE(fs::exists(dir + "/port")) << args;  // refused before listening
  }
  // The matching pair serves (the check refuses only what is wrong).
  const pid_t server = spawn_cli("--threads 1 " + serve + "--listen 127.0.0.1:0 --tls-cert " + dir + "/a.pem --tls-key " +
                                     dir + "/a.key --port-file " + dir + "/port --metrics-interval 0 --drain-timeout 0.2",
                                 dir + "/serve.log");
  EXPECT_GT(test::read_port_file(dir + "/port"), 0) << slurp(dir + "/serve.log");
  kill(server, SIGTERM);
  EXPECT_EQ(wait_exit(server), 0) << slurp(dir + "/serve.log");
}

TEST(Credentials, TokenFileLineEndingsAndControlCharacters) {
  // One reader for `serve` and `device`: both sides see the same token or the same error.
  const std::string dir = tokcom::test::temp_dir("token");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name, std::ios::binary) << text;
    return dir + "/" + name;
  };
  EXPECT_EQ(net::read_token(write("crlf", "s3cret\r\nsecond line\n"), "--auth-token-file"), "s3cret");
  EXPECT_EQ(net::read_token(write("lf", "s3cret\n"), "--auth-token-file"), "s3cret");
  EXPECT_EQ(net::read_token(write("bare", "s3cret"), "--auth-token-file"), "s3cret");
  const std::string tab = tokcom::test::error_of([&] { net::read_token(write("tab", "s3\tcret\n"), "--auth-token-file"); });
  EXPECT_NE(tab.find("--auth-token-file"), std::string::npos) << tab;
  EXPECT_NE(tab.find("control character 0x09 at byte 2"), std::string::npos) << tab;
  const std::string cr = tokcom::test::error_of([&] { net::read_token(write("cr_inside", "s3\rcret\r\n"), "--auth-token-file"); });
  EXPECT_NE(cr.find("control character 0x0D at byte 2"), std::string::npos) << cr;
  EXPECT_NE(tokcom::test::error_of([&] { net::read_token(write("empty", "\r\n"), "--auth-token-file"); }).find("the first line is empty"),
            std::string::npos);
  EXPECT_NE(tokcom::test::error_of([&] { net::read_token(dir, "--auth-token-file"); }).find("is a folder, expected a file"),
            std::string::npos);
}

TEST(Service, OwnsItsPortAndRefusesAPortOutOfRange) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  LocalServer first(m, config);
  net::ServeOptions o;
  o.metrics_interval_s = 0;
  o.listen = "127.0.0.1:" + std::to_string(first.server->port());
  net::EdgeServer second(m.server, tiny_served(config), o);
  EXPECT_NE(test::error_of([&] { second.start(); }).find("cannot listen on '" + o.listen + "'"), std::string::npos);
  for (const std::string bad : {"127.0.0.1:99999", "127.0.0.1:", "127.0.0.1", "127.0.0.1:5x"}) {
    o.listen = bad;
    net::EdgeServer s(m.server, tiny_served(config), o);
    EXPECT_NE(test::error_of([&] { s.start(); }).find("expected host:port with a port in 1–65535"), std::string::npos)
        << bad;
  }
}

// The HTTP endpoint on its own: the page and health are open, the data needs the gRPC side's token
// (header or ?token=), the port is its own, and health follows the drain.
TEST(Http, TokenPortPageAndHealth) {
  const Config config = Config::load("", tiny_overrides(test::temp_dir("http")));
  SplitModel m = tiny_model(config);
  net::ServeOptions o;
  o.auth_token = "s3cret";
  LocalServer local(m, config, o);
  net::HttpEndpoint http(*local.server, net::HttpOptions{"0", "s3cret", "", "", 0.05}, "tokcom test");
  http.start();
  const int port = http.port();
  ASSERT_GT(port, 0);
  EXPECT_EQ(http.url(), "http://127.0.0.1:" + std::to_string(port) + "/");

  const test::HttpReply page = test::http_get(port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("api/state"), std::string::npos);  // the embedded page, which polls the state
  for (const std::string path : {"/api/state", "/metrics"}) {
    EXPECT_EQ(test::http_get(port, path).status, 401) << path;
    EXPECT_EQ(test::http_get(port, path, "Authorization: Bearer wrong\r\n").status, 401) << path;
    EXPECT_EQ(test::http_get(port, path + "?token=wrong").status, 401) << path;
    EXPECT_EQ(test::http_get(port, path, "Authorization: Bearer s3cret\r\n").status, 200) << path;
    EXPECT_EQ(test::http_get(port, path + "?token=s3cret").status, 200) << path;
  }
  EXPECT_EQ(test::http_get(port, "/nothing").status, 404);
  const test::HttpReply state = test::http_get(port, "/api/state?token=s3cret");
  const nlohmann::json j = nlohmann::json::parse(state.body);
  EXPECT_EQ(j["server"]["method"], "proposal");
  EXPECT_EQ(j["server"]["version"], "tokcom test");
  EXPECT_EQ(j["devices"].size(), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(nlohmann::json::parse(test::http_get(port, "/api/state?token=s3cret").body)["series"]["unix"].size(), 2u);

  // The port is this endpoint's alone; a port out of range is refused, not wrapped.
  net::HttpEndpoint second(*local.server, net::HttpOptions{std::to_string(port), "", "", "", 1.0}, "x");
  EXPECT_NE(test::error_of([&] { second.start(); }).find("cannot listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos);
  net::HttpEndpoint wrapped(*local.server, net::HttpOptions{"127.0.0.1:99999", "", "", "", 1.0}, "x");
  EXPECT_NE(test::error_of([&] { wrapped.start(); }).find("expected PORT"), std::string::npos);

  EXPECT_EQ(test::http_get(port, "/healthz").status, 200);
  local.server->shutdown();
  const test::HttpReply draining = test::http_get(port, "/healthz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "draining\n");
  http.stop();
  EXPECT_EQ(test::http_get(port, "/healthz").status, 0);  // nothing listens any more
}


// The monitor's own rules: names made safe, closed streams bounded, label values escaped.
TEST(Monitor, NamesClosedStreamsAndEscaping) {
  net::MonitorOptions o;
  o.closed_devices = 2;
  o.history = 3;
  net::DeploymentMonitor monitor(o);
  const int64_t quoted = monitor.open("a\"b\\c\nd", "ipv4:1");
  const int64_t unnamed = monitor.open("", "ipv4:2");
  net::SlotReport r;
  r.budget = 0.5;
  r.ratio = 0.1;
  r.zeta_max = 0.02;
  r.queue = 4;
  for (int i = 0; i < 5; ++i) monitor.slot(quoted, r, 0.01 * (i + 1));
  monitor.answered(quoted, 2, 2);
  monitor.answered(quoted, 1, 2);
  monitor.answered(quoted, -1, 2);  // no label: not counted
  net::ServerMetrics metrics;
  net::ServedModel served;
  served.method = "proposal";
  const nlohmann::json state = nlohmann::json::parse(monitor.state_json(metrics, served, "v", 1, 2));
  ASSERT_EQ(state["devices"].size(), 2u);
  const auto& d = state["devices"][0];
  EXPECT_EQ(d["name"], "a\"b\\c?d");  // the newline replaced
  EXPECT_EQ(state["devices"][1]["name"], "stream-" + std::to_string(unnamed));
  EXPECT_EQ(d["history"]["zeta"].size(), 3u);  // the last 3 slots
  EXPECT_EQ(d["history"]["slot"][0], 2);
  EXPECT_NEAR(d["zeta_mean"].get<double>(), 0.03, 1e-12);  // over all 5
  EXPECT_EQ(d["labelled"], 2);
  EXPECT_EQ(d["correct"], 1);
  EXPECT_TRUE(state["devices"][1]["zeta_max"].is_null());  // said nothing
  const std::string text = monitor.prometheus(metrics, served, "v");
  EXPECT_NE(text.find("tokcom_device_requests_total{device=\"a\\\"b\\\\c?d\",stream=\"1\"} 5\n"), std::string::npos)
      << text;
  for (int i = 0; i < 3; ++i) monitor.close(monitor.open("late-" + std::to_string(i), ""), "OK");
  monitor.close(quoted, "CANCELLED");
  const nlohmann::json after = nlohmann::json::parse(monitor.state_json(metrics, served, "v", 1, 2));
  std::vector<std::string> names;
  for (const auto& dev : after["devices"]) names.push_back(dev["name"]);
  // The open stream stays; of the closed ones only the 2 most recent.
  EXPECT_EQ(names, (std::vector<std::string>{"a\"b\\c?d", "stream-2", "late-2"}));  // by id
}

// A server half that holds its first decode until released: requests queue up behind it.
class HeldServerHalf final : public ServerHalf {
 public:
  explicit HeldServerHalf(std::shared_ptr<ServerHalf> inner) : inner_(std::move(inner)) {}
  torch::Tensor decode(const Payload& p) override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!first_done_) {
        entered_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return released_; });
        first_done_ = true;
      }
    }
    return inner_->decode(p);
  }
  void wait_entered() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return entered_; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }

 private:
  std::shared_ptr<ServerHalf> inner_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool entered_ = false, released_ = false, first_done_ = false;
};

// The tiny link, and the same link whose server half holds its first decode (one request per batch
// then leaves the rest queued behind it).
struct HeldLink {
  SplitModel model, gated;
  std::shared_ptr<HeldServerHalf> held;
};
HeldLink held_link(const Config& config) {
  HeldLink l;
  l.model = tiny_model(config);
  l.held = std::make_shared<HeldServerHalf>(l.model.server);
  l.gated = l.model;
  l.gated.server = l.held;
  return l;
}

// A stream deadline that passes, and a device that vanishes, with requests still queued: each ends
// its own stream (DEADLINE_EXCEEDED; CANCELLED), its queued requests are skipped and counted as
// cancelled, and a well-behaved device on the same server gets every answer.
TEST(Service, DeadlineAndVanishedDeviceCancelOnlyTheirQueuedRequests) {
  const Config config = Config::load("", tiny_overrides("x"));
  HeldLink link = held_link(config);
  SplitModel &m = link.model, &gated = link.gated;
  const std::shared_ptr<HeldServerHalf>& held = link.held;
  net::ServeOptions o;
  o.batching.max_batch = 1;  // one request per decode: three wait behind the held one
  LocalServer local(gated, config, o);
  torch::manual_seed(4);
  const Payload p = m.device->encode(torch::randn({4, 1, 28, 28}), Decision{0.5, 1});
  const torch::Tensor expected = m.server->decode(p);

  // 1. The deadline: 4 requests, the first held in decode past the stream's 0.3 s deadline.
  net::ClientOptions late_options = client_options(local.address);
  late_options.stream_deadline_s = 0.3;
  late_options.device_name = "late";
  net::EdgeClient late(late_options);
  for (uint64_t i = 0; i < 4; ++i) late.send(p, static_cast<int64_t>(i), 0.5, i);
  held->wait_entered();
  const std::string error = test::error_of([&] { late.receive(); });
  EXPECT_NE(error.find("DEADLINE_EXCEEDED"), std::string::npos) << error;
  // 2. A device that vanishes with 4 requests queued behind the held decode.
  {
    net::ClientOptions o2 = client_options(local.address);
    o2.device_name = "vanishing";
    auto vanishing = std::make_unique<net::EdgeClient>(o2);
    for (uint64_t i = 0; i < 4; ++i) vanishing->send(p, static_cast<int64_t>(i), 0.5, i);
    for (int i = 0; i < 200 && local.server->metrics().received() < 8; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(local.server->metrics().received(), 8);
    vanishing.reset();  // cancels its stream without reading
    // The server learns of the cancellation from the transport; give it a moment before the
    // held decode lets the queue move.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  held->release();
  // The 3 late requests behind the held one and the vanished device's 4 are skipped, not decoded.
  for (int i = 0; i < 500 && local.server->metrics().cancelled() < 7; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(local.server->metrics().cancelled(), 7);
  EXPECT_EQ(local.server->metrics().requests(), 1);  // the held one was answered (to nobody)
  // A device that behaves gets every answer, as in-process.
  auto good = std::make_shared<net::EdgeClient>(client_options(local.address));
  net::RemoteServer remote(good, {0.1, 0.5});
  EXPECT_TRUE(torch::allclose(remote.decode(p), expected, 1e-5, 1e-5));
  good->finish();
  EXPECT_EQ(local.server->metrics().requests(), 5);
  EXPECT_EQ(local.server->metrics().cancelled(), 7);
  // The monitor says how each stream ended.
  const nlohmann::json state = nlohmann::json::parse(
      local.server->monitor().state_json(local.server->metrics(), local.server->served(), "t", 0, 0));
  std::map<std::string, std::string> status;
  for (const auto& d : state["devices"]) status[d["name"]] = d["status"];
  EXPECT_EQ(status["late"], "CANCELLED");  // a passed deadline cancels the call on the server side
  EXPECT_EQ(status["vanishing"], "CANCELLED");
}


// The server goes away with a device's requests unanswered (its drain times out on a held decode)
// and another starts on the same port: the device reconnects, resends the unanswered requests
// under their ids, and gets the in-process logits, each sample once. A server that never comes
// back, or comes back serving another model, is a clear error.
TEST(Service, RemoteServerResendsTheUnansweredToARestartedServer) {
  const Config config = Config::load("", tiny_overrides("x"));
  HeldLink link = held_link(config);
  SplitModel &m = link.model, &gated = link.gated;
  const std::shared_ptr<HeldServerHalf>& held = link.held;
  net::ServeOptions o;
  o.batching.max_batch = 1;
  o.drain_timeout_s = 0.2;
  auto first = std::make_unique<LocalServer>(gated, config, o);
  const int port = first->server->port();
  torch::manual_seed(4);
  const Payload p = m.device->encode(torch::randn({4, 1, 28, 28}), Decision{0.5, 1});
  const torch::Tensor expected = m.server->decode(p);

  net::ClientOptions co = client_options(first->address);
  co.reconnect_s = 20;
  auto client = std::make_shared<net::EdgeClient>(co);
  net::RemoteServer remote(client, {0.1, 0.5});
  torch::Tensor logits;
  std::string error;
  std::thread device([&] {
    try {
      logits = remote.decode(p);
    } catch (const Error& e) {
      error = e.what();
    }
  });
  held->wait_entered();  // request 0 is in decode, 1–3 queued behind it: none answered
  for (int i = 0; i < 400 && first->server->metrics().received() < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(first->server->metrics().received(), 4);
  // The drain (0.2 s) ends with the decode still held: the stream is cancelled unanswered. The
  // decode is released afterwards, its answer goes nowhere, the queued three are skipped.
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    held->release();
  });
  first->server->shutdown();
  releaser.join();
  EXPECT_EQ(first->server->metrics().cancelled(), 3);
  EXPECT_EQ(client->reconnects(), 0);
  net::ServeOptions o2;
  o2.listen = "127.0.0.1:" + std::to_string(port);
  o2.metrics_interval_s = 0;
  o2.drain_timeout_s = 0.2;  // an idle stream holds a shutdown this long
  net::EdgeServer second(m.server, tiny_served(config), o2);
  second.start();
  device.join();
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_EQ(client->reconnects(), 1);
  EXPECT_TRUE(torch::allclose(logits, expected, 1e-5, 1e-5));
  EXPECT_EQ(second.metrics().requests(), 4);  // all four again, under their ids
  // The stream goes on: the next decode is answered by the restarted server.
  EXPECT_TRUE(torch::allclose(remote.decode(p), expected, 1e-5, 1e-5));
  EXPECT_EQ(second.metrics().requests(), 8);

  // A server that comes back serving another model: its answers would not continue this run.
  net::ServedModel other = tiny_served(config);
  other.regime = "noiseless";
  second.shutdown();
  net::EdgeServer third(m.server, other, o2);
  third.start();
  error = test::error_of([&] { remote.decode(p); });
  EXPECT_NE(error.find("came back serving another model"), std::string::npos) << error;
  third.shutdown();

  // No server at all: the device gives up after reconnect_s, naming the server and the wait;
  // with reconnect_s 0 (the library's default) the loss is an error at once.
  for (double wait_s : {0.5, 0.0}) {
    co.reconnect_s = wait_s;
    std::shared_ptr<net::EdgeClient> stranded_client;
    {
      net::EdgeServer fourth(m.server, tiny_served(config), o2);
      fourth.start();
      stranded_client = std::make_shared<net::EdgeClient>(co);
    }  // the server is gone
    net::RemoteServer stranded(stranded_client, {0.1, 0.5});
    error = test::error_of([&] { stranded.decode(p); });
    EXPECT_NE(error.find("ended the stream"), std::string::npos) << error;
    EXPECT_EQ(error.find("did not come back within 0.5 s") != std::string::npos, wait_s > 0) << error;
  }
  EXPECT_EQ(net::ClientOptions().reconnect_s, 0.0);
}

// Malformed and oversized messages at full rate (four attackers, each opening stream after stream
// as fast as the server ends them) while a well-formed device works: its every answer equals the
// in-process logits, every attack is refused (INVALID_ARGUMENT or RESOURCE_EXHAUSTED) and counted,
// and the server stays healthy.
TEST(Service, MalformedFloodLeavesWellFormedDevicesTheirAnswers) {
  const Config config = Config::load("", tiny_overrides("x"));
  SplitModel m = tiny_model(config);
  net::ServeOptions o;
  o.batching.max_batch = 8;
  o.batching.max_wait_ms = 2;
  LocalServer local(m, config, o);
  torch::manual_seed(8);
  const Payload p = m.device->encode(torch::randn({3, 1, 28, 28}), Decision{0.5, 0});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = m.server->decode(p);
  }
  std::vector<std::string> attacks;
  {
    v1::InferRequest r;
    r.set_request_id(1);
    *r.mutable_payload() = valid_message(m);
    v1::InferRequest bad_tokens = r, bad_ratio = r, bad_bytes = r, huge = r;
    bad_tokens.mutable_payload()->set_tokens(999);
    bad_ratio.mutable_payload()->set_ratio(0.3);
    bad_bytes.mutable_payload()->mutable_symbols()->append("xyz");
    huge.mutable_payload()->mutable_symbols()->append(std::string(1 << 20, '\0'));
    for (const auto* a : {&bad_tokens, &bad_ratio, &bad_bytes, &huge}) attacks.push_back(a->SerializeAsString());
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> refused{0}, invalid{0}, unexpected{0};
  std::mutex mutex;
  std::string unexpected_error;
  std::vector<std::thread> attackers;
  for (int t = 0; t < 4; ++t) {
    attackers.emplace_back([&, t] {
      for (int64_t i = 0; !stop.load(); ++i) {
        const std::string error = test::error_of([&] {
          net::EdgeClient c(client_options(local.address));
          c.send_raw(attacks[static_cast<size_t>(t + i) % attacks.size()]);
          c.receive();
        });
        const bool is_invalid = error.find("INVALID_ARGUMENT") != std::string::npos;
        if (is_invalid || error.find("RESOURCE_EXHAUSTED") != std::string::npos) {
          ++refused;
          invalid += is_invalid;
        } else {
          ++unexpected;
          std::lock_guard<std::mutex> lock(mutex);
          unexpected_error = error;
        }
      }
    });
  }
  auto good = std::make_shared<net::EdgeClient>(client_options(local.address));
  net::RemoteServer remote(good, {0.1, 0.5});
  // At least 60 decodes, and on until the flood has been refused 40 times (a slow machine).
  int matched = 0, decodes = 0;
  for (; decodes < 60 || (refused.load() < 40 && decodes < 20000); ++decodes)
    matched += torch::allclose(remote.decode(p), expected, 1e-5, 1e-5);
  EXPECT_TRUE(good->healthy());
  stop = true;
  for (auto& a : attackers) a.join();
  good->finish();
  EXPECT_EQ(matched, decodes);
  EXPECT_GE(refused.load(), 40);  // the flood ran all along
  EXPECT_EQ(unexpected.load(), 0) << unexpected_error;
  EXPECT_EQ(local.server->metrics().requests(), 3 * decodes);  // only the good device's requests were decoded
  EXPECT_EQ(local.server->metrics().errors(), invalid.load());  // each parsed bad request counted once
  EXPECT_GT(invalid.load(), 0);
  EXPECT_GT(refused.load(), invalid.load());  // and gRPC refused the oversized ones before parsing
}
