#!/usr/bin/env bash
# Machine-independent figures: user-space instructions per operation,
# counted by valgrind's callgrind, and system calls per signal, counted by
# strace. Neither depends on how fast or how busy the machine is (within
# the limits said in docs/benchmarks.md, "Instructions per operation").
#
#   bench/icount.sh [--quick] [--out DIR] [--only relay1,relayx,api,get_room]
#
# --only runs just the named parts (relay1: relay and churn within one
# worker; relayx: relay across two workers; api: the room API; get_room:
# its script in Redis by fill), e.g. --only relayx before and after a
# change to the cross-worker path.
#
# Method. The server runs under callgrind for the whole scenario; before
# each measured run its counters are zeroed and after it they are dumped
# (callgrind_control -z / -d), so a dump holds exactly that run. The same
# load (privydrop-sigload) runs twice, for D and for 2D seconds; everything
# done once per run (connects, joins, the generator's room creation, timers
# firing) is the same in both, so
#     instructions per operation = (Ir(2D) - Ir(D)) / (ops(2D) - ops(D))
# with ops counted by the generator (signals received, requests answered,
# churn cycles). System calls: the native server, strace -c -f attached for
# the run, the same difference.
#
# Writes DIR/icount.json (default bench/results). Prints one line per
# figure. With --quick: short runs, and exit 1 unless every figure came out
# positive (no threshold: the machinery is what is checked).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BIN=${PD_BIN_DIR:-$top/build/bin}
SIGLOAD=$BIN/privydrop-sigload
OUT=$here/results
quick=0
only=relay1,relayx,api,get_room
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) OUT=$2; shift ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n 2,27p "$0"; exit 0 ;;
    *) echo "icount: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for b in privydrop-signal privydrop-roomapi privydrop-sigload; do
  [ -x "$BIN/$b" ] || { echo "icount: $BIN/$b missing (make c sigload)" >&2; exit 1; }
done
for t in valgrind callgrind_control strace redis-server redis-cli curl node; do
  command -v "$t" >/dev/null || { echo "icount: '$t' not found; run make deps" >&2; exit 1; }
done

# D seconds and 2D. Paced relays send RATE signals per second in all, well
# below what a worker under callgrind (~50x slower, on a shared machine) can
# take: a worker that falls behind would still be working off signals the
# generator never counted, and the difference would be wrong. So each
# signal is handled on its own, as browsers send them. Closed loops (relay
# with a window, churn, the room API) bound what is in flight, so their
# counts stay exact at any speed.
# get_room's script in Redis: GR_K sequential calls in each of two windows.
if [ $quick = 1 ]; then D=2; GR_K="5 10"; else D=4; GR_K="20 40"; fi
RATE=300
mkdir -p "$OUT"
LOGS=$(mktemp -d)
RUNS=$LOGS/runs.tsv   # figure  kind(ir|sys)  seconds  ops  count  [per-syscall JSON]
: >"$RUNS"

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports from a random base: two runs on one machine (or another bench)
# that scanned from the same base could both find a port free and then
# share it (the workers bind with SO_REUSEPORT), mixing their counts.
PORT_BASE=$((20000 + RANDOM % 10000))
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_http() { # url seconds
  local i
  for i in $(seq 1 $(($2 * 10))); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  echo "icount: $1 did not come up" >&2
  return 1
}

RPORT=$(pick_port "$PORT_BASE")
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --logfile "$LOGS/redis.log" &
PIDS+=($!)
for i in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# The room API runs natively unless it is what is measured (then wrapped).
API_PID=; API_PORT=
start_api() { # wrapper...
  API_PORT=$(pick_port $((PORT_BASE + 50)))
  env PD_API_PORT="$API_PORT" PD_LISTEN_ADDR=127.0.0.1 REDIS_PORT="$RPORT" PD_LOG_LEVEL=warn \
    PD_API_RATE=1000000 PD_API_BURST=1000000 PD_ROOM_POOL="${API_POOL:-256}" "$@" "$BIN/privydrop-roomapi" >>"$LOGS/api.log" 2>&1 &
  API_PID=$!; PIDS+=($!)
  wait_http "http://127.0.0.1:$API_PORT/health" 60
}
wait_ready() { # url seconds: until it answers 200 (Redis connected)
  local i
  for i in $(seq 1 $(($2 * 10))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" = 200 ] && return 0
    sleep 0.1
  done
  echo "icount: $1 never became ready" >&2
  return 1
}
stop_pid() { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

WPIDS=(); WPORTS=()
start_worker() { # wrapper...
  local port
  port=$(pick_port $((PORT_BASE + 100 + 10 * ${#WPIDS[@]})))
  env PD_SIGNAL_PORT="$port" PD_LISTEN_ADDR=127.0.0.1 PD_WORKER_ID="icount-w${#WPIDS[@]}" REDIS_PORT="$RPORT" \
    PD_LOG_LEVEL=warn PD_MAX_CONNS_PER_IP=1000000 DISABLE_JOIN_RATE_LIMIT=1 PD_EVENT_RATE=1000000 \
    PD_EVENT_BURST=1000000 PD_MAX_ROOM_PEERS=0 "$@" "$BIN/privydrop-signal" >>"$LOGS/worker.log" 2>&1 &
  WPIDS+=($!); WPORTS+=("$port"); PIDS+=($!)
  wait_ready "http://127.0.0.1:$port/readyz" 60
}
stop_workers() { local p; for p in "${WPIDS[@]}"; do stop_pid "$p"; done; WPIDS=(); WPORTS=(); }
targets() { local t="" p; for p in "${WPORTS[@]}"; do t="$t${t:+,}127.0.0.1:$p"; done; echo "$t"; }

CG=(valgrind --tool=callgrind --dump-instr=no --dump-line=no)
cg_wrap() { echo "${CG[@]}" "--callgrind-out-file=$LOGS/cg.$1.%p"; }

# Total instructions (Ir) of the newest dump of pid, or fail.
cg_last() { # name pid
  local f
  f=$(ls -t "$LOGS/cg.$1.$2".* 2>/dev/null | head -1)
  [ -n "$f" ] || { echo "icount: no callgrind dump for $1" >&2; return 1; }
  awk '/^summary:/ {print $2; exit}' "$f"
}

# The generator's operation count from its JSON report.
ops_of() { # json
  node -e 'const j=require(process.argv[1]);
    const n = { relay: (r) => r.received, api: (r) => r.ok, churn: (r) => r.cycles }[j.mode](j[j.mode]);
    process.stdout.write(String(n))' "$1"
}

# An uncounted run first: a fresh process pays once for code paths it has
# not taken yet (lazy symbol binding, tables growing to size), which would
# otherwise land in the shorter run only and shrink the difference.
warm() { "$SIGLOAD" "$@" --duration 1 --warmup 0 --quiet >>"$LOGS/sigload.log" 2>&1 || true; }

# One measured run: zero the counters of every pid, run the generator for
# the given seconds, dump, record the sum of the dumps.
cg_run() { # figure name seconds "pids" sigload-args...
  local fig=$1 name=$2 secs=$3 pids=$4 p ir=0 n json
  shift 4
  json=$LOGS/$fig-$secs.json
  # One more try if the generator failed (on a loaded machine a worker
  # under callgrind can miss its Redis deadlines and refuse joins for a
  # moment); the counters are zeroed again, so only the good run counts.
  local try
  for try in 1 2; do
    for p in $pids; do callgrind_control -z "$p" >/dev/null 2>&1; done
    "$SIGLOAD" "$@" --duration "$secs" --warmup 0 --quiet --json "$json" >>"$LOGS/sigload.log" 2>&1 && break
    [ $try = 2 ] && { echo "icount: $fig: the generator failed twice (see $LOGS/sigload.log)" >&2; return 1; }
    sleep 2
  done
  for p in $pids; do
    callgrind_control -d "$p" >/dev/null 2>&1
    n=$(cg_last "$name" "$p"); ir=$((ir + n))
  done
  printf '%s\tir\t%s\t%s\t%s\n' "$fig" "$secs" "$(ops_of "$json")" "$ir" >>"$RUNS"
}

sys_run() { # figure seconds "pids" sigload-args...
  local fig=$1 secs=$2 pids=$3 p args=() spid json total
  shift 3
  json=$LOGS/$fig-sys-$secs.json
  for p in $pids; do args+=(-p "$p"); done
  local slog=$LOGS/strace-$fig-$secs.log i
  strace -c -f "${args[@]}" -o "$LOGS/strace-$fig-$secs.txt" 2>"$slog" &
  spid=$!; PIDS+=("$spid")
  # Load only once strace has attached to every pid: a late attach would
  # miss calls of the first run and not of the second.
  for i in $(seq 1 300); do
    [ "$(grep -c attached "$slog" 2>/dev/null)" -ge "$(echo $pids | wc -w)" ] && break
    sleep 0.1
  done
  "$SIGLOAD" "$@" --duration "$secs" --warmup 0 --quiet --json "$json" >>"$LOGS/sigload.log" 2>&1
  kill -INT "$spid"; wait "$spid" || true
  # strace -c: "% time seconds usecs/call calls [errors] syscall"; calls is
  # the 4th column, the name the last.
  total=$(awk '$NF == "total" {print $4}' "$LOGS/strace-$fig-$secs.txt")
  local each
  each=$(awk 'BEGIN {printf "{"} $1 ~ /^[0-9.]+$/ && $NF != "total" {printf "%s\"%s\":%s", s, $NF, $4; s=","} END {printf "}"}' \
    "$LOGS/strace-$fig-$secs.txt")
  printf '%s\tsys\t%s\t%s\t%s\t%s\n' "$fig" "$secs" "$(ops_of "$json")" "${total:-0}" "$each" >>"$RUNS"
}

want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# ---- signal worker: relay within one worker, paced and closed loop -------------
start_api
if want relay1; then
echo "icount: relay within one worker (callgrind, ${D}s and $((2 * D))s)"
start_worker $(cg_wrap relay1)
warm relay --target "$(targets)" --api "127.0.0.1:$API_PORT" --rooms 10 --rate "$RATE"
for s in $D $((2 * D)); do
  cg_run relay1 relay1 "$s" "${WPIDS[0]}" relay --target "$(targets)" --api "127.0.0.1:$API_PORT" --rooms 10 --rate "$RATE"
done
for s in $D $((2 * D)); do
  cg_run relay1-closed relay1 "$s" "${WPIDS[0]}" relay --target "$(targets)" --api "127.0.0.1:$API_PORT" --rooms 4 --window 8
done
echo "icount: churn within one worker (callgrind)"
warm churn --target "$(targets)" --api "127.0.0.1:$API_PORT" --conns 4
for s in $D $((2 * D)); do
  cg_run churn relay1 "$s" "${WPIDS[0]}" churn --target "$(targets)" --api "127.0.0.1:$API_PORT" --conns 4
done
stop_workers
fi

if want relayx; then
echo "icount: relay across two workers (callgrind)"
start_worker $(cg_wrap relayx)
start_worker $(cg_wrap relayx)
warm relay --target "$(targets)" --cross --api "127.0.0.1:$API_PORT" --rooms 10 --window 1
for s in $D $((2 * D)); do
  # Closed loop, one signal in flight per peer: two workers under
  # callgrind on a shared machine fall behind even a slow pace.
  cg_run relayx relayx "$s" "${WPIDS[*]}" relay --target "$(targets)" --cross --api "127.0.0.1:$API_PORT" --rooms 10 --window 1
done
stop_workers

fi
echo "icount: system calls per signal (strace)"
if want relay1; then
start_worker
for s in $D $((2 * D)); do
  sys_run relay1 "$s" "${WPIDS[0]}" relay --target "$(targets)" --api "127.0.0.1:$API_PORT" --rooms 10 --rate "$RATE"
done
stop_workers
fi
if want relayx; then
start_worker; start_worker
for s in $D $((2 * D)); do
  sys_run relayx "$s" "${WPIDS[*]}" relay --target "$(targets)" --cross --api "127.0.0.1:$API_PORT" --rooms 10 --rate "$RATE"
done
stop_workers
fi
stop_pid "$API_PID"

# ---- room API ---------------------------------------------------------------------
if want api; then
echo "icount: room API check_room and get_room (callgrind)"
# get_room twice: each call searching for a free id in Redis (the pool
# off), and from the pool of reserved ids (the default; docs/architecture.md,
# "get_room from a pool"): a claim per call, and a share of the batched
# reservations.
for pool in 0 256; do
  API_POOL=$pool start_api $(cg_wrap api)
  routes="check_room get_room"; [ "$pool" = 0 ] || routes=get_room
  for route in $routes; do
    fig=$route; [ "$pool" = 0 ] || fig=$route-pool
    warm api --api "127.0.0.1:$API_PORT" --route "$route" --conns 4
    for s in $D $((2 * D)); do
      # Each get_room run starts from an empty 4-digit space.
      redis-cli -p "$RPORT" flushall >/dev/null
      cg_run "$fig" api "$s" "$API_PID" api --api "127.0.0.1:$API_PORT" --route "$route" --conns 4
    done
  done
  stop_pid "$API_PID"
done
start_api
for s in $D $((2 * D)); do
  sys_run check_room "$s" "$API_PID" api --api "127.0.0.1:$API_PORT" --route check_room --conns 4 --rate "$RATE"
done
stop_pid "$API_PID"
fi

# ---- get_room's script in Redis, by fill of the 4-digit space ----------------------
if want get_room; then
# Redis under callgrind, the room API native. At each fill: prefill, 20
# calls to finish sorting the space (done once per data set), then 20 and
# 40 sequential calls (5 and 10 with --quick); Redis's own time-driven work (its cron) is measured
# idle and taken off in proportion to each window's length.
echo "icount: get_room's script in Redis by fill (callgrind)"
R2PORT=$(pick_port $((PORT_BASE + 20)))
"${CG[@]}" "--callgrind-out-file=$LOGS/cg.redis.%p" redis-server --port "$R2PORT" --bind 127.0.0.1 --save '' \
  --appendonly no --logfile "$LOGS/redis2.log" >>"$LOGS/redis2.out" 2>&1 &
R2PID=$!; PIDS+=("$R2PID")
for i in $(seq 1 300); do redis-cli -p "$R2PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
RPORT_MAIN=$RPORT; RPORT=$R2PORT
API_POOL=0 start_api # one script call per get_room, as counted here
RPORT=$RPORT_MAIN
get_rooms() { local i; for i in $(seq 1 "$1"); do curl -s -o /dev/null --max-time 30 "http://127.0.0.1:$API_PORT/api/get_room"; done; }
callgrind_control -z "$R2PID" >/dev/null 2>&1; t0=$(date +%s.%N); sleep 2
callgrind_control -d "$R2PID" >/dev/null 2>&1; t1=$(date +%s.%N)
idle_rate=$(awk -v ir="$(cg_last redis "$R2PID")" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", ir / (b - a)}')
for fill in 0 0.9 0.99 1.0; do
  redis-cli -p "$R2PORT" flushall >/dev/null
  redis-cli -p "$R2PORT" eval "$(cat "$here/prefill-short.lua")" 0 "$(awk -v f="$fill" 'BEGIN {print int(f * 10000 + 0.5)}')" >/dev/null
  get_rooms 20 # the first 20 calls sort the space (500 ids each)
  for k in $GR_K; do
    callgrind_control -z "$R2PID" >/dev/null 2>&1; t0=$(date +%s.%N)
    get_rooms "$k"
    callgrind_control -d "$R2PID" >/dev/null 2>&1; t1=$(date +%s.%N)
    ir=$(awk -v ir="$(cg_last redis "$R2PID")" -v r="$idle_rate" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", ir - r * (b - a)}')
    printf '%s\tir\t%s\t%s\t%s\n' "redis-get_room-$fill" "$k" "$k" "$ir" >>"$RUNS"
  done
done
stop_pid "$API_PID"
# The same Redis behind the pool, 90 % full: its work per get_room is a
# claim and a share of the batched reservations, paced at $RATE/s for D and
# 2D seconds (its cron taken off as above).
RPORT=$R2PORT
start_api
RPORT=$RPORT_MAIN
redis-cli -p "$R2PORT" flushall >/dev/null
redis-cli -p "$R2PORT" eval "$(cat "$here/prefill-short.lua")" 0 9000 >/dev/null
get_rooms 20
warm api --api "127.0.0.1:$API_PORT" --route get_room --conns 4 --rate "$RATE"
for s in $D $((2 * D)); do
  json=$LOGS/redis-pool-$s.json
  callgrind_control -z "$R2PID" >/dev/null 2>&1; t0=$(date +%s.%N)
  "$SIGLOAD" api --api "127.0.0.1:$API_PORT" --route get_room --conns 4 --rate "$RATE" --duration "$s" --warmup 0 \
    --quiet --json "$json" >>"$LOGS/sigload.log" 2>&1
  callgrind_control -d "$R2PID" >/dev/null 2>&1; t1=$(date +%s.%N)
  ir=$(awk -v ir="$(cg_last redis "$R2PID")" -v r="$idle_rate" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", ir - r * (b - a)}')
  printf '%s\tir\t%s\t%s\t%s\n' "redis-get_room-pool-0.9" "$s" "$(ops_of "$json")" "$ir" >>"$RUNS"
done
stop_pid "$API_PID"
stop_pid "$R2PID"
fi

# ---- figures ---------------------------------------------------------------------
status=0
node - "$RUNS" "$OUT/icount.json" "$quick" <<'EOF' || status=$?
const fs = require('fs');
const [runsFile, outFile, quick] = process.argv.slice(2);
const runs = fs.readFileSync(runsFile, 'utf8').trim().split('\n').map((l) => {
  const [fig, kind, secs, ops, count, each] = l.split('\t');
  return { fig, kind, secs: +secs, ops: +ops, count: +count, each: each ? JSON.parse(each) : null };
});
const what = {
  relay1: 'relayed signal within one worker, paced (one signal per read)',
  'relay1-closed': 'relayed signal within one worker, closed loop (8 in flight per peer)',
  relayx: 'cross-worker signal, both workers (closed loop, 1 in flight per peer; system calls: paced)',
  churn: 'churn cycle: connect, join, offer, leave (one worker)',
  check_room: 'check_room request',
  get_room: 'get_room request, pool off (the room API; the Lua script runs in Redis)',
  'get_room-pool': 'get_room request from the pool of reserved ids (the room API: its share of the batched claims and reservations)',
  'redis-get_room-pool-0.9': "get_room from the pool: Redis's work per get_room (its share of the batched claims and reservations), 90 % taken",
  'redis-get_room-0': "get_room's script in Redis, 4-digit space empty",
  'redis-get_room-0.9': "get_room's script in Redis, 4-digit space 90 % taken",
  'redis-get_room-0.99': "get_room's script in Redis, 4-digit space 99 % taken",
  'redis-get_room-1.0': "get_room's script in Redis, 4-digit space full (fallback ids)",
};
const figures = [];
const failures = [];
for (const kind of ['ir', 'sys']) {
  for (const fig of [...new Set(runs.filter((r) => r.kind === kind).map((r) => r.fig))]) {
    const rs = runs.filter((r) => r.kind === kind && r.fig === fig).sort((a, b) => a.secs - b.secs);
    const [a, b] = [rs[0], rs[rs.length - 1]];
    // The difference needs the second run to have done clearly more; on a
    // machine so busy that it did not, the longer run's plain ratio is
    // given instead (it includes that run's fixed costs: an upper bound).
    const dOps = b.ops - a.ops;
    // Likewise when the difference is not positive: the runs were too
    // short for the operations to stand out of the noise in fixed costs.
    const byDiff = dOps >= 0.3 * b.ops && b.count > a.count;
    const per = byDiff ? (b.count - a.count) / dOps : b.ops > 0 ? b.count / b.ops : NaN;
    const f = { figure: fig, kind, what: what[fig], per_op: Number.isFinite(per) ? Math.round(per * 100) / 100 : null,
      method: byDiff ? 'difference' : 'ratio of the longer run (upper bound)',
      runs: rs.map((r) => ({ seconds: r.secs, ops: r.ops, count: r.count })) };
    if (kind === 'sys' && a.each && b.each) {
      f.by_syscall = {};
      for (const k of Object.keys(b.each)) {
        const v = byDiff ? (b.each[k] - (a.each[k] || 0)) / dOps : b.each[k] / b.ops;
        if (Math.abs(v) >= 0.01) f.by_syscall[k] = Math.round(v * 100) / 100;
      }
    }
    figures.push(f);
    const unit = kind === 'ir' ? 'instructions' : 'system calls';
    console.log(`  ${fig.padEnd(14)} ${f.per_op === null ? '—' : f.per_op.toLocaleString('en-US')} ${unit} per operation` +
      `  (ops ${a.ops} → ${b.ops}${byDiff ? '' : '; runs too close or too short: ratio, an upper bound'})` + (f.by_syscall ? `  ${JSON.stringify(f.by_syscall)}` : ''));
    if (!(f.per_op > 0)) failures.push(`${kind} ${fig}: no positive figure (ops ${a.ops} → ${b.ops}, count ${a.count} → ${b.count})`);
  }
}
fs.writeFileSync(outFile, JSON.stringify({ method: 'difference of two runs (D and 2D seconds) / difference of operations',
  tool: { ir: 'valgrind --tool=callgrind (user-space instructions, Ir)', sys: 'strace -c -f' }, figures }, null, 2) + '\n');
if (failures.length) {
  console.log(failures.join('\n'));
  if (quick === '1') process.exit(1);
}
EOF
[ $status = 0 ] && rm -rf "$LOGS"
exit $status
