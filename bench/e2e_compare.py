#!/usr/bin/python3
"""Markdown table of bench_e2e (C++) vs torch_e2e.py (PyTorch) process-CPU medians, and the share of
the channel + normalisation (BM_Parts) in the C++ end-to-end time.

  /usr/bin/python3 bench/e2e_compare.py cpp.json py.json
(cpp.json: bench_e2e --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_format=json)
"""
import json
import re
import sys

cpp, parts = {}, {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("aggregate_name", "median") != "median":
        continue
    name = b["run_name"].replace("/process_time/real_time", "")
    ms = b["cpu_time"] * {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
    if name.startswith("BM_E2E"):
        cpp[name] = ms
    else:
        key = re.sub(r"/part:\d", "", name).replace("BM_Parts", "BM_E2E")
        parts[key] = parts.get(key, 0.0) + ms
py = {b["name"].replace("/real_time", ""): b["cpu_ms"] for b in json.load(open(sys.argv[2]))["benchmarks"]}
print("| batch | α | r | C++ ms (CPU) | PyTorch ms (CPU) | PyTorch / C++ | channel + normalisation share |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name, ms in cpp.items():
    m = re.match(r"BM_E2E/batch:(\d+)/alpha:(\d+)/r:(\d+)", name)
    batch, alpha, r = m.group(1), int(m.group(2)) / 100, int(m.group(3)) / 1000
    p = py.get(name)
    share = parts.get(name, 0.0) / ms
    print(f"| {batch} | {alpha:g} | {r:g} | {ms:.2f} | {p:.2f} | {p / ms:.2f}× | {share * 100:.1f} % |")
