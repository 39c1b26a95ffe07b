#!/usr/bin/python3
"""PyTorch side of bench/bench_loader.cpp: DataLoader + torchvision transforms over the same
Imagenette-64 train images, batch 128, 2 workers. Images are decoded once into memory (as the C++
loader's uint8 cache); each item is turned into a PIL image and transformed as in METHOD §7.

Run: /usr/bin/python3 bench/torch_loader.py [--epochs 3] [--decode-per-item]
Prints one line per augmentation: name, images/s (median over epochs after one warm-up epoch).
"""
import argparse
import io
import os
import statistics
import tarfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_tarball(path, split="train"):
    """(encoded bytes list, labels) of <top>/<split>/<wnid>/<file>, sorted like the C++ reader."""
    members = []
    with tarfile.open(path) as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and len(parts) >= 3 and parts[-3] == split:
                members.append((parts[-2], m.name, tar.extractfile(m).read()))
    members.sort()
    wnids = sorted({w for w, _, _ in members})
    return [b for _, _, b in members], [wnids.index(w) for w, _, _ in members]


class Images(Dataset):
    def __init__(self, encoded, labels, transform, decode_per_item):
        self.encoded, self.labels, self.transform = encoded, labels, transform
        self.decode_per_item = decode_per_item
        if not decode_per_item:  # decoded once, like the C++ cache
            self.pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in encoded])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if self.decode_per_item:
            img = Image.open(io.BytesIO(self.encoded[i])).convert("RGB")
        else:
            img = Image.fromarray(self.pixels[i])
        return self.transform(img), self.labels[i]


def cpu_seconds(pids):
    """utime + stime of the given processes (DataLoader workers) from /proc, plus this process."""
    tick = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def make_transform(name, size=64):
    tail = [T.ToTensor(), T.Normalize(MEAN, STD)]
    if name == "none":
        return T.Compose([T.Resize((size, size), antialias=True)] + tail)
    if name == "crop-flip":
        return T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0)), T.RandomHorizontalFlip()] + tail)
    if name == "randaugment":  # METHOD §7 order
        return T.Compose([T.RandAugment(num_ops=2, magnitude=9), T.ColorJitter(0.4, 0.4, 0.4),
                          T.Resize((size, size)), T.RandomHorizontalFlip()] + tail)
    raise ValueError(name)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_tar = os.path.join(here, "..", "..", "shared", "data", "imagenette2-64.tar.gz")
    ap = argparse.ArgumentParser()
    ap.add_argument("--tar", default=os.environ.get("TOKCOM_SHARED", "") and
                    os.path.join(os.environ["TOKCOM_SHARED"], "data", "imagenette2-64.tar.gz") or default_tar)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--augment", nargs="*", default=["none", "crop-flip", "randaugment"])
    ap.add_argument("--decode-per-item", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    encoded, labels = read_tarball(args.tar)
    print(f"torch {torch.__version__}, {len(labels)} images, batch {args.batch}, workers {args.workers}, "
          f"decode per item: {args.decode_per_item}")
    for name in args.augment:
        ds = Images(encoded, labels, make_transform(name), args.decode_per_item)
        extra = dict(persistent_workers=True, prefetch_factor=2) if args.workers > 0 else {}
        loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers, **extra)
        rates, cpu_rates = [], []
        it = iter(loader)  # starts the persistent workers
        pids = [w.pid for w in getattr(it, "_workers", [])]
        for epoch in range(args.epochs + 1):
            start, cpu_start, n = time.perf_counter(), cpu_seconds(pids), 0
            for x, y in loader:
                n += x.shape[0]
            if epoch > 0:  # epoch 0 warms up the workers
                rates.append(n / (time.perf_counter() - start))
                cpu_rates.append(n / (cpu_seconds(pids) - cpu_start))
        print(f"torch_loader/augment:{name}/workers:{args.workers}  images/s {statistics.median(rates):.0f}  "
              f"images/cpu_s {statistics.median(cpu_rates):.0f}  "
              f"(epochs: {', '.join(f'{r:.0f}' for r in rates)})", flush=True)
        del loader


if __name__ == "__main__":
    main()
