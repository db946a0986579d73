#!/usr/bin/env bash
# Same-minute speed comparison (docs/results.md, "Integer inference (issue 5)"): lmq_int_bench at
# 1 and 2 threads, then llama.cpp's llama-bench on lmq-llama-25m as f32 GGUF (written here by
# lmq) and llama.cpp's own Q8_0 / Q4_0 fixtures from ../shared/gguf, at 2 threads.
# Usage: scripts/bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR   (a llama.cpp build with bin/llama-bench;
# build it beside the project from llama.cpp's public source, never inside it)
set -euo pipefail
cd "$(dirname "$0")/.."
LB_DIR=${1:?usage: scripts/bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR}
SHARED=${LMQ_SHARED:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --build build -j2 --target lmq lmq_int_bench >/dev/null
./build/lmq quantize "$SHARED/models/lmq-llama-25m" -o "$tmp/f32.gguf" --format gguf --scheme f32 >/dev/null
date -u; uptime
./build/lmq_int_bench --threads 1,2 --reps 3
for m in "$tmp/f32.gguf" "$SHARED/gguf/lmq-llama-25m-Q8_0.gguf" "$SHARED/gguf/lmq-llama-25m-Q4_0.gguf"; do
  LD_LIBRARY_PATH="$LB_DIR/bin" "$LB_DIR/bin/llama-bench" -m "$m" -t 2 -p 512 -n 128 -r 3 -o md
done
date -u; uptime
