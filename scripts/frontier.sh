#!/usr/bin/env bash
# The quality frontier inside GGUF (docs/results.md, issue 18): lmq's rtn / gptq / gptq with a
# Hadamard rotation (gptq: --hessian-fit --refit 2, or GPTQ_ARGS; --refit touches the Q2_K/Q3_K and
# lattice i-quant tensors) at
# llama-quantize's recipes (--scheme NAME: the same types per tensor and the same bytes as
# llama-quantize's; --hessian-fit counts as an importance matrix for the recipe's rules, so a
# cell whose size differs from the row's prints it in brackets) and at --target-bpw sizes (lmq
# chooses the types), each
# evaluated under llama.cpp's protocol (100 chunks of 512 of docs-valid, second half of each
# scored, KLD against the float model, float activations). Calibration: the second half of
# docs-valid by lines, 32 windows of 512. Prints one markdown row per point; a method lmq refuses
# for a point (e.g. a type GPTQ cannot write) prints "refused".
# With LLAMA_CPP=DIR (llama.cpp's build, bin/ inside) it also measures llama.cpp's ladder with an
# importance matrix from the same calibration (32 chunks of 512 of the second half): lmq writes the model as f32 GGUF,
# llama-imatrix, llama-quantize --imatrix TYPE, llama-perplexity --kl-divergence, same chunks.
# Usage: [POINTS='q2_k iq3_s iq1_m bpw:2.0 …'] [METHODS='rtn gptq gptq+hadamard'] [WINDOWS=100]
#        [GPTQ_ARGS='--hessian-fit --refit 2' (the default; gptq's flags)] [GPTQ_METHOD=gptq|awq+gptq]
#        [LLAMA_CPP=DIR] [LLAMA_TYPES='Q2_K IQ3_S …'] scripts/frontier.sh MODEL
# Time: about 2–4 min per lmq point and method on lmq-qwen2-21m with 2 threads; disk: a few
# files of the model's size under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${LMQ_SHARED:-../shared}
M=${1:?usage: scripts/frontier.sh MODEL}
W=${WINDOWS:-100}
# Only quality is measured here: threads that sleep at once when idle keep both tools usable on
# a machine shared with other jobs (spinning OpenMP threads slow them tenfold there).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
TEXT=$SHARED/text/docs-valid.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=$(wc -l <"$TEXT")
tail -n +$((n / 2 + 1)) "$TEXT" >"$tmp/calib.txt"
calib=(--calib "$tmp/calib.txt" --calib-samples 32 --calib-len 512)

# lmq_point POINT METHOD: "bpw kld" of lmq's file, or "refused"
lmq_point() {
  local point=$1 method=$2 args=(--format gguf --threads 2 --json)
  case $point in
    # the sensitivities depend on the model (rotated or not) and the calibration, not on the
    # target or the method: measured at the first bpw point, reused by the others
    bpw:*)
      local sens=$tmp/sens-${method#gptq+}.json
      [[ $method == gptq+* ]] || sens=$tmp/sens.json
      args+=(--scheme q8_0 --target-bpw "${point#bpw:}" "${calib[@]}")
      if [ -f "$sens" ]; then args+=(--sensitivity "$sens"); else args+=(--save-sensitivity "$sens"); fi ;;
    *) args+=(--scheme "$point") ;;
  esac
  case $method in
    rtn) ;;
    gptq) args+=(--method "${GPTQ_METHOD:-gptq}" ${GPTQ_ARGS:---hessian-fit --refit 2}) ;;
    gptq+*) args+=(--method "${GPTQ_METHOD:-gptq}" ${GPTQ_ARGS:---hessian-fit --refit 2} --rotate "${method#gptq+}") ;;
    *) echo "unknown method $method" >&2; exit 2 ;;
  esac
  [ "$method" = rtn ] || [[ $point == bpw:* ]] || args+=("${calib[@]}")
  if ! ./build/lmq quantize "$M" -o "$tmp/q.gguf" "${args[@]}" >"$tmp/q.json" 2>"$tmp/q.err"; then
    echo refused
    return
  fi
  ./build/lmq eval "$tmp/q.gguf" --base "$M" --text "$TEXT" --protocol llamacpp --windows "$W" --act-quant none \
    --threads 2 --json >"$tmp/e.json"
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print("%.3f %.5f" % (e["bpw"], e["kld_mean"]))' "$tmp/e.json"
}

methods=(${METHODS:-rtn gptq gptq+hadamard})
echo "model $M, $W chunks, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| point | bpw |'; for m in "${methods[@]}"; do printf ' %s |' "$m"; done; echo
printf '|---|---|'; for _ in "${methods[@]}"; do printf -- '---|'; done; echo
for point in ${POINTS:-q2_k q3_k_s q3_k_m q4_k_m q5_k_m q6_k iq1_s iq1_m iq2_xxs iq2_xs iq3_xs iq3_s iq4_xs bpw:2.0 bpw:2.5 bpw:3.0 bpw:3.5 bpw:4.0 bpw:4.5}; do
  bpw=""; cells=""
  for m in "${methods[@]}"; do
    r=$(lmq_point "$point" "$m")
    if [ "$r" = refused ]; then cells+=" refused |"; else
      [ -n "$bpw" ] || bpw=${r% *}
      # a cell whose size is not the row's (a --target-bpw point, or recipe rules that depend
      # on an importance matrix) prints its own beside the KLD
      if [ "${r% *}" != "$bpw" ]; then cells+=" ${r#* } (${r% *}) |"; else cells+=" ${r#* } |"; fi
    fi
  done
  echo "| $point | ${bpw:-—} |$cells"
done

[ -n "${LLAMA_CPP:-}" ] || exit 0
bin=$LLAMA_CPP/bin
export LD_LIBRARY_PATH=$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
./build/lmq quantize "$M" -o "$tmp/f32.gguf" --format gguf --scheme f32 >/dev/null
"$bin/llama-imatrix" -m "$tmp/f32.gguf" -f "$tmp/calib.txt" -c 512 --chunks 32 -o "$tmp/imatrix.dat" -t 2 >"$tmp/imatrix.log" 2>&1
"$bin/llama-perplexity" -m "$tmp/f32.gguf" -f "$TEXT" -c 512 --chunks "$W" -t 2 \
  --kl-divergence-base "$tmp/base.kld" >"$tmp/base.log" 2>&1
echo
echo "llama.cpp with imatrix (32 chunks of the second half of docs-valid), $W chunks, $(date -u +%FT%TZ)"
echo "| type | bpw | KLD mean |"
echo "|---|---|---|"
for t in ${LLAMA_TYPES:-Q2_K Q3_K_S Q3_K_M Q4_K_M Q5_K_M Q6_K IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ3_XXS IQ3_S IQ4_XS}; do
  if ! "$bin/llama-quantize" --imatrix "$tmp/imatrix.dat" "$tmp/f32.gguf" "$tmp/l.gguf" "$t" 2 >"$tmp/lq.log" 2>&1; then
    echo "| $t | failed | |"
    continue
  fi
  "$bin/llama-perplexity" -m "$tmp/l.gguf" -f "$TEXT" -c 512 --chunks "$W" -t 2 --kl-divergence-base "$tmp/base.kld" \
    --kl-divergence >"$tmp/lp.log" 2>&1
  bpw=$(./build/lmq inspect "$tmp/l.gguf" --json | python3 -c 'import json,sys; t=json.load(sys.stdin)["tensors"]; print("%.3f" % (8*sum(x["bytes"] for x in t)/sum(x["params"] for x in t)))')
  kld=$(grep -m1 '^Mean    KLD:' "$tmp/lp.log" | awk '{print $3}')
  echo "| $t | $bpw | $kld |"
done
