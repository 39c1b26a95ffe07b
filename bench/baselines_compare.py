#!/usr/bin/python3
"""Markdown table of bench_baselines (C++) vs torch_baselines.py (PyTorch): process-CPU medians per
batch of 64 and images/s of CPU time.

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
    cpp[name] = b["cpu_time"] * {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
py = {b["name"].replace("/real_time", ""): b["cpu_ms"] for b in json.load(open(sys.argv[2]))["benchmarks"]}
print("| method | r | C++ ms (CPU, batch 64) | C++ img/s (CPU) | PyTorch ms (CPU) | PyTorch / C++ |")
print("| --- | --- | --- | --- | --- | --- |")
for name, ms in cpp.items():
    m = re.match(r"BM_Baseline/method:(\d)/batch:(\d+)/r:(\d+)", name)
    method, batch, r = int(m.group(1)), int(m.group(2)), int(m.group(3)) / 1000
    p = py.get(name, float("nan"))
    print(f"| {NAMES[method]} | {r:g} | {ms:.2f} | {batch / ms * 1e3:.0f} | {p:.2f} | {p / ms:.2f}× |")
