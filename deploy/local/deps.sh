#!/usr/bin/env bash
# Install what building, running and testing privydrop-c needs on Debian 12:
# Debian packages first, then the npm packages of each JavaScript part.
# Safe to run again: it only installs what is missing.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)

pkgs=(build-essential pkg-config libuv1-dev libwslay-dev libhiredis-dev libjansson-dev
      libssl-dev libcmocka-dev node-llhttp redis-server redis-tools nginx-light curl
      ca-certificates procps)
# Node.js may come from elsewhere (it ships npm); take Debian's only if absent.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
# Parts of the tree may add their own Debian needs, one package per line.
for f in "$top"/deploy/local/deps.d/*.pkgs; do
  [ -f "$f" ] || continue
  while read -r p; do [ -n "$p" ] && [ "${p#\#}" = "$p" ] && pkgs+=("$p"); done <"$f"
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian redis-server package starts a system instance; we run our own.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
fi

# npm packages: every package.json under these folders, installed from its lock.
for dir in tests/integration tests/e2e services/web loadtest/k6 loadtest/reference k8s/tests; do
  d="$top/$dir"
  [ -f "$d/package.json" ] || continue
  stamp="$d/node_modules/.pd-installed"
  if [ ! -f "$stamp" ] || [ "$d/package.json" -nt "$stamp" ] || { [ -f "$d/package-lock.json" ] && [ "$d/package-lock.json" -nt "$stamp" ]; }; then
    echo "deps: npm install in $dir"
    if [ -f "$d/package-lock.json" ]; then (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
    else (cd "$d" && npm install --no-audit --no-fund --loglevel=error); fi
    touch "$stamp"
  fi
done
