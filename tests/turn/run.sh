#!/usr/bin/env bash
# coturn + TURN REST credentials, end to end on loopback.
#
# Starts Debian's coturn through deploy/coturn/run-coturn.sh (the committed
# turnserver.conf, plus the test-only loopback overlay) with a secret from the
# environment, then drives turnutils_uclient (ships with coturn) against it:
#   accepted: a credential minted by pd_turn (tests/turn/turncred, the same
#             code the room API serves at /api/ice_servers) and one computed
#             independently with `openssl dgst -sha1 -hmac`;
#   refused:  an expired one, one signed with another secret, one whose
#             username was altered after signing;
#   and, with the production config alone (no overlay), a relay towards a
#   loopback peer is refused by denied-peer-ip.
# A case passes only when traffic really crossed the relay (accepted) or
# coturn's log shows the failed check of that very username (refused), or
# the client saw 403 Forbidden IP (denied peer).
#
# With PATH_TO_ROOMAPI, the room API itself is started on loopback too and the
# credential of its GET /api/ice_servers answer must relay as well.
#
# Usage: tests/turn/run.sh PATH_TO_TURNCRED [PATH_TO_ROOMAPI]
# Environment: PD_TURN_SECRET (test secret; a random one when unset),
#   PD_TEST_TURN_PORT (default 24780; relay ports PORT+20..PORT+119). Below
#   the kernel's ephemeral range (32768 and up), so no port another test
#   asked the kernel for can be holding one of ours.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
turncred=${1:?usage: run.sh PATH_TO_TURNCRED [PATH_TO_ROOMAPI]}
roomapi=${2:-}
for t in turnserver turnutils_uclient turnutils_stunclient openssl node curl; do
    command -v "$t" >/dev/null || { echo "turn: $t is missing (make deps)" >&2; exit 1; }
done

port=${PD_TEST_TURN_PORT:-24780}
secret=${PD_TURN_SECRET:-$(openssl rand -hex 24)}
work=$(mktemp -d "${TMPDIR:-/tmp}/pd-turn.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "${PD_TURN_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }

# start_coturn NAME PORT OVERLAYS: coturn on 127.0.0.1:PORT, log in $work/NAME.log
start_coturn() {
    local name=$1 p=$2 overlays=$3
    PD_TURN_SECRET=$secret PD_TURN_RUN_DIR=$work/$name PD_TURN_LISTEN_IP=127.0.0.1 \
        PD_TURN_PORT=$p PD_TURN_MIN_PORT=$((p + 20)) PD_TURN_MAX_PORT=$((p + 69)) \
        PD_TURN_CONFIG_OVERLAYS=$overlays \
        "$top/deploy/coturn/run-coturn.sh" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do
        if timeout 1 turnutils_stunclient -p "$p" 127.0.0.1 >/dev/null 2>&1; then return 0; fi
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.2
    done
    echo "turn: coturn ($name) did not start; its log:" >&2
    tail -30 "$work/$name.log" >&2
    return 1
}

# hmac USERNAME SECRET: the TURN REST password, computed by OpenSSL's CLI.
hmac() { printf '%s' "$1" | openssl dgst -sha1 -hmac "$2" -binary | openssl base64 -A; }

# allocate NAME PORT USER PASS: one client-to-client run through two relays
# (-y): allocate, permissions, 5 messages each way. Output in $work/NAME.out.
allocate() {
    timeout 30 turnutils_uclient -y -c -n 5 -m 1 -l 64 -p "$2" -u "$3" -w "$4" 127.0.0.1 \
        >"$work/$1.out" 2>&1
}

# Accepted: exit 0 and every message came back through the relays.
expect_relay() {
    local what=$1 name=$2
    if allocate "$name" "$port" "$3" "$4" &&
        grep -q 'start_mclient: tot_send_msgs=10, tot_recv_msgs=10' "$work/$name.out"; then
        ok "$what: allocation succeeded and 10 messages crossed the relay"
    else
        not_ok "$what: expected a working relay"
        tail -5 "$work/$name.out"
    fi
}

# Refused: uclient fails AND coturn logged the failed check of this very
# username (it answers 401 and logs "Cannot find credentials of user <u>").
expect_refused() {
    local what=$1 name=$2 user=$3
    if allocate "$name" "$port" "$user" "$4"; then
        not_ok "$what: coturn accepted it"
    elif grep -qF "Cannot find credentials of user <$user>" "$work/main.log"; then
        ok "$what: refused by coturn's authentication (401 for $user)"
    else
        not_ok "$what: client failed but coturn logged no authentication failure for $user"
        tail -5 "$work/$name.out"
    fi
}

start_coturn main "$port" "$top/deploy/coturn/turnserver.test.conf" || exit 1

# 1. pd_turn's own answer, as the room API serves it.
if ! body=$(PD_TURN_SECRET=$secret PD_TURN_HOST=127.0.0.1 PD_TURN_PORT=$port PD_TURN_TTL_S=600 "$turncred"); then
    not_ok "turncred failed"
else
    # Pull the TURN entry out of the JSON body; the checks here are the
    # wire contract (docs/wire-protocol.md §Room API), independent of the C unit test.
    read -r pd_user pd_pass < <(node -e '
        const b = JSON.parse(process.argv[1]);
        const t = b.iceServers.find(s => s.username);
        const want = ["turn:127.0.0.1:" + process.argv[2] + "?transport=udp",
                      "turn:127.0.0.1:" + process.argv[2] + "?transport=tcp"];
        if (JSON.stringify(t.urls) !== JSON.stringify(want)) throw new Error("urls " + t.urls);
        if (b.ttl !== 600) throw new Error("ttl " + b.ttl);
        const exp = Number(t.username.split(":")[0]), now = Date.now() / 1000;
        if (!(exp > now + 590 && exp < now + 610)) throw new Error("expiry " + exp);
        console.log(t.username, t.credential);' "$body" "$port")
    if [ -n "${pd_user:-}" ] && [ "$pd_pass" = "$(hmac "$pd_user" "$secret")" ]; then
        ok "pd_turn credential equals openssl's HMAC-SHA1 of its username"
    else
        not_ok "pd_turn credential does not match openssl (body: $body)"
    fi
    expect_relay "pd_turn credential" pd "$pd_user" "$pd_pass"
    # Changing the expiry after signing must invalidate the signature.
    forged_user="$(($(date +%s) + 7200)):${pd_user#*:}"
    expect_refused "pd_turn credential with an altered expiry" altered "$forged_user" "$pd_pass"
fi

# 1b. The room API's own GET /api/ice_servers (it answers without Redis).
if [ -n "$roomapi" ]; then
    api_port=$((port + 150))
    PD_API_PORT=$api_port PD_LISTEN_ADDR=127.0.0.1 REDIS_HOST=127.0.0.1 REDIS_PORT=$((port + 151)) \
        PD_TURN_SECRET=$secret PD_TURN_HOST=127.0.0.1 PD_TURN_PORT=$port PD_TURN_TTL_S=600 \
        "$roomapi" >"$work/roomapi.log" 2>&1 &
    pids+=($!)
    api_body=""
    for _ in $(seq 1 50); do
        api_body=$(curl -fsS "http://127.0.0.1:$api_port/api/ice_servers" 2>/dev/null) && break
        sleep 0.1
    done
    if read -r api_user api_pass < <(node -e '
        const t = JSON.parse(process.argv[1]).iceServers.find(s => s.username);
        console.log(t.username, t.credential);' "$api_body" 2>/dev/null) && [ -n "$api_user" ]; then
        expect_relay "room API /api/ice_servers credential" api "$api_user" "$api_pass"
    else
        not_ok "room API gave no TURN credential (answer: ${api_body:-none})"
        tail -5 "$work/roomapi.log"
    fi
fi

# 2. Independent computation with openssl: valid, expired, wrong secret.
now=$(date +%s)
u="$((now + 300)):openssl-valid"
expect_relay "openssl-computed credential" valid "$u" "$(hmac "$u" "$secret")"
u="$((now - 60)):openssl-expired"
expect_refused "expired credential" expired "$u" "$(hmac "$u" "$secret")"
u="$((now + 300)):openssl-forged"
expect_refused "credential signed with another secret" forged "$u" "$(hmac "$u" "not-the-$secret")"

# 3. The production config alone: loopback is a denied peer, so the same valid
# credential gets its allocation but no permission towards 127.0.0.1.
prod_port=$((port + 100))
if start_coturn prod "$prod_port" ""; then
    u="$((now + 300)):denied-peer"
    if allocate prod "$prod_port" "$u" "$(hmac "$u" "$secret")"; then
        not_ok "production config relayed to a loopback peer"
    elif grep -q 'error 403 (Forbidden IP)' "$work/prod.out"; then
        ok "production config: relay towards a loopback peer refused (403 Forbidden IP)"
    else
        not_ok "production config: client failed, but not with 403 Forbidden IP"
        tail -5 "$work/prod.out"
    fi
else
    not_ok "coturn with the production config did not start"
fi

echo "turn: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
