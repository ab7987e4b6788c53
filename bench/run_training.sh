#!/usr/bin/env bash
# Reproduces the training and loading figures of BENCHMARKS.md: builds in Release, generates the
# 20M-interaction store of the MovieLens-20M shape, measures loading + CSR, then one ALS
# iteration (explicit and implicit, 10M and 20M interactions, K = 64 and 128).
# Takes about 10 minutes on 2 cores. Usage: bench/run_training.sh [OUT_DIR] (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp}
scripts/setup
scripts/build release --target recloop load_bench als_bench
csv="$out/recloop-ml20m-shape.csv"
build/tools/recloop generate --users 138000 --items 27000 --interactions 20000000 --seed 42 \
  --out "$csv"
build/bench/load_bench "$csv" 3
build/bench/als_bench --benchmark_out="$out/als_bench.json" --benchmark_out_format=json
