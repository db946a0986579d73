#!/usr/bin/env bash
# Installs what lmq needs from Debian's packages (bookworm) and builds build/lmq.
#   bash scripts/setup.sh           the packages to build and run lmq (README command 1)
#   bash scripts/setup.sh --tests   also what the tests need: clang 14 for the sanitizer and
#                                   libFuzzer build, Chromium and a font to render the chart
# LMQ_WERROR=ON in the environment (CI sets it) makes compiler warnings in lmq's sources errors.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
packages=(build-essential cmake pkg-config
  libsentencepiece-dev libpcre2-dev libutf8proc-dev libhwy-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libopenblas-dev liblapacke-dev librapidcheck-dev libgtest-dev libgmock-dev libbenchmark-dev
  libxml2-dev libpng-dev)
if [ "${1:-}" = "--tests" ]; then
  packages+=(clang clang-14 libclang-rt-14-dev libomp-14-dev chromium fonts-dejavu-core)
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LMQ_WERROR:+-DLMQ_WERROR=$LMQ_WERROR} >/dev/null
cmake --build build -j"$(nproc)"
