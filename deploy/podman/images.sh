#!/usr/bin/env bash
# images.sh — build every image of docker-compose.yml and the Helm chart for
# real with podman (buildah), from the locally made Debian base image
# (base-image.sh): privydrop-signal, privydrop-roomapi, privydrop-web,
# privydrop-coturn and privydrop-redis (a stand-in for the official redis
# image, which cannot be pulled here).
#
#   make images                        (or deploy/podman/images.sh)
#   PD_IMAGE_TAG=1.2 make images       tag other than "local"
#
# --pull=never: the base names resolve to the local image, never a registry.
# --format docker keeps HEALTHCHECK (the OCI format has no such field).
# --layers: unchanged steps come from the layer cache, so a second run with
# the same sources only hashes the build contexts.
# --network host: RUN steps (apt-get, npm ci) resolve and reach the mirrors
# as the host does; a bridge network's DNS may not reach the host's resolver.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
# shellcheck source=env.sh
. "$top/deploy/podman/env.sh"

tag=${PD_IMAGE_TAG:-local}
deploy/podman/base-image.sh

build() { # NAME DOCKERFILE [TARGET]
    local name=$1 df=deploy/docker/$2 target=${3:-}
    echo "images: $name:$tag ($df${target:+ --target $target})"
    podman build --quiet --format docker --pull=never --layers --network host \
        -f "$df" ${target:+--target "$target"} --ignorefile "$df.dockerignore" \
        -t "$name:$tag" . >/dev/null
}
build privydrop-signal backend.Dockerfile signal
build privydrop-roomapi backend.Dockerfile roomapi
build privydrop-web web.Dockerfile
build privydrop-coturn coturn.Dockerfile
build privydrop-redis redis.Dockerfile
podman images --filter reference='privydrop-*' --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}'
