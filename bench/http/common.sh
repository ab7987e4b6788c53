# Sourced by the HTTP benchmark scripts of bench/ (from the repository root, after `recloop` is
# built into $recloop).

# Prints the date and the machine, the header line of every result file.
bench_machine_line() {
  echo "== $(date -u +%FT%TZ) on $(nproc) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
}

# bench_model OUT INDEX: the benchmark model at OUT/models-INDEX (100K users, 100K items, 5M
# implicit interactions, K = 64), generated and trained if it is not there yet.
bench_model() {
  if [[ ! -e "$1/models-$2/current" ]]; then
    $recloop generate --users 100000 --items 100000 --interactions 5000000 --feedback implicit \
      --seed 7 --out "$1/store-100k.csv"
    $recloop train --data "$1/store-100k.csv" --feedback implicit --factors 64 --iterations 10 \
      --index "$2" --quiet --out "$1/models-$2"
  fi
}

# The server started by the script (set pid=$!), stopped on exit.
pid=""
bench_stop_server() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=""
}
