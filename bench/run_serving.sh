#!/usr/bin/env bash
# Reproduces the serving-side figures of BENCHMARKS.md (issue 3): builds in Release, trains two
# implicit models on generated stores and measures them.
#   1. The MovieLens-20M shape (138K users, 27K items, 20M interactions, K = 64): model load time
#      and memory, exact vs HNSW latency and recall, FAISS's OpenMP setting, and
#      `recloop recommend --all` throughput.
#   2. A catalogue of about 1M items (200K users, 20M interactions, K = 64, HNSW index saved by
#      `recloop train --index hnsw`): HNSW build time, latency and recall@10 against exact search.
#   3. query_bench: per-query latency through the Recommender (filters) at 10K/100K/1M items and
#      fold-in, with recloop's kernels against libfaiss's in the same run.
# Takes about 20 minutes on 2 cores. Usage: bench/run_serving.sh [OUT_DIR] (default /tmp/recloop-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-bench}
mkdir -p "$out"
scripts/setup
scripts/build release --target recloop index_bench query_bench
recloop=build/tools/recloop
echo "== $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

echo "== 1. MovieLens-20M shape"
$recloop generate --users 138000 --items 27000 --interactions 20000000 --feedback implicit \
  --seed 42 --out "$out/ml20m-shape.csv"
rm -rf "$out/models-20m"
$recloop train --data "$out/ml20m-shape.csv" --feedback implicit --out "$out/models-20m" 2>&1 |
  grep -v '^iteration'
build/bench/index_bench --model="$out/models-20m" --benchmark_min_time=2
$recloop recommend --model "$out/models-20m" --all --n 100 --out "$out/recs-20m.csv"

echo "== 2. About 1M items"
$recloop generate --users 200000 --items 1040000 --interactions 20000000 --feedback implicit \
  --seed 42 --out "$out/store-1m.csv"
rm -rf "$out/models-1m"
$recloop train --data "$out/store-1m.csv" --feedback implicit --iterations 10 --index hnsw \
  --out "$out/models-1m" 2>&1 | grep -v '^iteration'
build/bench/index_bench --model="$out/models-1m" --benchmark_min_time=2

echo "== 3. query_bench"
build/bench/query_bench
