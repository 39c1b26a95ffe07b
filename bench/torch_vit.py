#!/usr/bin/python3
"""PyTorch side of bench/bench_vit.cpp: the same ViT (timm layout, adaptive token selection with
the soft training path and the hard path with a keep-fraction hook), same shapes, 2 threads.

  /usr/bin/python3 bench/torch_vit.py --out py.json [--filter Forward64] [--min-time 2] [--threads 2]
Writes {"blas_core": ..., "benchmarks": [{"name": "BM_Forward64/batch:1/real_time", "median_ms": ...,
"cpu_ms": ...}]}: median wall time and median process CPU time (all threads) per call, as bench_vit
reports. It runs on tokcom's terms (bench/peer_env.py): the same OpenBLAS core as `tokcom
--version` reports (or --blas-core NAME) and tokcom's malloc thresholds.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_env  # noqa: E402

if __name__ == "__main__":
    peer_env.same_terms(peer_env.flag_value(sys.argv, "--blas-core"))

import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F
import statistics
import time


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # timm's Attention (LibTorch 1.13 has no fused SDPA either)
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, heads, adaptive):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.adaptive = adaptive
        if adaptive:
            self.gate, self.threshold = nn.Linear(dim, 1), nn.Linear(dim, 1)
            nn.init.normal_(self.gate.bias, 5.0, 0.1)
            nn.init.normal_(self.threshold.bias, -5.0, 0.1)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    def __init__(self, size, patch, depth, dim=192, heads=3, classes=10, adaptive=(1, 2)):
        super().__init__()
        n = (size // patch) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, dim) * 0.02)
        self.budget_token_a = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.budget_token_b = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, i in adaptive) for i in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)
        self.num_patches, self.keep_fraction = n, None

    def embed(self, images, budget):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        if budget is None:
            return x
        a = budget.view(-1, 1, 1)
        return torch.cat([x, a * self.budget_token_a + (1 - a) * self.budget_token_b], 1)

    def scores(self, blk, x):
        g = torch.sigmoid(blk.gate(x)[..., 0][:, 1:-1])
        if self.keep_fraction is not None:  # hook: the k highest gates, as in the C++ bench
            k = min(round(self.keep_fraction * self.num_patches), g.shape[1])
            s = g * torch.zeros_like(g).scatter_(1, g.topk(k, 1).indices, 1.0)
        else:
            s = torch.relu(g - torch.sigmoid(blk.threshold(x[:, -1])))
        if not self.training:
            s = s.masked_fill(s <= 1e-3, 0.0)
        one = torch.ones(x.shape[0], 1)
        return torch.cat([one, s, one], 1)

    def forward(self, images, budget=None, hard=False):
        x, mask, means = self.embed(images, budget), None, []
        for blk in self.blocks:
            if budget is not None and blk.adaptive:
                s = self.scores(blk, x)
                mask = s if mask is None else s * mask
                means.append(mask[:, 1:-1].mean(1))
                if hard:  # equal kept counts per image here: gather without padding
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
        return self.head(self.norm(x[:, 0])), means


def preset(size):
    return {224: lambda: Vit(224, 16, 12), 128: lambda: Vit(128, 16, 6)}.get(size, lambda: Vit(64, 8, 6))()


def sample_budgets(batch, gen, lo=0.001, hi=0.999):
    mean = torch.linspace(lo, hi, batch)
    return (mean + (hi - lo) / batch * torch.randn(batch, generator=gen)).clamp(lo, hi)


def cases():  # the same cases, in the same order, as bench/bench_vit.cpp
    for size in (64, 128, 224):
        for batch in (1, 64):
            yield f"BM_Forward{size}/batch:{batch}", size, batch, "forward", None
    for size, batches, keeps in ((64, (1, 64), (25, 50, 75, 100)), (128, (1, 64), (25, 50, 100)),
                                 (224, (1,), (25, 50, 75, 100))):
        for batch in batches:
            for keep in keeps:
                yield f"BM_Hard{size}/batch:{batch}/keep:{keep}", size, batch, "hard", keep
    for size in (64, 128):
        for batch in (64, 128):
            yield f"BM_TrainStep{size}/batch:{batch}", size, batch, "train", None


def make_stmt(size, batch, kind, keep):
    torch.manual_seed(0)
    model = preset(size)
    images = torch.randn(batch, 3, size, size)
    if kind == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        labels = torch.randint(10, (batch,))
        gen = torch.Generator().manual_seed(1)

        def step():
            budget = sample_budgets(batch, gen)
            logits, means = model(images, budget)
            p = [torch.relu((m - budget).abs() - 0.02) for m in means]
            loss = F.cross_entropy(logits, labels) + p[-1].mean() + torch.stack(p[:-1], 1).mean(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step
    model.eval()
    if kind == "forward":
        def fwd():
            with torch.inference_mode():
                return model(images)
        return fwd
    model.keep_fraction = keep / 100 if keep < 100 else None
    budget = torch.full((batch,), keep / 100 if keep < 100 else 0.5)

    def hard():
        with torch.inference_mode():
            return model(images, budget, hard=True)
    return hard


def measure(fn, min_time):
    """Median wall and process-CPU seconds per call over blocks of n calls (n: a block ≥ 0.1 s)."""
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t > 0.1:
            break
        n *= 2
    walls, cpus, start = [], [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(walls) < 3:
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        walls.append((time.perf_counter() - w) / n)
        cpus.append((time.process_time() - c) / n)
    return statistics.median(walls), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--filter", default="")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blas-core", help="OpenBLAS core to run on (default: the one tokcom --version reports)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, OpenBLAS core {peer_env.blas_core_in_use()}, {args.threads} threads", flush=True)
    results = []
    for name, size, batch, kind, keep in cases():
        if not re.search(args.filter, name):
            continue
        fn = make_stmt(size, batch, kind, keep)
        fn()  # warm-up
        wall, cpu = measure(fn, args.min_time)
        results.append({"name": name + "/real_time", "median_ms": wall * 1e3, "cpu_ms": cpu * 1e3})
        print(f"{name:40s} wall {wall * 1e3:10.3f} ms  cpu {cpu * 1e3:10.3f} ms", flush=True)
    with open(args.out, "w") as f:
        json.dump({"blas_core": peer_env.blas_core_in_use(), "threads": args.threads,
                   "malloc": {k: os.environ.get(k) for k in peer_env.MALLOC}, "benchmarks": results}, f, indent=1)


if __name__ == "__main__":
    main()
