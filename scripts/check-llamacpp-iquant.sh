#!/usr/bin/env bash
# lmq's IQ4_NL / IQ4_XS writers against llama-quantize, byte for byte (outside CI: llama.cpp is
# not a Debian package; build it beside the project from its public source).
#  1. lmq writes the model as an f32 GGUF (`--scheme f32`);
#  2. llama.cpp's `llama-quantize --pure F32 OUT TYPE` quantizes it (every 2-D tensor TYPE, no
#     recipe, no importance matrix);
#  3. lmq quantizes the same model `--scheme TYPE --override '^(token_embd|output)\.weight$=TYPE'`
#     (lmq's recipe, as llama.cpp's without --pure, would keep lm_head / the tied embedding at Q6_K);
#  4. every tensor of the two files: same name, type, shape and data bytes.
# Usage: scripts/check-llamacpp-iquant.sh LLAMA_CPP_BUILD_DIR [MODEL=lmq-llama3-9m] [TYPES="IQ4_NL IQ4_XS"]
# Exit status 1 if any tensor differs.
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${1:?usage: scripts/check-llamacpp-iquant.sh LLAMA_CPP_BUILD_DIR [MODEL] [TYPES]}
MODEL=${2:-lmq-llama3-9m}
TYPES=${3:-IQ4_NL IQ4_XS}
SHARED=${LMQ_SHARED:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --build build -j2 --target lmq >/dev/null
export LD_LIBRARY_PATH="$LB/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
./build/lmq quantize "$SHARED/models/$MODEL" -o "$tmp/f32.gguf" --format gguf --scheme f32 >/dev/null
fail=0
for T in $TYPES; do
  t=$(echo "$T" | tr A-Z a-z)
  "$LB/bin/llama-quantize" --pure "$tmp/f32.gguf" "$tmp/llamacpp.gguf" "$T" 2 >"$tmp/lq.log" 2>&1 ||
    { echo "llama-quantize $T failed:"; tail -5 "$tmp/lq.log"; fail=1; continue; }
  ./build/lmq quantize "$SHARED/models/$MODEL" -o "$tmp/lmq.gguf" --format gguf --scheme "$t" \
    --override "^(token_embd|output)\\.weight\$=$t" >/dev/null
  python3 - "$tmp/llamacpp.gguf" "$tmp/lmq.gguf" "$MODEL $T" <<'PY' || fail=1
import struct, sys

def tensors(path):
    """name -> (ggml type, shape, data bytes) of a GGUF v3 file."""
    b = open(path, "rb").read()
    pos = 0
    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, b, pos); pos += struct.calcsize("<" + fmt); return v
    def string():
        nonlocal pos
        (n,) = take("Q"); s = b[pos:pos + n].decode(); pos += n; return s
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def value(t):
        if t == 8: return string()
        if t == 9:
            (et, n) = take("IQ"); return [value(et) for _ in range(n)]
        return take(sizes[t])[0]
    magic, version, n_t, n_kv = take("4sIQQ")
    assert magic == b"GGUF" and version == 3, path
    meta = {}
    for _ in range(n_kv):
        k = string(); (t,) = take("I"); meta[k] = value(t)
    infos = []
    for _ in range(n_t):
        name = string(); (nd,) = take("I"); shape = take("Q" * nd); (t, off) = take("IQ")
        infos.append((name, t, shape, off))
    align = meta.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    offs = sorted(o for _, _, _, o in infos) + [len(b) - data]
    out = {}
    for name, t, shape, off in infos:
        end = min(o for o in offs if o > off)  # the next tensor's start (sizes are padded alike)
        out[name] = (t, shape, b[data + off:data + end])
    return out

a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
bad = [n for n in a if n not in b or a[n][:2] != b[n][:2] or a[n][2] != b[n][2]]
bad += [n for n in b if n not in a]
same_type = sum(1 for n in a if n in b and a[n][0] == b[n][0])
print(f"{sys.argv[3]}: {len(a)} tensors, {same_type} of the same type, "
      f"{len(a) - len(set(bad))} byte-identical" + ("" if not bad else f"; DIFFER: {', '.join(sorted(set(bad))[:8])}"))
sys.exit(1 if bad else 0)
PY
done
exit $fail
