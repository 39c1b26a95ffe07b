"""Summarise bench_comm JSON: per-shape medians and the share of channel + normalisation.

Usage: /usr/bin/python3 bench/comm_fraction.py bench_comm.json
(bench_comm run with --benchmark_repetitions=N --benchmark_report_aggregates_only=true).
share = (normalise + AWGN apply) / (encode + AWGN apply + decode), from the parts' medians,
which is steadier on a loaded machine than dividing by the end-to-end pipeline median.
"""
import json
import sys

rows = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("aggregate_name", "median") != "median":
        continue
    name = b["run_name"] if "run_name" in b else b["name"]
    family, args = name.split("/", 1)
    args = args.replace("/real_time", "")
    label = b.get("label", "")
    key = family + (f"[{label}]" if label else "")
    rows.setdefault(args, {})[key] = (b["real_time"], b.get("symbols/s", 0.0))

print("| shape | pipeline µs | symbols/s | encode µs | normalise µs | awgn µs | rayleigh-mmse µs "
      "| rayleigh-symbol µs | decode µs | (normalise+awgn)/(enc+awgn+dec) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for args, r in rows.items():
    t = {k: v[0] for k, v in r.items()}
    enc, norm, dec = t["BM_JsccEncode"], t["BM_Normalize"], t["BM_JsccDecode"]
    awgn = t["BM_ChannelApply<0>[awgn]"]
    share = (norm + awgn) / (enc + awgn + dec)
    print(f"| {args} | {t['BM_CommPipeline']:.0f} | {r['BM_CommPipeline'][1]:.3g} | {enc:.0f} | {norm:.0f} "
          f"| {awgn:.0f} | {t['BM_ChannelApply<1>[rayleigh-mmse]']:.0f} "
          f"| {t['BM_ChannelApply<2>[rayleigh-symbol]']:.0f} | {dec:.0f} | {share:.2f} |")
