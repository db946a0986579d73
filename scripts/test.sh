#!/usr/bin/env bash
# The test command (README, command 2): the Debian packages and a Release build (scripts/setup.sh
# --tests), every test in that build (ctest), then one clang 14 build instrumented with AddressSanitizer + UndefinedBehaviorSanitizer (+ libFuzzer coverage;
# CMakePresets.json: fuzz in build-fuzz/, -O1 with line tables only: it compiles in about half the
# time of -O2 -g, and the reports keep file and line; its lmq_tests holds only the test files
# with a BadInput* suite) that runs the bad-input group of the unit tests under the sanitizers
# and then the libFuzzer smoke run: every fuzz target for 30 s on its seeds and committed
# regression inputs (tests/fuzz/README.md). One instrumented build
# serves both, which keeps CI well inside its time. (`cmake --preset asan` is the same check
# with gcc, for a machine without clang.)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
bash scripts/setup.sh --tests  # Debian packages (tests included) and the Release build
(cd build && ctest --output-on-failure -j"$jobs" --timeout 1500)

cmake --preset fuzz >/dev/null
cmake --build build-fuzz -j"$jobs" --target lmq lmq_tests fuzz_all
(cd build-fuzz &&
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest -L bad-input --output-on-failure -j"$jobs" --timeout 1500 &&
  ctest -L fuzz-smoke --output-on-failure -j"$jobs" --timeout 300)
