# shellcheck shell=bash
# Sourced by the benchmark scripts of bench/ (from the repository root). Sets $recloop.
#
# Environment shared by every script:
#   BENCH_NO_BUILD=1    use the binaries already in build/ (bench/run-all has built them) and skip
#                       scripts/setup and scripts/build
#   BENCH_USERS, BENCH_ITEMS, BENCH_INTERACTIONS, BENCH_FACTORS
#                       the benchmark model's shape (default 100000, 100000, 5000000, 64)
recloop=build/tools/recloop
bench_users=${BENCH_USERS:-100000}
bench_items=${BENCH_ITEMS:-100000}
bench_interactions=${BENCH_INTERACTIONS:-5000000}
bench_factors=${BENCH_FACTORS:-64}

# bench_prepare TARGET...: installs the bench packages and builds TARGETs in Release.
bench_prepare() {
  if [[ "${BENCH_NO_BUILD:-0}" == 1 ]]; then return 0; fi
  scripts/setup bench
  scripts/build release --target "$@"
}

# Prints the date and the machine, the header line of every result file.
bench_machine_line() {
  echo "== $(date -u +%FT%TZ) on $(nproc) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
}

# bench_model OUT INDEX: the benchmark model at OUT/models-INDEX (BENCH_USERS users, BENCH_ITEMS
# items, BENCH_INTERACTIONS implicit interactions, K = BENCH_FACTORS, 10 iterations), generated
# and trained if it is not there yet or has another shape. OUT/model-INDEX.txt has the shape on
# its first line, then generate's and train's reports (train time, index build time).
bench_model() {
  local shape="users=$bench_users items=$bench_items interactions=$bench_interactions"
  shape+=" factors=$bench_factors index=$2"
  if [[ -e "$1/models-$2/current" ]] && grep -qxF "$shape" "$1/model-$2.txt" 2>/dev/null; then
    return 0
  fi
  rm -rf "$1/models-$2"
  {
    echo "$shape"
    $recloop generate --users "$bench_users" --items "$bench_items" --feedback implicit \
      --interactions "$bench_interactions" --seed 7 --out "$1/store-model.csv" 2>&1
    $recloop train --data "$1/store-model.csv" --feedback implicit --factors "$bench_factors" \
      --iterations 10 --index "$2" --out "$1/models-$2" 2>&1 | grep -v '^iteration'
  } >"$1/model-$2.txt"
  cat "$1/model-$2.txt"
}

# bench_wait_ready URL: polls URL until it answers 200 (bounded: 60 s); exits the script if not.
bench_wait_ready() {
  for _ in $(seq 1 600); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "$(basename "$0"): $1 did not become ready" >&2
  exit 1
}

# The server started by the script (set pid=$!), stopped on exit.
pid=""
bench_stop_server() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=""
}
