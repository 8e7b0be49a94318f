#!/usr/bin/env bash
# base-image.sh — the Debian 12 base image every Dockerfile starts from, made
# here with mmdebstrap from Debian's packages (no registry is contacted), and
# tagged as the names the Dockerfiles use: debian:bookworm and
# debian:bookworm-slim (one image serves both: the build stages install what
# they need on top).
#
#   deploy/podman/base-image.sh        reuse the image when its inputs are unchanged
#   PD_BASE_REBUILD=1 deploy/podman/base-image.sh
#
# Inputs, hashed into the image's org.privydrop.base label: this script, the
# host's Debian apt sources (the image's apt uses the same mirror) and the CA
# certificates the host added locally (/usr/local/share/ca-certificates):
# outgoing HTTPS may pass a TLS-intercepting proxy the host trusts, and apt or
# npm inside a build must trust it too.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=env.sh
. "$top/deploy/podman/env.sh"

SUITE=bookworm
NAMES=(docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim)
work=$PD_PODMAN_DIR/base
mkdir -p "$work"

# The host's apt sources for this Debian release, in deb822 form: every
# stanza (deb822 files) or line (one-line files) whose suite is bookworm,
# bookworm-updates or bookworm-security. Other vendors' sources are left out.
pd_debian_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$SUITE" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                uri = $i; suite = $(i + 1); comps = ""
                for (j = i + 2; j <= NF && $j !~ /^#/; j++) comps = comps " " $j
                if (suite == s || suite ~ ("^" s "-(updates|security)$"))
                    printf "Types: deb\nURIs: %s\nSuites: %s\nComponents:%s\n\n", uri, suite, comps
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$SUITE" '
            function flush() {
                n = split(suites, a, " "); keep = ""
                for (k = 1; k <= n; k++) if (a[k] == s || a[k] ~ ("^" s "-(updates|security)$")) keep = keep " " a[k]
                if (types ~ /(^| )deb( |$)/ && uris != "" && keep != "" && enabled != "no")
                    printf "Types: deb\nURIs: %s\nSuites:%s\nComponents: %s\n\n", uris, keep, comps
                types = uris = suites = comps = enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
              if (key == "types") types = $0; else if (key == "uris") uris = $0
              else if (key == "suites") suites = $0; else if (key == "components") comps = $0
              else if (key == "enabled") enabled = $0 }
            END { flush() }' "$f"
    done
}
pd_debian_sources >"$work/debian.sources"
[ -s "$work/debian.sources" ] || {
    echo "base-image: no apt source for Debian $SUITE in /etc/apt/sources.list*" >&2
    exit 1
}

rm -rf "$work/ca" && mkdir -p "$work/ca"
if [ -d /usr/local/share/ca-certificates ]; then
    find /usr/local/share/ca-certificates -name '*.crt' -type f -exec cp {} "$work/ca/" \;
fi

hash=$( { cat "$0" "$work/debian.sources"; find "$work/ca" -type f -name '*.crt' | sort | xargs -r cat; } | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Labels "org.privydrop.base"}}' "${NAMES[0]}" 2>/dev/null || true)
if [ "$have" = "$hash" ] && [ "${PD_BASE_REBUILD:-0}" != 1 ]; then
    for n in "${NAMES[@]:1}"; do podman tag "${NAMES[0]}" "$n"; done
    echo "base-image: ${NAMES[*]} up to date ($hash)"
    exit 0
fi

echo "base-image: building ${NAMES[*]} with mmdebstrap ($hash)"
# --variant=apt: the Essential packages plus apt, like Debian's official
# images; ca-certificates so HTTPS works in the build stages.
mmdebstrap --quiet --variant=apt --include=ca-certificates \
    --customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\"" \
    --customize-hook="find '$work/ca' -name '*.crt' -exec cp {} \"\$1/usr/local/share/ca-certificates/\" \\;" \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" "$work/rootfs.tar" "$work/debian.sources" </dev/null
podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.privydrop.base=$hash" \
    "$work/rootfs.tar" "${NAMES[0]}" >/dev/null
for n in "${NAMES[@]:1}"; do podman tag "${NAMES[0]}" "$n"; done
rm -f "$work/rootfs.tar"
echo "base-image: ${NAMES[*]} built"
