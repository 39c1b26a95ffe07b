#!/usr/bin/env bash
# docs/PERF.md "MobileNetV3 on the CPU": bench_mobilenet (C++) and bench/torch_mobilenet.py
# (torchvision on tokcom's terms: same threads, OpenBLAS core and malloc settings) in alternating
# rounds — forward (eval) at batch 1 and 64, 64 and 224 px, and training steps at 28, 64, 128 px.
# Usage: scripts/perf_mobilenet.sh [OUT] (default docs/results/perf-mobilenet); ROUNDS (default 2).
# Needs `cmake --build build --target bench_mobilenet`. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results/perf-mobilenet}"
ROUNDS="${ROUNDS:-2}"
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $* (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/log.txt"; }
build/tokcom --version > "$OUT/version.txt"
for r in $(seq 1 "$ROUNDS"); do
  log "round $r: C++"
  build/bench/bench_mobilenet --benchmark_repetitions=3 --benchmark_min_time=1 \
    --benchmark_out="$OUT/cpp-$r.json" --benchmark_out_format=json > /dev/null
  log "round $r: PyTorch"
  /usr/bin/python3 bench/torch_mobilenet.py --out "$OUT/py-$r.json" --cpp "$OUT/cpp-$r.json" --min-time 1 \
    | sed -n '/^| benchmark/,$p' > "$OUT/compare-$r.md"
done
log "done"
cat "$OUT"/compare-*.md
