// `tokcom channel`: applies one registered channel to a user's own symbols, so any channel can be
// inspected or tested in isolation (issue "semantic channel").
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "command.h"
#include "tokcom/comm/channel.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"

namespace tokcom::cli {
namespace {

struct ChannelArgs {
  std::string channel = "awgn", input, out;
  double snr_db = 10.0;
};

// z: complex (B, …) or real with a trailing dimension of 2 (Re, Im) → complex64 (B, T, d) (rank 2
// inputs get T = 1; maps (B, C, s, s) stay rank 4).
torch::Tensor to_complex_symbols(const torch::Tensor& z, const std::string& origin) {
  torch::Tensor c;
  if (z.is_complex()) {
    c = z.to(torch::kComplexFloat);
  } else if (z.is_floating_point() && z.dim() >= 2 && z.size(-1) == 2) {
    c = torch::view_as_complex(z.to(torch::kFloat).contiguous());
  } else {
    throw ShapeError(fmt::format("{}: tensor 'z' has dtype {} and shape {}, expected complex or float with a trailing "
                                 "dimension of 2 (Re, Im); axis 0 = image",
                                 origin, std::string(c10::toString(z.scalar_type())), fmt::join(z.sizes(), "x")));
  }
  if (c.dim() == 2) c = c.unsqueeze(1);
  if (c.dim() != 3 && c.dim() != 4) {
    throw ShapeError(fmt::format("{}: tensor 'z' has {} complex axes, expected 2 to 4 (image, [token], symbol)", origin,
                                 c.dim()));
  }
  return c;
}

// safetensors has no complex dtype: complex tensors are stored as float (…, 2) = (Re, Im).
torch::Tensor real_pairs(const torch::Tensor& t) {
  return t.is_complex() ? torch::view_as_real(t.contiguous()).contiguous() : t.contiguous();
}

void run_channel(const ChannelArgs& a) {
  const auto channel = make_channel(a.channel);
  const Safetensors file = read_safetensors(a.input);
  const auto it = file.tensors.find("z");
  if (it == file.tensors.end()) throw FormatError(a.input + ": no tensor named 'z' (the symbols to send)");
  Payload sent;
  sent.method = "user";
  sent.symbols = to_complex_symbols(it->second, a.input);
  validate(sent, a.input);
  const int64_t batch = sent.batch_size();
  const torch::Tensor snr = torch::full({batch}, a.snr_db, torch::kFloat);
  torch::Generator rng = make_generator(global_options().seed);
  const Received rx = channel->apply(sent, snr, rng);
  TensorMap out;
  out["z"] = real_pairs(sent.symbols);
  out["snr_db"] = snr;
  out["noise_var"] = real_pairs(rx.noise_var);
  const auto* fading = dynamic_cast<const FadingChannel*>(channel.get());
  if (fading) {
    out["h"] = real_pairs(rx.gain);
    // With CSI the receiver's output is equalised; without it, y is what it sees.
    if (fading->options().equalizer() != Equalizer::kNone) {
      out["y_eq"] = real_pairs(rx.payload.symbols);
      // y before equalisation: the same channel without CSI draws the same noise and gains.
      FadingOptions raw = fading->options();
      raw.equalizer(Equalizer::kNone);
      torch::Generator again = make_generator(global_options().seed);
      out["y"] = real_pairs(FadingChannel(raw, channel->power()).apply(sent, snr, again).payload.symbols);
    } else {
      out["y"] = real_pairs(rx.payload.symbols);
    }
  } else {
    out["y"] = real_pairs(rx.payload.symbols);
  }
  write_safetensors(a.out, out,
                    {{"channel", channel->name()}, {"snr_db", fmt::format("{}", a.snr_db)},
                     {"seed", std::to_string(global_options().seed)}});
  spdlog::info("wrote {}: z, y{}{}, noise_var, snr_db ({} images, channel {})", a.out, fading ? ", h" : "",
               out.count("y_eq") ? ", y_eq" : "", batch, channel->name());
}

void add_channel(CLI::App& app) {
  auto a = std::make_shared<ChannelArgs>();
  CLI::App* cmd = app.add_subcommand("channel", "Apply a wireless channel to your own symbols (safetensors in, out)");
  cmd->add_option("--channel", a->channel, "Registry spec: " + fmt::format("{}", fmt::join(channel_names(), " | ")) +
                                               " (options after ':', e.g. rician:K=4,csi=zf)")
      ->capture_default_str();
  cmd->add_option("--snr-db", a->snr_db, "SNR in dB (one value for every image)")
      ->capture_default_str()
      ->check(kFinite);
  cmd->add_option("--input", a->input, "safetensors with tensor 'z': complex, or float with a trailing dim of 2; axis 0 = image")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", a->out, "safetensors with z, y, h (fading), y_eq (equalised), noise_var, snr_db; complex as float (…, 2)")->required();
  cmd->footer("The noise and gains come from --seed: the same seed gives the same output.");
  set_action(cmd, [a] { run_channel(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(55, add_channel);
}  // namespace tokcom::cli
