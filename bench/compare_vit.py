#!/usr/bin/python3
"""Joins bench_vit (Google Benchmark JSON), torch_vit.py and bench_peak results into markdown
tables (docs/PERF.md): C++ vs PyTorch per case, each C++ case as GFLOP/s and as a fraction of the
measured 2-thread fp32 GEMM peak, and the hard-drop speed-ups against the FLOP-count ideal.

  /usr/bin/python3 bench/compare_vit.py cpp.json py.json [--peak peak.json] [--cpu]
With --cpu, compares process CPU time (all threads) instead of wall time. Refuses to compare runs
made on different OpenBLAS cores (the PyTorch side must run on tokcom's terms: bench/peer_env.py).
"""
import argparse
import json
import re
import statistics
import sys

UNIT = {"ms": 1, "us": 1e-3, "ns": 1e-6, "s": 1e3}


def cpp_runs(path, field):
    doc = json.load(open(path))
    times, gflops, rates = {}, {}, {}
    for b in doc["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b["run_name"].replace("/process_time", "")
        times.setdefault(name, []).append(b[field + "_time"] * UNIT[b["time_unit"]])
        gflops.setdefault(name, []).append(b.get("GFLOP/s", 0.0))
        rates.setdefault(name, []).append(b.get("images/s", 0.0))
    med = lambda d: {k: statistics.median(v) for k, v in d.items()}  # noqa: E731
    return med(times), med(gflops), med(rates), doc.get("context", {})


def peak(path, threads):
    """Best fp32 GEMM GFLOP/s at `threads` over the sizes bench_peak ran (median over repetitions)."""
    runs = {}
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        m = re.match(r"BM_Gemm/n:(\d+)/threads:(\d+)/bf16:0", b["run_name"])
        if m and int(m.group(2)) == threads:
            runs.setdefault(m.group(1), []).append(b["GFLOP/s"])
    return max(statistics.median(v) for v in runs.values()) if runs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cpp")
    ap.add_argument("py")
    ap.add_argument("--peak", help="bench_peak JSON: adds the fraction of the 2-thread fp32 GEMM peak")
    ap.add_argument("--threads", type=int, default=2, help="threads both sides ran with (peak at this count)")
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--allow-different-kernels", action="store_true")
    args = ap.parse_args()
    field = "cpu" if args.cpu else "real"
    cpp, gflops, rates, context = cpp_runs(args.cpp, field)
    pydoc = json.load(open(args.py))
    py = {b["name"]: b["cpu_ms" if args.cpu else "median_ms"] for b in pydoc["benchmarks"]}
    ccore, pcore = context.get("blas_core", "?"), pydoc.get("blas_core", "?")
    if ccore != pcore and not args.allow_different_kernels:
        sys.exit(f"compare_vit: C++ ran on OpenBLAS core {ccore}, PyTorch on {pcore}: not the same terms")
    top = peak(args.peak, args.threads) if args.peak else None
    print(f"{field} time, medians; OpenBLAS core C++ {ccore}, PyTorch {pcore}"
          + (f"; fp32 GEMM peak at {args.threads} threads {top:.1f} GFLOP/s" if top else ""))
    print()
    print("| benchmark | GFLOP/img | C++ ms | C++ img/s | PyTorch ms | PyTorch / C++ | C++ GFLOP/s | of peak |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, ms in cpp.items():
        p = py.get(name)
        ratio = f"{p / ms:.2f}" if p else "–"
        frac = f"{gflops[name] / top:.0%}" if top and gflops[name] else "–"
        per_image = gflops[name] / rates[name] if rates[name] else 0.0
        print(f"| {name.replace('/real_time', '')} | {per_image:.3f} | {ms:.2f} | {rates[name]:.1f} | "
              f"{f'{p:.2f}' if p else '–'} | {ratio} | {gflops[name]:.1f} | {frac} |")
    print()
    print("Hard drop: speed-up = time at keep 100 / time at keep k; ideal = FLOPs at keep 100 / FLOPs at keep k")
    print("(vit_forward_flops, attention's quadratic part included).")
    print()
    print("| hard drop | side | full ms | dropped ms | speed-up | ideal | speed-up / ideal |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in cpp:
        m = re.match(r"BM_Hard(\d+)/batch:(\d+)/keep:(\d+)/real_time", name)
        if not m or m.group(3) == "100":
            continue
        keep = m.group(3)
        full = name.replace(f"keep:{keep}", "keep:100")
        if full not in cpp or not rates[name] or not rates[full]:
            continue
        ideal = (gflops[full] / rates[full]) / (gflops[name] / rates[name])
        for side, table in (("C++", cpp), ("PyTorch", py)):
            if name in table and full in table:
                s = table[full] / table[name]
                print(f"| {name.replace('/real_time', '')} | {side} | {table[full]:.2f} | {table[name]:.2f} | "
                      f"{s:.2f} | {ideal:.2f} | {s / ideal:.2f} |")


if __name__ == "__main__":
    main()
