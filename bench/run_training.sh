#!/usr/bin/env bash
# Reproduces the training and loading figures of BENCHMARKS.md: builds in Release, generates the
# 20M-interaction store of the MovieLens-20M shape, measures loading + CSR, then one ALS
# iteration (explicit and implicit, 10M and 20M interactions, K = 64 and 128).
# Takes about 10 minutes on 2 cores. Usage: bench/run_training.sh [OUT_DIR] (default /tmp).
# Writes OUT_DIR/load_bench.txt (load_bench's output) and OUT_DIR/als_bench.json (Google
# Benchmark's JSON).
# Environment: INTERACTIONS (the store load_bench reads, default 20000000), LOAD_REPS (default 3),
# ALS_FLAGS (more flags for als_bench, e.g. "--sizes=1,5,20 --factors=64": see
# bench/als_bench.cc), BENCH_NO_BUILD=1 (use the binaries already in build/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp}
mkdir -p "$out"
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  scripts/setup
  scripts/build release --target recloop load_bench als_bench
fi
csv="$out/recloop-ml20m-shape.csv"
build/tools/recloop generate --users 138000 --items 27000 \
  --interactions "${INTERACTIONS:-20000000}" --seed 42 --out "$csv"
build/bench/load_bench "$csv" "${LOAD_REPS:-3}" | tee "$out/load_bench.txt"
# shellcheck disable=SC2086  # ALS_FLAGS is a list of flags
build/bench/als_bench ${ALS_FLAGS:-} --benchmark_out="$out/als_bench.json" \
  --benchmark_out_format=json
