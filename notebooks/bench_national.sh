#!/usr/bin/env bash
# The national benchmark of issue 6: simulated samples (seeded) over the
# 11 163 communes of 2009 and 40 635 villages, written as Parquet, then
#   job  — the peers' job: quota and unit statistics, H3 resolution 8, cell
#          statistics as Parquet tables keyed by H3 (--heatmap-format parquet)
#   full — every output: villages, plan, GeoJSON heatmaps, report.html, …
#   dense — the job on the communes densified to ~500 vertices each
#          (notebooks/densify.py; new vertices on the old edges)
#   bare — the floor: the job by a bare loop without any check (the bench
#          target crates/gapmap-core/benches/bare_job.rs): what gapmap's
#          checks and outputs cost over the least any tool must do
#   peer — the issue's fastest peer on the same file, polars + h3ronpy +
#          shapely (notebooks/peer_polars_shapely.py), when its Python
#          packages are installed (notebooks/requirements-peer.txt);
#          GAPMAP_BENCH_PEER=0 leaves it out
# Prints wall time, CPU time (user + sys), peak RSS and the per-stage wall
# times (--timings), and appends the table to notebooks/bench_results.md.
# Each run is repeated GAPMAP_BENCH_REPEAT times (default 3) and the run of
# median wall time is reported, with the range of wall times: a shared
# virtual machine's speed drifts by 10-20 % within an hour.
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
skipped=()
runs=(job full dense bare)
bare=$(cargo bench -p gapmap-core --bench bare_job --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p')
[ -x "$bare" ] || { echo "bench_national.sh: could not build the bare_job bench" >&2; exit 1; }
if [ "${GAPMAP_BENCH_PEER:-1}" != 0 ] && python3 -c 'import polars, h3ronpy, shapely, pyarrow' 2>/dev/null; then
  runs+=(peer)
fi
dense=$work/communes_dense.geojson
[ -f "$dense" ] || python3 notebooks/densify.py "$communes" "$dense" 500
for n in ${sizes//,/ }; do
  s="$work/s_$n.parquet"
  [ -f "$s" ] || "$bin" --quiet simulate --boundaries "$communes" --villages "$villages" \
      --out "$s" --samples "$n" --seed "$seed"
  for run in "${runs[@]}"; do
    # The peer and the bare loop hold every row several times over
    # (4 956 and 2 929 MiB at 10 M): left out where they would not fit, so
    # a 100 M bench still runs.
    per_row=0
    case $run in peer) per_row=520 ;; bare) per_row=310 ;; esac
    if (( per_row > 0 )); then
      avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
      if (( n / 1024 * per_row > avail_kib )); then
        echo "bench_national.sh: $run left out at $n samples: it needs about $((n * per_row >> 30)) GiB, $((avail_kib >> 20)) GiB available" >&2
        skipped+=("$run at $n samples: needs about $((n * per_row >> 30)) GiB ($per_row bytes a row), $((avail_kib >> 20)) GiB were available")
        continue
      fi
    fi
    out=$work/o_${run}_$n
    analyze=("$bin" --quiet --timings analyze --samples "$s" --out "$out")
    case $run in
      job) cmd=("${analyze[@]}" --boundaries "$communes" --heatmap-format parquet) ;;
      full) cmd=("${analyze[@]}" --boundaries "$communes" --villages "$villages") ;;
      dense) cmd=("${analyze[@]}" --boundaries "$dense" --heatmap-format parquet) ;;
      bare) cmd=("$bare" "$s" "$communes" "$out") ;;
      peer) cmd=(python3 notebooks/peer_polars_shapely.py "$s" "$communes" "$out") ;;
    esac
    walls=()
    for ((r = 1; r <= ${GAPMAP_BENCH_REPEAT:-3}; r++)); do
      if ! /usr/bin/time -f "%e %U %S %M" -o "$work/time_$r" "${cmd[@]}" \
          > /dev/null 2> "$work/timings_$r"; then
        cat "$work/timings_$r" >&2
        echo "bench_national.sh: the $run run on $n samples failed (above)" >&2
        exit 1
      fi
      walls+=("$(cut -d' ' -f1 "$work/time_$r") $r")
    done
    # The run of median wall time, and the fastest and slowest wall times.
    mapfile -t sorted < <(printf '%s\n' "${walls[@]}" | sort -n)
    median=${sorted[$(( ${#sorted[@]} / 2 ))]##* }
    range="${sorted[0]%% *}–${sorted[-1]%% *}"
    read -r wall user sys kib < "$work/time_$median"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    rows+=("| $run | $n | $wall | $range | $cpu | $((kib / 1024)) |")
    stages+=("$run $n: $(grep -E '^(gapmap: timing|peer:|bare:) ' "$work/timings_$median" | sed 's/gapmap: timing //; s/peer: //; s/bare: //; s/  */ /g' | paste -sd ';' -)")
    echo "${rows[-1]}" >&2
  done
done
{
  echo
  echo "## $(date -u +%Y-%m-%d) national bench — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), seed $seed"
  echo
  echo "Median of ${GAPMAP_BENCH_REPEAT:-3} runs each (wall range beside it)."
  echo
  echo "| run | samples | wall s | range s | CPU s | peak RSS MiB |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  if [ ${#skipped[@]} -gt 0 ]; then
    echo "Left out: ${skipped[*]}."
    echo
  fi
  echo "Stage wall times (s):"
  echo
  printf -- '- %s\n' "${stages[@]}"
} | tee -a notebooks/bench_results.md
