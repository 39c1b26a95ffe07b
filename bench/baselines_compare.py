#!/usr/bin/python3
"""Markdown table of bench_baselines (C++) vs torch_baselines.py (PyTorch): wall and process-CPU
medians per batch of 64, and wall-clock images/s.

  /usr/bin/python3 bench/baselines_compare.py cpp.json py.json
"""
import json
import re
import sys

NAMES = {0: "ViT-AE", 1: "MobileNetV3-Small + flat JSCC", 2: "MobileNetV3-Small + CNN JSCC"}
cpp = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("aggregate_name", "median") != "median":
        continue
    name = b["run_name"].replace("/process_time/real_time", "")
    unit = {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
    cpp[name] = (b["real_time"] * unit, b["cpu_time"] * unit)
py = {b["name"].replace("/real_time", ""): (b["median_ms"], b["cpu_ms"]) for b in json.load(open(sys.argv[2]))["benchmarks"]}
print("| method | r | C++ wall ms | C++ img/s | PyTorch wall ms | PyTorch img/s | PyTorch / C++ (wall) | PyTorch / C++ (CPU) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, (wall, cpu) in cpp.items():
    m = re.match(r"BM_Baseline/method:(\d)/batch:(\d+)/r:(\d+)", name)
    method, batch, r = int(m.group(1)), int(m.group(2)), int(m.group(3)) / 1000
    pw, pc = py.get(name, (float("nan"), float("nan")))
    print(f"| {NAMES[method]} | {r:g} | {wall:.2f} | {batch / wall * 1e3:.0f} | {pw:.2f} | {batch / pw * 1e3:.0f} | "
          f"{pw / wall:.2f}× | {pc / cpu:.2f}× |")
