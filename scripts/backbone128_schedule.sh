#!/usr/bin/env bash
# The ViT backbone's schedule at 128 px (issue: stronger models, item 1), measured against the study's
# own backbone (docs/results/imagenette128-study/backbone: batch 128, 12 epochs, hard-label
# distillation 0.5 from the study's MobileNetV3-Small baseline). Same config, seed and teacher, one
# thread each, variants:
#   bs64, bs32    the same 12 epochs in smaller batches (2× and 4× the optimizer steps, same images);
#   lowres        progressive resizing: LOWRES_EPOCHS epochs at 64 px (4 × 4 patches of 16, no teacher),
#                 then HIGHRES_EPOCHS at 128 px from it (train.init resamples pos_embed to 8 × 8),
#                 with the teacher;
#   cropflip      12 epochs with random-resized-crop and flip instead of RandAugment;
#   lowres-cropflip  progressive resizing with crop-and-flip in both phases: the 64-px phase once
#                 (LOWRES_THREADS threads, alone), then HIGHRES_EPOCHS and HIGHRES_LONG_EPOCHS at 128 px
#                 from it side by side (lowres-cropflip, lowres-cropflip-long);
#   lr2e-3        12 epochs at twice the peak learning rate.
# Copies each run's epochs.csv, config and seconds to docs/results/backbone128-schedule/ and generates
# its README.md (whole validation split, 95 % Wilson intervals). Finished runs are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
T=build/tokcom
SEED=${SEED:-0}
RUNS=${RUNS:-runs/exp}
STUDY=${STUDY:-runs/study-imagenette128}
LOWRES_EPOCHS=${LOWRES_EPOCHS:-24}
HIGHRES_EPOCHS=${HIGHRES_EPOCHS:-6}
HIGHRES_LONG_EPOCHS=${HIGHRES_LONG_EPOCHS:-12}
LOWRES_THREADS=${LOWRES_THREADS:-2}
VARIANTS=${VARIANTS:-bs64 lowres cropflip}  # also: bs32, lr2e-3
OUT=docs/results/backbone128-schedule
TEACHER=("train.teacher=$STUDY/mobilenet/model.safetensors" train.teacher_model=mobilenet-v3-small train.distill_hard=0.5)
if [ ! -f "$STUDY/mobilenet/model.safetensors" ]; then
  echo "$STUDY/mobilenet/model.safetensors: not found (the study's MobileNetV3 baseline; SEED=$SEED scripts/imagenette128_study.sh STEP=restore)" >&2
  exit 1
fi
mkdir -p "$RUNS" "$OUT"

run_threads() {  # threads, name, then train overrides
  local threads=$1 name=$2; shift 2
  if [ ! -f "$RUNS/$name/model.safetensors" ]; then
    /usr/bin/time -f "%e" -o "$RUNS/$name.seconds" $T --seed "$SEED" --threads "$threads" train --resume -c imagenette128 \
      train.stage=backbone train.out="$RUNS/$name" "$@"
  fi
}
run() { run_threads 1 "$@"; }
for v in $VARIANTS; do
  case $v in
    bs64) run bs64 train.epochs=12 train.batch_size=64 "${TEACHER[@]}" & ;;
    bs32) run bs32 train.epochs=12 train.batch_size=32 "${TEACHER[@]}" & ;;
    lowres) (run lowres64 train.epochs="$LOWRES_EPOCHS" data.image_size=64 model.image_size=64 &&
             run lowres train.epochs="$HIGHRES_EPOCHS" train.warmup_epochs=1 train.init="$RUNS/lowres64/model.safetensors" \
               "${TEACHER[@]}") & ;;
    cropflip) run cropflip train.epochs=12 data.augment=crop-flip "${TEACHER[@]}" & ;;
    lowres-cropflip)
      (run_threads "$LOWRES_THREADS" lowres64-cropflip train.epochs="$LOWRES_EPOCHS" data.image_size=64 model.image_size=64 \
         data.augment=crop-flip &&
       for name_epochs in "lowres-cropflip $HIGHRES_EPOCHS" "lowres-cropflip-long $HIGHRES_LONG_EPOCHS"; do
         set -- $name_epochs
         run "$1" train.epochs="$2" train.warmup_epochs=1 train.init="$RUNS/lowres64-cropflip/model.safetensors" \
           data.augment=crop-flip "${TEACHER[@]}" &
       done && wait) & ;;
    lr2e-3) run lr2e-3 train.epochs=12 train.lr=2e-3 "${TEACHER[@]}" & ;;
    *) echo "unknown variant $v (bs64, bs32, lowres, cropflip, lowres-cropflip, lr2e-3)" >&2; exit 2 ;;
  esac
done
wait

# What an epoch costs at each size, measured alone (run it on a quiet machine): 20 training batches at
# 64 px without the teacher (the low-resolution phase) and at 128 px with it (every other run), one
# thread; throughput.csv holds their images/s.
if [ ! -f "$OUT/throughput.csv" ]; then
  echo "size,teacher,images_per_s" > "$OUT/throughput.csv.tmp"
  for size in 64 128; do
    extra=()
    [ "$size" = 128 ] && extra=("${TEACHER[@]}")
    rm -rf "$RUNS/throughput-$size"
    $T --seed "$SEED" --threads 1 --log-level warn train -c imagenette128 train.stage=backbone data.image_size=$size \
      model.image_size=$size train.epochs=1 train.max_batches=20 train.out="$RUNS/throughput-$size" "${extra[@]}"
    ips=$(python3 -c 'import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[-1]["images_per_s"])' \
      "$RUNS/throughput-$size/epochs.csv")
    echo "$size,$([ "$size" = 128 ] && echo yes || echo no),$ips" >> "$OUT/throughput.csv.tmp"
  done
  mv "$OUT/throughput.csv.tmp" "$OUT/throughput.csv"
fi

# The reference: the study's backbone when it was 12 epochs at 128 px (kept once; the study's
# backbone has changed since, docs/RESULTS.md).
[ -f "$OUT/study-bs128.epochs.csv" ] || cp "$STUDY/backbone/epochs.csv" "$OUT/study-bs128.epochs.csv"
for name in bs64 bs32 lowres64 lowres cropflip lowres64-cropflip lowres-cropflip lowres-cropflip-long lr2e-3; do
  [ -f "$RUNS/$name/model.safetensors" ] || continue
  cp "$RUNS/$name/epochs.csv" "$OUT/$name.epochs.csv"
  cp "$RUNS/$name/config.yaml" "$OUT/$name.config.yaml"
  [ -f "$RUNS/$name.seconds" ] && cp "$RUNS/$name.seconds" "$OUT/$name.seconds"
done
python3 scripts/backbone128_schedule_report.py "$OUT" "$SEED" "$LOWRES_EPOCHS" "$HIGHRES_EPOCHS" "$HIGHRES_LONG_EPOCHS"
cat "$OUT/README.md"
