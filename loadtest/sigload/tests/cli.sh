#!/usr/bin/env bash
# privydrop-sigload's command line, end to end (part of make test-bench-quick):
#   - a usage error exits 2;
#   - a room API that refuses every connection ends the run with exit 1
#     (it used to wait for ever for the room it was creating);
#   - with --json -, stdout carries the JSON report alone (the human
#     summary goes to stderr).
# The 60 s limits only catch a hang; each case takes milliseconds.
set -u
SIGLOAD=${1:?usage: cli.sh path/to/privydrop-sigload}
fail=0
check() { # name expected actual
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: wanted $2, got $3"; fail=1; fi
}
# A port nothing listens on: the kernel refuses the connection at once.
dead=127.0.0.1:1

"$SIGLOAD" api --no-such-option >/dev/null 2>&1
check "usage error exits 2" 2 $?

for route in check_room get_room; do
  timeout 60 "$SIGLOAD" api --route "$route" --api "$dead" --conns 2 --warmup 0 --duration 1 --quiet >/dev/null 2>&1
  check "room API refusing connections, $route: run ends, exit 1" 1 $?
done
timeout 60 "$SIGLOAD" relay --target "$dead" --api "$dead" --rooms 20 --warmup 0 --duration 1 --quiet >/dev/null 2>&1
check "room API refusing connections, relay (16 room connections): run ends, exit 1" 1 $?

out=$(timeout 60 "$SIGLOAD" api --api "$dead" --conns 1 --warmup 0 --duration 1 --quiet --json - 2>/dev/null)
parsed=$(printf '%s' "$out" | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{try{const j=JSON.parse(s);process.stdout.write(j.tool)}catch{process.stdout.write("not JSON")}})')
check "--json -: stdout is the JSON report alone" privydrop-sigload "$parsed"

exit $fail
