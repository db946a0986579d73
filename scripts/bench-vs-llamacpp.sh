#!/usr/bin/env bash
# Same-minute speed comparison (docs/results.md, "Integer inference (issue 5)").
#  1. lmq_int_bench at 1 and 2 threads (the FP32-relative table);
#  2. lmq against llama.cpp's llama-bench at 2 threads, interleaved: each round runs llama-bench
#     once (-r 1) and `lmq bench` once (--reps 1) for every pair, so machine noise falls on both
#     alike; best and median over the rounds for each. Pairs: f32 GGUF (written here by lmq) vs
#     lmq f32; llama.cpp's own Q8_0 / Q4_0 fixtures from ../shared/gguf vs lmq int8:channel:sym /
#     int4:g32:sym with dynamic int8 activations. pp512 and tg128 as llama-bench defines them
#     (decode from an empty context).
# Usage: scripts/bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR [ROUNDS=5]   (a llama.cpp build with
# bin/llama-bench; build it beside the project from llama.cpp's public source, never inside it).
# SKIP_TABLE=1 skips part 1.
set -euo pipefail
cd "$(dirname "$0")/.."
LB_DIR=${1:?usage: scripts/bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR [ROUNDS]}
ROUNDS=${2:-5}
SHARED=${LMQ_SHARED:-../shared}
MODEL="$SHARED/models/lmq-llama-25m"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --build build -j2 --target lmq lmq_int_bench >/dev/null
./build/lmq quantize "$MODEL" -o "$tmp/f32.gguf" --format gguf --scheme f32 >/dev/null
for s in f32 int8:channel:sym int4:g32:sym; do
  ./build/lmq quantize "$MODEL" -o "$tmp/${s%%:*}.lmq" --scheme "$s" >/dev/null
done
date -u; uptime
[ -n "${SKIP_TABLE:-}" ] || ./build/lmq_int_bench --threads 1,2 --reps 3

pairs=("f32|$tmp/f32.gguf|$tmp/f32.lmq|none"
       "Q8_0|$SHARED/gguf/lmq-llama-25m-Q8_0.gguf|$tmp/int8.lmq|dynamic"
       "Q4_0|$SHARED/gguf/lmq-llama-25m-Q4_0.gguf|$tmp/int4.lmq|dynamic")
echo; date -u; uptime
for r in $(seq "$ROUNDS"); do
  for p in "${pairs[@]}"; do
    IFS='|' read -r name gguf lmqf act <<<"$p"
    LD_LIBRARY_PATH="$LB_DIR/bin" "$LB_DIR/bin/llama-bench" -m "$gguf" -t 2 -p 512 -n 128 -r 1 -o json 2>/dev/null |
      python3 -c 'import json,sys
for t in json.load(sys.stdin): print("llama", sys.argv[1], "pp" if t["n_prompt"] else "tg", t["avg_ts"])' "$name" >>"$tmp/samples"
    ./build/lmq bench "$lmqf" --act-quant "$act" -t 2 --prefill 512 --decode 128 --reps 1 --json |
      python3 -c 'import json,sys
b=json.load(sys.stdin); print("lmq", sys.argv[1], "pp", b["prefill_tok_s"]); print("lmq", sys.argv[1], "tg", b["decode_tok_s"])' "$name" >>"$tmp/samples"
  done
done
date -u; uptime
python3 - "$tmp/samples" "$ROUNDS" <<'EOF'
import statistics, sys
s = {}
for line in open(sys.argv[1]):
    tool, name, kind, v = line.split()
    s.setdefault((tool, name, kind), []).append(float(v))
print(f"\n2 threads, {sys.argv[2]} interleaved rounds: best / median tok/s; lmq's configuration at the same bits")
print("| llama.cpp | lmq | test | llama.cpp best | lmq best | ratio (best) | llama.cpp median | lmq median | ratio (median) |")
print("|---|---|---|---|---|---|---|---|---|")
lmq = {"f32": "FP32", "Q8_0": "INT8 × dyn-A8", "Q4_0": "INT4-g32 × dyn-A8"}
for name in ("f32", "Q8_0", "Q4_0"):
    for kind, label in (("pp", "pp512"), ("tg", "tg128")):
        a, b = s[("llama", name, kind)], s[("lmq", name, kind)]
        ba, bb, ma, mb = max(a), max(b), statistics.median(a), statistics.median(b)
        print(f"| {name} | {lmq[name]} | {label} | {ba:.1f} | {bb:.1f} | {bb / ba:.2f} | {ma:.1f} | {mb:.1f} | {mb / ma:.2f} |")
EOF
