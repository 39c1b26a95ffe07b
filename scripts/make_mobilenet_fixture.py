#!/usr/bin/python3
"""Parity fixtures for tokcom's MobileNetV3 (METHOD §6.2; docs/mobilenet.md), from torchvision 0.14.

Writes into tests/data/ (run: /usr/bin/python3 scripts/make_mobilenet_fixture.py):
  mobilenet_v3_small_fixture.safetensors
      every state_dict tensor of torchvision `mobilenet_v3_small(num_classes=10)` (names as
      torchvision) with random weights (seed 0) and randomised BatchNorm affine parameters and
      running statistics, SE/Linear biases and Linear weights of a useful scale (the default init
      would make them zero or tiny, and then a wrong bias or head would go unnoticed). Floating
      weights are stored as F16 (3 MB instead of 6 MB); the expected outputs are computed with the
      F16-rounded weights cast back to F32, so a loader that reads F16 into F32 must match to float
      rounding. Plus F32 `input` (2×3×64×64), eval-mode `logits` (2×10) and `hidden.features.2`
      (the device half's output, 2×24×8×8).
  mobilenet_v3_keys.txt
      "<variant> <name> <d0,d1,...|scalar>" for every state_dict entry of Small and Large with the 10-way
      head, then "<variant> params <count>": the parameter-name interface, checked by the test.
The safetensors file is written with struct + json + numpy (the safetensors package is not
installed here).
"""
import argparse
import json
import os
import struct

import numpy as np
import torch
import torchvision

DTYPES = {torch.float32: ("F32", "<f4"), torch.float16: ("F16", "<f2"), torch.int64: ("I64", "<i8")}


def write_safetensors(path, tensors, metadata):
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        dtype, np_dtype = DTYPES[t.dtype]
        data = t.numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.replace(tmp, path)


def randomise(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=gen)
            elif isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, m.in_features ** -0.5, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
    with torch.no_grad():  # the residual stages grow the features to ~30: keep logits ~3
        model.classifier[3].weight.mul_(0.1)
    # Running statistics measured on random batches (cumulative average), so eval-mode BN keeps
    # the activations input-dependent (with arbitrary statistics the signal fades to a constant
    # by the last stage and every input gives the same logits), then perturbed a little.
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, 64, 64, generator=gen))
        for m in bns:
            m.momentum = 0.01
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=gen), alpha=0.05)
            m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.8, 1.25, generator=gen))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out-dir", default=os.path.join(here, "..", "tests", "data"))
    args = parser.parse_args()

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    randomise(model, gen)
    # Round every floating tensor to F16 and back, so the stored weights are the ones used.
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    model.eval()
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        logits = model(x)
        device = model.features[0:3](x)
    tensors = dict(state)
    tensors.update({"input": x, "logits": logits, "hidden.features.2": device})
    path = os.path.join(args.out_dir, "mobilenet_v3_small_fixture.safetensors")
    write_safetensors(path, tensors, {"source": "scripts/make_mobilenet_fixture.py",
                                      "torchvision": torchvision.__version__})
    print(f"wrote {path}: {len(state)} weights, logits {list(logits.shape)} "
          f"|max| {logits.abs().max():.3f}, features.2 {list(device.shape)}")

    lines = []
    for variant in ("small", "large"):
        m = getattr(torchvision.models, f"mobilenet_v3_{variant}")(num_classes=10)
        for k, v in m.state_dict().items():
            lines.append(f"{variant} {k} {','.join(str(d) for d in v.shape) or 'scalar'}")
        lines.append(f"{variant} params {sum(p.numel() for p in m.parameters())}")
    path = os.path.join(args.out_dir, "mobilenet_v3_keys.txt")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: {len(lines)} lines")


if __name__ == "__main__":
    main()
