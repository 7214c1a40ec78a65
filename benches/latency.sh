#!/usr/bin/env bash
# Throughput at real network distance (BENCHMARKS.md, "At real network distance"): installs
# vipsthumbnail (the batch client's resizer) if missing, then runs benches/latency.rs.
# Environment: BENCH_WORKLOADS (default 300r,1000r,300o), BENCH_LATENCY_MS (80),
# BENCH_JITTER_MS (10), BENCH_RATE (12 requests/s per token), BENCH_PHOTOS, BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v vipsthumbnail >/dev/null 2>&1; then
  echo "installing: libvips-tools"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libvips-tools
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "vips: $(vipsthumbnail --vips-version 2>/dev/null | head -1)"
cargo bench --bench latency
