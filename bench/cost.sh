#!/usr/bin/env bash
# Cost of one relayed signal in counts that do not depend on how busy the
# machine is: system calls and user-space instructions of the server
# processes, per signal.
#
#   io         read- and write-like system calls from /proc/<pid>/io (no
#              slowdown, so batching under load is as without a tool)
#   strace     every system call by name (strace -c; slows the servers)
#   callgrind  instructions by function (valgrind; slows them far more)
#
#   bench/cost.sh [--scenario relay1|relayx] [--load light|loaded]
#                 [--tool io|strace|callgrind] [--signals N] [--top K]
#
#   relay1  both peers of each room on one worker
#   relayx  the peers on two workers: the figures add both workers and Redis
#   light   200 rooms, 2 000 signals/s in all, paced (open loop): 10/s per
#           room, so every read and every write carries one frame, as
#           browsers send them (even when a busy machine holds the generator
#           up for a while: what it then sends at once goes to many sockets)
#   loaded  100 rooms, 8 signals in flight per peer (make bench's closed
#           loop): reads and writes carry several frames, how many depends
#           on the relative speed of the processes, so under a slow tool
#           (strace, callgrind) batching is better than without one
#
# PD_COST_KEEP=1 keeps the logs, perf/strace output and callgrind profiles
# (callgrind_annotate them for more than the top functions).
#
# Each measurement runs sigload with --signals N and then 2N, each against
# freshly started servers, and reports (cost(2N) - cost(N)) / N: start-up,
# connecting, joining and the offer/answer are in both runs and cancel out.
# Redis is measured only for relayx. Hardware instruction counters are often
# missing in virtual machines (perf stat -e instructions: "not supported"),
# hence callgrind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BIN=${PD_BIN_DIR:-$top/build/bin}
scenario=relay1 load=light tool=io N=20000 TOPK=15
while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) scenario=$2; shift ;;
    --load) load=$2; shift ;;
    --tool) tool=$2; shift ;;
    --signals) N=$2; shift ;;
    --top) TOPK=$2; shift ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "cost: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$scenario" in relay1) nw=1 cross= ;; relayx) nw=2 cross=--cross ;; *) echo "cost: scenario?" >&2; exit 2 ;; esac
case "$load" in light) rooms=200 pace=(--rate 2000) ;; loaded) rooms=100 pace=(--window 8) ;; *) echo "cost: load?" >&2; exit 2 ;; esac
case "$tool" in io|strace|callgrind) ;; *) echo "cost: tool?" >&2; exit 2 ;; esac
for t in redis-server redis-cli curl $(case $tool in callgrind) echo valgrind ;; strace) echo strace ;; esac); do
  command -v "$t" >/dev/null || { echo "cost: '$t' not found" >&2; exit 1; }
done
[ "$tool" = callgrind ] && { command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || { echo "cost: valgrind missing" >&2; exit 1; }; }

LOGS=$(mktemp -d)
[ -n "${PD_COST_KEEP:-}" ] && echo "cost: logs and profiles kept in $LOGS"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${PD_COST_KEEP:-}" ] || rm -rf "$LOGS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_http() {
  local i
  for i in $(seq 1 600); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
  echo "cost: $1 did not come up" >&2; return 1
}
# Under callgrind every server runs inside valgrind; the pid is valgrind's own.
wrap=()
[ "$tool" = callgrind ] && wrap=(valgrind --tool=callgrind --callgrind-out-file="$LOGS/cg.%p")

# A fresh set of servers for each measured run, so that under callgrind each
# server's whole life is one profile (written when it exits).
start_servers() {
  RPORT=$(pick_port 28379)
  srv_redis=(redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --logfile "$LOGS/redis.log")
  if [ "$scenario" = relayx ]; then "${wrap[@]}" "${srv_redis[@]}" & else "${srv_redis[@]}" & fi
  REDIS_PID=$!; PIDS+=("$REDIS_PID")
  for i in $(seq 1 300); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  APORT=$(pick_port 28500)
  env PD_API_PORT="$APORT" PD_LISTEN_ADDR=127.0.0.1 REDIS_PORT="$RPORT" PD_LOG_LEVEL=warn \
    PD_API_RATE=1000000 PD_API_BURST=1000000 "$BIN/privydrop-roomapi" >"$LOGS/api.log" 2>&1 &
  API_PID=$!; PIDS+=($!)
  WPIDS=(); targets=
  for i in $(seq 1 $nw); do
    port=$(pick_port $((28000 + 10 * i)))
    env PD_SIGNAL_PORT="$port" PD_LISTEN_ADDR=127.0.0.1 PD_WORKER_ID="cost-w$i" REDIS_PORT="$RPORT" \
      PD_LOG_LEVEL=warn PD_MAX_CONNS_PER_IP=1000000 DISABLE_JOIN_RATE_LIMIT=1 PD_EVENT_RATE=1000000 \
      PD_EVENT_BURST=1000000 PD_MAX_ROOM_PEERS=0 PD_DRAIN_NOTICE_MS=0 PD_DRAIN_SPREAD_MS=0 \
      PD_PING_INTERVAL_MS=3600000 PD_PING_TIMEOUT_MS=3600000 \
      "${wrap[@]}" "$BIN/privydrop-signal" >"$LOGS/w$i.log" 2>&1 &
    WPIDS+=($!); PIDS+=($!)
    wait_http "http://127.0.0.1:$port/healthz"
    targets="$targets${targets:+,}127.0.0.1:$port"
  done
  wait_http "http://127.0.0.1:$APORT/health"
  MEASURED=("${WPIDS[@]}")
  [ "$scenario" = relayx ] && MEASURED+=("$REDIS_PID")
  return 0
}
stop_servers() {
  local p
  for p in "${WPIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  kill "$API_PID" 2>/dev/null || true
  wait "$REDIS_PID" "$API_PID" 2>/dev/null || true
  PIDS=()
}

run_load() { # signals
  "$BIN/privydrop-sigload" relay --target "$targets" --api "127.0.0.1:$APORT" $cross --rooms $rooms \
    "${pace[@]}" --signals "$1" --warmup 0 --duration 600 --quiet --json "$LOGS/load-$1.json" >/dev/null
  node -e 'const j=require(process.argv[1]);process.stdout.write(String(j.relay.received))' "$LOGS/load-$1.json"
}

# One measured run of n signals; its counts go to $LOGS/m-<n>.txt as
# "name count" lines (name: a system call, or a function for callgrind,
# plus "TOTAL").
# Read and write system calls over a server's whole life, from
# /proc/<pid>/io (syscr, syscw): exact, and nothing attaches late.
proc_io() { # pid...
  local p
  for p in "$@"; do
    awk '/^syscr:/ {print "read-like(io)", $2} /^syscw:/ {print "write-like(io)", $2}' "/proc/$p/io"
  done
}

# One measured run of n signals; its counts go to $LOGS/m-<n>.txt as
# "name count" lines (name: a system call, or a function for callgrind,
# plus "TOTAL"), summed over the measured processes.
measure() { # n
  local n=$1 out="$LOGS/m-$1.txt" got p
  start_servers
  : >"$out"
  case "$tool" in
    io)
      got=$(run_load "$n")
      proc_io "${MEASURED[@]}" >>"$out"
      awk '{t+=$2} END {print "TOTAL", t}' "$out" >>"$out"
      stop_servers
      ;;
    strace)
      local args=()
      for p in "${MEASURED[@]}"; do args+=(-p "$p"); done
      strace -c -f -o "$LOGS/strace-$n.txt" "${args[@]}" 2>"$LOGS/strace-$n.err" &
      p=$!
      # Counting starts once every process is attached (strace says so).
      for i in $(seq 1 600); do
        [ "$(grep -c 'attached' "$LOGS/strace-$n.err" 2>/dev/null)" -ge ${#MEASURED[@]} ] && break
        sleep 0.1
      done
      got=$(run_load "$n")
      proc_io "${MEASURED[@]}" >>"$out"
      kill -INT $p; wait $p || true
      stop_servers
      awk '$NF == "total" {print "TOTAL", $4; next} $1 ~ /^[0-9.]+$/ && NF >= 5 {print $NF, $4}' \
        "$LOGS/strace-$n.txt" >>"$out"
      ;;
    callgrind)
      got=$(run_load "$n")
      local pl=("${MEASURED[@]}")
      stop_servers
      for p in "${pl[@]}"; do
        callgrind_annotate --auto=no --inclusive=no --threshold=100 "$LOGS/cg.$p" 2>/dev/null | awk '
          /PROGRAM TOTALS/ {gsub(",","",$1); print "TOTAL", $1; next}
          $1 ~ /^[0-9,]+$/ && /%\)  / {v=$1; gsub(",","",v); l=$0; sub(/^.*%\)  +/,"",l); sub(/ .*$/,"",l);
            sub(/^.*:/,"",l); print l, v}' >>"$out"
      done
      ;;
  esac
  awk '{s[$1]+=$2} END {for (k in s) print k, s[k]}' "$out" >"$out.sum" && mv "$out.sum" "$out"
  echo "$got" >"$LOGS/got-$n"
}

echo "cost: $scenario, $load load ($rooms rooms, ${pace[*]}), $tool; runs of $N and $((2 * N)) signals"
measure "$N"
measure $((2 * N))
g1=$(cat "$LOGS/got-$N"); g2=$(cat "$LOGS/got-$((2 * N))")
echo "received: $g1 and $g2 signals"
unit=$([ "$tool" = callgrind ] && echo "instructions" || echo "system calls")
awk -v d=$((g2 - g1)) -v top="$TOPK" -v unit="$unit" '
  FNR == NR {a[$1] = $2; next}
  {b[$1] = $2}
  END {
    for (k in b) { v = (b[k] - a[k]) / d; if (k != "TOTAL") { names[++n] = k; per[k] = v } }
    printf "%-40s %12.1f %s per signal\n", "TOTAL", (b["TOTAL"] - a["TOTAL"]) / d, unit
    # top K by cost per signal
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (per[names[j]] > per[names[i]]) { t = names[i]; names[i] = names[j]; names[j] = t }
    for (i = 1; i <= n && i <= top; i++) if (per[names[i]] >= 0.005) printf "  %-38s %12.2f\n", names[i], per[names[i]]
  }' "$LOGS/m-$N.txt" "$LOGS/m-$((2 * N)).txt"
