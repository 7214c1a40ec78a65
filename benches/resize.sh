#!/usr/bin/env bash
# Resize benchmark (BENCHMARKS.md, "Resize"): installs vipsthumbnail and ImageMagick, then runs
# benches/resize.rs, which times dbxport's prepare beside both tools on the same photos.
# Environment: BENCH_PHOTOS (default ../shared/photos/large), BENCH_RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v vipsthumbnail >/dev/null 2>&1 || need+=(libvips-tools)
# /usr/local/bin may hold a stand-in called convert; the benchmark calls /usr/bin/convert.
[ -x /usr/bin/convert ] || need+=(imagemagick)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "vips: $(vipsthumbnail --vips-version 2>/dev/null | head -1); $(/usr/bin/convert -version | head -1)"
cargo bench --bench resize
