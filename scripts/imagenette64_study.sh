#!/usr/bin/env bash
# The whole study on Imagenette-64 at a compact scale that fits one ~2-hour window on 2 cores:
# `tokcom reproduce -c imagenette64` with its scale knobs turned down (fewer epochs, JSCC epochs on a
# subset of the training split, 512 images per sweep cell, 5 budgets, 3 SNRs, 300 images per
# deployment run). Every stage of the full study runs — backbone, adaptive, both JSCC banks of the
# proposal, ViT-AE, MobileNetV3 + flat and CNN JSCC, the sweep (Figs 6-7), the digital baselines,
# proxy tables on the training split, the controller (search, oracle, deployment: Table II, Fig. 8),
# Fig. 9 and the report. Copies the CSVs, JSON sidecars, configs, figures and the report to
# docs/results/imagenette64-study/. Rerun after an interruption: finished stages are reused.
# The full-scale study is `tokcom reproduce -c imagenette64` with the defaults (many hours here).
#   SEED=0 RUN=runs/study-imagenette64 scripts/imagenette64_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
T=build/tokcom
SEED=${SEED:-0}
RUN=${RUN:-runs/study-imagenette64}
OUT=docs/results/imagenette64-study
SCALE=(--backbone-epochs 12 --adaptive-epochs 3 --jscc-epochs 1 --jscc-batches 24 --mobilenet-epochs 15
       --sweep-batches 2 --proxy-batches 2 --alphas 0.1,0.25,0.5,0.75,1 --snr 0,10,20 --proxy-snr=-10:25:5
       --deploy-images 300 --sweep-shards 4)

start=$(date +%s)
$T --seed "$SEED" reproduce -c imagenette64 -o "$RUN" "${SCALE[@]}"
echo "$(( $(date +%s) - start ))" > "$RUN/study-seconds-this-call"

# Not yet written: copying the run's CSVs, sidecars and report into $OUT (the run folder holds them all).
