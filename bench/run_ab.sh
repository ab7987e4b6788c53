#!/usr/bin/env bash
# A/B of two serving configurations in one session (issue 25's cost figures): two `recloop serve`
# processes on the default model of bench/run_http.sh (100K users and items, K 64, trained there
# if missing), A with A_FLAGS and B with B_FLAGS, both with an event store of their own; wrk asks
# each for random users' top 10 (plus A_QUERY or B_QUERY) from CONNECTIONS connections,
# ROUNDS alternating pairs of runs; prints each run and the medians of throughput and p50/p99
# with B's ratios to A. Only the server being measured gets requests: the other is idle.
# Usage: bench/run_ab.sh [OUT_DIR (default /tmp/recloop-http)]
# Environment: A_NAME, B_NAME (labels), A_FLAGS, B_FLAGS, A_QUERY, B_QUERY (e.g.
# "&explain=true"), SECONDS_PER_RUN (default 10), ROUNDS (default 3), CONNECTIONS (default 16),
# PORT (A's, default 18083; B's is PORT+1), and those of bench/http/common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-16}
port=${PORT:-18083}
a_name=${A_NAME:-A}
b_name=${B_NAME:-B}
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop
second_pid=""
stop_both() {
  bench_stop_server
  if [[ -n "$second_pid" ]]; then kill "$second_pid" 2>/dev/null || true; wait "$second_pid" 2>/dev/null || true; fi
}
trap stop_both EXIT

bench_machine_line
bench_model "$out" auto
rm -f "$out"/ab-a-events.db* "$out"/ab-b-events.db*
# shellcheck disable=SC2086  # A_FLAGS and B_FLAGS are lists of flags
$recloop serve --models "$bench_model_dir" --port "$port" --events "$out/ab-a-events.db" \
  ${A_FLAGS:-} 2>"$out/serve-ab-a.log" &
pid=$!
# shellcheck disable=SC2086
$recloop serve --models "$bench_model_dir" --port "$((port + 1))" \
  --events "$out/ab-b-events.db" ${B_FLAGS:-} 2>"$out/serve-ab-b.log" &
second_pid=$!
for p in "$port" "$((port + 1))"; do
  bench_wait_ready "http://127.0.0.1:$p/readyz"
  bench_wait_warm "http://127.0.0.1:$p"
done

run() {  # run NAME PORT QUERY
  USERS=$bench_users QUERY=$3 wrk -t2 -c"$conns" -d2s -s bench/http/recommendations.lua \
    "http://127.0.0.1:$2" >/dev/null
  local line
  line=$(USERS=$bench_users QUERY=$3 wrk -t2 -c"$conns" -d"${seconds}s" \
    -s bench/http/recommendations.lua "http://127.0.0.1:$2" | grep '^RESULT')
  echo "$1 c=$conns $line" | tee -a "$out/ab.txt"
}

: >"$out/ab.txt"
for _ in $(seq 1 "$rounds"); do
  run "$a_name" "$port" "${A_QUERY:-}"
  run "$b_name" "$((port + 1))" "${B_QUERY:-}"
done
awk -v a="$a_name" -v b="$b_name" '
  function med(x, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
  }
  {
    k = $1; n[k]++
    for (f = 3; f <= NF; f++) { split($f, kv, "="); v[k, kv[1], n[k]] = kv[2] }
  }
  END {
    split(a " " b, ks, " ")
    for (x = 1; x <= 2; x++) {
      k = ks[x]
      for (m = 1; m <= n[k]; m++) { r[m] = v[k, "rps", m]; p5[m] = v[k, "p50_ms", m]; p9[m] = v[k, "p99_ms", m] }
      mr[k] = med(r, n[k]); m50[k] = med(p5, n[k]); m99[k] = med(p9, n[k])
      printf "%s: median req/s %d, p50 %.3f ms, p99 %.3f ms (%d runs)\n", k, mr[k], m50[k], m99[k], n[k]
    }
    printf "%s/%s: throughput %.3f, p50 %.2fx, p99 %.2fx\n", b, a, mr[b] / mr[a], m50[b] / m50[a], m99[b] / m99[a]
  }' "$out/ab.txt"
errors=$(grep -o 'errors=[0-9]*' "$out/ab.txt" | grep -v 'errors=0' || true)
if [[ -n "$errors" ]]; then echo "run_ab: some runs had errors: $errors" >&2; fi
