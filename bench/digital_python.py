#!/usr/bin/python3
"""PIL side of bench/bench_digital.cpp: the same quality scans (METHOD §6.3) for JPEG and WebP on the
same images (first 32 colour JPEGs under imagenette2-64/val/ in archive order), same budget.

  /usr/bin/python3 bench/digital_python.py [--tar PATH] [--json OUT] [--ladders OUT]

Prints images/s (wall and CPU) per codec (median of 3 repetitions; PIL's codecs are single
threaded) with the names the C++ benchmark uses; --ladders writes every image's size at every
quality (PIL's encoder) so the C++ rate ladders can be checked against PIL byte for byte.
"""
import argparse
import io
import json
import statistics
import tarfile
import time
from pathlib import Path

from PIL import Image, features

BUDGET_BITS = 12000
IMAGES = 32


def load_images(tar_path):
    out = []
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if len(out) == IMAGES:
                break
            if "/val/" not in member.name or not member.name.endswith(".JPEG"):
                continue
            img = Image.open(io.BytesIO(tar.extractfile(member).read()))
            if img.mode != "RGB":
                continue
            img.load()
            out.append((member.name, img))
    return out


def jpeg_bytes(img, q):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)  # PIL defaults: 4:2:0, no optimize, baseline
    return buf.getvalue()


def webp_bytes(img, q):
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=q, method=4)
    return buf.getvalue()


def choose(encode, img, qualities, budget):
    """Reference scan: lost unless the cheapest fits, else first (best) quality strictly below."""
    if len(encode(img, qualities[-1])) * 8 >= budget:
        return None
    for q in qualities:
        data = encode(img, q)
        if len(data) * 8 < budget:
            return q, data
    return None


CODECS = {
    "jpeg": (jpeg_bytes, list(range(95, 0, -1))),
    "webp": (webp_bytes, list(range(100, -1, -1))),
}


def time_rate(fn, items, reps=3, min_time=0.5):
    """(images per wall second, images per CPU second), medians over `reps` runs."""
    wall, cpu = [], []
    for _ in range(reps):
        n, start, start_cpu = 0, time.perf_counter(), time.process_time()
        while True:
            for it in items:
                fn(it)
            n += len(items)
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        wall.append(n / elapsed)
        cpu.append(n / (time.process_time() - start_cpu))
    return statistics.median(wall), statistics.median(cpu)


def main():
    default_tar = Path(__file__).resolve().parents[1].parent / "shared/data/imagenette2-64.tar.gz"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tar", default=str(default_tar))
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--ladders", help="write per-image sizes at every quality here")
    ap.add_argument("--ladder-images", type=int, default=IMAGES, help="how many images --ladders has")
    args = ap.parse_args()
    assert features.check("webp"), "this PIL has no WebP support"
    images = load_images(args.tar)
    results = {}
    for name, (encode, qualities) in CODECS.items():
        chosen = [choose(encode, img, qualities, BUDGET_BITS) for _, img in images]
        enc_rate = time_rate(lambda img: choose(encode, img, qualities, BUDGET_BITS),
                             [img for _, img in images])
        kept = [c for c in chosen if c is not None]
        dec_rate = time_rate(lambda data: Image.open(io.BytesIO(data)).convert("RGB").load(),
                             [data for _, data in kept])
        results[f"BM_DigitalEncode/{name}/real_time"] = {
            "images_per_s": enc_rate[0],
            "images_per_cpu_s": enc_rate[1],
            "fit_fraction": len(kept) / len(images),
            "mean_choice": statistics.mean(c[0] if c else -1 for c in chosen),
        }
        results[f"BM_DigitalDecode/{name}/real_time"] = {"images_per_s": dec_rate[0],
                                                          "images_per_cpu_s": dec_rate[1]}
    for k, v in results.items():
        print(k, " ".join(f"{a}={b:.4g}" for a, b in v.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.ladders:
        ladders = {name: {n: [len(encode(img, q)) for q in qualities]
                          for n, img in images[:args.ladder_images]}
                   for name, (encode, qualities) in CODECS.items()}
        Path(args.ladders).write_text(json.dumps(ladders))


if __name__ == "__main__":
    main()
