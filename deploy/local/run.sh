#!/usr/bin/env bash
# run.sh — the whole privydrop-c system on this machine, in the foreground.
#
#   make run            (builds first, then runs this)
#   deploy/local/run.sh
#
# Starts a private redis-server (data under .run/redis), two signal workers
# sharing one port (SO_REUSEPORT), the room API and nginx as the single
# origin, then waits. Ctrl-C or SIGTERM stops everything it started.
#
# Environment (defaults in brackets):
#   PD_HTTP_PORT [8080]     nginx, the URL to open
#   PD_SIGNAL_PORT [3001]   both signal workers
#   PD_API_PORT [3002]      room API
#   PD_REDIS_PORT [6379]    the private redis-server
#   PD_WORKERS [2]          how many signal workers share PD_SIGNAL_PORT
#   PD_BIN_DIR [build/bin]  where the binaries are
#   PD_WEB_DIR [services/web/dist]  the built web client
#   PD_TURN_PORT [3478]     coturn (STUN/TURN on 127.0.0.1, a fresh secret per run)
#   PD_LOG_LEVEL [info], NODE_ENV [development], CORS_ORIGIN
#   DISABLE_JOIN_RATE_LIMIT [1]  every local browser shares the address 127.0.0.1,
#                           so the per-address join limit is off unless set to 0
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top"

http_port=${PD_HTTP_PORT:-8080}
signal_port=${PD_SIGNAL_PORT:-3001}
api_port=${PD_API_PORT:-3002}
redis_port=${PD_REDIS_PORT:-6379}
turn_port=${PD_TURN_PORT:-3478}
workers=${PD_WORKERS:-2}
bin_dir=${PD_BIN_DIR:-$top/build/bin}
web_dir=${PD_WEB_DIR:-$top/services/web/dist}
run_dir=$top/.run
log_dir=$run_dir/logs

die() { echo "run: $*" >&2; exit 1; }

# --- checks before starting anything ----------------------------------------
for b in privydrop-signal privydrop-roomapi; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing: build it with 'make' (or set PD_BIN_DIR)"
done
for t in redis-server redis-cli nginx curl turnserver openssl; do
  command -v "$t" >/dev/null 2>&1 || die "'$t' is not installed: run 'make deps'"
done
case "$workers" in ''|*[!0-9]*|0) die "PD_WORKERS must be a positive number";; esac

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy=0
for spec in "nginx:$http_port:PD_HTTP_PORT" "signal:$signal_port:PD_SIGNAL_PORT" \
            "roomapi:$api_port:PD_API_PORT" "redis:$redis_port:PD_REDIS_PORT" \
            "coturn:$turn_port:PD_TURN_PORT"; do
  IFS=: read -r what port var <<<"$spec"
  if port_in_use "$port"; then
    echo "run: port $port (for $what) is already in use by another program; stop it or choose another port with $var=<port>" >&2
    busy=1
  fi
done
[ "$busy" -eq 0 ] || exit 1

if [ ! -f "$web_dir/index.html" ]; then
  echo "run: note: $web_dir/index.html not found; the API and signaling work, but / has no web client (build it with 'make')" >&2
fi

mkdir -p "$run_dir/redis" "$run_dir/nginx" "$run_dir/coturn" "$log_dir"
chmod 755 "$run_dir" "$run_dir/nginx"

# --- supervision ------------------------------------------------------------
pids=()
names=()
stopping=0
stop_all() {
  [ "$stopping" -eq 1 ] && return
  stopping=1
  trap '' INT TERM
  echo
  echo "run: stopping..."
  # Services first (on SIGTERM they clean their Redis state), Redis (pids[0]) last.
  local k t
  for ((k=${#pids[@]}-1; k>=1; k--)); do kill -TERM "${pids[$k]}" 2>/dev/null || true; done
  for ((t=0; t<150; t++)); do
    local alive=0
    for ((k=1; k<${#pids[@]}; k++)); do kill -0 "${pids[$k]}" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for ((k=1; k<${#pids[@]}; k++)); do
    if kill -0 "${pids[$k]}" 2>/dev/null; then
      echo "run: ${names[$k]} did not stop within 15s; killing it" >&2
      kill -KILL "${pids[$k]}" 2>/dev/null || true
    fi
  done
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[0]}" 2>/dev/null || true
  for k in "${!pids[@]}"; do wait "${pids[$k]}" 2>/dev/null || true; done
  echo "run: stopped (logs in ${log_dir#"$top"/})"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Each service in its own process group (job control): a Ctrl-C in the
# terminal reaches only this script, which then stops the services in order
# (Redis last, so they can clean their state on the way out).
set -m
start() { # name logfile cmd...
  local name=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

wait_http() { # name url [seconds]
  local name=$1 url=$2 secs=${3:-20} i
  for ((i=0; i<secs*10; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    local k
    for k in "${!pids[@]}"; do
      kill -0 "${pids[$k]}" 2>/dev/null || die "${names[$k]} exited during startup; see its log in ${log_dir#"$top"/}"
    done
    sleep 0.1
  done
  die "$name did not become ready at $url within ${secs}s; see ${log_dir#"$top"/}"
}

export REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port
export NODE_ENV=${NODE_ENV:-development} PD_LOG_LEVEL=${PD_LOG_LEVEL:-info}
export CORS_ORIGIN=${CORS_ORIGIN:-http://localhost:$http_port,http://127.0.0.1:$http_port}
# nginx on this machine is the only proxy whose X-Forwarded-For is believed.
export PD_TRUSTED_PROXIES=${PD_TRUSTED_PROXIES:-127.0.0.1/32,::1/128}
unset BACKEND_PORT
if [ "${DISABLE_JOIN_RATE_LIMIT:-1}" = 0 ]; then unset DISABLE_JOIN_RATE_LIMIT; else export DISABLE_JOIN_RATE_LIMIT=1; fi
# A fresh TURN secret each run, shared by coturn and the room API only.
turn_secret=$(openssl rand -hex 24)

# --- redis --------------------------------------------------------------------
start redis "$log_dir/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly no --dir "$run_dir/redis" --daemonize no --protected-mode yes
for ((i=0; i<100; i++)); do
  [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
  kill -0 "${pids[0]}" 2>/dev/null || die "redis-server exited; see ${log_dir#"$top"/}/redis.log"
  sleep 0.1
done
[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] || die "redis-server did not answer on port $redis_port"

# --- signal workers (one port, SO_REUSEPORT) ----------------------------------
for ((w=1; w<=workers; w++)); do
  start "signal-$w" "$log_dir/signal-$w.log" env PD_SIGNAL_PORT="$signal_port" PD_LISTEN_ADDR=127.0.0.1 \
    PD_WORKER_ID="local-$w" "$bin_dir/privydrop-signal"
  wait_http "signal worker $w" "http://127.0.0.1:$signal_port/readyz"
done
# With a shared port any worker may have answered: give the last one a moment, then check all live.
sleep 0.5
for k in "${!pids[@]}"; do
  kill -0 "${pids[$k]}" 2>/dev/null || die "${names[$k]} exited during startup; see its log in ${log_dir#"$top"/}"
done

# --- coturn -------------------------------------------------------------------
# The production config denies relaying to loopback and private addresses;
# on one machine both browsers are loopback peers, so the local run adds the
# test overlay that allows 127.0.0.1.
start coturn "$log_dir/coturn.log" env PD_TURN_SECRET="$turn_secret" PD_TURN_LISTEN_IP=127.0.0.1 \
  PD_TURN_PORT="$turn_port" PD_TURN_RUN_DIR="$run_dir/coturn" \
  PD_TURN_CONFIG_OVERLAYS="$top/deploy/coturn/turnserver.test.conf" "$top/deploy/coturn/run-coturn.sh"

# --- room API -----------------------------------------------------------------
start roomapi "$log_dir/roomapi.log" env PD_API_PORT="$api_port" PD_LISTEN_ADDR=127.0.0.1 \
  PD_TURN_HOST=127.0.0.1 PD_TURN_PORT="$turn_port" PD_TURN_SECRET="$turn_secret" \
  "$bin_dir/privydrop-roomapi"
wait_http "room API" "http://127.0.0.1:$api_port/health"

# --- nginx --------------------------------------------------------------------
render() { # template out VAR=value...
  local tpl=$1 out=$2 kv k v text
  shift 2
  text=$(<"$tpl")
  for kv in "$@"; do
    k=${kv%%=*}
    v=${kv#*=}
    text=${text//"\${$k}"/"$v"}
  done
  if grep -q '\${[A-Z0-9_]*}' <<<"$text"; then die "unrendered placeholder in $tpl"; fi
  printf '%s\n' "$text" >"$out"
}
render deploy/nginx/privydrop.conf.template "$run_dir/nginx/privydrop.conf" \
  "LISTEN=127.0.0.1:$http_port" "SERVER_NAME=localhost" \
  "SIGNAL_UPSTREAM=127.0.0.1:$signal_port" "ROOMAPI_UPSTREAM=127.0.0.1:$api_port" "WEB_ROOT=$web_dir"
render deploy/local/nginx.conf.template "$run_dir/nginx/nginx.conf" \
  "RUN_DIR=$run_dir/nginx" "LOG_DIR=$log_dir" "MIME_TYPES=${PD_NGINX_MIME_TYPES:-/etc/nginx/mime.types}" \
  "SERVER_CONF=$run_dir/nginx/privydrop.conf"
# Started as root, nginx hands its workers to "nobody", who cannot enter a
# checkout in a private directory (root's home is mode 0700): every page would
# be 403. The workers run instead as the owner of the web client's files, who
# can read them wherever they are. Copying dist/ somewhere world-readable was
# the alternative; it would serve a stale page after a rebuild and still leave
# the temp paths under .run/ out of the workers' reach. Not root: nginx cannot
# switch users, and its workers are this user, who owns the checkout.
nginx_global=()
nginx_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owned=$web_dir
  [ -e "$owned" ] || owned=$top
  nginx_user=$(stat -c %U "$owned")
  nginx_global=(-g "user $nginx_user $(stat -c %G "$owned");")
fi
nginx -t -q -p "$run_dir/nginx" -e "$log_dir/nginx.error.log" -c "$run_dir/nginx/nginx.conf" "${nginx_global[@]}" \
  || die "nginx rejected its configuration (.run/nginx/nginx.conf)"
start nginx "$log_dir/nginx.log" nginx -p "$run_dir/nginx" -e "$log_dir/nginx.error.log" -c "$run_dir/nginx/nginx.conf" "${nginx_global[@]}"
wait_http nginx "http://127.0.0.1:$http_port/health"
# The page itself, not just the proxied health check: a worker that cannot
# read the files answers 403, and that must be said here, not found in a browser.
if [ -f "$web_dir/index.html" ]; then
  page=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$http_port/" 2>/dev/null || true)
  [ "$page" = 200 ] || die "nginx (workers as '$nginx_user') answers $page for / instead of 200: it cannot read $web_dir; see ${log_dir#"$top"/}/nginx.error.log"
fi

# --- what runs where ----------------------------------------------------------
echo
printf '  %-14s %-8s %-28s %s\n' SERVICE PID ADDRESS LOG
for k in "${!pids[@]}"; do
  case "${names[$k]}" in
    redis) addr="127.0.0.1:$redis_port";;
    signal-*) addr="127.0.0.1:$signal_port (shared)";;
    roomapi) addr="127.0.0.1:$api_port";;
    coturn) addr="127.0.0.1:$turn_port (udp+tcp)";;
    nginx) addr="127.0.0.1:$http_port";;
  esac
  printf '  %-14s %-8s %-28s %s\n' "${names[$k]}" "${pids[$k]}" "$addr" "${log_dir#"$top"/}/${names[$k]}.log"
done
echo
echo "  Open http://127.0.0.1:$http_port/ in two browsers (or tabs). Ctrl-C stops everything."
echo

# --- wait: until Ctrl-C / SIGTERM, or until a service dies ---------------------
set +e
while :; do
  wait -n "${pids[@]}"
  for k in "${!pids[@]}"; do
    if ! kill -0 "${pids[$k]}" 2>/dev/null; then
      wait "${pids[$k]}"
      rc=$?
      echo "run: ${names[$k]} (pid ${pids[$k]}) exited with status $rc; see ${log_dir#"$top"/}/${names[$k]}.log" >&2
      stop_all
      exit 1
    fi
  done
done
