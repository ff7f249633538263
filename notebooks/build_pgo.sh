#!/usr/bin/env bash
# A profile-guided build of gapmap for a server that runs the national job:
# an instrumented build runs a training job (1 M simulated national
# samples, seeded: the job from Parquet and from CSV, and the full analysis
# with villages), then the compiler optimises with the profiles it wrote.
# The outputs are the same as the standard build's (the test suite and a
# `cmp` of every output check that); only the time differs. Measured figures:
# README, "Faster builds for a server".
#
# Usage: notebooks/build_pgo.sh        → target/pgo/gapmap
# Needs llvm-profdata of the LLVM that rustc uses (`rustc -vV`; Debian:
# `apt-get install llvm-22` for rustc 1.95), or LLVM_PROFDATA; ../shared/data/vn
# (or GAPMAP_SHARED_DATA). Extra flags for both builds (for example
# `-C target-cpu=native`) in GAPMAP_PGO_RUSTFLAGS. Two release builds from
# scratch: about 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=${LLVM_PROFDATA:-$(command -v "llvm-profdata-$llvm" || echo "/usr/lib/llvm-$llvm/bin/llvm-profdata")}
if ! [ -x "$profdata" ]; then
  echo "build_pgo.sh: no llvm-profdata for LLVM $llvm (rustc's); install llvm-$llvm or set LLVM_PROFDATA" >&2
  exit 1
fi
shared=${GAPMAP_SHARED_DATA:-../shared/data/vn}
[ -d "$shared/boundaries_2009" ] || shared=$shared/vn
communes=$shared/boundaries_2009/communes.geojson
villages=$shared/villages_wof.geojson
extra=${GAPMAP_PGO_RUSTFLAGS:-}
pgo=$PWD/target/pgo
rm -rf "$pgo/profiles" "$pgo/train"
mkdir -p "$pgo/profiles" "$pgo/train"

echo "build_pgo.sh: instrumented build" >&2
RUSTFLAGS="$extra -Cprofile-generate=$pgo/profiles" \
  cargo build --release --locked -p gapmap --target-dir "$pgo/generate"
gen=$pgo/generate/release/gapmap

echo "build_pgo.sh: training runs" >&2
t=$pgo/train
"$gen" --quiet simulate --boundaries "$communes" --villages "$villages" \
  --out "$t/s.parquet" --samples 1000000 --seed 42
"$gen" --quiet simulate --boundaries "$communes" --villages "$villages" \
  --out "$t/s.csv" --samples 300000 --seed 7
"$gen" --quiet analyze --samples "$t/s.parquet" --boundaries "$communes" \
  --heatmap-format parquet --out "$t/job" > /dev/null
"$gen" --quiet analyze --samples "$t/s.csv" --boundaries "$communes" \
  --heatmap-format parquet --out "$t/job_csv" > /dev/null
"$gen" --quiet analyze --samples "$t/s.parquet" --boundaries "$communes" \
  --villages "$villages" --out "$t/full" > /dev/null
"$profdata" merge -o "$pgo/merged.profdata" "$pgo/profiles"

echo "build_pgo.sh: optimised build" >&2
RUSTFLAGS="$extra -Cprofile-use=$pgo/merged.profdata" \
  cargo build --release --locked -p gapmap --target-dir "$pgo/use"
cp "$pgo/use/release/gapmap" "$pgo/gapmap"
echo "build_pgo.sh: $pgo/gapmap" >&2
