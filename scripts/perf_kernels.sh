#!/usr/bin/env bash
# docs/PERF.md "The BLAS kernel": the machine's GEMM peak (tokcom's core and OpenBLAS's generic
# one), then bench_vit (C++) and bench/torch_vit.py (PyTorch on tokcom's terms: same OpenBLAS
# core, threads and malloc settings) in alternating rounds, so both sides see the same machine.
# Usage: scripts/perf_kernels.sh [OUT] (default docs/results/perf-kernels); ROUNDS (default 2).
# Needs `cmake --build build --target bench_vit bench_peak`. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results/perf-kernels}"
ROUNDS="${ROUNDS:-2}"
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $* (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/log.txt"; }
build/tokcom --version > "$OUT/version.txt"
log "peak"
build/bench/bench_peak --benchmark_min_time=0.5 --benchmark_out="$OUT/peak.json" --benchmark_out_format=json > /dev/null
log "peak, generic core"
OPENBLAS_CORETYPE=Prescott build/bench/bench_peak --benchmark_filter='bf16:0' --benchmark_min_time=0.5 \
  --benchmark_out="$OUT/peak-prescott.json" --benchmark_out_format=json > /dev/null
for r in $(seq 1 "$ROUNDS"); do
  log "round $r: C++"
  build/bench/bench_vit --benchmark_repetitions=3 --benchmark_min_time=1 \
    --benchmark_out="$OUT/vit-cpp-$r.json" --benchmark_out_format=json > /dev/null
  log "round $r: PyTorch"
  /usr/bin/python3 bench/torch_vit.py --out "$OUT/vit-py-$r.json" --min-time 2 > /dev/null
  /usr/bin/python3 bench/compare_vit.py "$OUT/vit-cpp-$r.json" "$OUT/vit-py-$r.json" --peak "$OUT/peak.json" > "$OUT/compare-$r.md"
done
if [ "${BF16:-1}" = 1 ]; then
  log "bf16: C++"
  TOKCOM_BENCH_PRECISION=bf16 build/bench/bench_vit --benchmark_filter='Forward64|Forward128|TrainStep64/batch:64|Hard64/batch:64' \
    --benchmark_min_time=1 --benchmark_out="$OUT/vit-cpp-bf16.json" --benchmark_out_format=json > /dev/null
fi
log "done"
