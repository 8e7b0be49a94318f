# shellcheck shell=bash
# Sourced by the image and compose scripts: points podman and buildah at a
# private containers.conf (CONTAINERS_CONF), so the host's own configuration
# is never edited. Images go to the host's ordinary storage, where `podman
# images` shows them.
#
# Why each setting:
#   runtime = runc          crun refuses the hybrid cgroup v1/v2 layout of
#                           some hosts; runc runs on both
#   cgroup_manager=cgroupfs there may be no systemd to delegate cgroups to
#   events_logger = file    no journald either
#   default_ulimits         podman's built-in default raises nofile above the
#                           hard limit some hosts allow, and then every start
#                           fails; the host's own hard limits always fit
#   network_backend         netavark (with aardvark-dns: services find each
#                           other by name); docker-compose 1.x sees a CNI
#                           network's IPAM driver as changed on every `up`
#                           and refuses to go on
#
# Needs: top (the repository root). Sets: CONTAINERS_CONF, PD_PODMAN_DIR.

PD_PODMAN_DIR=${PD_PODMAN_DIR:-$top/build/podman}
mkdir -p "$PD_PODMAN_DIR"
pd_podman_conf() {
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc=32768
    # More processes than this are never needed, and a lower soft limit
    # keeps a runaway container from exhausting the host.
    [ "$nproc" -gt 32768 ] && nproc=32768
    cat <<CONF
# Written by deploy/podman/env.sh; regenerated on every use.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
CONF
}
pd_podman_conf >"$PD_PODMAN_DIR/containers.conf.new"
mv "$PD_PODMAN_DIR/containers.conf.new" "$PD_PODMAN_DIR/containers.conf"
export CONTAINERS_CONF=$PD_PODMAN_DIR/containers.conf
