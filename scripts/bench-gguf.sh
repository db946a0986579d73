#!/usr/bin/env bash
# lmq reading GGUF files against llama.cpp on the same files (docs/results.md, "GGUF files on
# the integer kernels"): interleaved rounds at 2 threads, each round running, per file, `lmq
# bench` of a BEFORE build (e.g. main's, float path), `lmq bench` of this build (Q8_0/Q4_0
# repacked for the integer kernels, dynamic int8 activations in blocks of 32), and llama-bench,
# pp512 and tg128 each once, with the load average printed before every file. Ratios are taken
# within a round (the same minute), then the median over rounds.
# Usage: scripts/bench-gguf.sh LLAMA_CPP_BUILD_DIR BEFORE_LMQ ROUNDS FILE.gguf...
#   PREFILL / DECODE override 512 / 128 (for the 1.1B shape on a loaded machine).
set -euo pipefail
cd "$(dirname "$0")/.."
LB_DIR=${1:?usage: scripts/bench-gguf.sh LLAMA_CPP_BUILD_DIR BEFORE_LMQ ROUNDS FILE.gguf...}
BEFORE=${2:?BEFORE_LMQ}
ROUNDS=${3:?ROUNDS}
shift 3
PP=${PREFILL:-512} TG=${DECODE:-128}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lmq_bench() {  # tool file round
  "$1" bench "$2" -t 2 --prefill "$PP" --decode "$TG" --reps 1 --json |
    python3 -c 'import json,sys
b=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], sys.argv[3], b["prefill_tok_s"], b["decode_tok_s"])' "$4" "$2" "$3"
}
for r in $(seq "$ROUNDS"); do
  for f in "$@"; do
    echo "round $r $(basename "$f") $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    lmq_bench "$BEFORE" "$f" "$r" before >>"$tmp/s"
    lmq_bench ./build/lmq "$f" "$r" after >>"$tmp/s"
    LD_LIBRARY_PATH="$LB_DIR/bin" "$LB_DIR/bin/llama-bench" -m "$f" -t 2 -p "$PP" -n "$TG" -r 1 -o json 2>/dev/null |
      python3 -c 'import json,sys
v={("pp" if t["n_prompt"] else "tg"): t["avg_ts"] for t in json.load(sys.stdin)}
print("llama", sys.argv[1], sys.argv[2], v["pp"], v["tg"])' "$f" "$r" >>"$tmp/s"
  done
done
python3 - "$tmp/s" "$PP" "$TG" <<'EOF'
import statistics, sys, os
s = {}
for line in open(sys.argv[1]):
    tool, f, r, pp, tg = line.split()
    s.setdefault(f, {}).setdefault(r, {})[tool] = (float(pp), float(tg))
pp, tg = sys.argv[2], sys.argv[3]
print(f"| file | test | before (median) | after (median) | llama.cpp (median) | after/before | after/llama.cpp |")
print("|---|---|---|---|---|---|---|")
for f, rounds in s.items():
    for i, name in ((0, f"pp{pp}"), (1, f"tg{tg}")):
        med = lambda tool: statistics.median(v[tool][i] for v in rounds.values())
        ratio = lambda a, b: statistics.median(v[a][i] / v[b][i] for v in rounds.values())
        print(f"| {os.path.basename(f)} | {name} | {med('before'):.1f} | {med('after'):.1f} | {med('llama'):.1f} "
              f"| {ratio('after', 'before'):.2f} | {ratio('after', 'llama'):.2f} |")
EOF
