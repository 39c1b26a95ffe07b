#!/usr/bin/env bash
# The adaptive stage's recipe at 128 px (issue: stronger models, item 2): from one ViT backbone, three
# epochs of the adaptive stage with the study's settings (KL 0.5 to the backbone's logits, hard budget
# loss, stratified budgets), then the budget calibration (`tokcom calibrate`, 1,024 training images)
# and the hard evaluation with the budget cap on the whole validation split: the device half every
# later stage of the study uses. Variants (one thread each, two at a time):
#   lr1e-3          the study's: the backbone weights at the backbone's own peak lr, 1e-3;
#   lr1e-4          the backbone weights at 1e-4 (the selection's gates, thresholds and budget tokens
#                   keep train.selection_lr = 1e-3): a fine-tune of a trained model;
#   lr1e-4-tokens   lr1e-4 plus DynamicViT's distillation of the kept tokens (weight 0.5);
#   lr1e-4-amin0.1  lr1e-4 with budgets drawn from [0.1, 0.999] (the study evaluates α ≥ 0.1);
#   lr3e-4-tokens, lr1e-3-tokens  the kept-token distillation at lr 3e-4 and 1e-3;
#   lr3e-4-tokens-captrain  lr3e-4-tokens trained with the budget cap on (model.budget_cap_train:
#                   each sample trains on at most ⌊α·N⌋ patches, what the capped device half sends).
# The backbone is the progressive-resizing one of scripts/backbone128_schedule.sh (runs/exp/lowres:
# 24 epochs at 64 px then 6 at 128 px, 62.60 % val). Writes docs/results/adaptive128-recipe/ (OUT; each
# variant's epochs.csv, config, calibration and capped eval, README.md with 95 % Wilson intervals).
# Another backbone of that schedule (the study's runs/study-imagenette128/backbone/model.safetensors,
# epochs.csv beside it; `STEP=restore scripts/imagenette128_study.sh` puts it there)
# goes into its own RUNS and OUT, so variants are only compared on one backbone.
# Finished steps are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
T=build/tokcom
SEED=${SEED:-0}
RUNS=${RUNS:-runs/exp}
BACKBONE=${BACKBONE:-$RUNS/lowres/model.safetensors}
EPOCHS=${EPOCHS:-3}
VARIANTS=${VARIANTS:-lr1e-3 lr1e-4 lr1e-4-tokens lr1e-4-amin0.1 lr3e-4-tokens lr1e-3-tokens}
OUT=${OUT:-docs/results/adaptive128-recipe}
if [ ! -f "$BACKBONE" ]; then
  echo "$BACKBONE: not found (the 128-px backbone: SEED=$SEED VARIANTS=lowres scripts/backbone128_schedule.sh)" >&2
  exit 1
fi
mkdir -p "$RUNS" "$OUT"

overrides() {  # the variant's train overrides
  case $1 in
    lr1e-3) echo train.lr=1e-3 ;;
    lr1e-4) echo train.lr=1e-4 ;;
    lr1e-4-tokens) echo train.lr=1e-4 train.distill_tokens=0.5 ;;
    lr1e-4-amin0.1) echo train.lr=1e-4 train.alpha_min=0.1 ;;
    lr3e-4-tokens) echo train.lr=3e-4 train.distill_tokens=0.5 ;;
    lr1e-3-tokens) echo train.lr=1e-3 train.distill_tokens=0.5 ;;
    lr3e-4-tokens-captrain) echo train.lr=3e-4 train.distill_tokens=0.5 model.budget_cap_train=true ;;
    *) echo "unknown variant $1 (lr1e-3, lr1e-4, lr1e-4-tokens, lr1e-4-amin0.1, lr3e-4-tokens, lr1e-3-tokens, lr3e-4-tokens-captrain)" >&2; return 2 ;;
  esac
}

run() {  # variant: train, calibrate, evaluate with the cap
  local name=adaptive-$1 extra
  extra=$(overrides "$1")
  if [ ! -f "$RUNS/$name/model.safetensors" ]; then
    # shellcheck disable=SC2086  # the overrides are words
    /usr/bin/time -f "%e" -o "$RUNS/$name.seconds" $T --seed "$SEED" --threads 1 train --resume -c imagenette128 \
      train.stage=adaptive train.init="$BACKBONE" train.out="$RUNS/$name" train.epochs="$EPOCHS" train.warmup_epochs=1 \
      train.teacher= train.teacher_model=same train.distill_hard=0 train.distill_kl=0.5 $extra
  fi
  if [ ! -f "$RUNS/$name-calibrated/model.safetensors" ]; then
    $T --seed "$SEED" --threads 1 calibrate --checkpoint "$RUNS/$name/model.safetensors" --images 1024 \
      --budgets 0.01:0.99:0.02 -o "$RUNS/$name-calibrated"
  fi
  if [ ! -f "$RUNS/$name-calibrated/eval-capped-hard.csv" ]; then
    $T --seed "$SEED" --threads 1 eval --checkpoint "$RUNS/$name-calibrated/model.safetensors" \
      --alphas 0.1,0.25,0.5,0.75,1 --mode hard --max-batches 0 -o "$RUNS/$name-calibrated/eval-capped-hard.csv" \
      model.budget_cap=true
  fi
}

for v in $VARIANTS; do overrides "$v" > /dev/null; done
# Two at a time (2 cores).
set -- $VARIANTS
while [ $# -gt 0 ]; do
  pids=()
  run "$1" & pids+=($!)
  if [ $# -gt 1 ]; then run "$2" & pids+=($!); fi
  for p in "${pids[@]}"; do wait "$p" || { echo "a variant of ($*) failed; see above" >&2; exit 1; }; done
  shift $(( $# > 1 ? 2 : 1 ))
done

for v in $VARIANTS; do
  name=adaptive-$v
  cp "$RUNS/$name/epochs.csv" "$OUT/$v.epochs.csv"
  cp "$RUNS/$name/config.yaml" "$OUT/$v.config.yaml"
  cp "$RUNS/$name-calibrated/calibration.csv" "$OUT/$v.calibration.csv"
  cp "$RUNS/$name-calibrated/eval-capped-hard.csv" "$OUT/$v.eval-capped-hard.csv"
  [ -f "$RUNS/$name.seconds" ] && cp "$RUNS/$name.seconds" "$OUT/$v.seconds"
done
cp "$(dirname "$BACKBONE")/epochs.csv" "$OUT/backbone.epochs.csv"
python3 scripts/adaptive128_recipe_report.py "$OUT" "$SEED" "$EPOCHS" $VARIANTS
cat "$OUT/README.md"
