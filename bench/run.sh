#!/usr/bin/env bash
# Benchmark both stacks — ours (privydrop-signal + privydrop-roomapi) and the
# Node reference (loadtest/reference) — under identical scenarios driven by
# privydrop-sigload, against one private redis-server. Writes
# bench/results/*.json, prints the side-by-side table (bench/report.mjs) and
# draws PNG plots with gnuplot.
#
#   bench/run.sh            full run (several minutes)
#   bench/run.sh --quick    a few seconds per scenario: proves the machinery
#   options: --stacks ours,ref
#            --scenarios relay1,relayx,shards,poll,api,apifill,churn,redis,rolling,icount,idle
#   PD_BENCH_FRACTIONS="" (full run): relay closed loop only, without the
#   open-loop runs at fractions of its maximum
#   PD_BENCH_FILL_REPEAT=N: apifill runs each fill N times (the report
#   reads the first; the others are <stack>-apifill-<fill>-r<k>.json)
#
# Every run starts with the machine header (bench/machine.sh: CPU, cores,
# kernel, and the cost of a loopback write+read pair). icount (stack-less):
# instructions per operation under callgrind and system calls per signal
# under strace (bench/icount.sh). apifill: get_room with the 4-digit id
# space 90 %, 99 % and 100 % full, open loop at half of a closed loop's
# maximum measured just before each run, and at the rate that keeps the
# servers' core half busy.
#
# poll: relay's rooms over Engine.IO long-polling only, two workers. Ours in
# two layouts: "owner" (every request of a session to the worker that owns
# it, what sticky sessions give) and "rotate" (each request to the next
# worker in turn, no affinity: half of them are forwarded to the owner
# through Redis). The Node reference only as "owner": socket.io on Node
# needs sticky sessions for polling. Closed loop for the maximum of each,
# then open loop at half of the lower maximum of ours (both layouts at the
# same rate, so their latencies compare), the reference at half of its own.
#
# rolling (ours only: the Node reference has no drain or readiness to roll
# on): three workers with the join limit on, rooms of two behind
# privydrop-sigload's front, every worker restarted in turn as a Deployment
# rollout does: round-robin front, maxSurge 0 (SIGTERM, wait for its exit,
# start it again, wait for /readyz); then (full run only) least-connections
# front, maxSurge 1 (replacement first, then SIGTERM the old one).
#
# On a 2-core machine the servers (and Redis) are pinned to CPU 1 and the
# load generators to CPU 0, so "per server CPU-second" figures are read from
# /proc of the server processes only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BIN=${PD_BIN_DIR:-$top/build/bin}
SIGLOAD=$BIN/privydrop-sigload
REF=$top/loadtest/reference
OUT=${PD_BENCH_OUT:-$here/results}

quick=0
stacks=ours,ref
# idle runs last: tearing down 160 000 sockets keeps the kernel busy (and
# their TIME_WAIT expiry a minute later), which would show in whatever
# latency is measured next.
scenarios=relay1,relayx,shards,poll,api,apifill,churn,redis,rolling,icount,idle
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --stacks) stacks=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    -h|--help) sed -n 2,39p "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

for b in privydrop-signal privydrop-roomapi privydrop-sigload privydrop-calibrate; do
  [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b missing (make c sigload calibrate)" >&2; exit 1; }
done
for t in redis-server redis-cli redis-benchmark node curl; do
  command -v "$t" >/dev/null || { echo "bench: '$t' not found; run make deps" >&2; exit 1; }
done
if [[ ",$stacks," == *",ref,"* ]] && [ ! -d "$REF/node_modules/socket.io" ]; then
  echo "bench: loadtest/reference has no node_modules; run make deps" >&2
  exit 1
fi

if [ $quick = 1 ]; then
  DUR=2; WARM=0.5; ROOMS=10; WINDOW=4; FRACTIONS="0.5"; IDLE_LEVELS="400"; IDLE_PROCS=1
  IDLE_HOLD=4; API_CONNS=8; CHURN_PAIRS=4; RB_N=50000; OUT=${PD_BENCH_OUT:-$(mktemp -d)}
  # The quick pass asserts only that every room meets again: its settle
  # time is a hang guard (the run ends as soon as all have met), so a busy
  # machine cannot turn a slow reconnection into a failure.
  ROLL_ROOMS=30; ROLL_SETTLE=60; POLL_ROOMS=10; POLL_DUR=2; FILLS="0.9 1.0"; CAL_N=20000
else
  DUR=10; WARM=2; ROOMS=100; WINDOW=8; FRACTIONS=${PD_BENCH_FRACTIONS-"0.1 0.25 0.5 0.75 0.9"}
  IDLE_LEVELS="${PD_BENCH_IDLE_LEVELS:-2000 10000 40000 80000}"; IDLE_PROCS=8
  IDLE_HOLD=30; API_CONNS=64; CHURN_PAIRS=50; RB_N=2000000
  ROLL_ROOMS=${PD_BENCH_ROLL_ROOMS:-1000}; ROLL_SETTLE=15; POLL_ROOMS=100; POLL_DUR=10; FILLS="0.9 0.99 1.0"; CAL_N=100000
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.dat
LOGS=$(mktemp -d)
echo "bench: results in $OUT, logs in $LOGS"
PD_BIN_DIR=$BIN "$here/machine.sh" "$CAL_N" >"$OUT/machine.json"
echo "bench: machine $(cat "$OUT/machine.json")"

# CPU placement: servers and Redis on one core, load generators on the other.
# PROBE: the open-loop api runs watch the servers' core with sigload's
# probe (loadtest/sigload/probe.h): how late a thread there got to run,
# so a tail from the core taken away shows apart from the servers' own.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SRV=(taskset -c 1); GEN=(taskset -c 0); PROBE=(--probe-cpu 1)
else
  SRV=(); GEN=(); PROBE=()
fi

PIDS=()          # every process started here, killed on exit
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # a free port from $1 upwards
  local p=$1
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}
wait_http() { # url
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  echo "bench: $1 did not come up" >&2
  return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Kernel memory that sockets take, system-wide (both ends of each loopback
# connection): slab caches (socket structs, inodes, epoll items) plus TCP
# buffer pages. Other activity on the machine adds noise.
sock_mem() {
  local slab tcp
  slab=$(awk '/^Slab:/ {print $2 * 1024}' /proc/meminfo)
  tcp=$(awk '/^TCP:/ {for (i=1;i<NF;i++) if ($i=="mem") print $(i+1)*'"$(getconf PAGESIZE)"'}' /proc/net/sockstat)
  echo $((slab + tcp))
}

# ---- Redis --------------------------------------------------------------------
RPORT=$(pick_port 26379)
"${SRV[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$LOGS/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for i in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# ---- stacks ---------------------------------------------------------------------
WPIDS=(); WPORTS=(); API_PID=; API_PORT=
EXTRA_ENV=()     # VAR=value for our servers (the sharded scenario's cluster)
REF_TRANSPORTS=websocket   # the reference's Engine.IO transports (poll adds polling)
# One of our workers as number i (1-based) on port, with extra VAR=value
# settings; its pid and port go to WPIDS[i-1] and WPORTS[i-1].
start_ours_worker() { # i port worker-id env...
  local i=$1 port=$2 id=$3
  shift 3
  env PD_SIGNAL_PORT="$port" PD_LISTEN_ADDR=127.0.0.1 PD_WORKER_ID="$id" REDIS_PORT="$RPORT" \
    PD_LOG_LEVEL=warn PD_MAX_CONNECTIONS=19800 PD_MAX_CONNS_PER_IP=1000000 "${EXTRA_ENV[@]}" "$@" \
    "${SRV[@]}" "$BIN/privydrop-signal" >>"$LOGS/ours-w$i.log" 2>&1 &
  WPIDS[$((i - 1))]=$!; WPORTS[$((i - 1))]=$port; PIDS+=($!)
}
start_stack() { # stack nworkers
  local stack=$1 n=$2 i port
  WPIDS=(); WPORTS=()
  redis-cli -p "$RPORT" flushall >/dev/null
  for i in $(seq 1 "$n"); do
    port=$(pick_port $((27000 + 10 * i)))
    if [ "$stack" = ours ]; then
      start_ours_worker "$i" "$port" "bench-w$i" DISABLE_JOIN_RATE_LIMIT=1 PD_EVENT_RATE=1000000 \
        PD_EVENT_BURST=1000000 PD_MAX_ROOM_PEERS=0
      continue
    else
      env ROLE=signal PORT="$port" PD_LISTEN_ADDR=127.0.0.1 REDIS_PORT="$RPORT" DISABLE_JOIN_RATE_LIMIT=1 \
        PD_REF_TRANSPORTS="$REF_TRANSPORTS" \
        "${SRV[@]}" node "$REF/server.js" >"$LOGS/$stack-w$i.log" 2>&1 &
    fi
    WPIDS+=($!); WPORTS+=("$port"); PIDS+=($!)
  done
  API_PORT=$(pick_port 27500)
  if [ "$stack" = ours ]; then
    env PD_API_PORT="$API_PORT" PD_LISTEN_ADDR=127.0.0.1 REDIS_PORT="$RPORT" PD_LOG_LEVEL=warn \
      PD_API_RATE=1000000 PD_API_BURST=1000000 "${EXTRA_ENV[@]}" \
      "${SRV[@]}" "$BIN/privydrop-roomapi" >"$LOGS/$stack-api.log" 2>&1 &
  else
    env ROLE=api PORT="$API_PORT" PD_LISTEN_ADDR=127.0.0.1 REDIS_PORT="$RPORT" \
      "${SRV[@]}" node "$REF/server.js" >"$LOGS/$stack-api.log" 2>&1 &
  fi
  API_PID=$!; PIDS+=($!)
  for port in "${WPORTS[@]}"; do wait_http "http://127.0.0.1:$port/healthz"; done
  wait_http "http://127.0.0.1:$API_PORT/health"
}
stop_stack() {
  local p
  for p in "${WPIDS[@]}" "$API_PID"; do kill "$p" 2>/dev/null || true; done
  for p in "${WPIDS[@]}" "$API_PID"; do wait "$p" 2>/dev/null || true; done
  WPIDS=(); API_PID=
}
targets() { local t="" p; for p in "${WPORTS[@]}"; do t="$t${t:+,}127.0.0.1:$p"; done; echo "$t"; }
join_pids() { local IFS=,; echo "$*"; }

sigload() { # json-path args...
  local json=$1; shift
  "${GEN[@]}" "$SIGLOAD" "$@" --api "127.0.0.1:$API_PORT" --json "$json" --quiet
}
per_s() { node -e 'const j=require(process.argv[1]);const m=j[j.mode];process.stdout.write(String(Math.round(m.per_s)))' "$1"; }

# ---- scenarios ----------------------------------------------------------------------
relay_scenario() { # stack name nworkers cross?
  local stack=$1 name=$2 n=$3 cross=$4 max f rate pids
  start_stack "$stack" "$n"
  pids=$(join_pids "${WPIDS[@]}")
  [ "$name" = relayx ] && pids="$pids,$REDIS_PID"
  echo "== $stack $name: closed loop (maximum)"
  sigload "$OUT/$stack-$name-max.json" relay --target "$(targets)" $cross --rooms "$ROOMS" \
    --window "$WINDOW" --duration "$DUR" --warmup "$WARM" --pids "$pids" --label "$stack $name max"
  max=$(per_s "$OUT/$stack-$name-max.json")
  for f in $FRACTIONS; do
    rate=$(awk -v m="$max" -v f="$f" 'BEGIN {r = int(m * f); if (r < 10) r = 10; print r}')
    echo "== $stack $name: open loop at $f of maximum ($rate/s)"
    sigload "$OUT/$stack-$name-rate$f.json" relay --target "$(targets)" $cross --rooms "$ROOMS" \
      --rate "$rate" --duration "$DUR" --warmup "$WARM" --pids "$pids" --label "$stack $name $f"
  done
  stop_stack
}

# Cross-worker relay with the state tier as a Redis Cluster of three masters
# (no replicas), against the same relay on the one Redis above: signals/s
# and each shard's CPU per 100k signals show the bus spreading over the
# shards (docs/benchmarks.md, "Sharded"). All shards share the servers'
# core here, so this shows the split, not added capacity.
SHARD_PIDS=(); SHARD_PORTS=()
start_shards() {
  local i port bus nodes=""
  SHARD_PIDS=(); SHARD_PORTS=()
  for i in 1 2 3; do
    port=$(pick_port $((28000 + 10 * i)))
    # The bus port is picked too: the default, port + 10000, lies among the
    # ports the kernel hands out to outgoing connections.
    bus=$(pick_port $((28500 + 10 * i)))
    mkdir -p "$LOGS/shard$i"
    (cd "$LOGS/shard$i" && exec "${SRV[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' \
      --appendonly no --cluster-enabled yes --cluster-config-file "nodes.conf" --cluster-port "$bus" \
      --logfile "$LOGS/shard$i/redis.log") &
    SHARD_PIDS+=($!); SHARD_PORTS+=("$port"); PIDS+=($!)
    nodes="$nodes 127.0.0.1:$port"
  done
  for port in "${SHARD_PORTS[@]}"; do
    for i in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes >"$LOGS/shards-create.log" 2>&1
  for i in $(seq 1 100); do
    redis-cli -p "${SHARD_PORTS[0]}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  SHARD_NODES=$(printf '127.0.0.1:%s,' "${SHARD_PORTS[@]}"); SHARD_NODES=${SHARD_NODES%,}
}
stop_shards() {
  local p
  for p in "${SHARD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SHARD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SHARD_PIDS=(); SHARD_PORTS=()
}
shards_scenario() { # stack
  local stack=$1 pids port
  if [ "$stack" != ours ]; then
    echo "== $stack relayx-shards: skipped (the reference has no Redis Cluster mode)"
    return
  fi
  start_shards
  EXTRA_ENV=(REDIS_CLUSTER_NODES="$SHARD_NODES")
  start_stack ours 2
  # Up is not ready: each server learns the slot map and links every
  # master first.
  for port in "${WPORTS[@]}"; do wait_ready "http://127.0.0.1:$port/readyz"; done
  wait_ready "http://127.0.0.1:$API_PORT/health/detailed"
  pids=$(join_pids "${WPIDS[@]}" "${SHARD_PIDS[@]}")
  echo "== ours relayx-shards: closed loop, Redis Cluster of three masters"
  sigload "$OUT/ours-relayx-shards-max.json" relay --target "$(targets)" --cross --rooms "$ROOMS" \
    --window "$WINDOW" --duration "$DUR" --warmup "$WARM" --pids "$pids" --label "ours relayx shards"
  # A signal goes on its target worker's own channel (docs/architecture.md
  # §Signals), so only the masters that serve the two workers' channels
  # carry signals: record which those are, in the shards' order.
  local counts=()
  for port in "${SHARD_PORTS[@]}"; do
    counts+=("$(redis-cli -p "$port" PUBSUB SHARDCHANNELS 'pd:eio:*' 2>/dev/null | grep -c . || true)")
  done
  printf '{"worker_channels_each":[%s]}\n' "$(IFS=,; echo "${counts[*]}")" >"$OUT/ours-relayx-shards-chans.json"
  stop_stack
  EXTRA_ENV=()
  stop_shards
}

poll_scenario() { # stack
  local stack=$1 layouts=owner layout pids max min= rate
  [ "$stack" = ours ] && layouts="owner rotate"
  [ "$stack" = ref ] && REF_TRANSPORTS=polling,websocket
  start_stack "$stack" 2
  REF_TRANSPORTS=websocket
  pids=$(join_pids "${WPIDS[@]}" "$REDIS_PID")
  for layout in $layouts; do
    echo "== $stack poll-$layout: long-polling, closed loop (maximum)"
    sigload "$OUT/$stack-poll-$layout-max.json" poll --layout "$layout" --target "$(targets)" \
      --rooms "$POLL_ROOMS" --window "$WINDOW" --duration "$POLL_DUR" --warmup "$WARM" --pids "$pids" \
      --label "$stack poll-$layout max"
    max=$(per_s "$OUT/$stack-poll-$layout-max.json")
    if [ -z "$min" ] || [ "$max" -lt "$min" ]; then min=$max; fi
  done
  # Half of the lower maximum is the reported rate; PD_BENCH_POLL_FRACTIONS
  # adds others (e.g. "0.1 0.25 0.5"), each layout in turn at each.
  for frac in ${PD_BENCH_POLL_FRACTIONS:-0.5}; do
    rate=$(awk -v m="$min" -v f="$frac" 'BEGIN {r = int(m * f); if (r < 10) r = 10; print r}')
    for layout in $layouts; do
      echo "== $stack poll-$layout: open loop at $rate/s ($frac of the lower maximum)"
      sigload "$OUT/$stack-poll-$layout-rate$frac.json" poll --layout "$layout" --target "$(targets)" \
        --rooms "$POLL_ROOMS" --rate "$rate" --duration "$POLL_DUR" --warmup "$WARM" --pids "$pids" \
        --label "$stack poll-$layout $frac"
    done
  done
  stop_stack
}

idle_scenario() { # stack
  local stack=$1 level per_proc i logs=() gpids=() joined base=() now=() k sm0 sm1 total_base total_now
  for level in $IDLE_LEVELS; do
    local nw=$(( (level + 14999) / 15000 )); [ "$nw" -lt 1 ] && nw=1
    local np=$nw; [ "$np" -gt "$IDLE_PROCS" ] && np=$IDLE_PROCS
    [ $quick = 1 ] && nw=2
    start_stack "$stack" "$nw"
    # A few sockets first, closed again, so that code run once per process
    # (library pages touched by the first handshake, join and heartbeat) is
    # in the baseline and the figure is the cost of each further socket.
    "${GEN[@]}" "$SIGLOAD" idle --target "$(targets)" --api "127.0.0.1:$API_PORT" --conns $((4 * nw)) \
      --duration 1 --quiet --json "$LOGS/$stack-idle-warm.json" >/dev/null 2>&1 || true
    sleep 1
    base=(); for k in "${WPIDS[@]}"; do base+=("$(rss_kb "$k")"); done
    sm0=$(sock_mem)
    per_proc=$(( (level + np - 1) / np ))
    echo "== $stack idle: $level sockets over $nw workers, $np generator(s)"
    logs=(); gpids=()
    for i in $(seq 1 "$np"); do
      # Each generator has its own block of source addresses: 127.0.<i>.1-8.
      "${GEN[@]}" "$SIGLOAD" idle --target "$(targets)" --api "127.0.0.1:$API_PORT" --conns "$per_proc" \
        --duration "$IDLE_HOLD" --src-base "127.0.$i.1" --src-count 8 --connect-rate 3000 \
        --json "$OUT/$stack-idle-$level-g$i.json" --label "$stack idle $level g$i" \
        >"$LOGS/$stack-idle-$level-g$i.out" 2>"$LOGS/$stack-idle-$level-g$i.log" &
      gpids+=($!); PIDS+=($!); logs+=("$LOGS/$stack-idle-$level-g$i.log")
    done
    # Wait until every generator has finished connecting, then read memory.
    local t0=$SECONDS
    while :; do
      local done_n=0 l
      for l in "${logs[@]}"; do grep -q "settling" "$l" 2>/dev/null && done_n=$((done_n + 1)); done
      [ "$done_n" -eq "$np" ] && break
      if [ $((SECONDS - t0)) -gt 300 ]; then echo "bench: idle ramp did not finish" >&2; break; fi
      sleep 0.5
    done
    sleep 2
    now=(); for k in "${WPIDS[@]}"; do now+=("$(rss_kb "$k")"); done
    sm1=$(sock_mem)
    joined=0
    for l in "${logs[@]}"; do
      k=$(sed -n 's/^idle: \([0-9]*\) joined.*/\1/p' "$l" | tail -1); joined=$((joined + ${k:-0}))
    done
    for k in "${gpids[@]}"; do kill -INT "$k" 2>/dev/null || true; done
    for k in "${gpids[@]}"; do wait "$k" 2>/dev/null || true; done
    total_base=0; total_now=0
    for k in "${base[@]}"; do total_base=$((total_base + k)); done
    for k in "${now[@]}"; do total_now=$((total_now + k)); done
    cat >"$OUT/$stack-idle-$level.json" <<EOF
{"stack":"$stack","scenario":"idle","level":$level,"workers":$nw,"generators":$np,"joined":$joined,
 "rss_kb_base":$total_base,"rss_kb":$total_now,
 "rss_bytes_per_conn":$(awk -v a="$total_now" -v b="$total_base" -v j="$joined" 'BEGIN {printf "%.1f", j ? (a-b)*1024/j : 0}'),
 "kernel_tcp_mem_bytes":$((sm1 - sm0)),
 "kernel_tcp_mem_per_conn":$(awk -v a="$sm1" -v b="$sm0" -v j="$joined" 'BEGIN {printf "%.1f", j ? (a-b)/j : 0}')}
EOF
    echo "   joined $joined, worker RSS $total_base kB -> $total_now kB"
    stop_stack
  done
}

api_scenario() { # stack
  local stack=$1 route max rate
  start_stack "$stack" 1
  for route in check_room get_room; do
    # get_room's rooms with fallback ids expire as they are made, as at a
    # steady state (expiry_start): otherwise the load adds rooms for good,
    # and Redis's tables doubling as the keyspace grows shows in p99
    # (docs/benchmarks.md, "Redis's tables doubling").
    [ "$route" = get_room ] && expiry_start fallback
    echo "== $stack api $route: closed loop (maximum)"
    sigload "$OUT/$stack-api-$route-max.json" api --route "$route" --conns "$API_CONNS" --duration "$DUR" \
      --warmup "$WARM" --pids "$API_PID" --label "$stack api $route max"
    max=$(per_s "$OUT/$stack-api-$route-max.json")
    rate=$(awk -v m="$max" 'BEGIN {r = int(m / 2); if (r < 10) r = 10; print r}')
    echo "== $stack api $route: open loop at half ($rate/s)"
    sigload "$OUT/$stack-api-$route-half.json" api --route "$route" --conns "$API_CONNS" --rate "$rate" "${PROBE[@]}" \
      --duration "$DUR" --warmup "$WARM" --pids "$API_PID" --label "$stack api $route half"
    expiry_stop
  done
  stop_stack
  [ "$stack" = ours ] && api_pool_compare
  return 0
}

# get_room with the room API's pool of reserved ids (the default) against
# the same build with the pool off (PD_ROOM_POOL=0), in this run: the
# closed-loop maximum of each, then both open loop at the same rate (half of
# the pool-off maximum), Redis's CPU counted with the room API's. Ratios:
# pool on ÷ off for the maximum and for requests per CPU-second of both
# servers; off ÷ on for p99.
api_pool_compare() {
  local mode rate=
  for mode in off on; do
    EXTRA_ENV=(); [ "$mode" = off ] && EXTRA_ENV=(PD_ROOM_POOL=0)
    start_stack ours 1
    expiry_start fallback   # as in api_scenario
    echo "== ours api get_room, pool $mode: closed loop (maximum)"
    sigload "$OUT/ours-apipool-$mode-max.json" api --route get_room --conns "$API_CONNS" --duration "$DUR" \
      --warmup "$WARM" --pids "$API_PID,$REDIS_PID" --label "ours api get_room pool $mode max"
    [ -n "$rate" ] || rate=$(awk -v m="$(per_s "$OUT/ours-apipool-off-max.json")" 'BEGIN {r = int(m / 2); if (r < 10) r = 10; print r}')
    echo "== ours api get_room, pool $mode: open loop at half of the pool-off maximum ($rate/s)"
    sigload "$OUT/ours-apipool-$mode-half.json" api --route get_room --conns "$API_CONNS" --rate "$rate" \
      --duration "$DUR" --warmup "$WARM" --pids "$API_PID,$REDIS_PID" --label "ours api get_room pool $mode half"
    expiry_stop
    stop_stack
  done
  EXTRA_ENV=()
  node -e 'const d=process.argv[1];const r=(m,k)=>require(`${d}/ours-apipool-${m}-${k}.json`);
    const f=(x)=>x.toFixed(2);
    const on=r("on","max").api, off=r("off","max").api, hon=r("on","half"), hoff=r("off","half");
    console.log(`  get_room, pool on vs off (same run): maximum ${f(on.per_s/off.per_s)}x;`+
      ` at ${Math.round(hoff.api.per_s)}/s requests per CPU-second of the room API and Redis ${f(hon.api.per_server_cpu_s/hoff.api.per_server_cpu_s)}x,`+
      ` p99 ${Math.round(hoff.latency.p99_us)} -> ${Math.round(hon.latency.p99_us)} us (${f(hoff.latency.p99_us/hon.latency.p99_us)}x)`);' "$OUT"
}

churn_scenario() { # stack
  local stack=$1
  start_stack "$stack" 2
  echo "== $stack churn: $CHURN_PAIRS pairs across two workers"
  sigload "$OUT/$stack-churn.json" churn --target "$(targets)" --cross --conns "$CHURN_PAIRS" \
    --duration "$DUR" --warmup "$WARM" --src-base 127.0.9.1 --src-count 16 \
    --pids "$(join_pids "${WPIDS[@]}" "$REDIS_PID")" --label "$stack churn"
  stop_stack
}

# get_room with the 4-digit space filled to a given fraction (ours only: the
# fill is held by simulating expiry through our own id bookkeeping). The
# prefill takes a scattered fraction of the 10 000 ids with a 48 h TTL; while
# the load runs, a second process "expires" the rooms get_room handed out
# every 2 ms, as their 24 h TTL would at a deployment's steady state:
# - a 4-digit room (at most 128 a pass): deleted and its id marked due, so
#   the fill stays where it was set (at fill 1.0 there are none to expire
#   and every call takes the fallback);
# - a fallback room (4 or 6 characters, not all digits): deleted, found by
#   a SCAN (COUNT 256: about 256 keys examined a pass) that carries on
#   where the last pass stopped; rooms the pool still holds (`reserved`)
#   are left alone. The SCAN costs Redis about 0.18 ms a pass, 10-13 % of
#   the servers' core, with or without rooms to delete: it is in the
#   servers' CPU of every run and reported apart (expiry_scan_s).
# So the keyspace stays the size it would have at a steady state, where rooms
# expire as fast as they are made. Without the second kind the load added
# up to 20 000 rooms a second for good (at 99-100 % taken), and each time the keyspace passed a power
# of two Redis moved every key into a table twice the size (dictRehash, a
# few hundred ms of 40-70 % more work for Redis on the servers' core): the
# episodes that made p99 miss at half of the maximum (docs/benchmarks.md,
# "Redis's tables doubling"). Small, frequent passes are how Redis expires
# keys itself (a few keys per step of its expiry cycle); one pass every
# 20 ms had to delete ~400 rooms at half load and held Redis for 1.3-2.4 ms
# each time (docs/benchmarks.md).
# Load: open loop at half of a closed loop measured just before, with the
# same expiry running; and open loop at the rate that keeps the servers'
# core half busy (<stack>-apifillhc-<fill>.json).
PREFILL_LUA=$(cat "$here/prefill-short.lua")
EXPIRE_LUA="local t = redis.call('TIME')
local day = tonumber(t[1]) * 1000 + 86400000
local ids = {}
if ARGV[1] == 'all' then
  ids = redis.call('ZRANGEBYSCORE', 'pd:short:used', day - 3600000, day + 1000, 'LIMIT', 0, 128)
end
for _, id in ipairs(ids) do
  redis.call('DEL', 'room:' .. id)
  redis.call('ZADD', 'pd:short:used', 'XX', 0, id)
end
redis.call('INCRBY', 'bench:short:expired', #ids)
local scan = redis.call('SCAN', redis.call('GET', 'bench:scan') or '0', 'MATCH', 'room:*', 'COUNT', 256, 'TYPE', 'hash')
redis.call('SET', 'bench:scan', scan[1])
local n = 0
for _, k in ipairs(scan[2]) do
  local id = string.sub(k, 6)
  if (#id == 4 or #id == 6) and not string.match(id, '^%d+\$') and redis.call('HEXISTS', k, 'reserved') == 0 then
    redis.call('DEL', k)
    n = n + 1
  end
end
redis.call('INCRBY', 'bench:fallback:expired', n)
return #ids + n"
# The expiring process: one long-lived connection on the generators' core
# that repeats the pass itself every 2 ms (a client forked per pass cost
# more than the work it carried, on whichever core the scheduler chose).
# `all`: both kinds of room above; `fallback`: fallback rooms only, for the
# api scenario, where the Node reference's 4-digit rooms are not in our
# bookkeeping and both stacks fill the 4-digit space for good.
# A script that does not load or fails is an error here, at once: the loop
# below would repeat the error every 2 ms into its log and hold nothing.
EXP_PID=
expiry_start() { # all|fallback
  local sha first
  sha=$(redis-cli -p "$RPORT" script load "$EXPIRE_LUA")
  first=$(redis-cli -p "$RPORT" EVALSHA "$sha" 0 "$1" 2>&1)
  if ! [[ $sha =~ ^[0-9a-f]{40}$ && $first =~ ^[0-9]+$ ]]; then
    echo "bench: the expiring script failed: $sha $first" >&2
    exit 1
  fi
  "${GEN[@]}" redis-cli -p "$RPORT" -r 1000000000 -i 0.002 EVALSHA "$sha" 0 "$1" >"$LOGS/expiry.log" 2>&1 &
  EXP_PID=$!; PIDS+=("$EXP_PID")
}
# An empty Redis, the 4-digit space taken to `fill`, and the expiring
# process holding it there (stopped by expiry_stop).
fill_hold() { # fill
  redis-cli -p "$RPORT" flushall >/dev/null
  redis-cli -p "$RPORT" eval "$PREFILL_LUA" 0 "$(awk -v f="$1" 'BEGIN {print int(f * 10000 + 0.5)}')" >/dev/null
  expiry_start all
}
expiry_stop() {
  local p keep=()
  if [ -n "$EXP_PID" ]; then
    kill "$EXP_PID" 2>/dev/null || true; wait "$EXP_PID" 2>/dev/null || true
    # Gone: cleanup must not kill whatever takes its pid later.
    for p in "${PIDS[@]}"; do [ "$p" = "$EXP_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
  fi
  EXP_PID=
  # Every reply was a count; anything else is an error Redis gave.
  if grep -qv '^[0-9]*$' "$LOGS/expiry.log" 2>/dev/null; then
    echo "bench: the expiring script failed while running: $(grep -v '^[0-9]*$' "$LOGS/expiry.log" | head -1)" >&2
    exit 1
  fi
}
# One open-loop get_room run at `rate` with the space `fill` taken.
apifill_run() { # stack fill rate json label tag [closed-loop max the rate is half of]
  local stack=$1 fill=$2 rate=$3 json=$4 label=$5 tag=$6 max=${7:-}
  fill_hold "$fill"
  echo "== $label"
  # Redis's own latency per command, beside the client's: what the
  # scripts cost inside Redis, warm-up included (INFO latencystats;
  # EVALSHA is get_room's script and, every 2 ms, the expiring pass's).
  redis-cli -p "$RPORT" config resetstat >/dev/null
  local hits0 hits1
  hits0=$(pool_hits)
  sigload "$json" api --route get_room --conns "$API_CONNS" --rate "$rate" "${PROBE[@]}" \
    --duration "$DUR" --warmup "$WARM" --pids "$API_PID,$REDIS_PID" --label "$stack api-fill $fill, $tag"
  hits1=$(pool_hits)
  expiry_stop
  # How the ids went: 4-digit ones handed out (expired again by the
  # loop above), and what the bookkeeping holds at the end.
  node -e 'const fs=require("fs");const [f,fill,exp,free,used,lat,hits,max,fexp,keys,scan]=process.argv.slice(1);
    const j=JSON.parse(fs.readFileSync(f,"utf8"));
    j.fill={fraction:Number(fill),short_ids_handed_out_and_expired:Number(exp)||0,free_at_end:Number(free),used_at_end:Number(used),
      fallback_rooms_expired:Number(fexp)||0,redis_keys_at_end:Number(keys),expiry_scan_s:Number(scan)||0};
    j.pool_hits=Number(hits)||0;
    if (max) j.closed_loop_max_per_s=Number(max);
    const m=/latency_percentiles_usec_evalsha:(\S+)/.exec(lat||"");
    if (m) j.redis_evalsha_usec=Object.fromEntries(m[1].split(",").map((kv)=>{const [k,v]=kv.split("=");return [k,Number(v)];}));
    fs.writeFileSync(f,JSON.stringify(j)+"\n")' "$json" "$fill" \
    "$(redis-cli -p "$RPORT" get bench:short:expired)" "$(redis-cli -p "$RPORT" scard pd:short:free)" \
    "$(redis-cli -p "$RPORT" zcard pd:short:used)" "$(redis-cli -p "$RPORT" info latencystats | tr -d '\r')" \
    "$((hits1 - hits0))" "$max" "$(redis-cli -p "$RPORT" get bench:fallback:expired)" "$(redis-cli -p "$RPORT" dbsize)" \
    "$(redis-cli -p "$RPORT" info commandstats | tr -d '\r' | awk -F'[=,]' '/^cmdstat_scan:/ {print $4 / 1e6}')"
  # get_rooms answered from the room API's pool of reserved ids (warm-up
  # included), against all answered in the measured window.
  node -e 'const j=require(process.argv[1]);console.log(`  from the pool: ${j.pool_hits} of ${j.api.ok} answers (warm-up included)`)' "$json"
  [ -z "$(node -e 'const j=require(process.argv[1]);process.stdout.write(j.redis_evalsha_usec?"y":"")' "$json")" ] ||
    node -e 'const j=require(process.argv[1]);const r=j.redis_evalsha_usec;console.log(`  Redis EVALSHA: ${Object.entries(r).map(([k,v])=>`${k} ${v} us`).join("  ")}`)' "$json"
}

# get_rooms the room API answered from its pool so far (0 with the pool off).
pool_hits() {
  curl -s --max-time 5 "http://127.0.0.1:$API_PORT/metrics" | awk '$1 == "privydrop_roomapi_pool_hits_total" {print $2}' | tail -1
}
apifill_scenario() { # stack
  local stack=$1 max rate half cal
  # max: here, for the calibration (a quarter of it); then each run's own
  if [ "$stack" != ours ]; then
    echo "== $stack api-fill: skipped (the fill is held through our own id bookkeeping)"
    return
  fi
  start_stack ours 1
  if [ -f "$OUT/ours-api-get_room-max.json" ]; then
    max=$(per_s "$OUT/ours-api-get_room-max.json")
  else
    sigload "$LOGS/apifill-max.json" api --route get_room --conns "$API_CONNS" --duration "$DUR" \
      --warmup "$WARM" --label "ours api-fill max" >/dev/null
    max=$(per_s "$LOGS/apifill-max.json")
  fi
  # Half of the closed loop's maximum is not half of what the servers can
  # do open loop: a closed loop keeps 64 requests in flight, so each read,
  # write and wake-up carries several, while an open-loop request comes
  # alone and pays its own. At "half of the maximum" the servers' core is
  # 90-99 % busy (docs/benchmarks.md). So every fill is also run at the
  # rate that keeps their core half busy, from their CPU per request in a
  # short open-loop run at a quarter of the maximum (full space, the same
  # cost per call as every fill: docs/benchmarks.md, instructions per
  # get_room by fill).
  cal=$LOGS/apifill-cal.json
  fill_hold 1.0
  sigload "$cal" api --route get_room --conns "$API_CONNS" --rate "$(awk -v m="$max" 'BEGIN {r = int(m / 4); if (r < 10) r = 10; print r}')" \
    --duration "$DUR" --warmup "$WARM" --pids "$API_PID,$REDIS_PID" --label "ours api-fill calibration" >/dev/null
  expiry_stop
  local us
  read -r half us < <(node -e 'const j=require(process.argv[1]);const n=j.api.per_s*j.window_s;
    const us=n>0?1e6*j.servers.cpu_s/n:0;process.stdout.write(`${Math.max(us>0?Math.floor(5e5/us):0,10)} ${us.toFixed(1)}\n`)' "$cal")
  echo "== ours api-fill: the servers' core is half busy at about $half get_room/s open loop ($us µs of their CPU per request)"
  local rep fill sfx
  # Repeats go round the fills (90, 99, 100, 90, 99, 100 %, ...), not one
  # fill after the other, and each fill's two rates run back to back:
  # whatever the host does over the minutes of the scenario then falls on
  # every fill and both rates alike.
  for rep in $(seq 1 "${PD_BENCH_FILL_REPEAT:-1}"); do
  for fill in $FILLS; do
    sfx=; [ "$rep" = 1 ] || sfx=-r$rep
    # "Half of the maximum" is half of a closed loop measured just before,
    # at the same fill with the same expiry (the same work per get_room):
    # this host's speed moves by a third between minutes
    # (docs/benchmarks.md), and half of a maximum measured at a fast minute
    # is most of the servers' core at a slow one.
    fill_hold "$fill"
    sigload "$LOGS/apifill-max-$fill$sfx.json" api --route get_room --conns "$API_CONNS" --duration "$DUR" \
      --warmup "$WARM" --pids "$API_PID,$REDIS_PID" --label "ours api-fill max before $fill run $rep" >/dev/null
    expiry_stop
    max=$(per_s "$LOGS/apifill-max-$fill$sfx.json")
    rate=$(awk -v m="$max" 'BEGIN {r = int(m / 2); if (r < 10) r = 10; print r}')
    apifill_run "$stack" "$fill" "$rate" "$OUT/$stack-apifill-$fill$sfx.json" \
      "$stack api-fill $fill (run $rep): get_room open loop at half of the maximum just measured ($max/s): $rate/s" \
      "half of maximum" "$max"
    apifill_run "$stack" "$fill" "$half" "$OUT/$stack-apifillhc-$fill$sfx.json" \
      "$stack api-fill $fill (run $rep): get_room open loop with the servers' core half busy ($half/s)" "core half busy"
  done
  done
  stop_stack
}

wait_ready() { # url: until it answers 200 (a worker's /readyz)
  local i
  for i in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" = 200 ] && return 0
    sleep 0.1
  done
  echo "bench: $1 never became ready" >&2
  return 1
}

rolling_scenario() { # stack front(rr|leastconn) surge(0|1) json-name
  local stack=$1 front=$2 surge=$3 i k ready gen_pid old_pid old_port spare status=0 json=$OUT/$1-$4.json
  if [ "$stack" != ours ]; then
    echo "== $stack $4: skipped (the Node reference has no drain or readiness endpoint)"
    return
  fi
  # Three workers with every protective limit at its default (the join
  # limit on); --xff gives each peer its own client address, kept across
  # its reconnections, so the limit sees what it would see in production.
  start_stack ours 0
  for i in 1 2 3; do
    start_ours_worker "$i" "$(pick_port $((27000 + 10 * i)))" "bench-w$i-g0"
  done
  for i in 0 1 2; do wait_ready "http://127.0.0.1:${WPORTS[$i]}/readyz"; done
  # A surge rollout starts each replacement before stopping the old worker,
  # so the front also watches one more port, where the first replacement
  # starts (each later one takes the port its predecessor freed).
  spare=
  [ "$surge" = 1 ] && spare=$(pick_port 27100)
  ready=$LOGS/$4.ready
  rm -f "$ready"
  echo "== $stack $4: $ROLL_ROOMS rooms over three workers, front $front, maxSurge $surge"
  "${GEN[@]}" "$SIGLOAD" rolling --target "$(targets)${spare:+,127.0.0.1:$spare}" --api "127.0.0.1:$API_PORT" \
    --rooms "$ROLL_ROOMS" --xff --front "$front" --ready-file "$ready" --settle "$ROLL_SETTLE" --duration 600 \
    --json "$json" --label "$stack $4" >"$LOGS/$4.out" 2>"$LOGS/$4.log" &
  gen_pid=$!; PIDS+=("$gen_pid")
  for k in $(seq 1 1200); do
    [ -s "$ready" ] && break
    kill -0 "$gen_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$ready" ]; then
    echo "bench: $4: the rooms never all met" >&2
    cat "$LOGS/$4.log" >&2
    kill -INT "$gen_pid" 2>/dev/null || true; wait "$gen_pid" 2>/dev/null || true
    stop_stack
    return 1
  fi
  # The rollout, one worker at a time as a Deployment does. maxSurge 0
  # (maxUnavailable 1): SIGTERM, wait for the drain to end (exit), start
  # the replacement on the same port, wait until it is ready, next.
  # maxSurge 1 (maxUnavailable 0): start the replacement, wait until it is
  # ready, then SIGTERM the old one and wait for its exit, next.
  for i in 0 1 2; do
    old_pid=${WPIDS[$i]}; old_port=${WPORTS[$i]}
    if [ "$surge" = 1 ]; then
      echo "   worker $((i + 1)): start the replacement, wait ready, SIGTERM the old one, drain"
      start_ours_worker "$((i + 1))" "$spare" "bench-w$((i + 1))-g1"
      wait_ready "http://127.0.0.1:$spare/readyz"
      kill -TERM "$old_pid"
      wait "$old_pid" || { echo "bench: worker $((i + 1)) exited non-zero while draining" >&2; status=1; }
      spare=$old_port
    else
      echo "   worker $((i + 1)): SIGTERM, drain, start again"
      kill -TERM "$old_pid"
      wait "$old_pid" || { echo "bench: worker $((i + 1)) exited non-zero while draining" >&2; status=1; }
      start_ours_worker "$((i + 1))" "$old_port" "bench-w$((i + 1))-g1"
      wait_ready "http://127.0.0.1:$old_port/readyz"
    fi
  done
  kill -USR1 "$gen_pid"
  wait "$gen_pid" || status=1
  cat "$LOGS/$4.out"
  stop_stack
  return $status
}

redis_scenario() {
  # PUBLISH of an envelope-sized payload, pipelined (-P 16) like the
  # workers' own publishes, with one subscriber on the channel (each of our
  # cross-worker signals has exactly one interested worker).
  local payload sub_pid csv
  payload=$(head -c 330 /dev/zero | tr '\0' x)
  redis-cli -p "$RPORT" subscribe pd:room:bench >/dev/null &
  sub_pid=$!; PIDS+=("$sub_pid")
  sleep 0.3
  echo "== redis-benchmark PUBLISH, -P 16, one subscriber"
  # Redis's CPU over the run too: when redis-benchmark's one client thread
  # saturates first, PUBLISH/s understates what Redis can do, and PUBLISH
  # per Redis CPU-second is the figure to hold the relay's cost against.
  local cpu0 cpu1 t0 t1 tck
  tck=$(getconf CLK_TCK)
  cpu0=$(awk '{print $14 + $15}' "/proc/$REDIS_PID/stat"); t0=$(date +%s%N)
  csv=$("${GEN[@]}" redis-benchmark -p "$RPORT" -n "$RB_N" -P 16 -c 4 -q --csv PUBLISH pd:room:bench "$payload" | tail -1)
  cpu1=$(awk '{print $14 + $15}' "/proc/$REDIS_PID/stat"); t1=$(date +%s%N)
  kill "$sub_pid" 2>/dev/null || true; wait "$sub_pid" 2>/dev/null || true
  local rps p99 cpu_s wall_s
  rps=$(echo "$csv" | awk -F'","' '{print $2}')
  p99=$(echo "$csv" | awk -F'","' '{print $7}')
  cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$tck" 'BEGIN {printf "%.3f", (b - a) / t}')
  wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  echo "   $rps PUBLISH/s; Redis CPU $cpu_s s over $wall_s s"
  printf '{"scenario":"redis-benchmark","command":"PUBLISH","pipeline":16,"subscribers":1,"payload_bytes":330,"rps":%s,"p99_ms":%s,"published":%s,"redis_cpu_s":%s,"wall_s":%s}\n' \
    "${rps:-0}" "${p99:-0}" "$RB_N" "$cpu_s" "$wall_s" >"$OUT/redis-publish.json"
}

IFS=, read -r -a STACKS <<<"$stacks"
IFS=, read -r -a SCEN <<<"$scenarios"
for sc in "${SCEN[@]}"; do
  if [ "$sc" = redis ]; then redis_scenario; continue; fi
  if [ "$sc" = icount ]; then
    echo "== icount: instructions and system calls per operation"
    icount_args=(--out "$OUT"); [ $quick = 1 ] && icount_args+=(--quick)
    PD_BIN_DIR=$BIN "$here/icount.sh" "${icount_args[@]}"
    continue
  fi
  for st in "${STACKS[@]}"; do
    case "$sc" in
      relay1) relay_scenario "$st" relay1 1 "" ;;
      relayx) relay_scenario "$st" relayx 2 --cross ;;
      shards) shards_scenario "$st" ;;
      poll) poll_scenario "$st" ;;
      idle) idle_scenario "$st" ;;
      api) api_scenario "$st" ;;
      apifill) apifill_scenario "$st" ;;
      churn) churn_scenario "$st" ;;
      rolling)
        rolling_scenario "$st" rr 0 rolling
        # What a balancer and a rollout can do better (not in the quick pass).
        [ $quick = 1 ] || rolling_scenario "$st" leastconn 1 rolling-surge
        ;;
      *) echo "bench: unknown scenario $sc" >&2; exit 2 ;;
    esac
  done
done

report_args=("$OUT")
[ $quick = 1 ] && report_args+=(--quick)
status=0
node "$here/report.mjs" "${report_args[@]}" || status=$?
if [ $quick = 1 ] && [ $status = 0 ] && [ -z "${PD_BENCH_OUT:-}" ]; then rm -rf "$OUT" "$LOGS"; fi
exit $status
