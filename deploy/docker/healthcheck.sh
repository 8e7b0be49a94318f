#!/bin/bash
# pd-healthcheck PORT PATH — exit 0 when http://127.0.0.1:PORT/PATH answers
# 200. Pure bash (/dev/tcp), so the runtime images need no curl.
set -u
port=${1:?port} path=${2:?path}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
