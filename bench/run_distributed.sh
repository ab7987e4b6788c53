#!/usr/bin/env bash
# Reproduces the distributed-training figures of BENCHMARKS.md and docs/scaling.md: seconds per
# ALS iteration and factor bytes sent per rank per iteration, for P = 1, 2 and 4 processes on
# this host, block exchange against allgather, on the generated 20M-interaction store of the
# MovieLens-20M shape (as bench/run_training.sh), K = 64; and the single-process trainer on the
# same file in the same run, as the baseline. First, the per-interaction and per-row compute cost
# of an iteration at K = 128 that docs/scaling.md extrapolates from (als_bench at 5M and 20M).
#
# Each process gets cores/P oneTBB threads (at least 1), so P = 1 and P = 2 use the same cores;
# on a 2-core machine P = 4 oversubscribes (4 processes on 2 cores): its time is not a speed-up
# figure, its volumes are.
#
# Usage: bench/run_distributed.sh [OUT_DIR] (default /tmp). Writes OUT_DIR/als_bench_k128.json,
# OUT_DIR/distributed-*.json (each run's `--json` line) and OUT_DIR/distributed.md (the table).
# About 20 minutes on 2 cores. COST=0 skips the K = 128 stage.
# Environment: RANKS ("1 2 4"), FEEDBACK ("explicit implicit"), FACTORS (64), ITERATIONS (3),
# INTERACTIONS (20000000), BENCH_NO_BUILD=1 (use the binaries already in build/), VOLUME_CHECK=0
# (skip the P = 16 volume check), MPI_ARGS (more mpiexec options, e.g. the TCP transport on
# loopback instead of shared memory: "--mca btl tcp,self --mca btl_tcp_if_include lo").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp}
mkdir -p "$out"
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  scripts/setup bench
  scripts/build release --target recloop als_bench
fi
if [[ "${COST:-1}" != 0 ]]; then
  echo "== compute cost per iteration at K = 128 (als_bench, 5M and 20M interactions)" >&2
  build/bench/als_bench --sizes=5,20 --factors=128 --repetitions=3 --baseline_size=0 \
    --benchmark_filter='BM_(Implicit|Explicit)AlsIteration/' \
    --benchmark_out="$out/als_bench_k128.json" --benchmark_out_format=json
fi
recloop=build/tools/recloop
interactions=${INTERACTIONS:-20000000}
csv="$out/recloop-ml20m-shape-$interactions.csv"
if [[ ! -s "$csv" ]]; then
  "$recloop" generate --users 138000 --items 27000 --interactions "$interactions" --seed 42 \
    --out "$csv"
fi
cores=$(nproc)
factors=${FACTORS:-64}
iterations=${ITERATIONS:-3}
# --bind-to none: by default OpenMPI binds each of up to 2 processes to one core, and oneTBB then
# runs one thread in it whatever --threads says (a first run here measured P = 1 at 2.5x the
# single-process time that way).
mpi=(mpiexec --oversubscribe --bind-to none)
if [[ $(id -u) -eq 0 ]]; then mpi+=(--allow-run-as-root); fi
# shellcheck disable=SC2206  # MPI_ARGS is a list of words
mpi+=(${MPI_ARGS:-})

for feedback in ${FEEDBACK:-explicit implicit}; do
  common=(train --algorithm als --feedback "$feedback" --factors "$factors"
          --iterations "$iterations" --data "$csv")
  # The single-process trainer: its progress lines carry each iteration's seconds (the loss it
  # also prints is computed outside that time).
  echo "== single process, $feedback" >&2
  "$recloop" --threads "$cores" "${common[@]}" 2> "$out/single-$feedback.log"
  python3 - "$out/single-$feedback.log" "$out/distributed-$feedback-single.json" <<'EOF'
import json, re, sys
seconds = [float(m.group(1)) for m in
           (re.search(r"^iteration .* ([0-9.]+) s$", l.strip()) for l in open(sys.argv[1])) if m]
json.dump({"single_process": True, "iteration_seconds": seconds}, open(sys.argv[2], "w"))
EOF
  for ranks in ${RANKS:-1 2 4}; do
    threads=$((cores / ranks > 0 ? cores / ranks : 1))
    for exchange in block allgather; do
      echo "== P=$ranks ($threads threads each), $exchange, $feedback" >&2
      "${mpi[@]}" -np "$ranks" "$recloop" --threads "$threads" "${common[@]}" --distributed \
        --exchange "$exchange" --json --quiet | tail -n 1 \
        > "$out/distributed-$feedback-$ranks-$exchange.json"
    done
  done
done

# The volume model where the block exchange matters: many processes and few interactions per
# row. 16 processes on 1M interactions of the same shape (7 per user on average), one implicit
# iteration each way: a check of docs/scaling.md's volume formula, not a speed figure.
if [[ "${VOLUME_CHECK:-1}" != 0 ]]; then
  small="$out/recloop-ml20m-shape-1000000.csv"
  if [[ ! -s "$small" ]]; then
    "$recloop" generate --users 138000 --items 27000 --interactions 1000000 --seed 42 \
      --out "$small"
  fi
  for exchange in block allgather; do
    echo "== volume check: P=16, $exchange, 1M interactions" >&2
    "${mpi[@]}" -np 16 "$recloop" --threads 1 train --algorithm als --feedback implicit \
      --factors "$factors" --iterations 1 --data "$small" --distributed --exchange "$exchange" \
      --json --quiet | tail -n 1 > "$out/volume-16-$exchange.json"
  done
fi

python3 - "$out" "$factors" "$iterations" <<'EOF' | tee "$out/distributed.md"
import glob, json, os, statistics, sys
out, factors, iterations = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"K = {factors}, {iterations} iterations per run; medians over the iterations.\n")
print("| feedback | P | exchange | s / iteration | of which exchange + allreduce | "
      "MB sent / rank / iteration (mean) | (max rank) | read + partition s |")
print("|---|---|---|---|---|---|---|---|")
for feedback in ("explicit", "implicit"):
    single = os.path.join(out, f"distributed-{feedback}-single.json")
    if not os.path.exists(single):
        continue
    s = json.load(open(single))
    print(f"| {feedback} | single process | - | {statistics.median(s['iteration_seconds']):.2f} "
          f"| - | - | - | - |")
    for path in sorted(glob.glob(os.path.join(out, f"distributed-{feedback}-[0-9]*-*.json")),
                       key=lambda p: (int(p.split('-')[-2]), p)):
        d = json.load(open(path))["distributed"]
        its = d["iterations"]
        med = lambda key: statistics.median(it[key] for it in its)
        print(f"| {feedback} | {d['ranks']} | {d['exchange']} | {med('seconds'):.2f} "
              f"| {med('exchange_seconds'):.2f} | {med('mean_bytes_sent') / 1e6:.1f} "
              f"| {med('max_bytes_sent') / 1e6:.1f} | {d['read_seconds']:.1f} |")
EOF
