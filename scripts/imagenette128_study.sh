#!/usr/bin/env bash
# The study at the paper's geometry: `tokcom reproduce -c imagenette128` (Imagenette at 128 px, patch 16:
# 64 tokens of 192 values for 49,152 input values, the token-to-pixel ratio of DeiT-Tiny at 224 px), at
# the scale of the preset's `reproduce` section (configs/imagenette128.yaml), into $RUN, and what it
# wrote into docs/results/imagenette128-study/: CSVs, JSON sidecars, configs, stage commands and
# times, the report — and the weights every later stage reads, as fp16 safetensors, so that a new
# machine continues the study instead of starting over (the study spans sessions):
#   weights/backbone.safetensors  the ViT backbone (backbone/model.safetensors), config weights/backbone.config.yaml
#   weights/backbone-lowres.safetensors  the backbone's low-resolution phase (backbone-lowres/), only
#                                 while the backbone stage that starts from it is not done
#   weights/adaptive.safetensors  the adaptive model with its budget calibration (calibrated/; the
#                                 adaptive stage's own file is the same weights), config weights/adaptive.config.yaml
#   mobilenet/model.safetensors   the MobileNetV3-Small backbone
#   bank/jscc-robust-*.safetensors the proposal's robust-trained JSCC models, so that `tokcom serve` runs the
#                                 trained split model without training (SAVE_BANKS, below)
# SAVE_BANKS (default "bank:robust") lists the banks whose JSCC models are kept whole, each as <bank> or
# <bank>:<regime>, from bank, vit-ae, mobilenet-flat, mobilenet-cnn ("all": the four whole; "none").
# Each file holds its whole model (~6 MB at fp16 for a ViT pair). Every other finished JSCC model is
# kept as a delta (SAVE_DELTAS=1, the default): `tokcom weights convert --delta-from` leaves out the
# frozen device half, equal to the model it was trained from (weights/adaptive.safetensors for bank,
# weights/backbone.safetensors for vit-ae, mobilenet/model.safetensors for the MobileNet banks), so
# <bank>/jscc-*.delta.safetensors is ~3 MB for a ViT pair, ~2 MB for a MobileNet one, and a restore
# fills it back (`--fill-from`, checked against the digest the delta carries). Later stages (eval,
# sweep, proxy tables, control) read every model of every bank, and the study spans machines: without
# them a restore on another machine would train the banks again. A bank that is not whole here after a
# restore is marked unfinished, so it trains what is missing (its models that are here are reused:
# same config digest) and so does what reads it.
# fp16 loads back into the fp32 models exactly as stored (it widens), so a stage that runs after a
# restore reads the fp16 rounding of what the uninterrupted run read: its results may differ from an
# uninterrupted run's by that rounding (weights/*.eval-*.csv measure the committed files themselves).
#
#   SEED=0 scripts/imagenette128_study.sh         restore, run the rest (resumable), save, eval the weights
#   STEP=save scripts/imagenette128_study.sh      copy what has finished so far (safe while a run goes on)
#   STEP=restore scripts/imagenette128_study.sh   put the committed stages back into $RUN, then stop
# JOBS (default 2) stages run side by side (tokcom reproduce --jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
T=${T:-build/tokcom}
SEED=${SEED:-0}
JOBS=${JOBS:-2}
STEP=${STEP:-all}
SAVE_BANKS=${SAVE_BANKS:-bank:robust}
SAVE_DELTAS=${SAVE_DELTAS:-1}
[ "$SAVE_BANKS" = all ] && SAVE_BANKS="bank,vit-ae,mobilenet-flat,mobilenet-cnn"
[ "$SAVE_BANKS" = none ] && SAVE_BANKS=""
RUN=${RUN:-runs/study-imagenette128}
OUT=${OUT:-docs/results/imagenette128-study}
BANKS=(bank vit-ae mobilenet-flat mobilenet-cnn)

# The committed model a bank's JSCC models were trained from (their frozen device half is its).
delta_base() {
  case "$1" in
    bank) echo "$OUT/weights/adaptive.safetensors" ;;
    vit-ae) echo "$OUT/weights/backbone.safetensors" ;;
    mobilenet-flat | mobilenet-cnn) echo "$OUT/mobilenet/model.safetensors" ;;
  esac
}

# run-folder file ↔ committed file, for the two models a user runs (`predict`, `eval`, `serve`).
weight_pairs() {
  # The low-resolution phase the backbone starts from (reproduce.backbone_lowres_epochs), kept only
  # until the backbone stage is done (superseded then: nothing else reads it).
  echo "backbone-lowres/model.safetensors weights/backbone-lowres.safetensors"
  echo "backbone/model.safetensors weights/backbone.safetensors"
  # The adaptive stage's file until the calibration is done, then the calibrated one (the same
  # weights; its config carries the calibration), in this order so the calibrated config wins.
  echo "adaptive/model.safetensors weights/adaptive.safetensors"
  echo "calibrated/model.safetensors weights/adaptive.safetensors"
}

restore() {
  [ -d "$OUT" ] || return 0
  mkdir -p "$RUN"
  local missing=()
  for b in "${BANKS[@]}"; do [ -f "$RUN/$b/.done" ] || missing+=("$b"); done
  # JSCC models kept as deltas, filled back from their base (an existing file is never overwritten).
  for b in "${BANKS[@]}"; do
    for d in "$OUT/$b"/jscc-*.delta.safetensors; do
      [ -f "$d" ] || continue
      full="$RUN/$b/$(basename "$d" .delta.safetensors).safetensors"
      [ -e "$full" ] && continue
      mkdir -p "$RUN/$b"
      # A delta of another base (a run in progress has replaced the model its bank was trained from):
      # that JSCC model trains again with the bank, as it must.
      if ! "$T" --log-level warn weights convert "$d" -o "$full" --dtype f16 --fill-from "$(delta_base "$b")" \
           > /dev/null 2> "$RUN/$b/.restore-error"; then
        echo "restore: $(basename "$d") not restored ($(tr '\n' ' ' < "$RUN/$b/.restore-error" | cut -c1-300)); its bank trains it again"
      fi
      rm -f "$RUN/$b/.restore-error"
    done
  done
  # Everything else committed that the run folder lacks (an existing file is never overwritten: the
  # run folder is the newer one on the machine that made it).
  (cd "$OUT" && find . -type f -not -path './weights/*' -not -name README.md -not -name not-copied.txt \
     -not -name '*.delta.safetensors' -print0) | while IFS= read -r -d '' f; do
    [ -e "$RUN/$f" ] || { mkdir -p "$(dirname "$RUN/$f")"; cp "$OUT/$f" "$RUN/$f"; }
  done
  weight_pairs | while read -r run_file out_file; do
    if [ -f "$OUT/$out_file" ] && [ ! -e "$RUN/$run_file" ] && [ -f "$RUN/$(dirname "$run_file")/.done" ]; then
      cp "$OUT/$out_file" "$RUN/$run_file"
    fi
  done
  # A bank restored without all of its JSCC models is not finished here: it trains what is missing.
  for b in "${missing[@]}"; do
    if [ -f "$RUN/$b/.done" ] && [ ! -f "$OUT/$b/.weights-whole" ]; then
      rm -f "$RUN/$b/.done" "$RUN/$b/.inputs"
      echo "restore: $b was saved without all its JSCC models (SAVE_BANKS); it trains again here"
    fi
  done
  echo "restored $OUT into $RUN"
}

# fp16 copy of $1 at $2 unless $2 is already newer; with $3, a delta from that base.
save_weights() {
  if [ ! -e "$2" ] || [ "$1" -nt "$2" ]; then
    mkdir -p "$(dirname "$2")"
    "$T" --log-level warn weights convert "$1" -o "$2" --dtype f16 ${3:+--delta-from "$3"} > /dev/null
    rm -f "${2%.safetensors}".eval*.csv*  # an evaluation of the file it replaced (eval_weights remakes it)
  fi
}

save() {
  mkdir -p "$OUT"
  # Small files of every stage, as in the 64-px study; not the per-slot traces (traces/, deploy/),
  # the mid-stage checkpoints (a new machine restarts an unfinished stage or JSCC model) or any file
  # over 1 MiB (listed in not-copied.txt).
  LEFT=(-path '*/traces/*' -o -path '*/deploy/*' -o -path '*/checkpoint*' -o -size +1023k)
  (cd "$RUN" && find . -type f \( -name '*.csv' -o -name '*.json' -o -name '*.yaml' -o -name '*.png' -o -name '*.md' \
       -o -name '*.html' -o -name '.command' -o -name '.seconds' -o -name '.seconds-partial' -o -name '.done' \
       -o -name '.inputs' \) -not \( "${LEFT[@]}" \) -print0) |
    while IFS= read -r -d '' f; do
      mkdir -p "$(dirname "$OUT/$f")"
      cp -p "$RUN/$f" "$OUT/$f.tmp" && mv "$OUT/$f.tmp" "$OUT/$f"
    done
  # The time an interrupted stage has banked goes once the stage finishes (the run folder drops it):
  # a stale copy here would be added to the stage's time again on another machine.
  (cd "$OUT" && find . -name '.seconds-partial' -print0) | while IFS= read -r -d '' f; do
    [ -e "$RUN/$f" ] || rm -f "$OUT/$f"
  done
  (cd "$RUN" && find . -type f \( -name '*.csv' -o -name '*.html' \) \( -path '*/traces/*' -o -path '*/deploy/*' \
       -o -size +1023k \) | sort) > "$OUT/not-copied.txt"
  # Weights: the two models of finished stages, every finished JSCC model (a bank's file is written
  # when its model is done), the MobileNet backbone.
  weight_pairs | while read -r run_file out_file; do
    if [ "$run_file" = backbone-lowres/model.safetensors ] && [ -f "$RUN/backbone/.done" ]; then
      rm -f "$OUT/$out_file" "$OUT/${out_file%.safetensors}.config.yaml"  # superseded by the backbone
      continue
    fi
    if [ -f "$RUN/$run_file" ] && [ -f "$RUN/$(dirname "$run_file")/.done" ]; then
      save_weights "$RUN/$run_file" "$OUT/$out_file"
      cp "$RUN/$(dirname "$run_file")/config.yaml" "$OUT/${out_file%.safetensors}.config.yaml"
    fi
  done
  if [ -f "$RUN/mobilenet/.done" ]; then save_weights "$RUN/mobilenet/model.safetensors" "$OUT/mobilenet/model.safetensors"; fi
  IFS=, read -r -a keep <<< "$SAVE_BANKS"
  for b in "${BANKS[@]}"; do
    kept_all=1
    for w in "$RUN/$b"/jscc-*.safetensors; do
      [ -f "$w" ] || continue
      name=$(basename "$w" .safetensors)
      whole=0
      for item in "${keep[@]}"; do
        regime=${item#*:}
        [ "$regime" = "$item" ] && regime=""
        [ "${item%%:*}" = "$b" ] && [[ "$name" == jscc-${regime:+$regime-}* ]] && whole=1
      done
      if [ "$whole" = 1 ]; then
        save_weights "$w" "$OUT/$b/$name.safetensors"
        rm -f "$OUT/$b/$name.delta.safetensors"  # superseded
      elif [ "$SAVE_DELTAS" = 1 ] && [ -f "$(delta_base "$b")" ]; then
        save_weights "$w" "$OUT/$b/$name.delta.safetensors" "$(delta_base "$b")"
      else
        kept_all=0
      fi
    done
    # Whole: a finished bank with every model kept (a restore may then reuse the stage as it is).
    if [ "$kept_all" = 1 ] && [ -f "$RUN/$b/.done" ]; then touch "$OUT/$b/.weights-whole"; fi
  done
  echo "saved $RUN into $OUT ($(du -sh "$OUT" | cut -f1))"
}

# The committed weights themselves, evaluated on the whole validation split: what `tokcom eval` gives a
# user who runs them without training (compare with the report's clean accuracies).
eval_weights() {
  if [ -f "$OUT/weights/backbone.safetensors" ]; then
    "$T" --seed "$SEED" eval --checkpoint "$OUT/weights/backbone.safetensors" --max-batches 0 \
      -o "$OUT/weights/backbone.eval.csv"
  fi
  if [ -f "$OUT/weights/adaptive.safetensors" ]; then
    "$T" --seed "$SEED" eval --checkpoint "$OUT/weights/adaptive.safetensors" --alphas 0.1,0.25,0.5,0.75,1 \
      --mode hard --max-batches 0 -o "$OUT/weights/adaptive.eval-hard-capped.csv" model.budget_cap=true
  fi
}

readme() {
  # Stages of the preset's plan that have not run with their present command (a run in progress, or
  # a preset changed since): their folders here, and the report, are still an earlier run's.
  local pending
  pending=$("$T" --seed "$SEED" --log-level warn reproduce -c imagenette128 -o "$RUN" --jobs "$JOBS" --plan 2>&1 |
            grep -c ': would run' || true)
  {
    echo "# Imagenette-128, the study at the paper's geometry (generated by scripts/imagenette128_study.sh, seed $SEED)"
    echo
    if [ "$pending" -gt 0 ]; then
      echo "**In progress:** $pending stages of the preset's plan have not run with their present command yet; their"
      echo "folders here, and report.md, are still the previous run's (its numbers are in git history)."
      echo
    fi
    echo "Do not edit: rerun \`SEED=$SEED scripts/imagenette128_study.sh\` (it restores what is here into $RUN and"
    echo "continues). The report of the run is [report.md](report.md) (and report.html); every stage's folder"
    echo "holds its \`.command\` and \`.seconds\`. Command: \`tokcom --seed $SEED reproduce -c imagenette128 -o $RUN"
    echo "--jobs $JOBS\` (scale: the \`reproduce\` section of configs/imagenette128.yaml)."
    echo
    echo "Weights (fp16 safetensors, timm names; \`tokcom weights info\` lists them):"
    echo "[weights/backbone.safetensors](weights/backbone.safetensors) (the ViT backbone) and"
    echo "[weights/adaptive.safetensors](weights/adaptive.safetensors) (the adaptive model with its budget calibration),"
    echo "each with its config beside it (\`*.config.yaml\`), the MobileNetV3-Small backbone (mobilenet/model.safetensors)"
    echo "and the JSCC models of: ${SAVE_BANKS:-no bank} (the banks' own folders; \`tokcom serve\` runs them). Every other"
    echo "finished JSCC model is kept as a delta of the model it was trained from (\`<bank>/jscc-*.delta.safetensors\`:"
    echo "its frozen device half left out), which \`STEP=restore\` fills back for the study's later stages."
    echo "Without training:"
    echo
    echo '```'
    echo "tokcom eval --checkpoint $OUT/weights/adaptive.safetensors --alphas 0.25,0.5,1 model.budget_cap=true"
    echo "tokcom predict --checkpoint $OUT/weights/backbone.safetensors some.jpg"
    echo "tokcom serve --checkpoint-dir $OUT/bank --regime robust"
    echo '```'
    for f in "$OUT"/weights/*.eval*.csv; do
      [ -f "$f" ] || continue
      echo
      echo "\`tokcom eval\` of the committed $(basename "$f" | cut -d. -f1) weights on the whole validation split ($(basename "$f")):"
      echo
      echo '```'
      cat "$f"
      echo '```'
    done
    if [ -f "$RUN/calls.csv" ]; then
      # calls.csv: one row per call of `tokcom reproduce` (started_utc,seconds,jobs,threads,ran,reused,outcome).
      echo
      awk -F, 'NR > 1 { s += $2; n += 1; if ($7 == "finished") f = 1 }
               END { printf "Wall-clock time of the study'"'"'s calls of `tokcom reproduce` ([calls.csv](calls.csv), one row per call,\n"
                     printf "interrupted ones included): %.0f s (%.2f h) over %d call%s%s. Calls made before tokcom kept this\n", s, s / 3600, n, n == 1 ? "" : "s", f ? "" : ", the study not finished yet"
                     printf "ledger are not in it.\n" }' "$RUN/calls.csv"
    fi
  } > "$OUT/README.md.tmp"
  mv "$OUT/README.md.tmp" "$OUT/README.md"
}

case "$STEP" in
  restore) restore ;;
  save) save; readme ;;
  all)
    restore
    # Every call's wall time goes into $RUN/calls.csv (tokcom reproduce keeps that ledger).
    "$T" --seed "$SEED" reproduce -c imagenette128 -o "$RUN" --jobs "$JOBS"
    save
    eval_weights
    readme
    echo "wrote $OUT"
    ;;
  *) echo "STEP='$STEP': expected all, save or restore" >&2; exit 2 ;;
esac
