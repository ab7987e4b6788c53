#!/usr/bin/env bash
# Serving on a shared PostgreSQL (issue 26): in one run, on the same model and the same load,
#   sqlite  one `recloop serve` with its SQLite event store, spoken to directly;
#   pg1-direct  one replica on PostgreSQL, spoken to directly;
#   pg1     the same replica behind nginx (the load balancer of docker/compose.yaml);
#   pg2     two replicas on the same PostgreSQL behind the same nginx.
# For each: reads (GET recommendations of random users, wrk's recommendations.lua, C connections)
# and ingestion (POST /v1/feedback, batches of B random events, wrk's feedback.lua), each for
# SECONDS_PER_RUN seconds, then the events stored. On a 2-core machine the replicas, nginx,
# PostgreSQL and wrk share the same two cores: this measures correctness and overhead, not a
# speed-up (docs/scaling.md turns the per-core figures into replicas per 100K req/s).
# PostgreSQL is a throwaway cluster of Debian's postgresql-15 in OUT_DIR/pg (initdb, loopback,
# fsync on), run as the `postgres` user when this script runs as root.
# Usage: bench/run_replicas.sh [OUT_DIR (default /tmp/recloop-http)]
# Environment: SECONDS_PER_RUN (default 10), CONNECTIONS (default 16), BATCH (default 100),
# PORT (default 18090; the servers and PostgreSQL use the next ports), and those of
# bench/http/common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-10}
conns=${CONNECTIONS:-16}
batch=${BATCH:-100}
port=${PORT:-18090}
pg_port=$((port + 10))
key=bench-replicas-key
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop

pg_bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[[ -x "$pg_bin/initdb" ]] || pg_bin=/usr/lib/postgresql/15/bin
as_pg=()
if [[ $(id -u) -eq 0 ]]; then as_pg=(runuser -u postgres --); fi
pg_dir="$out/pg"
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
stop_pg() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true; }
trap 'stop_all; stop_pg' EXIT

bench_machine_line
bench_model "$out" auto
printf '%s\n' "$key" >"$out/replicas.key"
chmod 600 "$out/replicas.key"

# A fresh cluster, fsync on (acknowledged means on disk, as with SQLite's synchronous=FULL).
stop_pg
rm -rf "$pg_dir"
mkdir -p "$pg_dir"
if ((${#as_pg[@]})); then chown postgres "$pg_dir"; fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" --auth=trust -U postgres >"$pg_dir/initdb.log"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
  "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_dir -c max_connections=200" \
  start >/dev/null
pg_url() { echo "postgresql://postgres@127.0.0.1:$pg_port/$1"; }

serve() {  # serve PORT EVENTS CATALOG LOG: starts a server in the background
  $recloop serve --models "$bench_model_dir" --port "$1" --events "$2" --catalog "$3" \
    --api-key-file "$out/replicas.key" --retrain-events 0 --retrain-minutes 0 2>"$4" &
  pids+=($!)
  bench_wait_ready "http://127.0.0.1:$1/readyz"
  bench_wait_warm "http://127.0.0.1:$1"
}

nginx_front() {  # nginx_front PORT UPSTREAM_PORT...: nginx balancing over the upstreams
  local conf="$out/nginx-replicas.conf" servers=""
  local front_port=$1
  shift
  for p in "$@"; do servers+="    server 127.0.0.1:$p;"$'\n'; done
  cat >"$conf" <<EOF
worker_processes 1;
daemon off;
pid $out/nginx-replicas.pid;
error_log $out/nginx-replicas-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream recloop {
$servers    keepalive 64;
  }
  server {
    listen 127.0.0.1:$front_port;
    client_max_body_size 16m;
    location / {
      proxy_pass http://recloop;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  nginx -c "$conf" -e "$out/nginx-replicas-error.log" &
  pids+=($!)
  bench_wait_ready "http://127.0.0.1:$front_port/healthz"
}

reads() {  # reads URL: wrk's RESULT line
  USERS=$bench_users wrk -t2 -c"$conns" -d"${seconds}s" -s bench/http/recommendations.lua "$1" |
    grep '^RESULT'
}
ingest() {  # ingest URL: wrk's RESULT line
  BATCH=$batch RATE=0 CONNECTIONS=$conns USERS=$bench_users ITEMS=$bench_items \
    AUTH="Bearer $key" wrk -t2 -c"$conns" -d"${seconds}s" -s bench/http/feedback.lua "$1" |
    grep '^RESULT'
}

: >"$out/replicas.txt"
report() {  # report SETUP READS INGEST STORED
  printf '%s reads: %s\n%s ingest: %s stored=%s\n' "$1" "$2" "$1" "$3" "$4" |
    tee -a "$out/replicas.txt"
}

# sqlite: one server, spoken to directly.
rm -f "$out"/replicas-events.db* "$out"/replicas-catalog.db*
serve $((port + 1)) "$out/replicas-events.db" "$out/replicas-catalog.db" "$out/serve-sqlite.log"
r=$(reads "http://127.0.0.1:$((port + 1))")
i=$(ingest "http://127.0.0.1:$((port + 1))")
stop_all
report sqlite "$r" "$i" "$(sqlite3 "$out/replicas-events.db" 'select count(*) from events')"

for n in 1 2; do
  db="replicas$n"
  "${as_pg[@]}" "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -c "DROP DATABASE IF EXISTS $db" \
    -c "CREATE DATABASE $db" postgres
  upstreams=()
  for r_i in $(seq 1 "$n"); do
    serve $((port + 1 + r_i)) "$(pg_url "$db")" "$(pg_url "$db")" "$out/serve-pg$n-$r_i.log"
    upstreams+=($((port + 1 + r_i)))
  done
  count() { "${as_pg[@]}" "$pg_bin/psql" -tA -h 127.0.0.1 -p "$pg_port" -U postgres \
    -c 'select count(*) from events' "$db"; }
  # Reads first (they do not touch PostgreSQL), then ingestion (which folds users in again and
  # invalidates their cached lists); with one replica, each also without the balancer: what
  # the proxy hop costs.
  direct="http://127.0.0.1:$((port + 2))"
  ((n == 1)) && rd=$(reads "$direct")
  nginx_front "$port" "${upstreams[@]}"
  r=$(reads "http://127.0.0.1:$port")
  if ((n == 1)); then
    id=$(ingest "$direct")
    report pg1-direct "$rd" "$id" "$(count)"
  fi
  before=$(count)
  i=$(ingest "http://127.0.0.1:$port")
  stop_all
  report "pg$n" "$r" "$i" "$(($(count) - before))"
done
