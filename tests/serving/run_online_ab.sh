#!/usr/bin/env bash
# The online gate in a simulated A/B run (issue 25, item 3): tests/serving/online_gate_test.cc
# over several shopper seeds and gate sizes. Each run serves generated shoppers, whose choices
# follow the store's planted taste, from two model versions of different quality over real
# sockets: the worse candidate must be refused, the better one promoted. Prints, per gate size,
# how many runs decided right and the lists per arm at the decision (the test's gate checks
# every 5 ms, so a decision lands a little after both arms reach the size). Not a speed
# benchmark, so it lives beside the test it runs; its figures are in BENCHMARKS.md.
# Usage: tests/serving/run_online_ab.sh [BUILD_DIR]   (default: build; BENCH_NO_BUILD=1 skips
# the build)
# Environment: SEEDS (default 10), SIZES (default "25 50 100 250").
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
seeds=${SEEDS:-10}
sizes=${SIZES:-25 50 100 250}
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
  cmake --build "$build" --target serving_test >/dev/null
fi
printf '%-18s %6s %9s %8s %22s\n' candidate "min" "runs" "right" "lists per arm (median)"
for size in $sizes; do
  for run in worse better; do
    filter=OnlineGateTest.RefusesAWorseModelAndTheLiveOneStays
    want=refused
    if [[ $run == better ]]; then
      filter=OnlineGateTest.PromotesABetterModelToEveryCustomer
      want=promoted
    fi
    right=0
    lists=()
    for seed in $(seq 1 "$seeds"); do
      line=$(RECLOOP_AB_SEED=$seed RECLOOP_AB_MIN_IMPRESSIONS=$size \
        "$build/tests/serving_test" --gtest_filter="$filter" 2>/dev/null |
        grep '^simulated A/B' || true)
      [[ -n $line ]] || { echo "seed $seed: no result line" >&2; continue; }
      [[ $line == *": $want after"* ]] && right=$((right + 1))
      control=$(sed -E 's/.*control ([0-9]+) lists.*/\1/' <<<"$line")
      candidate=$(sed -E 's/.*candidate ([0-9]+)\).*/\1/' <<<"$line")
      lists+=($((control < candidate ? control : candidate)))
    done
    median=$(printf '%s\n' "${lists[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-18s %6s %9s %8s %22s\n' "$run" "$size" "$seeds" "$right" "$median"
  done
done
