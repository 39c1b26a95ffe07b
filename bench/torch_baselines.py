#!/usr/bin/python3
"""PyTorch side of bench/bench_baselines.cpp: every neural baseline's split pipeline at batch 64
(device half → JSCC encoder → AWGN 10 dB → decoder → server half), same shapes, same threads,
eval + inference mode, random weights.

  /usr/bin/python3 bench/torch_baselines.py --out py.json [--threads 2] [--min-time 2]
Methods: 0 = ViT-AE (bench/torch_e2e.py's static path), 1 = torchvision mobilenet_v3_small +
flat JSCC (channels as tokens of H'·W' reals), 2 = the same + CNN JSCC (METHOD §6.2's kernel/stride
search, per-row unit norm, power over the s×s map).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_e2e import SPLIT, Codec, linspace_int  # noqa: E402
from torch_vit import Vit, measure  # noqa: E402


def awgn(z, snr_db, gen, dims):
    p = z.abs().square().mean(dims, keepdim=True)
    var = p / 10 ** (snr_db / 10)
    n = torch.complex(torch.randn(z.shape, generator=gen), torch.randn(z.shape, generator=gen))
    return z + n * (var / 2).sqrt()


def conv_step(size, target):
    """METHOD §6.2: first (kernel i, stride j), i, j = 1..11, minimising |out − target|."""
    transposed = target >= size
    best = None
    for i in range(1, 12):
        for j in range(1, 12):
            if not transposed and i > size:
                continue
            out = (size - 1) * j + i if transposed else (size - i) // j + 1
            if best is None or abs(out - target) < best[0]:
                best = (abs(out - target), i, j, out)
    return transposed, best[1], best[2], best[3]


def conv_stack(sizes, channels):
    layers, size = [], sizes[0]
    for k in range(3):
        if k:
            layers.append(nn.ReLU())
        transposed, i, j, size = conv_step(size, sizes[k + 1])
        cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        layers.append(cls(channels[k], channels[k + 1], i, stride=j))
    return nn.Sequential(*layers)


class CnnCodec(nn.Module):
    def __init__(self, c, side, ratio):
        super().__init__()
        s = max(math.floor(side * ratio), 1)
        down, up = linspace_int(side, s), linspace_int(s, side)
        self.re, self.im = conv_stack(down, [c] * 4), conv_stack(down, [c] * 4)
        self.dec = conv_stack(up, linspace_int(2 * c, c))

    def encode(self, f):
        u = torch.complex(self.re(f), self.im(f))
        return u / u.abs().square().sum(-1, keepdim=True).sqrt()

    def decode(self, y):
        return self.dec(torch.cat([y.real, y.imag], 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    batch = 64
    for method in (0, 1, 2):
        for r in (100, 500):
            torch.manual_seed(0)
            images = torch.randn(batch, 3, 64, 64)
            gen = torch.Generator().manual_seed(1)
            if method == 0:
                model = Vit(64, 8, 6).eval()
                model.keep_fraction = None
                codec = Codec(192, r / 1000).eval()

                def fn():
                    with torch.inference_mode():
                        x = model.embed(images, None)
                        for i, blk in enumerate(model.blocks):
                            if i == SPLIT:
                                x = codec.decode(awgn(codec.encode(x), 10.0, gen, -1))
                            x = blk(x)
                        return model.head(model.norm(x[:, 0]))
            else:
                net = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
                device, server = net.features[:3], net.features[3:]
                flat = method == 1
                codec = (Codec(64, r / 1000) if flat else CnnCodec(24, 8, r / 1000)).eval()

                def fn():
                    with torch.inference_mode():
                        f = device(images)
                        if flat:
                            y = awgn(codec.encode(f.flatten(2)), 10.0, gen, -1)
                            g = codec.decode(y).view_as(f)
                        else:
                            g = codec.decode(awgn(codec.encode(f), 10.0, gen, (-2, -1)))
                        h = server(g)
                        return net.classifier(torch.flatten(net.avgpool(h), 1))

            fn()
            wall, cpu = measure(fn, args.min_time)
            name = f"BM_Baseline/method:{method}/batch:{batch}/r:{r}"
            results.append({"name": name + "/real_time", "median_ms": wall * 1e3, "cpu_ms": cpu * 1e3})
            print(f"{name:40s} wall {wall * 1e3:10.3f} ms  cpu {cpu * 1e3:10.3f} ms", flush=True)
    with open(args.out, "w") as f:
        json.dump({"benchmarks": results}, f, indent=1)


if __name__ == "__main__":
    main()
