#!/usr/bin/env bash
# make test-compose: docker-compose.yml started for real on the images of
# `make images`, through podman's Docker-compatible API (tests/compose/
# compose.test.mjs says what is checked). Needs root (rootful podman).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=../../deploy/podman/env.sh
. "$top/deploy/podman/env.sh"
command -v docker-compose >/dev/null || { echo "test-compose: docker-compose missing; run 'make deps'" >&2; exit 1; }

export PD_COMPOSE_PROJECT=pdtest$$
PD_COMPOSE_WORK=$(mktemp -d /tmp/pd-compose-XXXXXX)
export PD_COMPOSE_WORK
# The test takes the stack down itself and checks that nothing is left; this
# only clears up after a run that was killed or crashed half-way.
leftovers() {
    local ids
    ids=$(podman ps -aq --filter "label=com.docker.compose.project=$PD_COMPOSE_PROJECT" 2>/dev/null || true)
    [ -n "$ids" ] && podman rm -f -t 5 $ids >/dev/null 2>&1
    podman network rm "${PD_COMPOSE_PROJECT}_backend" >/dev/null 2>&1 || true
    podman volume rm "${PD_COMPOSE_PROJECT}_redis-data" >/dev/null 2>&1 || true
    if [ -f "$PD_COMPOSE_WORK/service.pid" ]; then
        kill "$(cat "$PD_COMPOSE_WORK/service.pid")" 2>/dev/null || true
    fi
}
trap leftovers EXIT
trap 'exit 130' INT TERM
node --test --test-concurrency=1 tests/compose/compose.test.mjs
