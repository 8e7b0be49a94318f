#!/usr/bin/env bash
# Cross-service tests: a real redis-server, two signal workers on different
# ports and the room API (plus nginx for the ingress test), driven with
# socket.io-client. Run by `make test-integration` with PD_BIN_DIR set; the
# exit code is the test runner's.
#   PD_BIN_DIR=build/bin tests/integration/run.sh [test files...]
#   PD_KEEP_LOGS=1 keeps every process's logs (their folder is printed on failure).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"

export PD_BIN_DIR="${PD_BIN_DIR:-$top/build/bin}"
for b in privydrop-signal privydrop-roomapi; do
  if [ ! -x "$PD_BIN_DIR/$b" ]; then
    echo "integration: $PD_BIN_DIR/$b is missing; build it first (make c)" >&2
    exit 1
  fi
done
for t in node redis-server redis-cli nginx; do
  command -v "$t" >/dev/null 2>&1 || { echo "integration: '$t' not found; run make deps" >&2; exit 1; }
done
if [ ! -d "$here/node_modules/socket.io-client" ]; then
  echo "integration: socket.io-client is not installed; run make deps" >&2
  exit 1
fi

if [ $# -gt 0 ]; then
  files=("$@")
else
  files=()
  for f in "$here"/*.test.mjs; do files+=("$f"); done
fi
echo "integration: binaries from $PD_BIN_DIR"
# One file at a time: each starts its own cluster on free ports. (Older
# Node releases lack these flags; the files are safe to run in parallel too.)
flags=(--test)
help=$(node --help)
grep -q -- '--test-concurrency' <<<"$help" && flags+=(--test-concurrency=1)
grep -q -- '--test-timeout' <<<"$help" && flags+=(--test-timeout=300000)
exec node "${flags[@]}" "${files[@]}"
