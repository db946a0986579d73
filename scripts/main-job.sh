#!/usr/bin/env bash
# The main job (README, command 1): set up, look at the default shared model, generate a few
# tokens, then quantize it into the standard set of schemes and evaluate each against the float
# model on held-out text, printing the table (also written as JSON and an SVG chart).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${LMQ_SHARED:-../shared}
MODEL=$SHARED/models/lmq-llama-25m
bash scripts/setup.sh
./build/lmq inspect "$MODEL" | head -16
./build/lmq run "$MODEL" -p "The kernel" -n 32 --temp 0
./build/lmq sweep "$MODEL" --text "$SHARED/text/docs-valid.txt" --windows "${WINDOWS:-16}" --out-dir lmq-sweep
