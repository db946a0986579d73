#!/usr/bin/env bash
# The test command (README, command 2): a Release build and every test, then the bad-input
# group again under AddressSanitizer + UndefinedBehaviorSanitizer (CMakePresets.json: asan,
# RelWithDebInfo in build-asan/, only the lmq and lmq_tests targets), then the libFuzzer smoke
# run: every fuzz target for 30 s on its seeds and committed regression inputs (CMakePresets.json:
# fuzz, clang 14 in build-fuzz/; tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 1500)

cmake --preset asan >/dev/null
cmake --build build-asan -j"$jobs" --target lmq lmq_tests
(cd build-asan &&
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest -L bad-input --output-on-failure -j"$jobs" --timeout 1500)

cmake --preset fuzz >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_all
(cd build-fuzz && ctest -L fuzz-smoke --output-on-failure -j"$jobs" --timeout 300)
