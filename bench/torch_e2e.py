#!/usr/bin/python3
"""PyTorch side of bench/bench_e2e.cpp: the same semantic link (ViT device half with hard token
dropping to round(α·N) patches, JSCC encoder with per-token unit norm, AWGN at 10 dB, decoder,
server half), same shapes, same threads, in eval/inference mode.

  /usr/bin/python3 bench/torch_e2e.py --out py.json [--threads 2] [--min-time 2]
Writes {"benchmarks": [{"name": "BM_E2E/batch:1/alpha:25/r:100/real_time", "median_ms", "cpu_ms"}]}.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import Vit, measure  # noqa: E402

SPLIT = 3


def mlp(widths):
    layers = []
    for i in range(3):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linspace_int(a, b, n=4):
    return [int(a + (b - a) * i / (n - 1)) for i in range(n - 1)] + [int(b)]


class Codec(nn.Module):
    """METHOD §5.2/5.4: separate Re/Im MLPs, per-token unit norm, decoder on concat(Re, Im)."""

    def __init__(self, dim, ratio):
        super().__init__()
        d = max(math.floor(dim * ratio), 1)
        self.re, self.im = mlp(linspace_int(dim, d)), mlp(linspace_int(dim, d))
        self.dec = mlp(linspace_int(2 * d, dim))

    def encode(self, x):
        u = torch.complex(self.re(x), self.im(x))
        return u / u.abs().square().sum(-1, keepdim=True).sqrt()

    def decode(self, y):
        return self.dec(torch.cat([y.real, y.imag], -1))


def awgn(z, snr_db, gen):
    p = z.abs().square().mean(-1, keepdim=True)  # per-token power, squared norm
    var = p / 10 ** (snr_db / 10)
    n = torch.complex(torch.randn(z.shape, generator=gen), torch.randn(z.shape, generator=gen))
    return z + n * (var / 2).sqrt()


def link(model, codec, images, budget, gen):
    x, mask = model.embed(images, budget), None
    for i, blk in enumerate(model.blocks):
        if i == SPLIT:  # device → channel → server
            y = awgn(codec.encode(x), 10.0, gen)
            x = codec.decode(y) * mask[..., None]
        if budget is not None and blk.adaptive and i < SPLIT:
            s = model.scores(blk, x)
            mask = s if mask is None else s * mask
            keep = s > 0
            if not bool(keep.all()):
                idx = keep.nonzero()[:, 1].view(x.shape[0], -1)
                x = x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))
                mask = mask.gather(1, idx)
        if mask is not None:
            m = mask[..., None]
            x = blk(x * m) * m
        else:
            x = blk(x)
    return model.head(model.norm(x[:, 0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for batch in (1, 64):
        for alpha in (25, 50, 100):
            for r in (100, 500):
                torch.manual_seed(0)
                model = Vit(64, 8, 6).eval()
                model.keep_fraction = alpha / 100 if alpha < 100 else None
                codec = Codec(192, r / 1000).eval()
                images = torch.randn(batch, 3, 64, 64)
                # α = 1 is the static path in both implementations (no budget token, METHOD §3.1).
                budget = torch.full((batch,), alpha / 100) if alpha < 100 else None
                gen = torch.Generator().manual_seed(1)

                def fn():
                    with torch.inference_mode():
                        if budget is None:  # static: mask stays None; decode without mask
                            x = model.embed(images, None)
                            for i, blk in enumerate(model.blocks):
                                if i == SPLIT:
                                    x = codec.decode(awgn(codec.encode(x), 10.0, gen))
                                x = blk(x)
                            return model.head(model.norm(x[:, 0]))
                        return link(model, codec, images, budget, gen)

                fn()
                wall, cpu = measure(fn, args.min_time)
                name = f"BM_E2E/batch:{batch}/alpha:{alpha}/r:{r}"
                results.append({"name": name + "/real_time", "median_ms": wall * 1e3, "cpu_ms": cpu * 1e3})
                print(f"{name:40s} wall {wall * 1e3:10.3f} ms  cpu {cpu * 1e3:10.3f} ms", flush=True)
    with open(args.out, "w") as f:
        json.dump({"benchmarks": results}, f, indent=1)


if __name__ == "__main__":
    main()
