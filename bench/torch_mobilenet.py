#!/usr/bin/python3
"""PyTorch side of bench/bench_mobilenet.cpp: torchvision mobilenet_v3_{small,large}(num_classes=10),
eval mode, torch.inference_mode, the same names, shapes and threads (2); and training steps. It runs
on tokcom's terms (bench/peer_env.py: the same OpenBLAS core and glibc malloc settings).

  /usr/bin/python3 bench/torch_mobilenet.py --out py.json [--cpp cpp.json] [--filter Forward]
Writes {"benchmarks": [{"name": "BM_MobileNetForward/large:0/batch:1/side:224/real_time",
"median_ms": ...}]} (median wall time per call over --repeats runs of --min-time seconds). With
--cpp (Google Benchmark JSON of bench_mobilenet) prints a markdown table C++ vs PyTorch.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_env  # noqa: E402

if __name__ == "__main__":  # tokcom's terms: its OpenBLAS core (the classifier) and malloc settings
    peer_env.same_terms(peer_env.flag_value(sys.argv, "--blas-core"))

import torch  # noqa: E402
import torchvision  # noqa: E402

CASES = [("BM_MobileNetForward", large, batch, side)
         for large in (0, 1) for batch in (1, 64) for side in (64, 224)]
CASES += [("BM_MobileNetDevice", 0, 1, 224), ("BM_MobileNetServer", 0, 1, 224)]
# Training steps (train mode, cross-entropy, AdamW lr 1e-3 wd 0.05): (large, batch, side, in_chans).
TRAIN_CASES = [(0, 128, 28, 1), (0, 128, 64, 3), (0, 128, 128, 3)]


def name_of(bench, large, batch, side):
    return f"{bench}/large:{large}/batch:{batch}/side:{side}/real_time"


def time_call(fn, min_time):
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return 1e3 * elapsed / calls


def cpp_medians(path):
    runs = {}
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type", "iteration") == "iteration":
            scale = {"ms": 1, "us": 1e-3, "ns": 1e-6, "s": 1e3}[b["time_unit"]]
            runs.setdefault(b["run_name"], []).append(b["real_time"] * scale)
    return {k: statistics.median(v) for k, v in runs.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--cpp")
    p.add_argument("--filter", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--blas-core", help="OpenBLAS core (default: the one `tokcom --version` reports)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    models = {v: getattr(torchvision.models, f"mobilenet_v3_{n}")(num_classes=10).eval()
              for v, n in ((0, "small"), (1, "large"))}
    results = []
    with torch.inference_mode():
        for bench, large, batch, side in CASES:
            name = name_of(bench, large, batch, side)
            if a.filter not in name:
                continue
            m = models[large]
            x = torch.randn(batch, 3, side, side)
            if bench == "BM_MobileNetForward":
                fn = lambda: m(x)
            elif bench == "BM_MobileNetDevice":
                fn = lambda: m.features[0:3](x)
            else:
                f = m.features[0:3](x)
                fn = lambda: m.classifier(torch.flatten(m.avgpool(m.features[3:](f)), 1))
            ms = statistics.median(time_call(fn, a.min_time) for _ in range(a.repeats))
            results.append({"name": name, "median_ms": ms})
            print(f"{name}: {ms:.3f} ms", flush=True)
    for large, batch, side, in_chans in TRAIN_CASES:
        name = f"BM_MobileNetTrainStep/large:{large}/batch:{batch}/side:{side}/in_chans:{in_chans}/real_time"
        if a.filter not in name:
            continue
        m = getattr(torchvision.models, f"mobilenet_v3_{'large' if large else 'small'}")(num_classes=10)
        if in_chans != 3:  # as tokcom's in_chans: only features.0.0's input channels change
            c = m.features[0][0]
            m.features[0][0] = torch.nn.Conv2d(in_chans, c.out_channels, 3, 2, 1, bias=False)
        m.train()
        adam = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05)
        x, y = torch.randn(batch, in_chans, side, side), torch.randint(0, 10, (batch,))

        def step():
            adam.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            adam.step()
        ms = statistics.median(time_call(step, a.min_time) for _ in range(a.repeats))
        results.append({"name": name, "median_ms": ms})
        print(f"{name}: {ms:.3f} ms", flush=True)
    with open(a.out, "w") as f:
        json.dump({"threads": a.threads, "torch": torch.__version__, "benchmarks": results}, f, indent=1)
    if a.cpp:
        cpp = cpp_medians(a.cpp)
        print("| benchmark | C++ ms | PyTorch ms | PyTorch / C++ |\n| --- | ---: | ---: | ---: |")
        for r in results:
            c = cpp.get(r["name"])
            if c:
                print(f"| {r['name'].replace('/real_time', '')} | {c:.2f} | {r['median_ms']:.2f} | "
                      f"{r['median_ms'] / c:.2f} |")


if __name__ == "__main__":
    main()
