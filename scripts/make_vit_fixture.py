#!/usr/bin/python3
"""Writes tests/data/vit_fixture.safetensors: a small ViT with adaptive token selection computed by
an INDEPENDENT PyTorch implementation (nn.MultiheadAttention, nn.LayerNorm, per-image hard path
with boolean indexing), for tests/test_model.cpp (ModelParity.*).

Run: /usr/bin/python3 scripts/make_vit_fixture.py  (torch 1.13, CPU; deterministic).

Config: image 32, patch 8 (16 patches), dim 48, depth 4, heads 3, mlp 4, 10 classes, adaptive
blocks {1, 2}, default (non-reference) mode: threshold reads the budget token (METHOD §10 P1),
hard path scales kept tokens by the cumulative mask (P4), all-dropped keeps cls + budget (P5).

Tensors: every weight under timm names (+ budget_token_a/b, blocks.{1,2}.gate/threshold),
`input` (4, 3, 32, 32), `budget` (4), `logits` (static path, no budget token), `logits.soft`
(METHOD §3.4 soft path, eval mode, cutoff 1e-3), `logits.hard` (METHOD §3.5 + P4/P5, one image at a
time), `kept.soft` / `kept.hard` (4, 2) kept patch tokens after each adaptive block,
`hidden.embed` / `hidden.block.{i}` (soft budget path) and `hidden_static.*` (static path).
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE, PATCH, CHANS, DIM, DEPTH, HEADS, CLASSES = 32, 8, 3, 48, 4, 3, 10
ADAPTIVE = (1, 2)
CUTOFF = 1e-3
SEED = 7


class Block(nn.Module):
    def __init__(self, adaptive):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=1e-6)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
        self.fc1 = nn.Linear(DIM, 4 * DIM)
        self.fc2 = nn.Linear(4 * DIM, DIM)
        if adaptive:
            self.gate = nn.Linear(DIM, 1)
            self.threshold = nn.Linear(DIM, 1)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    def scores(self, x):
        """[1, relu(sigmoid(gate(p)) - sigmoid(threshold(budget))), 1] with the eval cutoff."""
        g = torch.sigmoid(self.gate(x[:, 1:-1]))[..., 0]
        tau = torch.sigmoid(self.threshold(x[:, -1]))  # (B, 1): the budget token (P1)
        s = torch.relu(g - tau)
        s = torch.where(s <= CUTOFF, torch.zeros_like(s), s)
        one = torch.ones(x.shape[0], 1)
        return torch.cat([one, s, one], 1), (g - tau)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        n = (IMAGE // PATCH) ** 2
        self.conv = nn.Conv2d(CHANS, DIM, PATCH, stride=PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, DIM) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 1 + n, DIM) * 0.5)
        self.t_a = nn.Parameter(torch.randn(1, 1, DIM) * 0.5)
        self.t_b = nn.Parameter(torch.randn(1, 1, DIM) * 0.5)
        self.blocks = nn.ModuleList([Block(i in ADAPTIVE) for i in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.head = nn.Linear(DIM, CLASSES)

    def embed(self, images, budget):
        x = self.conv(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        if budget is not None:
            a = budget.view(-1, 1, 1)
            x = torch.cat([x, a * self.t_a + (1 - a) * self.t_b], 1)
        return x

    def soft(self, images, budget):
        """METHOD §3.4: m = s * m_prev; x = block(x * m) * m from the first adaptive block on."""
        x = self.embed(images, budget)
        hidden, kept, margins, mask = [x], [], [], None
        for i, blk in enumerate(self.blocks):
            if budget is not None and i in ADAPTIVE:
                s, margin = blk.scores(x)
                margins.append(margin)
                mask = s if mask is None else s * mask
                kept.append((mask[:, 1:-1] > 0).sum(1))
            if mask is not None:
                x = blk(x * mask[..., None]) * mask[..., None]
            else:
                x = blk(x)
            hidden.append(x)
        return self.head(self.norm(x)[:, 0]), hidden, kept, margins

    def hard_one(self, image, budget):
        """METHOD §3.5 for one image with P4 (scale by the cumulative mask) and P5 (cls + budget)."""
        x = self.embed(image, budget)
        mask, kept = None, []
        for i, blk in enumerate(self.blocks):
            if i in ADAPTIVE:
                s, _ = blk.scores(x)
                mask = s if mask is None else s * mask
                keep = s[0] > 0
                x, mask = x[:, keep], mask[:, keep]
                kept.append(int(keep.sum()) - 2)
            x = blk(x * mask[..., None]) * mask[..., None] if mask is not None else blk(x)
        return self.head(self.norm(x)[:, 0]), kept

    def timm_state(self):
        """Our weights under timm names (the key map is the point of this independent model)."""
        t = {"patch_embed.proj.weight": self.conv.weight, "patch_embed.proj.bias": self.conv.bias,
             "cls_token": self.cls, "pos_embed": self.pos,
             "budget_token_a": self.t_a, "budget_token_b": self.t_b,
             "norm.weight": self.norm.weight, "norm.bias": self.norm.bias,
             "head.weight": self.head.weight, "head.bias": self.head.bias}
        for i, b in enumerate(self.blocks):
            p = f"blocks.{i}."
            t.update({p + "norm1.weight": b.norm1.weight, p + "norm1.bias": b.norm1.bias,
                      p + "attn.qkv.weight": b.attn.in_proj_weight,
                      p + "attn.qkv.bias": b.attn.in_proj_bias,
                      p + "attn.proj.weight": b.attn.out_proj.weight,
                      p + "attn.proj.bias": b.attn.out_proj.bias,
                      p + "norm2.weight": b.norm2.weight, p + "norm2.bias": b.norm2.bias,
                      p + "mlp.fc1.weight": b.fc1.weight, p + "mlp.fc1.bias": b.fc1.bias,
                      p + "mlp.fc2.weight": b.fc2.weight, p + "mlp.fc2.bias": b.fc2.bias})
            if hasattr(b, "gate"):
                t.update({p + "gate.weight": b.gate.weight, p + "gate.bias": b.gate.bias,
                          p + "threshold.weight": b.threshold.weight,
                          p + "threshold.bias": b.threshold.bias})
        return {k: v.detach().clone() for k, v in t.items()}


def randomise(model):
    """Non-trivial weights: every bias and LayerNorm affine non-zero; gates drop about half."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
                p.copy_(base + 0.1 * torch.randn_like(p))
        for i in ADAPTIVE:
            b = model.blocks[i]
            b.gate.weight.mul_(6.0)
            b.gate.bias.fill_(0.8 if i == 1 else -1.5)
            b.threshold.bias.fill_(0.0)


def write_safetensors(path, tensors, producer="scripts/make_vit_fixture.py", seed=SEED):
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"producer": producer, "seed": str(seed)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    model = Model()
    randomise(model)
    model.eval()
    images = torch.randn(4, CHANS, IMAGE, IMAGE)
    budget = torch.tensor([0.25, 0.5, 0.75, 0.9])
    with torch.no_grad():
        logits, hidden_static, _, _ = model.soft(images, None)
        logits_soft, hidden, kept_soft, margins = model.soft(images, budget)
        hard = [model.hard_one(images[b:b + 1], budget[b:b + 1]) for b in range(4)]
    logits_hard = torch.cat([h[0] for h in hard])
    kept_hard = torch.tensor([h[1] for h in hard], dtype=torch.int64)
    kept_soft = torch.stack(kept_soft, 1).to(torch.int64)
    # Decisions must not sit on a knife edge (|g − τ| and |s − cutoff| far from 0) or the C++ side
    # could flip a token at 1e-7 differences.
    closest = min(torch.min(torch.minimum(m.abs(), (m - CUTOFF).abs())).item() for m in margins)
    print("kept soft", kept_soft.tolist(), "kept hard", kept_hard.tolist(), "closest", closest)
    # Wanted: drops at both blocks, different lengths per image, one image dropping every patch (P5).
    if closest < 1e-4 or (kept_soft[:, 1] == kept_soft[:, 0]).all() or not (kept_soft == 0).any():
        sys.exit("fixture is not informative or too close to a decision boundary; change SEED")
    tensors = model.timm_state()
    tensors.update({"input": images, "budget": budget, "logits": logits,
                    "logits.soft": logits_soft, "logits.hard": logits_hard,
                    "kept.soft": kept_soft, "kept.hard": kept_hard})
    names = ["embed"] + [f"block.{i}" for i in range(DEPTH)]
    for name, h, hs in zip(names, hidden, hidden_static):
        tensors["hidden." + name] = h
        tensors["hidden_static." + name] = hs
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                       "vit_fixture.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, tensors)
    print("wrote", os.path.normpath(out), os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
