#!/usr/bin/env bash
# llama.cpp's own verdict on the GGUF files lmq writes (outside CI: llama.cpp is not a Debian
# package; build it beside the project from its public source, never inside it).
#  1. For each model × type below, `lmq quantize --format gguf` writes the file; llama.cpp's
#     `llama-perplexity` loads it (vocabulary, pre-tokenizer, RoPE, tensors) and measures
#     docs-valid.txt under its protocol (-c 512 --chunks 100); `lmq eval --protocol llamacpp`
#     measures the same file in the same run. Both figures are printed with their ratio, and the
#     fixture's figure where ../shared/gguf holds llama.cpp's own file of that type.
#  2. `llama-tokenize` encodes every tokenizer case of ../shared/reference/MODEL/reference.json
#     with the lmq-written vocabulary; the ids must equal transformers' ids in the reference.
# Usage: [CASES='MODEL TYPE;…'] [QUANTIZE_ARGS='--rotate hadamard'] scripts/check-llamacpp-gguf.sh
#        LLAMA_CPP_BUILD_DIR [CHUNKS=100]   (QUANTIZE_ARGS: more flags for every lmq quantize)
# Exit status 1 if llama.cpp refuses a file, a tokenization differs, or a perplexity differs
# from lmq's by more than 0.1% (the two tools compute the same network in different orders).
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${1:?usage: scripts/check-llamacpp-gguf.sh LLAMA_CPP_BUILD_DIR [CHUNKS]}
CHUNKS=${2:-100}
SHARED=${LMQ_SHARED:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --build build -j2 --target lmq >/dev/null
export LD_LIBRARY_PATH="$LB/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fail=0
cases=("lmq-llama3-9m q8_0" "lmq-llama3-9m q4_k_m" "lmq-qwen3-8m q8_0" "lmq-qwen3-8m q4_k_m"
       "lmq-qwen2-21m q4_k_m" "lmq-llama-25m q4_0")
[ -z "${CASES:-}" ] || IFS=';' read -r -a cases <<<"$CASES"  # e.g. CASES="lmq-llama3-9m q8_0;lmq-llama-25m q4_0"
printf '%-15s %-7s %12s %12s %9s %14s\n' model type llama.cpp lmq ratio "fixture ppl"
for c in "${cases[@]}"; do
  read -r model type <<<"$c"
  f="$tmp/$model-$type.gguf"
  # shellcheck disable=SC2086  # QUANTIZE_ARGS is a list of flags
  ./build/lmq quantize "$SHARED/models/$model" -o "$f" --format gguf --scheme "$type" ${QUANTIZE_ARGS:-} >/dev/null
  if ! "$LB/bin/llama-perplexity" -m "$f" -f "$SHARED/text/docs-valid.txt" -c 512 --chunks "$CHUNKS" -t 2 \
       >"$tmp/ppl.log" 2>&1; then
    if grep -q "unknown model architecture" "$tmp/ppl.log"; then  # e.g. qwen3 before llama.cpp b5092
      echo "$model $type: skipped, this llama.cpp build predates the architecture"; continue
    fi
    echo "$model $type: llama-perplexity refused the file:"; tail -5 "$tmp/ppl.log"; fail=1; continue
  fi
  lc=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/ppl.log")
  lm=$(./build/lmq eval "$f" --text "$SHARED/text/docs-valid.txt" --protocol llamacpp --windows "$CHUNKS" --json |
       python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
  up=$(echo "$type" | tr a-z A-Z)
  fx=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))["fixtures"].get(sys.argv[2])
print(d["ppl"] if d and d["chunks"]==int(sys.argv[3]) else "-")' "$SHARED/gguf/llamacpp.json" "$model-$up.gguf" "$CHUNKS")
  ok=$(python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{b/a:.5f}", int(abs(b/a-1)<=1e-3))' "$lc" "$lm")
  printf '%-15s %-7s %12s %12s %9s %14s\n' "$model" "$type" "$lc" "$lm" "${ok% *}" "$fx"
  [ "${ok#* }" = 1 ] || fail=1
  # tokenizer cases, through llama.cpp's tokenizer reading the vocabulary lmq wrote
  python3 - "$SHARED/reference/$model/reference.json" "$tmp" <<'EOF'
import json, sys
cases = json.load(open(sys.argv[1])).get("tokenizer_cases", [])
for i, c in enumerate(cases):
    open(f"{sys.argv[2]}/case{i}.txt", "w").write(c["text"])
    open(f"{sys.argv[2]}/case{i}.ids", "w").write(json.dumps(c["ids"]))
print(len(cases), file=open(f"{sys.argv[2]}/ncases", "w"))
EOF
  n=$(cat "$tmp/ncases"); bad=0
  for i in $(seq 0 $((n - 1))); do
    got=$("$LB/bin/llama-tokenize" -m "$f" -f "$tmp/case$i.txt" --ids --log-disable 2>/dev/null | tail -1)
    if ! python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.load(open(sys.argv[2])))' "$got" "$tmp/case$i.ids"; then
      echo "  tokenizer case $i differs: llama.cpp $got, transformers $(cat "$tmp/case$i.ids")"; bad=1
    fi
  done
  [ "$n" -gt 0 ] || continue
  echo "  llama-tokenize: $((n)) reference cases, $([ $bad = 0 ] && echo 'all equal to transformers' || echo 'MISMATCHES')"
  [ $bad = 0 ] || fail=1
done
exit $fail
