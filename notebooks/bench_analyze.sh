#!/usr/bin/env bash
# Times `gapmap analyze` on simulated national data and records wall time and
# peak memory (GNU time) in notebooks/bench_results.md. Usage:
#   notebooks/bench_analyze.sh [samples=1000000] [seed=42]
# Needs ../shared/data/vn and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}; seed=${2:-42}
shared=../shared/data/vn
bin=target/release/gapmap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" simulate --boundaries "$shared/boundaries_2009/communes.geojson" --villages "$shared/villages_wof.geojson" \
  --out "$work/s.csv" --samples "$n" --seed "$seed" 2>/dev/null
rows=$(($(wc -l < "$work/s.csv") - 1))
measure() { # label, then the command
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null 2>&1
  read -r secs kib < "$work/time"
  printf '| %s | %s | %s | %.0f |\n' "$label" "$rows" "$secs" "$((kib / 1024))" | tee -a "$work/rows"
}
measure "analyze (quota, stats, heatmaps)" "$bin" analyze --samples "$work/s.csv" \
  --boundaries "$shared/boundaries_2009/communes.geojson" --out "$work/o1"
measure "analyze --villages (40 635 villages)" "$bin" analyze --samples "$work/s.csv" \
  --boundaries "$shared/boundaries_2009/communes.geojson" --villages "$shared/villages_wof.geojson" --out "$work/o2"
measure "analyze --crosswalk (2009 + 2025 sets, --view both)" "$bin" analyze --samples "$work/s.csv" \
  --boundaries "$shared/boundaries_2009/communes.geojson" \
  --crosswalk 2025-06-01=data/vn_2025/crosswalk_2009_2025.csv --view both --out "$work/o3"
{
  echo
  echo "## $(date -u +%Y-%m-%d) — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), 11 163 communes, seed $seed"
  echo
  echo "| run | input rows | wall s | peak MiB |"
  echo "|---|---|---|---|"
  cat "$work/rows"
} >> notebooks/bench_results.md
