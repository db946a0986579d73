#!/usr/bin/env bash
# Speed at real sizes (issue 17), on SYNTHETIC models written by `lmq synth`: pseudo-random
# weights of real shapes. THE TEXT THEY PRODUCE IS NOISE; every figure here is speed only.
#
#   scripts/bench-scale.sh LLAMA_CPP_BUILD [ROUNDS=6]
#
# LLAMA_CPP_BUILD: a llama.cpp build directory with bin/llama-bench (built beside the project
# from llama.cpp's public source, never inside it), or `none` to run lmq's half alone (no ratio
# column). Environment: SYNTH_DIR (where the models and their quantized files go, generated once
# and reused; default ../synth), PRESETS (default "tinyllama-1.1b llama2-7b"), THREADS (2),
# FORMATS (default "q8_0 q4_0 q4_k_m int8 int4": the rows to run, and the files to write; an int
# row brings its llama.cpp reference, q8_0 for int8 and q4_0 for int4, with it).
#
# 1. generates each preset once (lmq synth) and writes, once, lmq's int8:channel:sym and
#    int4:g128:sym files and lmq's GGUF exports q8_0, q4_0 and q4_k_m (RTN, byte-identical to
#    llama-quantize's);
# 2. ROUNDS interleaved rounds: the streaming-read bandwidth (scripts/read-bandwidth.c), then for
#    every model and format `lmq bench --reps 1` (pp512, tg128; lmq's int files with and without
#    --act-quant dynamic) and llama.cpp's `llama-bench -r 1` on the same GGUF file (llama.cpp's
#    Q8_0 / Q4_0 also stand against lmq's int8 / int4 files);
# 3. one table: model, format, weight bytes per token, pp512 and tg128 (median over the rounds;
#    best in brackets) for lmq and llama.cpp, lmq's median ÷ llama.cpp's on the same file or type
#    (pp and tg), tg128 as a fraction of the bandwidth bound (median bandwidth ÷ bytes per token)
#    for both, and each tool's decode stability (median ÷ best). The raw samples are kept beside the
#    models ($SYNTH_DIR/bench-scale-DATE.samples).
#
# Needs: disk ≈ 6.5 GB for tinyllama-1.1b (2.2 GB bf16 + 4.3 GB of quantized files) and ≈ 40 GB
# for llama2-7b (13.5 GB + 26 GB); time on 2 cores ≈ 5 min of generation and quantization plus
# ≈ 2 min a round for the 1.1B shape, ≈ 25 min plus ≈ 15 min a round for the 7B shape
# (6 rounds of both: about 2 h). Quiet machine: the rounds interleave lmq and llama.cpp so
# noise falls on both alike, but a loaded machine lowers both.
set -euo pipefail
cd "$(dirname "$0")/.."
LB_DIR=${1:?usage: scripts/bench-scale.sh LLAMA_CPP_BUILD|none [ROUNDS]}
ROUNDS=${2:-6}
SHARED=${LMQ_SHARED:-../shared}
SYNTH_DIR=${SYNTH_DIR:-../synth}
PRESETS=${PRESETS:-tinyllama-1.1b llama2-7b}
THREADS=${THREADS:-2}
FORMATS=${FORMATS:-q8_0 q4_0 q4_k_m int8 int4}
for f in $FORMATS; do
  case $f in q8_0 | q4_0 | q4_k_m | int8 | int4) ;; *) echo "bench-scale: FORMATS: unknown format $f (q8_0 q4_0 q4_k_m int8 int4)" >&2; exit 1 ;; esac
done
wants() { [[ " $FORMATS " == *" $1 "* ]]; }
LMQ=./build/lmq
[ "$LB_DIR" = none ] || [ -x "$LB_DIR/bin/llama-bench" ] || { echo "bench-scale: $LB_DIR/bin/llama-bench: not found" >&2; exit 1; }
cmake --build build -j2 --target lmq >/dev/null
mkdir -p "$SYNTH_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -fopenmp scripts/read-bandwidth.c -o "$tmp/read-bandwidth"

tokenizer_of() {  # the 32000-token presets reuse Llama-2's SentencePiece model
  case $1 in llama3-*) echo "$SHARED/models/lmq-llama3-9m/tokenizer.json" ;; *) echo "$SHARED/tokenizers/llama2-32k.model" ;; esac
}
for p in $PRESETS; do
  d=$SYNTH_DIR/$p
  [ -d "$d" ] || $LMQ synth "$p" -o "$d" --tokenizer "$(tokenizer_of "$p")" -t "$THREADS"
done

# rows: "name|file lmq runs|--act-quant|GGUF file llama.cpp runs (its reference for the ratio)"
rows=()
for p in $PRESETS; do
  d=$SYNTH_DIR/$p
  # GGUF rows run as lmq runs a GGUF file by default (int8 activations in blocks of 32, as
  # llama.cpp's CPU backend does); "file" = no --act-quant flag
  ! wants q8_0 || rows+=("$p Q8_0 (GGUF)|$d-q8_0.gguf|file|$d-q8_0.gguf")
  ! wants q4_0 || rows+=("$p Q4_0 (GGUF)|$d-q4_0.gguf|file|$d-q4_0.gguf")
  ! wants q4_k_m || rows+=("$p Q4_K_M (GGUF)|$d-q4_k_m.gguf|file|$d-q4_k_m.gguf")
  ! wants int8 || rows+=("$p lmq int8|$d-int8.lmq|none|$d-q8_0.gguf" "$p lmq int8 ×A8|$d-int8.lmq|dynamic|$d-q8_0.gguf")
  ! wants int4 || rows+=("$p lmq int4-g128|$d-int4.lmq|none|$d-q4_0.gguf" "$p lmq int4-g128 ×A8|$d-int4.lmq|dynamic|$d-q4_0.gguf")
done
# Each file the rows name (lmq's and llama.cpp's), written once from its model: MODEL-int8.lmq,
# MODEL-int4.lmq, MODEL-TYPE.gguf.
write_once() {
  [ ! -f "$1" ] || return 0
  case $1 in
    *-int8.lmq) $LMQ quantize "${1%-int8.lmq}" -o "$1" --scheme int8:channel:sym -t "$THREADS" >/dev/null ;;
    *-int4.lmq) $LMQ quantize "${1%-int4.lmq}" -o "$1" --scheme int4:g128:sym -t "$THREADS" >/dev/null ;;
    *.gguf) local t=${1##*-}; t=${t%.gguf}
      $LMQ quantize "${1%-"$t".gguf}" -o "$1" --format gguf --scheme "$t" -t "$THREADS" >/dev/null ;;
  esac
}
for row in "${rows[@]}"; do
  IFS='|' read -r _ file _ gguf <<<"$row"
  write_once "$file"
  write_once "$gguf"
done
date -u; uptime
for r in $(seq "$ROUNDS"); do
  echo "bw $(OMP_NUM_THREADS=$THREADS "$tmp/read-bandwidth")" >>"$tmp/samples"
  declare -A llama_done=()
  for row in "${rows[@]}"; do
    IFS='|' read -r name file act gguf <<<"$row"
    act_flag=(--act-quant "$act"); [ "$act" != file ] || act_flag=()
    $LMQ bench "$file" "${act_flag[@]}" -t "$THREADS" --prefill 512 --decode 128 --reps 1 --json |
      python3 -c 'import json,sys
j=json.load(sys.stdin); print("lmq", sys.argv[1].replace(" ","_"), j["prefill_tok_s"], j["decode_tok_s"], j["weight_bytes_per_token"])' "$name" >>"$tmp/samples"
    if [ "$LB_DIR" != none ] && [ -z "${llama_done[$gguf]:-}" ]; then
      llama_done[$gguf]=1
      LD_LIBRARY_PATH="$LB_DIR/bin" "$LB_DIR/bin/llama-bench" -m "$gguf" -t "$THREADS" -p 512 -n 128 -r 1 -o json 2>/dev/null |
        python3 -c 'import json,sys
pp=tg=0
for t in json.load(sys.stdin):
  if t["n_prompt"]: pp=t["avg_ts"]
  else: tg=t["avg_ts"]
print("llama", sys.argv[1], pp, tg)' "$gguf" >>"$tmp/samples"
    fi
  done
  echo "round $r/$ROUNDS done $(date -u +%T), $(uptime | sed 's/.*load/load/')" >&2
done
date -u; uptime
kept=$SYNTH_DIR/bench-scale-$(date -u +%Y%m%dT%H%M%S).samples
cp "$tmp/samples" "$kept"
echo "samples: $kept"

python3 - "$tmp/samples" "${rows[@]}" <<'EOF'
import statistics as st, sys
samples = [l.split() for l in open(sys.argv[1])]
bw = st.median(float(s[1]) for s in samples if s[0] == "bw")
print(f"SYNTHETIC weights (text is noise; speed only). Streaming read bandwidth: median {bw:.2f} GB/s "
      f"over {sum(1 for s in samples if s[0] == 'bw')} rounds")
print("pp512 / tg128: tok/s, median (best) over the rounds; llama.cpp's on the same GGUF file (lmq's int rows: the "
      "GGUF type of the same width); bound = median bandwidth / MB per token; stable = tg median / best")
print(f"{'model':<16} {'format':<18} {'MB/token':>9} {'lmq pp512':>16} {'llama pp512':>16} {'pp x':>6} "
      f"{'lmq tg128':>16} {'llama tg128':>16} {'tg x':>6} {'tg/bound':>9} {'llama/bound':>12} {'stable':>7} {'llama stable':>12}")
def cell(v):
    return f"{st.median(v):>7.1f} ({max(v):>6.1f})" if v else f"{'-':>16}"
for row in sys.argv[2:]:
    name, file, _, gguf = row.split("|")
    key = name.replace(" ", "_")
    mine = [s for s in samples if s[0] == "lmq" and s[1] == key]
    pp = [float(s[2]) for s in mine]; tg = [float(s[3]) for s in mine]
    bpt = int(mine[0][4])
    ref = [s for s in samples if s[0] == "llama" and s[1] == gguf]
    rpp = [float(s[2]) for s in ref]; rtg = [float(s[3]) for s in ref]
    ratio = lambda a, b: f"{st.median(a) / st.median(b):.2f}×" if b else "-"
    model, fmt = name.split(" ", 1)
    bound = bw * 1e9 / bpt
    rbound = f"{st.median(rtg) / bound:.0%}" if rtg and file == gguf else "-"  # the same bytes only
    print(f"{model:<16} {fmt:<18} {bpt / 1e6:>9.1f} {cell(pp)} {cell(rpp)} {ratio(pp, rpp):>6} "
          f"{cell(tg)} {cell(rtg)} {ratio(tg, rtg):>6} {st.median(tg) / bound:>8.0%} {rbound:>12} "
          f"{st.median(tg) / max(tg):>6.0%} {(f'{st.median(rtg) / max(rtg):.0%}' if rtg else '-'):>12}")
EOF
