#!/usr/bin/env bash
# The golden-output guard (issue 14): runs a fixed set of `lmq quantize` and `lmq eval --json`
# commands on ../shared/models/lmq-llama-25m and prints "sha256  name" for every file they write
# (and for the quality fields of each eval). tests/golden/digests.txt holds the digests of the
# code before the redesign; Golden.OutputsByteIdentical reruns this script and compares, so a
# refactoring that changes one byte of any output fails.
#
#   scripts/golden-digests.sh [LMQ_BINARY] [SHARED_DIR] [THREADS]      (defaults: build/lmq ../shared 2)
#   scripts/golden-digests.sh > tests/golden/digests.txt                # regenerate (only on purpose)
#
# Reproducible from any checkout: lmq's files record their command line (argv[0], the model,
# calibration and output paths), so every command runs in a fresh temp directory as `lmq` found
# on PATH, with the model and texts reached through fixed relative symlinks there. The thread
# count is fixed through OMP_NUM_THREADS, so it is not part of the recorded command line (the
# digests are the same at 1 and 2 threads; the default is 2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:-$here/build/lmq}")
shared=$(realpath "${2:-${LMQ_SHARED:-$here/../shared}}")
threads=${3:-2}
[ -x "$bin" ] || { echo "golden-digests: $bin: not an executable" >&2; exit 1; }
[ -d "$shared/models/lmq-llama-25m" ] || { echo "golden-digests: $shared: no models/lmq-llama-25m" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
ln -s "$bin" "$work/bin/lmq"
ln -s "$shared" "$work/shared"
cd "$work"
export PATH="$work/bin:$PATH" OMP_WAIT_POLICY=passive OMP_NUM_THREADS="$threads"
# The calibrated files (GPTQ, AWQ) go through OpenBLAS's sgemm, whose kernel OpenBLAS picks by CPU
# model (or OPENBLAS_CORETYPE, which some hosts set), and the kernels round differently. The
# digests were recorded with Debian's OpenBLAS 0.3.21 on its Cooperlake kernels (what it picks on
# AMD Zen 4); on a Zen 5, or with OPENBLAS_CORETYPE=Haswell, GPTQ's codes move. Where the CPU runs
# the Cooperlake kernels (AVX-512 BF16) they are named here, so the guard compares lmq's bytes
# rather than the BLAS's choice.
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=Cooperlake
fi

# Calibration text: 300 lines from the start of docs-valid.txt's second half (by lines), which
# the evaluation windows (the file's start) never reach.
valid=shared/text/docs-valid.txt
half=$(( $(wc -l < "$valid") / 2 ))
sed -n "$((half + 1)),$((half + 300))p" "$valid" > calib.txt

M=shared/models/lmq-llama-25m
# f32 forward passes (the default, auto, is bf16 only on CPUs with AVX-512 BF16): the digests
# recorded before --calib-precision stay valid on every CPU; bf16's own file below
C=(--calib calib.txt --calib-samples 4 --calib-len 128 --calib-precision f32)
q() { lmq quantize "$M" "$@" > /dev/null; }

q -o int8-channel.lmq --scheme int8:channel:sym
q -o int4-g128-mse.lmq --scheme int4:g128:asym:mse
q -o int3-g64-gptq.lmq --scheme int3:g64:asym --method gptq "${C[@]}"
q -o int3-g64-gptq-bf16.lmq --scheme int3:g64:asym --method gptq "${C[@]:0:6}" --calib-precision bf16
q -o int4-g128-awqgptq.lmq --scheme int4:g128:asym --method awq+gptq "${C[@]}"
q -o mixed-4.5.lmq --scheme int4:g128:asym --target-bpw 4.5 "${C[@]}"
q -o w8a8.lmq --scheme int8:channel:sym --activations int8 "${C[@]}"
q -o q8_0.gguf --format gguf --scheme q8_0
q -o q4_k_m.gguf --format gguf --scheme q4_k_m
q -o q3_k_m-gptq.gguf --format gguf --scheme q3_k_m --method gptq "${C[@]}"
q -o mixed-5.0.gguf --format gguf --scheme q4_k_m --target-bpw 5.0 "${C[@]}"

# eval --json: only the quality fields (paths, counts, perplexities, KLD) are digested; any field
# that measures time or speed is dropped, should one appear.
e() {
  local out=$1; shift
  lmq eval "$@" --text "$valid" --windows 2 --base "$M" --json |
    grep -Ev '"[a-z_]*(seconds|tok_s|time|speed)[a-z_]*":' > "$out"
}
e eval-int3-gptq.json int3-g64-gptq.lmq
e eval-w8a8.json w8a8.lmq
# --act-quant none: the float path these figures were recorded on (since issue 17 a GGUF's Q8_0
# and Q4_0 tensors run on int8 activations by default; GgmlRepack.* and the GgufPerplexity tests
# cover that path)
e eval-q4_k_m.json q4_k_m.gguf --act-quant none
e eval-int8-a8-kv8.json int8-channel.lmq --act-quant dynamic --kv int8

sha256sum calib.txt *.lmq *.gguf *.json
