#!/bin/sh
# Integer inference benchmark (docs/results.md, "Integer inference (issue 5)"): one process,
# FP32 / weight-only INT8 / INT8×A8 / INT4-g32×A8 / W8A8-static at 1 and 2 threads, with the
# measured streaming-read bandwidth. Usage: scripts/bench-int.sh [MODEL [CALIB_TEXT]] [--threads 1,2] ...
set -e
cd "$(dirname "$0")/.."
cmake --build build -j2 --target lmq_int_bench >/dev/null
exec ./build/lmq_int_bench "$@"   # OpenMP's default wait policy: decode forks ~70 parallel regions a token
