#!/usr/bin/env bash
# llama-quantize's per-tensor type choices against lmq's reimplementation of its recipe
# (quant/gguf_recipe.h), for every file type name lmq accepts (outside CI: llama.cpp is not a
# Debian package; build it beside the project from its public source, never inside it).
#  1. For each model of ../shared/models that the llama.cpp build knows, `lmq quantize --format
#     gguf --scheme f32` writes an f32 GGUF, and `llama-imatrix` computes an importance matrix
#     from it (a few of llama.cpp's rules depend on whether one is given; its values do not matter).
#  2. `llama-quantize` quantizes that file into every file type below, once without and once with
#     the importance matrix (it refuses some very-low-bit types without one; those are skipped);
#     the type of every tensor is read from each result's header.
#  3. The choices are written as JSON (OUT, default tests/data/llamacpp-recipes.json: the copy the
#     unit test GgufRecipe.MatchesLlamaQuantizeForEveryFtype reads in CI) and that test compares
#     them with lmq's recipe for the same model, file type and imatrix flag, tensor by tensor.
# Usage: scripts/check-llamacpp-recipe.sh LLAMA_CPP_BUILD_DIR [OUT]
# Exit status 1 if llama.cpp fails unexpectedly or a tensor's type differs.
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${1:?usage: scripts/check-llamacpp-recipe.sh LLAMA_CPP_BUILD_DIR [OUT]}
OUT=${2:-tests/data/llamacpp-recipes.json}
SHARED=${LMQ_SHARED:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --build build -j2 --target lmq lmq_tests >/dev/null
export LD_LIBRARY_PATH="$LB/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ftypes="q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q2_k_s q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k
        iq2_xxs iq2_xs iq2_s iq2_m iq3_xxs iq3_xs iq3_s iq3_m iq4_nl iq4_xs iq1_s iq1_m f16 bf16"
: >"$tmp/cases.tsv"
for dir in "$SHARED"/models/*/; do
  model=$(basename "$dir")
  f32="$tmp/$model-f32.gguf"
  ./build/lmq quantize "$dir" -o "$f32" --format gguf --scheme f32 >/dev/null
  if ! "$LB/bin/llama-imatrix" -m "$f32" -f "$SHARED/text/wikitext-2-test.txt" -o "$tmp/$model.imatrix" \
       -c 128 --chunks 4 -t 2 >"$tmp/imatrix.log" 2>&1; then
    if grep -q "unknown model architecture" "$tmp/imatrix.log"; then  # qwen3 before llama.cpp b5092
      echo "$model: skipped, this llama.cpp build predates the architecture"; continue
    fi
    echo "$model: llama-imatrix failed:"; tail -5 "$tmp/imatrix.log"; exit 1
  fi
  for ft in $ftypes; do
    for im in 0 1; do
      q="$tmp/q.gguf"; rm -f "$q"
      args=(); [ "$im" = 0 ] || args=(--imatrix "$tmp/$model.imatrix")
      if ! "$LB/bin/llama-quantize" "${args[@]}" "$f32" "$q" "$ft" 2 >"$tmp/q.log" 2>&1; then
        if grep -qE "Missing importance matrix|without an importance matrix" "$tmp/q.log"; then echo "$model $ft: refused without an imatrix"; continue; fi
        echo "$model $ft imatrix=$im: llama-quantize failed:"; tail -5 "$tmp/q.log"; exit 1
      fi
      python3 - "$q" "$model" "$ft" "$im" >>"$tmp/cases.tsv" <<'EOF'
import struct, sys
# GGUF header: tensor names and ggml type ids (the metadata values are skipped by their types)
b = open(sys.argv[1], "rb").read()
o = 8
nt, nk = struct.unpack_from("<QQ", b, o); o += 16
size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def string(o):
    n, = struct.unpack_from("<Q", b, o); return b[o + 8:o + 8 + n].decode(), o + 8 + n
def skip(t, o):
    if t == 8: return string(o)[1]
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, o); o += 12
        for _ in range(n): o = skip(et, o)
        return o
    return o + size[t]
for _ in range(nk):
    _, o = string(o); t, = struct.unpack_from("<I", b, o); o = skip(t, o + 4)
names = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K",
         12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
         20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 30: "BF16"}
out = []
for _ in range(nt):
    name, o = string(o); nd, = struct.unpack_from("<I", b, o); o += 4 + 8 * nd
    t, = struct.unpack_from("<I", b, o); o += 12
    out.append(f"{name}={names.get(t, t)}")
print(sys.argv[2], sys.argv[3], sys.argv[4], " ".join(out), sep="\t")
EOF
    done
  done
done
python3 - "$tmp/cases.tsv" "$OUT" <<'EOF'
import json, sys
models, cases = {}, []
for line in open(sys.argv[1]):
    model, ft, im, types = line.rstrip("\n").split("\t")
    pairs = sorted(x.split("=") for x in types.split())
    names = models.setdefault(model, [n for n, _ in pairs])
    assert names == [n for n, _ in pairs], f"{model} {ft}: other tensors"
    cases.append({"model": model, "ftype": ft, "imatrix": im == "1", "types": " ".join(t for _, t in pairs)})
with open(sys.argv[2], "w") as f:
    f.write('{"producer": "scripts/check-llamacpp-recipe.sh: llama-quantize [--imatrix] TYPE (llama.cpp b4748, '
            'commit c392e509) of the f32 GGUF lmq writes of each model; per case the type of every tensor, in the '
            'order of models[model]",\n"models": ' + json.dumps(models) + ',\n"cases": [\n' +
            ",\n".join(json.dumps(c) for c in cases) + "\n]}\n")
print(f"{len(cases)} quantizations recorded in {sys.argv[2]}")
EOF
LMQ_LLAMACPP_RECIPES="$(realpath "$OUT")" ./build/lmq_tests --gtest_filter='GgufRecipe.MatchesLlamaQuantizeForEveryFtype'
