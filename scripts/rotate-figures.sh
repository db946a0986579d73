#!/usr/bin/env bash
# `lmq quantize --rotate` against no rotation at 2/3/4 bits (docs/results.md, issue 18): for each
# scheme × method × rotation, quantize into lmq's file and evaluate against the float model on
# the first 16 windows of 512 tokens of docs-valid.txt; calibration (gptq) on its second half by
# lines, 32 windows of 512. Prints one row per file: bits per weight, ppl, mean KLD.
# Usage: [SCHEMES='…'] [METHODS='rtn gptq'] [ROTATIONS='none hadamard random-orthogonal']
#        (a rotation written KIND+heads adds --rotate-heads)
#        scripts/rotate-figures.sh [MODEL=../shared/models/lmq-qwen2-21m]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${LMQ_SHARED:-../shared}
M=${1:-$SHARED/models/lmq-qwen2-21m}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=$(wc -l <"$SHARED/text/docs-valid.txt")
tail -n +$((n / 2 + 1)) "$SHARED/text/docs-valid.txt" >"$tmp/calib.txt"
printf '%-15s %-6s %-18s %7s %9s %9s\n' scheme method rotate bpw ppl "mean KLD"
for scheme in ${SCHEMES:-int4:channel int4:g64:asym int3:g64:asym int2:g64:asym}; do
  for method in ${METHODS:-rtn gptq}; do
    for rot in ${ROTATIONS:-none hadamard random-orthogonal}; do
      calib=()
      [ "$method" = rtn ] || calib=(--calib "$tmp/calib.txt" --calib-samples 32 --calib-len 512)
      rotate=(--rotate "${rot%+heads}")
      [ "$rot" = "${rot%+heads}" ] || rotate+=(--rotate-heads)
      ./build/lmq quantize "$M" -o "$tmp/q.lmq" --scheme "$scheme" --method "$method" "${calib[@]}" \
        "${rotate[@]}" --threads 2 --json >"$tmp/q.json" 2>/dev/null
      ./build/lmq eval "$tmp/q.lmq" --base "$M" --text "$SHARED/text/docs-valid.txt" --windows 16 --threads 2 \
        --json >"$tmp/e.json"
      python3 - "$scheme" "$method" "$rot" "$tmp/q.json" "$tmp/e.json" <<'PY'
import json, sys
q, e = json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
print(f"{sys.argv[1]:<15} {sys.argv[2]:<6} {sys.argv[3]:<18} {q['bpw']:7.3f} {e['ppl']:9.4f} {e['kld_mean']:9.6f}")
PY
    done
  done
done
