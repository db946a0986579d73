#!/usr/bin/env bash
# llama-quantize's per-tensor type choices against lmq's reimplementation of its recipe
# (quant/gguf_recipe.h), for every file type name lmq accepts (outside CI: llama.cpp is not a
# Debian package; build it beside the project from its public source, never inside it).
#  1. Models: every model of ../shared/models that the llama.cpp build knows, and two synthetic
#     shapes the shared models lack (random weights: only the shapes matter here): a llama with
#     80 layers and grouped-query attention (llama.cpp's 70B rule) and a qwen2 with 22 layers (its
#     counters' eighths and sixteenths fall between layers). `lmq quantize --format gguf --scheme
#     f32` writes an f32 GGUF of each, and `llama-imatrix` computes an importance matrix from it
#     (a few of llama.cpp's rules depend on whether one is given; its values do not matter).
#  2. `llama-quantize` quantizes that file into every file type below, once without and once with
#     the importance matrix (it refuses some very-low-bit types without one; those are skipped);
#     the type of every tensor is read from each result's header.
#  3. The choices are written as JSON (OUT, default tests/data/llamacpp-recipes.json: the copy the
#     unit test GgufRecipe.MatchesLlamaQuantizeForEveryFtype reads in CI) with each model's
#     hyperparameters and tensor shapes, and that test compares them with lmq's recipe for the
#     same model, file type and imatrix flag, tensor by tensor.
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

# The synthetic shapes: Hugging Face directories (config.json, bf16 safetensors, the shared
# SentencePiece tokenizer).
python3 - "$tmp/models" "$SHARED/tokenizers/llama2-32k.model" <<'EOF'
import json, os, random, shutil, struct, sys
shapes = {  # name: model_type, layers, hidden, heads, kv heads, ffn, tied
    "synth-llama-80l": ("llama", 80, 256, 4, 1, 512, False),
    "synth-qwen2-22l": ("qwen2", 22, 256, 4, 2, 768, True),
}
random.seed(1)
def bf16(x): return struct.pack("<f", x)[2:]
block = b"".join(bf16(random.gauss(0, 0.02)) for _ in range(1 << 15))
for name, (mt, nl, h, nh, nkv, ffn, tied) in shapes.items():
    d = os.path.join(sys.argv[1], name); os.makedirs(d)
    hd, V = h // nh, 32000
    t = {"model.embed_tokens.weight": [V, h], "model.norm.weight": [h]}
    if not tied: t["lm_head.weight"] = [V, h]
    for l in range(nl):
        p = f"model.layers.{l}."
        t.update({p + "input_layernorm.weight": [h], p + "post_attention_layernorm.weight": [h],
                  p + "self_attn.q_proj.weight": [nh * hd, h], p + "self_attn.k_proj.weight": [nkv * hd, h],
                  p + "self_attn.v_proj.weight": [nkv * hd, h], p + "self_attn.o_proj.weight": [h, nh * hd],
                  p + "mlp.gate_proj.weight": [ffn, h], p + "mlp.up_proj.weight": [ffn, h],
                  p + "mlp.down_proj.weight": [h, ffn]})
        if mt == "qwen2":
            t.update({p + "self_attn.q_proj.bias": [nh * hd], p + "self_attn.k_proj.bias": [nkv * hd],
                      p + "self_attn.v_proj.bias": [nkv * hd]})
    header, off = {}, 0
    for n, s in t.items():
        nb = 2
        for x in s: nb *= x
        header[n] = {"dtype": "BF16", "shape": s, "data_offsets": [off, off + nb]}; off += nb
    hj = json.dumps(header).encode(); hj += b" " * (-len(hj) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj))); f.write(hj)
        for n, (a, b) in ((n, header[n]["data_offsets"]) for n in t):
            nb = b - a
            f.write((block * (nb // len(block) + 1))[:nb])
    json.dump({"architectures": ["LlamaForCausalLM" if mt == "llama" else "Qwen2ForCausalLM"], "model_type": mt,
               "hidden_size": h, "intermediate_size": ffn, "num_hidden_layers": nl, "num_attention_heads": nh,
               "num_key_value_heads": nkv, "head_dim": hd, "vocab_size": V, "max_position_embeddings": 1024,
               "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": tied, "bos_token_id": 1,
               "eos_token_id": 2, "hidden_act": "silu", "torch_dtype": "bfloat16"}, open(os.path.join(d, "config.json"), "w"))
    shutil.copy(sys.argv[2], os.path.join(d, "tokenizer.model"))
EOF

: >"$tmp/cases.jsonl"
for dir in "$SHARED"/models/*/ "$tmp"/models/*/; do
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
        if grep -qE "Missing importance matrix|without an importance matrix" "$tmp/q.log"; then
          echo "$model $ft: refused without an imatrix"; continue
        fi
        echo "$model $ft imatrix=$im: llama-quantize failed:"; tail -5 "$tmp/q.log"; exit 1
      fi
      python3 - "$q" "$model" "$ft" "$im" >>"$tmp/cases.jsonl" <<'EOF'
import json, struct, sys
# GGUF header: the architecture's hyperparameters, and per tensor its name, dims and ggml type id
b = open(sys.argv[1], "rb").read()
o = 8
nt, nk = struct.unpack_from("<QQ", b, o); o += 16
fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def string(o):
    n, = struct.unpack_from("<Q", b, o); return b[o + 8:o + 8 + n].decode(), o + 8 + n
def value(t, o):
    if t == 8: return string(o)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, o); o += 12
        for _ in range(n): _, o = value(et, o)
        return None, o
    return struct.unpack_from("<" + fmt[t], b, o)[0], o + struct.calcsize(fmt[t])
kv = {}
for _ in range(nk):
    k, o = string(o); t, = struct.unpack_from("<I", b, o); kv[k], o = value(t, o + 4)
arch = kv["general.architecture"]
names = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K",
         12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
         20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 30: "BF16"}
tensors = []
for _ in range(nt):
    name, o = string(o); nd, = struct.unpack_from("<I", b, o); o += 4
    ne = list(struct.unpack_from(f"<{nd}Q", b, o)); o += 8 * nd
    t, = struct.unpack_from("<I", b, o); o += 12
    tensors.append([name, names.get(t, str(t)), ne])
print(json.dumps({"model": sys.argv[2], "ftype": sys.argv[3], "imatrix": sys.argv[4] == "1",
                  "hparams": {"arch": arch, "n_layer": kv[arch + ".block_count"],
                              "n_head": kv[arch + ".attention.head_count"],
                              "n_head_kv": kv[arch + ".attention.head_count_kv"]},
                  "tensors": sorted(tensors)}))
EOF
    done
  done
done
python3 - "$tmp/cases.jsonl" "$OUT" <<'EOF'
import json, sys
models, cases = {}, []
for line in open(sys.argv[1]):
    c = json.loads(line)
    shape = {"hparams": c["hparams"], "tensors": [[n, ne] for n, _, ne in c["tensors"]]}
    m = models.setdefault(c["model"], shape)
    assert m == shape, f"{c['model']} {c['ftype']}: other tensors"
    cases.append({"model": c["model"], "ftype": c["ftype"], "imatrix": c["imatrix"],
                  "types": " ".join(t for _, t, _ in c["tensors"])})
with open(sys.argv[2], "w") as f:
    f.write('{"producer": "scripts/check-llamacpp-recipe.sh: llama-quantize [--imatrix] TYPE (llama.cpp b4748, '
            'commit c392e509) of the f32 GGUF lmq writes of each model; models: hyperparameters and tensors '
            '(name, ggml ne); cases: the type of every tensor, in the order of models[model].tensors",\n"models": {\n' +
            ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in models.items()) + '},\n"cases": [\n' +
            ",\n".join(json.dumps(c) for c in cases) + "\n]}\n")
print(f"{len(cases)} quantizations of {len(models)} models recorded in {sys.argv[2]}")
EOF
LMQ_LLAMACPP_RECIPES="$(realpath "$OUT")" ./build/lmq_tests --gtest_filter='GgufRecipe.MatchesLlamaQuantizeForEveryFtype'
