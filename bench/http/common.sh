# shellcheck shell=bash
# Sourced by the benchmark scripts of bench/ (from the repository root). Sets $recloop.
#
# Environment shared by every script:
#   RECLOOP_BIN         the recloop binary to measure (default build/tools/recloop; e.g. a copy of
#                       another build, for an A/B comparison in one session)
#   BENCH_NO_BUILD=1    use the binaries already in build/ (bench/run-all has built them) and skip
#                       scripts/setup and scripts/build
#   BENCH_USERS, BENCH_ITEMS, BENCH_INTERACTIONS, BENCH_FACTORS
#                       the benchmark model's shape (default 100000, 100000, 5000000, 64)
#   BENCH_ALGORITHM     the served model kind: empty (default) for the one `recloop train` picks
#                       by itself, or als, ease, bpmf (the model lives in models-INDEX-ALGORITHM)
#   BENCH_FEEDBACK      implicit (default) or explicit (ratings 1-5, e.g. for bpmf)
#   BENCH_TRAIN_FLAGS   more flags for `recloop train` (e.g. "--burn-in 20 --samples 5" for bpmf)
recloop=${RECLOOP_BIN:-build/tools/recloop}
bench_users=${BENCH_USERS:-100000}
bench_items=${BENCH_ITEMS:-100000}
bench_interactions=${BENCH_INTERACTIONS:-5000000}
bench_factors=${BENCH_FACTORS:-64}
bench_algorithm=${BENCH_ALGORITHM:-}
bench_feedback=${BENCH_FEEDBACK:-implicit}

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

# bench_model OUT INDEX: the benchmark model at $bench_model_dir = OUT/models-INDEX (with
# -ALGORITHM when BENCH_ALGORITHM is set: BENCH_USERS users, BENCH_ITEMS items,
# BENCH_INTERACTIONS interactions of BENCH_FEEDBACK, K = BENCH_FACTORS, 10 iterations), generated
# and trained if it is not there yet or has another shape. OUT/model-NAME.txt has the shape on
# its first line, then generate's and train's reports (train time, index build time, the beam
# `--index auto` calibrated).
bench_model() {
  local name="$2${bench_algorithm:+-$bench_algorithm}"
  bench_model_dir="$1/models-$name"
  # "auto2": --index auto calibrates its beam since issue 21; older auto models are rebuilt.
  local shape="users=$bench_users items=$bench_items interactions=$bench_interactions"
  shape+=" factors=$bench_factors index=$2 auto2 algorithm=${bench_algorithm:-default}"
  shape+=" feedback=$bench_feedback flags=${BENCH_TRAIN_FLAGS:-}"
  if [[ -e "$bench_model_dir/current" ]] && grep -qxF "$shape" "$1/model-$name.txt" 2>/dev/null
  then
    return 0
  fi
  rm -rf "$bench_model_dir"
  local store="$1/store-model-$bench_feedback.csv"
  {
    echo "$shape"
    $recloop generate --users "$bench_users" --items "$bench_items" --feedback "$bench_feedback" \
      --interactions "$bench_interactions" --seed 7 --out "$store" 2>&1
    # shellcheck disable=SC2086  # BENCH_TRAIN_FLAGS is a list of flags
    $recloop train --data "$store" --feedback "$bench_feedback" --factors "$bench_factors" \
      --iterations 10 --index "$2" ${bench_algorithm:+--algorithm "$bench_algorithm"} \
      ${BENCH_TRAIN_FLAGS:-} --out "$bench_model_dir" 2>&1 | grep -v '^iteration'
  } >"$1/model-$name.txt"
  cat "$1/model-$name.txt"
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

# bench_wait_warm URL: waits until the server at URL (http://host:port) has finished its ranked
# cache's first warming pass (/metrics recloop_ranked_cache_warm_passes_total >= 1), so that a
# measurement starts warm, as a long-running server is; at once if it has no ranked cache.
# Bounded: 600 s.
bench_wait_warm() {
  local metrics
  for _ in $(seq 1 6000); do
    metrics=$(curl -fs "$1/metrics")
    grep -q '^recloop_ranked_cache_warm_passes_total' <<<"$metrics" || return 0
    grep -q '^recloop_ranked_cache_warm_passes_total 0$' <<<"$metrics" || return 0
    sleep 0.1
  done
}

# The server started by the script (set pid=$!), stopped on exit.
pid=""
bench_stop_server() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=""
}
