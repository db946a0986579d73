#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz) for a bounded time each, one after the other.
#   scripts/fuzz.sh [--smoke] [SECONDS] [TARGET...]     (default: 60 s, every target)
# Needs the fuzz build: cmake --preset fuzz && cmake --build build-fuzz --target fuzz_all
# ($LMQ_FUZZ_BUILD overrides build-fuzz/). Each target runs on a working corpus (new inputs
# go there), its generated seeds and tests/fuzz/regressions/<target>/ (the committed
# reproducers). --smoke (ctest -L fuzz-smoke) starts from an empty working corpus each time.
# Logs: <build>/tests/fuzz/logs/<target>.log; a crash leaves its input in
# <build>/tests/fuzz/artifacts/<target>/ and makes the script fail.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LMQ_FUZZ_BUILD:-$root/build-fuzz}"
fz="$build/tests/fuzz"
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
secs=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors shard_index config gguf gguf_tokenizer tokenizer tokenizer_json lmq_file scheme)
fi
[ -d "$fz/seeds" ] || { echo "fuzz.sh: no seeds in $fz (build the fuzz_all target first)" >&2; exit 1; }

status=0
for t in "${targets[@]}"; do
  exe="$fz/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz.sh: $exe not built" >&2; exit 1; }
  mkdir -p "$fz/logs" "$fz/artifacts/$t" "$root/tests/fuzz/regressions/$t"
  if [ $smoke = 1 ]; then work="$(mktemp -d)"; else work="$fz/corpus/$t"; mkdir -p "$work"; fi
  log="$fz/logs/$t.log"
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb/-malloc_limit_mb: a parser
  # must refuse absurd sizes before allocating, so one allocation over 2 GiB is a bug too.
  if ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$fz/artifacts/$t/" "$work" "$fz/seeds/$t" "$root/tests/fuzz/regressions/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: ok, ${execs:-?} execs in ${secs} s, $cov"
  else
    echo "fuzz $t: FAILED (log: $log)"; grep -m3 -E 'ERROR|SUMMARY|runtime error|abort' "$log" || tail -5 "$log"
    status=1
  fi
  [ $smoke = 1 ] && rm -rf "$work"
done
exit $status
