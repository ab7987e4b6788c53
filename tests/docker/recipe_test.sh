#!/usr/bin/env bash
# The container recipe (docker/recipe) without a Docker engine: installs this build tree's
# `recloop` as the image's build stage does, verifies its libraries against the runtime package
# list (with the machine's BLAS and LAPACK, and with another provider of their alternatives), checks
# that the Dockerfile runs nothing but the recipe, then serves from the installed binary as the
# image does and checks the image's health check against it, up and down.
# Usage: recipe_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail

src=$1
build=$2
recipe=$src/docker/recipe
dockerfile=$src/docker/Dockerfile
tmp=$(mktemp -d)
server_pid=

cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "the Dockerfile runs only recipe subcommands"
# Continuation lines joined, so that a RUN split over lines is read whole.
dockerfile_text=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile")
known=(setup build install runtime-packages install-runtime verify pinned-alternatives healthcheck)
used=()
while IFS= read -r line; do
  # The recipe and its arguments, nothing chained to it.
  [[ $line =~ ^RUN[[:space:]]+([^[:space:]]*/)?recipe[[:space:]]+([a-z-]+)([[:space:]]+[^\;\&\|\<\>\`\$]*)?$ ]] ||
    fail "a RUN line does not go through docker/recipe alone: $line"
  used+=("${BASH_REMATCH[2]}")
done < <(grep -E '^RUN[[:space:]]' <<<"$dockerfile_text")
grep -Eq '^HEALTHCHECK .*recipe", "healthcheck"' <<<"$dockerfile_text" ||
  fail "the HEALTHCHECK does not run the recipe's healthcheck"
used+=(healthcheck)
for sub in "${used[@]}"; do
  [[ " ${known[*]} " == *" $sub "* ]] || fail "the Dockerfile runs an unknown recipe step '$sub'"
done
for sub in setup build install-runtime verify; do
  [[ " ${used[*]} " == *" $sub "* ]] || fail "the Dockerfile never runs recipe $sub"
done
grep -Eq '^FROM debian:12 AS build' <<<"$dockerfile_text" || fail "build stage is not debian:12"
grep -Eq '^FROM debian:12-slim' <<<"$dockerfile_text" || fail "runtime stage is not debian:12-slim"

step "recipe install: cmake --install of $build (no rebuild)"
prefix=$tmp/opt/recloop
"$recipe" install "$build" "$prefix"
bin=$prefix/bin/recloop

step "recipe verify: every library found, all from the runtime packages"
"$recipe" verify "$prefix"
# And it refuses a binary with a library outside the list (ls loads libselinux).
mkdir -p "$tmp/other/bin"
cp /usr/bin/ls "$tmp/other/bin/recloop"
if "$recipe" verify "$tmp/other" 2>"$tmp/verify.err"; then
  fail "recipe verify accepted a binary with libraries outside the runtime packages"
fi
grep -q "not in the runtime packages" "$tmp/verify.err" || fail "unexpected verify error: $(cat "$tmp/verify.err")"

step "recipe verify with BLAS and LAPACK switched to another provider"
# A machine may select another provider of the libblas.so.3/liblapack.so.3 alternatives than the
# image (OpenBLAS, on most machines with numpy). For each, another registered provider than the
# selected one; ldd finds it first through LD_LIBRARY_PATH, which loads exactly what
# `update-alternatives --set` to it would, without changing the machine.
switched_dirs=()
switched_pkgs=()
for lib in libblas.so.3 liblapack.so.3; do
  group=$(update-alternatives --get-selections | awk -v l="$lib" 'index($1, l "-") == 1 && !n++ { print $1 }')
  [[ -n $group ]] || fail "no update-alternatives link for $lib"
  current=$(readlink -f "$(update-alternatives --query "$group" | sed -n 's/^Value: //p')")
  other=
  while read -r alt; do
    if [[ $(readlink -f "$alt") != "$current" ]]; then other=$alt; break; fi
  done < <(update-alternatives --list "$group")
  [[ -n $other ]] || fail "$lib has one provider here ($current); bash scripts/setup installs" \
    "libopenblas0-pthread, a second one, for this test"
  switched_dirs+=("$(dirname "$other")")
  owner_line=$(dpkg -S "$(readlink -f "$other")" | sed -n 1p)
  switched_pkgs+=("${owner_line%%:*}")
  echo "   $lib: $current selected, checking $other (${owner_line%%:*})"
done
switched_path=$(IFS=:; echo "${switched_dirs[*]}")
ldd_out=$(LD_LIBRARY_PATH=$switched_path ldd "$bin")
for dir in "${switched_dirs[@]}"; do
  grep -q "=> $dir/" <<<"$ldd_out" || fail "ldd did not load a library from $dir: $ldd_out"
done
LD_LIBRARY_PATH=$switched_path "$recipe" verify "$prefix" 2>"$tmp/verify-switched.err" ||
  fail "recipe verify refused the binary with another BLAS provider: $(cat "$tmp/verify-switched.err")"
runtime_list=$("$recipe" runtime-packages)
for pkg in "${switched_pkgs[@]}"; do
  if ! grep -qx "$pkg" <<<"$runtime_list"; then
    grep -q "of $pkg, an alternative to the image's" "$tmp/verify-switched.err" ||
      fail "verify did not name the provider $pkg: $(cat "$tmp/verify-switched.err")"
  fi
done
# A library of the same name that no package registered as an alternative is still refused.
mkdir -p "$tmp/unregistered"
cp "$current" "$tmp/unregistered/liblapack.so.3"  # $current: the selected liblapack.so.3
if LD_LIBRARY_PATH=$tmp/unregistered "$recipe" verify "$prefix" 2>"$tmp/verify.err"; then
  fail "recipe verify accepted a liblapack.so.3 that belongs to no package"
fi
grep -q "unregistered/liblapack.so.3 (liblapack.so.3) belongs to no Debian package" "$tmp/verify.err" ||
  fail "unexpected verify error: $(cat "$tmp/verify.err")"

step "the image pins the BLAS and LAPACK it ships"
pins=$("$recipe" pinned-alternatives)
[[ $(grep -c . <<<"$pins") -ge 2 ]] || fail "pinned-alternatives printed: $pins"
while read -r name path; do
  owner_line=$(dpkg -S "$path" | sed -n 1p)
  [[ ${owner_line%%:*} == libblas3 || ${owner_line%%:*} == liblapack3 ]] ||
    fail "$name is pinned to $path of ${owner_line%%:*}, not the image's libblas3/liblapack3"
  update-alternatives --list "$name" | grep -x "$path" >/dev/null || fail "$path is no alternative of $name"
done <<<"$pins"

step "the image's command never serves open: it creates an API key in the volume"
# The CMD's JSON array as arguments, the volume moved to $tmp/data, on 127.0.0.1 and a free port.
cmd_line=$(grep -E '^CMD \[' <<<"$dockerfile_text") || fail "no CMD [...] in the Dockerfile"
cmd_line=${cmd_line#CMD [}
cmd_line=${cmd_line%]}
image_args=()
while IFS= read -r arg; do
  arg=${arg//\/var\/lib\/recloop/$tmp/data}
  [[ $arg == 0.0.0.0 ]] && arg=127.0.0.1
  [[ $arg == 8080 ]] && arg=0
  image_args+=("$arg")
done < <(sed -e 's/^[[:space:]]*"//' -e 's/"[[:space:]]*$//' -e 's/"[[:space:]]*,[[:space:]]*"/\n/g' \
           <<<"$cmd_line")
[[ " ${image_args[*]} " == *" --create-api-key-file "* && " ${image_args[*]} " == *" --api-key-file "* ]] ||
  fail "the image's command does not create an API key: ${image_args[*]}"
mkdir -p "$tmp/data/models"

# Starts `recloop serve` with the image's command (on 127.0.0.1 and a free port) and sets
# $port from its "listening on" line.
start_server() {
  # Emptied first: the shell truncates it in the child, after the loop below may have read the
  # previous server's "listening on" line (and port).
  : >"$tmp/serve.err"
  "$bin" --threads 2 "${image_args[@]}" --io-threads 2 --drain-timeout-ms 2000 \
    2>"$tmp/serve.err" &
  server_pid=$!
  local i
  for ((i = 0; i < 300; i++)); do
    if grep -q 'listening on' "$tmp/serve.err"; then break; fi
    kill -0 "$server_pid" 2>/dev/null || fail "recloop serve exited: $(cat "$tmp/serve.err")"
    sleep 0.1
  done
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$tmp/serve.err")
  [[ -n $port ]] || fail "recloop serve did not listen within 30 s: $(cat "$tmp/serve.err")"
}

# SIGTERM, as `docker stop` sends: the server drains and exits 0.
stop_server() {
  kill -TERM "$server_pid"
  local status=0
  wait "$server_pid" || status=$?
  server_pid=
  ((status == 0)) || fail "recloop serve exited $status on SIGTERM: $(cat "$tmp/serve.err")"
}

# The status line of POST /v1/feedback with an empty batch and the Authorization header $1.
post_feedback_status() {
  local line auth=
  [[ -z $1 ]] || auth="Authorization: $1"$'\r\n'
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%sContent-Length: 2\r\nConnection: close\r\n\r\n[]' \
    "$auth" >&3
  IFS= read -r line <&3
  exec 3<&-
  printf '%s\n' "${line%$'\r'}"
}

step "a first start on an empty volume: healthy, not ready, writes closed"
start_server
key_file=$tmp/data/api-key
[[ -f $key_file ]] || fail "the first start did not create $key_file: $(cat "$tmp/serve.err")"
[[ $(stat -c %a "$key_file") == 600 ]] || fail "$key_file has mode $(stat -c %a "$key_file")"
key=$(head -n1 "$key_file")
((${#key} >= 32)) || fail "the created key is too short"
grep -q "$key_file" "$tmp/serve.err" || fail "the log does not name $key_file"
if grep -qF "$key" "$tmp/serve.err"; then fail "the log shows the key itself"; fi
status=$(post_feedback_status "")
[[ $status == "HTTP/1.1 401"* ]] || fail "POST /v1/feedback without a key answered '$status'"
status=$(post_feedback_status "Bearer $key")
[[ $status != "HTTP/1.1 401"* ]] || fail "POST /v1/feedback with the created key answered '$status'"
"$recipe" healthcheck "http://127.0.0.1:$port/healthz" || fail "healthcheck failed without a model"
if "$recipe" healthcheck "http://127.0.0.1:$port/readyz" 2>/dev/null; then
  fail "/readyz answered 200 without a model"
fi
stop_server

step "a model in the volume (recloop demo, small)"
"$bin" --threads 2 demo --users 300 --items 100 --interactions 6000 --quiet \
  --models "$tmp/data/models" >/dev/null

step "serving it: the health check passes"
start_server
"$recipe" healthcheck "http://127.0.0.1:$port/healthz" || fail "healthcheck failed on a live server"
"$recipe" healthcheck "http://127.0.0.1:$port/readyz" || fail "/readyz failed with a model"
if "$recipe" healthcheck "http://127.0.0.1:$port/no-such-route" 2>/dev/null; then
  fail "healthcheck passed on a 404"
fi
down_port=$port
stop_server

step "the server down: the health check fails"
if "$recipe" healthcheck "http://127.0.0.1:$down_port/healthz"; then
  fail "healthcheck passed with the server stopped"
fi
echo "PASS"
