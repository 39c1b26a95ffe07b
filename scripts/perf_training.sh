#!/usr/bin/env bash
# docs/PERF.md: what the BLAS core and bf16 do to real training (the Fashion-MNIST backbone,
# configs/fmnist.yaml, 2 threads, seed 0).
#  1. 100 steps with OpenBLAS's generic core (OPENBLAS_CORETYPE=Prescott) and with tokcom's choice;
#  2. one full epoch in fp32 and in bf16 (train.precision): images/s and validation accuracy.
# Usage: scripts/perf_training.sh [OUT] (default docs/results/perf-kernels/training)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results/perf-kernels/training}"
RUNS="$(mktemp -d)"
trap 'rm -rf "$RUNS"' EXIT
mkdir -p "$OUT"
T=(build/tokcom --threads 2 --seed 0 --log-level warn train -c fmnist train.stage=backbone train.epochs=1)
echo "run,core,precision,max_batches,images_per_s,val_acc,seconds" > "$OUT/fmnist-backbone.csv"
row() {  # name core precision max_batches dir seconds
  local last; last="$(tail -1 "$5/epochs.csv")"
  local header; header="$(head -1 "$5/epochs.csv")"
  python3 - "$header" "$last" "$1" "$2" "$3" "$4" "$6" >> "$OUT/fmnist-backbone.csv" <<'PY'
import sys
h, v = sys.argv[1].split(","), sys.argv[2].split(",")
r = dict(zip(h, v))
print(",".join([sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], r["images_per_s"], r["val_accuracy"], sys.argv[7]]))
PY
}
run() {  # name core precision max_batches
  local dir="$RUNS/$1" start end env=()
  [ "$2" != tokcom ] && env=(env "OPENBLAS_CORETYPE=$2")
  start=$(date +%s.%N)
  "${env[@]}" "${T[@]}" train.precision="$3" train.max_batches="$4" train.out="$dir"
  end=$(date +%s.%N)
  row "$1" "$2" "$3" "$4" "$dir" "$(python3 -c "print(round($end - $start, 1))")"
}
run generic-100 Prescott fp32 100
run tokcom-100 tokcom fp32 100
run fp32-epoch tokcom fp32 0
run bf16-epoch tokcom bf16 0
build/tokcom --version > "$OUT/version.txt"
cat "$OUT/fmnist-backbone.csv"
