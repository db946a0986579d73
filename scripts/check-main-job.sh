#!/usr/bin/env bash
# Checks what the main job (scripts/main-job.sh) left in its output folder, as CI does after it:
# the sweep complete (sweep.json/txt/svg, a row with sane figures for every scheme of the default
# set, each quantized file at its stated size: build/lmq_chart_check --sweep), then the chart
# rendered in headless Chromium and checked (scripts/check-chart.sh: no overlapping text, one
# point per scheme, the screenshot not blank). Installs the test packages (Chromium) first.
#   bash scripts/check-main-job.sh [lmq-sweep]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-lmq-sweep}
bash scripts/setup.sh --tests >/dev/null
cmake --build build --target lmq_chart_check >/dev/null
[ -s "$dir/inspect.txt" ] || { echo "check-main-job: $dir/inspect.txt missing or empty" >&2; exit 1; }
./build/lmq_chart_check --sweep "$dir"
bash scripts/check-chart.sh "$dir"
