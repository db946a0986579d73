#!/usr/bin/env bash
# Checks a sweep's chart as a reader gets it (issue 19): screenshots DIR/sweep.svg in headless
# Chromium into DIR/sweep.png, then build/lmq_chart_check reads both: the SVG well-formed, no two
# text boxes (from DejaVu Sans's metrics) intersecting, no text over a marker, one point per scheme
# of DIR/sweep.json (and per reference point), and the screenshot the SVG's size and not blank.
# Needs Debian's chromium and fonts-dejavu-core; LMQ_CHROMIUM names another binary.
#   bash scripts/check-chart.sh lmq-sweep
set -euo pipefail
dir=${1:?usage: scripts/check-chart.sh SWEEP_DIR}
dir=$(realpath "$dir")
cd "$(dirname "$0")/.."
check=./build/lmq_chart_check
[ -x "$check" ] || cmake --build build --target lmq_chart_check >/dev/null
chromium=${LMQ_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ]; then
  echo "check-chart: chromium not found (apt-get install chromium fonts-dejavu-core)" >&2
  exit 1
fi
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || echo "check-chart: warning: fonts-dejavu-core is not installed" >&2
size=$("$check" --size "$dir/sweep.svg")
# sweep.json: one "scheme" per row, one "label" per reference point
points=$(($(grep -c '"scheme":' "$dir/sweep.json") + $(grep -c '"label":' "$dir/sweep.json" || true)))
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$dir/sweep.png"
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$dir/sweep.png" --window-size="$size" "file://$dir/sweep.svg" >/dev/null 2>&1 || true
[ -s "$dir/sweep.png" ] || { echo "check-chart: chromium wrote no screenshot" >&2; exit 1; }
"$check" --points "quality=$points" "$dir/sweep.svg" "$dir/sweep.png"
echo "screenshot: $dir/sweep.png"
