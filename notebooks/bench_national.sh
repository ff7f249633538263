#!/usr/bin/env bash
# The national benchmark of issue 6: simulated samples (seeded) over the
# 11 163 communes of 2009 and 40 635 villages, written as Parquet, then
#   job  — the peers' job: quota and unit statistics, H3 resolution 8, cell
#          statistics as Parquet tables keyed by H3 (--heatmap-format parquet)
#   full — every output: villages, plan, GeoJSON heatmaps, report.html, …
#   dense — the job on the communes densified to ~500 vertices each
#          (notebooks/densify.py; new vertices on the old edges)
# Prints wall time, CPU time (user + sys), peak RSS and the per-stage wall
# times (--timings), and appends the table to notebooks/bench_results.md.
# Usage: notebooks/bench_national.sh [sizes=100000,1000000,10000000] [seed=42]
# Needs ../shared/data/vn (or GAPMAP_SHARED_DATA) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-100000,1000000,10000000}; seed=${2:-42}
shared=${GAPMAP_SHARED_DATA:-../shared/data/vn}
[ -d "$shared/boundaries_2009" ] || shared=$shared/vn
bin=target/release/gapmap
communes=$shared/boundaries_2009/communes.geojson
villages=$shared/villages_wof.geojson
work=${GAPMAP_BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
rows=()
stages=()
dense=$work/communes_dense.geojson
[ -f "$dense" ] || python3 notebooks/densify.py "$communes" "$dense" 500
for n in ${sizes//,/ }; do
  s="$work/s_$n.parquet"
  [ -f "$s" ] || "$bin" --quiet simulate --boundaries "$communes" --villages "$villages" \
      --out "$s" --samples "$n" --seed "$seed"
  for run in job full dense; do
    b=$communes
    case $run in
      job) extra=(--heatmap-format parquet) ;;
      full) extra=(--villages "$villages") ;;
      dense) extra=(--heatmap-format parquet); b=$dense ;;
    esac
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bin" --quiet --timings analyze \
      --samples "$s" --boundaries "$b" --out "$work/o_${run}_$n" "${extra[@]}" \
      > /dev/null 2> "$work/timings"
    read -r wall user sys kib < "$work/time"
    cpu=$(echo "$user + $sys" | bc)
    rows+=("| $run | $n | $wall | $cpu | $((kib / 1024)) |")
    stages+=("$run $n: $(grep 'gapmap: timing' "$work/timings" | sed 's/gapmap: timing //; s/  */ /g' | paste -sd ';' -)")
    echo "${rows[-1]}" >&2
  done
done
{
  echo
  echo "## $(date -u +%Y-%m-%d) national bench — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), seed $seed"
  echo
  echo "| run | samples | wall s | CPU s | peak RSS MiB |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Stage wall times (s):"
  echo
  printf -- '- %s\n' "${stages[@]}"
} | tee -a notebooks/bench_results.md
