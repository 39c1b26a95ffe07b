#!/usr/bin/python3
"""Writes tests/data/pos_embed_fixture.safetensors: position embeddings resampled to another grid
the way timm does it (timm.layers.resample_abs_pos_embed, restated here from its documented
behaviour: class-token row kept, the patch rows as a (1, D, g, g) image, F.interpolate bicubic with
antialias=True, back to rows), for tests/test_model.cpp (Weights.PosEmbedResampleMatchesTimm).

Run: /usr/bin/python3 scripts/make_pos_embed_fixture.py  (torch 1.13, CPU; deterministic).

Tensors: `input` (1, 1 + 14*14, 6), DeiT-Tiny's 224-px grid with a narrow width; `resampled.8`
(1, 1 + 8*8, 6), its grid at 128 px; `resampled.20` (1, 1 + 20*20, 6), upsampled.
"""
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from make_vit_fixture import write_safetensors  # noqa: E402  (one safetensors writer for the fixtures)

SEED = 11


def resample_abs_pos_embed(posemb, new_size, num_prefix_tokens=1):
    hw = int(math.sqrt(posemb.shape[1] - num_prefix_tokens))
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, hw, hw, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_size, mode="bicubic", antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([prefix, grid], dim=1)


def main():
    torch.manual_seed(SEED)
    posemb = torch.randn(1, 1 + 14 * 14, 6)
    out = {"input": posemb}
    for g in (8, 20):
        out[f"resampled.{g}"] = resample_abs_pos_embed(posemb, (g, g))
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/pos_embed_fixture.safetensors"
    write_safetensors(path, out, producer="scripts/make_pos_embed_fixture.py", seed=SEED)


if __name__ == "__main__":
    main()
