#!/bin/sh
# Start coturn with deploy/coturn/turnserver.conf and the shared secret from the
# environment. Used by the coturn image (deploy/docker/coturn.Dockerfile), the
# Helm chart, the local run and tests/turn/run.sh.
#
# coturn has no include directive, and a secret on its command line would be
# visible in the process list, so this writes a private copy of the config
# (mode 0600, in PD_TURN_RUN_DIR) = base file + overlays + settings from the
# environment, then execs turnserver on it. Extra arguments go to turnserver.
#
# Environment:
#   PD_TURN_SECRET        required: the static-auth-secret shared with the room
#                         API (>= 16 characters, no whitespace)
#   PD_TURN_REALM         realm (default: the base file's "privydrop")
#   PD_TURN_EXTERNAL_IP   public IP when coturn sits behind 1:1 NAT
#                         ("public" or "public/private")
#   PD_TURN_LISTEN_IP     listen on this address only (default: all)
#   PD_TURN_RELAY_IP      relay from this address (default: the listen address)
#   PD_TURN_PORT          STUN/TURN port (default 3478)
#   PD_TURN_MIN_PORT, PD_TURN_MAX_PORT   relay port range (default 49152-50151)
#   PD_TURN_TLS=1         enable TURN over TLS/DTLS: needs PD_TURN_TLS_CERT and
#                         PD_TURN_TLS_KEY (PEM files); PD_TURNS_PORT (default 5349)
#   PD_TURN_CONFIG        base file (default: turnserver.conf next to this script)
#   PD_TURN_CONFIG_OVERLAYS  space-separated files appended after the base
#   PD_TURN_RUN_DIR       where the private config and pid file go
#                         (default: $XDG_RUNTIME_DIR or /tmp, in a fresh subdir)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
base=${PD_TURN_CONFIG:-$here/turnserver.conf}

die() { echo "run-coturn: $*" >&2; exit 2; }

secret=${PD_TURN_SECRET:-}
[ -n "$secret" ] || die "PD_TURN_SECRET is not set"
[ "${#secret}" -ge 16 ] || die "PD_TURN_SECRET must be at least 16 characters"
case "$secret" in *[[:space:]]*) die "PD_TURN_SECRET must not contain whitespace" ;; esac
[ -r "$base" ] || die "cannot read $base"

# Values that go into the config must be single tokens (no config injection).
token() {
    case "$2" in
    "" | *[!A-Za-z0-9.:/_-]*) die "$1 has an invalid value: '$2'" ;;
    esac
}
port() {
    case "$2" in "" | *[!0-9]*) die "$1 must be a port number" ;; esac
    [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1 must be within 1-65535"
}

umask 077
if [ -n "${PD_TURN_RUN_DIR:-}" ]; then
    run_dir=$PD_TURN_RUN_DIR
    mkdir -p "$run_dir"
else
    run_dir=$(mktemp -d "${XDG_RUNTIME_DIR:-/tmp}/coturn.XXXXXX")
fi
conf=$run_dir/turnserver.conf

{
    # The secret goes first: coturn 4.6 ignored a static-auth-secret that came
    # at the end of this file (seen with Debian's 4.6.1; first is known good).
    echo "static-auth-secret=$secret"
    cat "$base"
    for f in ${PD_TURN_CONFIG_OVERLAYS:-}; do
        [ -r "$f" ] || die "cannot read overlay $f"
        echo
        echo "# --- overlay: $f"
        cat "$f"
    done
    echo
    echo "# --- from the environment (run-coturn.sh)"
    if [ -n "${PD_TURN_REALM:-}" ]; then token PD_TURN_REALM "$PD_TURN_REALM"; echo "realm=$PD_TURN_REALM"; fi
    if [ -n "${PD_TURN_EXTERNAL_IP:-}" ]; then token PD_TURN_EXTERNAL_IP "$PD_TURN_EXTERNAL_IP"; echo "external-ip=$PD_TURN_EXTERNAL_IP"; fi
    if [ -n "${PD_TURN_LISTEN_IP:-}" ]; then token PD_TURN_LISTEN_IP "$PD_TURN_LISTEN_IP"; echo "listening-ip=$PD_TURN_LISTEN_IP"; fi
    relay=${PD_TURN_RELAY_IP:-${PD_TURN_LISTEN_IP:-}}
    if [ -n "$relay" ]; then token PD_TURN_RELAY_IP "$relay"; echo "relay-ip=$relay"; fi
    if [ -n "${PD_TURN_PORT:-}" ]; then port PD_TURN_PORT "$PD_TURN_PORT"; echo "listening-port=$PD_TURN_PORT"; fi
    if [ -n "${PD_TURN_MIN_PORT:-}" ]; then port PD_TURN_MIN_PORT "$PD_TURN_MIN_PORT"; echo "min-port=$PD_TURN_MIN_PORT"; fi
    if [ -n "${PD_TURN_MAX_PORT:-}" ]; then port PD_TURN_MAX_PORT "$PD_TURN_MAX_PORT"; echo "max-port=$PD_TURN_MAX_PORT"; fi
    if [ "${PD_TURN_TLS:-0}" = 1 ]; then
        [ -r "${PD_TURN_TLS_CERT:-}" ] || die "PD_TURN_TLS=1 needs a readable PD_TURN_TLS_CERT"
        [ -r "${PD_TURN_TLS_KEY:-}" ] || die "PD_TURN_TLS=1 needs a readable PD_TURN_TLS_KEY"
        token PD_TURN_TLS_CERT "$PD_TURN_TLS_CERT"; token PD_TURN_TLS_KEY "$PD_TURN_TLS_KEY"
        echo "cert=$PD_TURN_TLS_CERT"
        echo "pkey=$PD_TURN_TLS_KEY"
        if [ -n "${PD_TURNS_PORT:-}" ]; then port PD_TURNS_PORT "$PD_TURNS_PORT"; echo "tls-listening-port=$PD_TURNS_PORT"; fi
    else
        echo "no-tls"
        echo "no-dtls"
    fi
    echo "pidfile=$run_dir/turnserver.pid"
    # coturn keeps no users here (use-auth-secret), but it still opens its
    # SQLite user database: keep it in the private run directory.
    echo "userdb=$run_dir/turndb"
} >"$conf"
chmod 600 "$conf"

exec turnserver -c "$conf" "$@"
