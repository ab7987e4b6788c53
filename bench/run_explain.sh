#!/usr/bin/env bash
# The cost of explain=true (issue 25, item 5): `recloop serve` on the default model of
# bench/run_http.sh (100K users and items, K 64, trained there if missing) answers random users'
# top 10 with and without explain=true, from 16 connections, ROUNDS alternating pairs of runs in
# one session; prints each run and the medians of throughput and p50/p99 with their ratios.
# An explained request folds nothing: it adds one factorisation of the user's system over their
# history (K x K) and a solve per listed item (engine/fold_in.h FoldIn::Explain).
# Usage: bench/run_explain.sh [OUT_DIR (default /tmp/recloop-http)]
# Environment: SECONDS_PER_RUN (default 10), ROUNDS (default 3), CONNECTIONS (default 16),
# PORT (default 18083), SERVE_FLAGS, and those of bench/http/common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-16}
port=${PORT:-18083}
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop
trap bench_stop_server EXIT

bench_machine_line
bench_model "$out" auto
# shellcheck disable=SC2086  # SERVE_FLAGS is a list of flags
$recloop serve --models "$bench_model_dir" --port "$port" ${SERVE_FLAGS:-} \
  2>"$out/serve-explain.log" &
pid=$!
bench_wait_ready "http://127.0.0.1:$port/readyz"
bench_wait_warm "http://127.0.0.1:$port"

run() {  # run NAME QUERY
  USERS=$bench_users QUERY=$2 wrk -t2 -c"$conns" -d2s -s bench/http/recommendations.lua \
    "http://127.0.0.1:$port" >/dev/null
  local line
  line=$(USERS=$bench_users QUERY=$2 wrk -t2 -c"$conns" -d"${seconds}s" \
    -s bench/http/recommendations.lua "http://127.0.0.1:$port" | grep '^RESULT')
  echo "$1 c=$conns $line" | tee -a "$out/explain.txt"
}

: >"$out/explain.txt"
for _ in $(seq 1 "$rounds"); do
  run plain ""
  run explain "&explain=true"
done
awk '
  function med(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    k = $1; n[k]++
    for (f = 3; f <= NF; f++) { split($f, kv, "="); v[k, kv[1], n[k]] = kv[2] }
  }
  END {
    for (k in n) for (m = 1; m <= n[k]; m++) { r[k, m] = v[k, "rps", m]; p50[k, m] = v[k, "p50_ms", m]; p99[k, m] = v[k, "p99_ms", m] }
    split("plain explain", ks, " ")
    for (x = 1; x <= 2; x++) {
      k = ks[x]
      for (m = 1; m <= n[k]; m++) { a[m] = r[k, m]; b[m] = p50[k, m]; c[m] = p99[k, m] }
      mr[k] = med(a, n[k]); m50[k] = med(b, n[k]); m99[k] = med(c, n[k])
      printf "%s: median req/s %d, p50 %.3f ms, p99 %.3f ms (%d runs)\n", k, mr[k], m50[k], m99[k], n[k]
    }
    printf "explain/plain: throughput %.2f, p50 %.2fx, p99 %.2fx\n", mr["explain"] / mr["plain"], m50["explain"] / m50["plain"], m99["explain"] / m99["plain"]
  }' "$out/explain.txt"
errors=$(grep -o 'errors=[0-9]*' "$out/explain.txt" | grep -v 'errors=0' || true)
if [[ -n "$errors" ]]; then echo "run_explain: some runs had errors: $errors" >&2; fi
