#!/usr/bin/env bash
# The screenshot of `tokcom serve --http` in docs/serve.md: a minute-trained Fashion-MNIST bank and
# proxy table (a picture of the page, not a result: the models are deliberately tiny), the server
# running the controller, four `tokcom device` processes with different channels and ζ budgets,
# and the live page rendered by headless Chromium while they run.
#   scripts/serve_screenshot.sh [OUT.png] [WORK_DIR]      (defaults: docs/serve-live.png, /tmp/tokcom-serve-shot)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/serve-live.png}"
WORK="${2:-/tmp/tokcom-serve-shot}"
TOKCOM="${TOKCOM:-build/tokcom}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
[ -x "$TOKCOM" ] || { echo "no $TOKCOM: run scripts/setup.sh first" >&2; exit 1; }
[ -n "$CHROMIUM" ] || { echo "Chromium not found (Debian package chromium; scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$WORK"
say() { printf '\033[1m[shot]\033[0m %s\n' "$*"; }

# 1. A bank and a proxy table (skipped when already there).
if [ ! -f "$WORK/proxy.csv" ]; then
  say "training a tiny backbone, adaptive model and JSCC bank (~2 min)"
  "$TOKCOM" --seed 0 train -c fmnist train.stage=backbone train.out="$WORK/backbone" train.epochs=1 \
    train.max_batches=60 > "$WORK/train.log" 2>&1
  "$TOKCOM" --seed 0 train -c fmnist train.stage=adaptive train.init="$WORK/backbone/model.safetensors" \
    train.out="$WORK/adaptive" train.epochs=1 train.max_batches=60 >> "$WORK/train.log" 2>&1
  "$TOKCOM" --seed 0 train -c "$WORK/adaptive/config.yaml" train.init="$WORK/adaptive/model.safetensors" \
    train.out="$WORK/bank" train.stage=jscc train.ratios=all comm.train_regime=robust train.warmup_epochs=0 \
    train.epochs=1 train.max_batches=20 train.jscc_warm_start_steps=0 >> "$WORK/train.log" 2>&1
  "$TOKCOM" --seed 0 sweep --bank "$WORK/bank" --methods proposal --regimes robust --channels awgn \
    --snr=0,10,20 --alphas 0.25,0.5,0.75,1 --split train --max-batches 2 -o "$WORK/proxy.csv" >> "$WORK/train.log" 2>&1
fi

# 2. The server (it also runs the controller for a device that asks) and four devices.
rm -f "$WORK/port" "$WORK/http-port"
"$TOKCOM" --threads 1 serve --checkpoint-dir "$WORK/bank" --listen 127.0.0.1:0 --port-file "$WORK/port" \
  --http 0 --http-port-file "$WORK/http-port" --table "$WORK/proxy.csv" --V 100 --mu 10 --zeta-max 0.05 \
  --max-batch 8 --max-wait-ms 2 --metrics-interval 0 > "$WORK/serve.log" 2>&1 &
SERVER=$!
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; kill -TERM "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 300); do [ -s "$WORK/http-port" ] && [ -s "$WORK/port" ] && break; sleep 0.1; done
ADDRESS="127.0.0.1:$(cat "$WORK/port")"
URL="http://127.0.0.1:$(cat "$WORK/http-port")/"
device() {  # name, then device flags
  local name=$1; shift
  "$TOKCOM" --threads 1 --seed 1 device --server "$ADDRESS" --bank "$WORK/bank" --table "$WORK/proxy.csv" \
    --images 0 --no-plots --name "$name" -o "$WORK/$name" "$@" > "$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}
device cam-north --scenario gauss:10,2.5 --zeta-max 0.05 --V 100 --mu 10 --send-labels
device cam-south --scenario gauss:0,2.5 --zeta-max 0.1 --V 100 --mu 10 --send-labels
device drone-7 --scenario gilbert-elliott:good=15,bad=0,p_gb=0.05,p_bg=0.2 --zeta-max 0.05 --V 100 --mu 10 \
  --controller server --send-labels
device rover-4 --scenario fixed:20 --zeta-max 0.3 --V 100 --mu 10
say "4 devices sending to $ADDRESS; live page at $URL"
sleep "${SHOT_AFTER_S:-25}"

# 3. The page as a browser renders it (the flags this kind of machine needs: no sandbox as root,
# no GPU, no background connections).
PROFILE=$(mktemp -d)
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$PROFILE" --hide-scrollbars \
  --window-size=1280,2200 --virtual-time-budget=3000 --screenshot="$OUT" "$URL" > "$WORK/chromium.log" 2>&1
rm -rf "$PROFILE"
say "wrote $OUT"
