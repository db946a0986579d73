#!/usr/bin/env bash
# Installs what lmq needs from Debian's packages (bookworm) and builds build/lmq.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config clang clang-14 libclang-rt-14-dev libomp-14-dev \
  libsentencepiece-dev libpcre2-dev libutf8proc-dev libhwy-dev nlohmann-json3-dev libcli11-dev libfmt-dev \
  libopenblas-dev liblapacke-dev librapidcheck-dev libgtest-dev libgmock-dev libbenchmark-dev >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
