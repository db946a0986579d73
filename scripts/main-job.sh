#!/usr/bin/env bash
# The main job (README, command 1): set up, look at the default shared model, generate a few
# tokens, then quantize it into the standard set of schemes and evaluate each against the float
# model on held-out text, printing the table (also written as JSON and an SVG chart).
# WINDOWS=N evaluates on N windows of 512 tokens (default 16; CI uses 4 to stay short).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${LMQ_SHARED:-../shared}
MODEL=$SHARED/models/lmq-llama-25m
OUT=lmq-sweep
bash scripts/setup.sh
mkdir -p "$OUT"
# The whole report goes to a file; its head is shown. (`lmq inspect | head` would end lmq with
# the status of a closed pipe, 141, which `set -o pipefail` turns into a failure.)
./build/lmq inspect "$MODEL" >"$OUT/inspect.txt"
head -16 "$OUT/inspect.txt"
echo "… the whole report: $OUT/inspect.txt"
echo
./build/lmq run "$MODEL" -p "The kernel" -n 32 --temp 0
echo
./build/lmq sweep "$MODEL" --text "$SHARED/text/docs-valid.txt" --windows "${WINDOWS:-16}" --out-dir "$OUT"
