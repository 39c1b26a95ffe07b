#!/usr/bin/python3
"""Joins bench_vit (Google Benchmark JSON) and torch_vit.py results into a markdown table, plus the
hard-drop speed-ups against the linear-cost ideal (docs/model.md).

  /usr/bin/python3 bench/compare_vit.py cpp.json py.json [cpu]
With `cpu`, compares process CPU time (all threads) instead of wall time.
"""
import json
import re
import statistics
import sys


FIELD = "cpu" if len(sys.argv) > 3 and sys.argv[3] == "cpu" else "real"


def cpp_medians(path):
    runs = {}
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        runs.setdefault(b["run_name"].replace("/process_time", ""), []).append(b[FIELD + "_time"] * {"ms": 1, "us": 1e-3, "ns": 1e-6}[b["time_unit"]])
    return {k: statistics.median(v) for k, v in runs.items()}


def ideal(size, keep):
    """Block-token work without drops / with drops: every block costs ∝ its token count."""
    n, depth = (64, 6) if size == 64 else (196, 12)
    kept = round(keep / 100 * n) + 2
    return depth * (n + 2) / ((n + 2) + (depth - 1) * kept)  # block 0 full; drops from block 1


def main():
    cpp = cpp_medians(sys.argv[1])
    py = {b["name"]: b["cpu_ms" if FIELD == "cpu" else "median_ms"] for b in json.load(open(sys.argv[2]))["benchmarks"]}
    print(f"{FIELD} time, medians")
    print("| benchmark | C++ ms | PyTorch ms | PyTorch / C++ |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in cpp.items():
        p = py.get(name)
        print(f"| {name} | {ms:.2f} | {p:.2f} | {p / ms:.2f} |" if p else f"| {name} | {ms:.2f} | – | – |")
    print()
    print("| hard drop | side | full ms | dropped ms | speed-up | ideal | speed-up / ideal |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in cpp:
        m = re.match(r"BM_Hard(\d+)/batch:(\d+)/keep:(\d+)/real_time", name)
        if not m or m.group(3) == "100":
            continue
        size, keep = int(m.group(1)), int(m.group(3))
        full = name.replace(f"keep:{keep}", "keep:100")
        for side, table in (("C++", cpp), ("PyTorch", py)):
            if name in table and full in table:
                s = table[full] / table[name]
                print(f"| {name} | {side} | {table[full]:.2f} | {table[name]:.2f} | {s:.2f} | "
                      f"{ideal(size, keep):.2f} | {s / ideal(size, keep):.2f} |")


if __name__ == "__main__":
    main()
