#!/usr/bin/env bash
# The Helm chart started for real (k8s/tests/chart-run.mjs), once per value set:
# the default values and every k8s/examples/*.yaml. Each set runs in a network
# namespace of its own, like a pod, so the rendered ports (3001, 3002, 6379,
# 3478, 8080) are used as rendered without touching the machine's own; and in
# a PID namespace of its own, so nothing it starts can outlive it.
#   k8s/tests/chart-run.sh            (make test-chart-run)
# Environment: PD_BIN_DIR [build/bin].
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export PD_BIN_DIR=${PD_BIN_DIR:-$top/build/bin}
for b in privydrop-signal privydrop-roomapi; do
  [ -x "$PD_BIN_DIR/$b" ] || { echo "chart-run: $PD_BIN_DIR/$b is missing (make c)" >&2; exit 1; }
done
for t in node unshare ip redis-server redis-cli nginx turnserver openssl envsubst; do
  command -v "$t" >/dev/null || { echo "chart-run: $t is missing (make deps)" >&2; exit 1; }
done
[ -x "$here/node_modules/.bin/helm" ] || { echo "chart-run: helm is missing (make deps)" >&2; exit 1; }
# A network namespace (the pod's ports) and a PID namespace whose init is the
# test: whatever way it ends, the kernel ends every process it started. Needs
# root, or a user namespace mapping us to it.
ns=(unshare --net --pid --fork --mount-proc)
[ "$(id -u)" -eq 0 ] || ns=(unshare --map-root-user --net --pid --fork --mount-proc)

sets=(defaults "$top"/k8s/examples/*.yaml)
failed=0
for vs in "${sets[@]}"; do
  # Loopback, plus one interface with an address as a pod has: coturn
  # refuses to run on loopback alone.
  "${ns[@]}" -- sh -c 'ip link set lo up && ip link add pd0 type veth peer name pd1 &&
      ip addr add 10.244.0.10/24 dev pd0 && ip link set pd1 up && ip link set pd0 up &&
      exec node "$1" "$2"' _ "$here/chart-run.mjs" "$vs" || failed=1
done
[ "$failed" -eq 0 ]
