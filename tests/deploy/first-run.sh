#!/usr/bin/env bash
# The first `make run` of a new user, from a checkout in a private directory.
#
#   1. `git clone` of this tree into DIR/home/privydrop-c, DIR/home being mode
#      0700 like root's home; no build there yet.
#   2. `make run` in it, once, with llhttp staged by the install step into a
#      directory that does not exist when make starts (as node-llhttp is on a
#      fresh machine: make must not trust what it saw before `deps` ran).
#      The install step is the real deploy/local/deps.sh plus that staging.
#   3. The URL it prints answers 200 with the web client's page, and the room
#      API answers through the same origin (GET /api/get_room).
#   4. SIGINT to make's process group, as Ctrl-C in a terminal sends it: make
#      and run.sh exit, and no process they started is left (every PID of the
#      printed table gone, nothing running from inside the clone).
#
# Usage: tests/deploy/first-run.sh        (make test-first-run)
# Environment: PD_FIRST_RUN_KEEP=1 keeps the temporary directory.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
for t in git make curl node; do
  command -v "$t" >/dev/null || { echo "first-run: $t is missing (make deps)" >&2; exit 1; }
done
[ -f /usr/share/llhttp/api.c ] || { echo "first-run: node-llhttp is missing (make deps)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pd-first-run.XXXXXX")
home=$work/home
clone=$home/privydrop-c
out=$work/make-run.out
make_pid=
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }

# Processes working in, run from, or naming the clone (run.sh and all it
# starts work in it; redis-server rewrites its command line, not its cwd).
inside_clone() {
  local p exe cwd cmd
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    cwd=$(readlink "$p/cwd" 2>/dev/null)
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case "$exe|$cwd/|$cmd" in *"$clone/"*) echo "${p#/proc/} $cmd" ;; esac
  done
}
cleanup() {
  # Only if the test failed half-way: stop what it started, by process group.
  if [ -n "$make_pid" ] && kill -0 "$make_pid" 2>/dev/null; then
    kill -INT -- "-$make_pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$make_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$make_pid" 2>/dev/null
  fi
  local left
  left=$(inside_clone | awk '{print $1}')
  # shellcheck disable=SC2086
  [ -z "$left" ] || kill -KILL $left 2>/dev/null
  if [ -n "${PD_FIRST_RUN_KEEP:-}" ]; then echo "first-run: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

mkdir -p "$home"
chmod 0700 "$home"
if git clone -q "$top" "$clone" 2>"$work/clone.err"; then
  ok "git clone into a mode-0700 directory ($(git -C "$clone" rev-parse --short HEAD))"
else
  not_ok "git clone"; sed 's/^/    /' "$work/clone.err"; exit 1
fi
[ ! -e "$clone/build" ] || { not_ok "the clone already has a build/"; exit 1; }

# Free ports, found by binding port 0 (all five held at once, so distinct).
read -r http_port signal_port api_port redis_port turn_port < <(node -e '
  const net = require("net");
  const s = [0, 1, 2, 3, 4].map(() => net.createServer());
  let n = 0;
  s.forEach((v) => v.listen(0, "127.0.0.1", () => {
    if (++n === s.length) { console.log(s.map((x) => x.address().port).join(" ")); s.forEach((x) => x.close()); }
  }));')
[ -n "$turn_port" ] || { not_ok "could not find free ports"; exit 1; }

# llhttp lands in a directory that does not exist yet when make starts.
stage=$work/llhttp
deps_cmd="deploy/local/deps.sh && mkdir -p $stage/src $stage/include && cp /usr/share/llhttp/*.c $stage/src/ && cp /usr/share/include/llhttp/llhttp.h $stage/include/"

# Its own process group, like a terminal's job. Job control (set -m) also
# keeps SIGINT as it is: without it, bash starts background commands with
# SIGINT ignored, and an ignored signal stays ignored in make and run.sh.
set -m
(cd "$clone" && exec env PD_HTTP_PORT="$http_port" PD_SIGNAL_PORT="$signal_port" \
  PD_API_PORT="$api_port" PD_REDIS_PORT="$redis_port" PD_TURN_PORT="$turn_port" \
  make --no-print-directory run DEPS_CMD="$deps_cmd" \
  LLHTTP_DIR="$stage/src" LLHTTP_INC="$stage/include") >"$out" 2>&1 </dev/null &
make_pid=$!
set +m

# Building C and the web client from nothing takes minutes on a busy machine;
# the limit only guards against a hang.
url=
for _ in $(seq 1 12000); do
  url=$(grep -oE 'Open http://127\.0\.0\.1:[0-9]+/' "$out" | sed 's/^Open //')
  [ -n "$url" ] && break
  kill -0 "$make_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  not_ok "the first 'make run' did not come up"; tail -n 40 "$out" | sed 's/^/    /'; exit 1
fi
ok "the first 'make run' came up and printed $url"
[ "$url" = "http://127.0.0.1:$http_port/" ] && ok "the URL uses PD_HTTP_PORT" || not_ok "URL $url, expected port $http_port"
grep -q 'No rule to make target' "$out" && not_ok "make looked for a missing rule" || ok "no 'No rule to make target'"
[ -f "$stage/src/api.c" ] && [ -f "$clone/build/obj/llhttp/api.o" ] &&
  ok "llhttp compiled from the directory the install step created" || not_ok "llhttp was not built from $stage/src"

code=$(curl -sS -o "$work/page.html" -w '%{http_code}' --max-time 10 "$url")
if [ "$code" = 200 ] && grep -qi '<!doctype html' "$work/page.html" &&
  cmp -s "$work/page.html" "$clone/services/web/dist/index.html"; then
  ok "GET / answers 200 with the built page (nginx workers can read a private checkout)"
else
  not_ok "GET / answered $code"; head -c 300 "$work/page.html" | sed 's/^/    /'; echo
fi
room=$(curl -sS --max-time 10 "${url}api/get_room")
if node -e 'const r = JSON.parse(process.argv[1]); if (typeof r.roomId !== "string" || !r.roomId) process.exit(1)' "$room" 2>/dev/null; then
  ok "GET /api/get_room through the same origin: $room"
else
  not_ok "GET /api/get_room answered: $room"
fi

# A Ctrl-C only works if make does not ignore SIGINT (bit 2 of SigIgn).
ign=$(awk '/^SigIgn:/ {print $2}' "/proc/$make_pid/status" 2>/dev/null)
if [ -n "$ign" ] && [ $((0x$ign & 2)) -eq 0 ]; then ok "make does not ignore SIGINT, as in a terminal"
else not_ok "make ignores SIGINT (SigIgn=$ign): the Ctrl-C below would prove nothing"; fi

# The PIDs of what run.sh started, from the table it printed.
pids=$(awk '$1 ~ /^(redis|signal-[0-9]+|roomapi|coturn|nginx)$/ && $2 ~ /^[0-9]+$/ {print $2}' "$out")
n=$(wc -w <<<"$pids")
[ "$n" -ge 5 ] && ok "run.sh reported $n services" || not_ok "run.sh reported $n services: $pids"

# Ctrl-C: SIGINT to the whole foreground process group.
kill -INT -- "-$make_pid"
for _ in $(seq 1 600); do kill -0 "$make_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$make_pid" 2>/dev/null; then
  not_ok "make still runs 60 s after SIGINT"
else
  wait "$make_pid"; rc=$?
  make_pid=
  ok "make exited after SIGINT (status $rc)"
fi
grep -q '^run: stopped' "$out" && ok "run.sh stopped its services in order" || not_ok "run.sh did not report 'stopped'"
alive=
for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
[ -z "$alive" ] && ok "every service it started is gone" || not_ok "still running:$alive"
left=$(inside_clone)
[ -z "$left" ] && ok "no process left running from the clone" || { not_ok "left running:"; echo "$left" | sed 's/^/    /'; }

echo "first-run: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
