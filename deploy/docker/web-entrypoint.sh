#!/bin/sh
# Render the nginx configuration of the web image, then run nginx in the
# foreground. PD_WEB_MODE selects the site:
#   ingress (default)  the single-origin ingress of deploy/nginx/privydrop.conf.template:
#                      /socket.io/ -> PD_SIGNAL_UPSTREAM, /api/ + /health -> PD_ROOMAPI_UPSTREAM
#   static             static files only (an outer ingress routes the API)
# Environment: PD_WEB_PORT [8080], PD_SERVER_NAME [_],
#   PD_SIGNAL_UPSTREAM [signal:3001]  host:port, or a comma-separated list of
#                     them (one upstream server each; a name with several
#                     addresses, like a scaled compose service, also gives one
#                     server per address, resolved when nginx starts),
#   PD_ROOMAPI_UPSTREAM [roomapi:3002],
#   PD_NGINX_ETC [/etc/privydrop] where the templates are, PD_WEB_ROOT
#   [/usr/share/privydrop/web], NGINX_TMP [/tmp/nginx] the writable directory,
#   PD_NGINX_TEST=1  only check the rendered configuration (nginx -t).
set -eu
etc=${PD_NGINX_ETC:-/etc/privydrop}
export NGINX_TMP="${NGINX_TMP:-/tmp/nginx}"
export LISTEN="${PD_WEB_PORT:-8080}"
export SERVER_NAME="${PD_SERVER_NAME:-_}"
export ROOMAPI_UPSTREAM="${PD_ROOMAPI_UPSTREAM:-roomapi:3002}"
export WEB_ROOT="${PD_WEB_ROOT:-/usr/share/privydrop/web}"
# The template has one `server ${SIGNAL_UPSTREAM};` line: a list becomes
# "a:3001; server b:3001", i.e. one server directive per entry.
signal=${PD_SIGNAL_UPSTREAM:-signal:3001}
for v in "$signal" "$ROOMAPI_UPSTREAM" "$LISTEN" "$SERVER_NAME"; do
    case "$v" in "" | *[!A-Za-z0-9.:,_\[\]-]*) echo "web-entrypoint: bad value '$v'" >&2; exit 2 ;; esac
done
export SIGNAL_UPSTREAM="$(printf '%s' "$signal" | sed 's/,/; server /g')"

mkdir -p "$NGINX_TMP/conf.d" "$NGINX_TMP/client_body" "$NGINX_TMP/proxy" \
         "$NGINX_TMP/fastcgi" "$NGINX_TMP/uwsgi" "$NGINX_TMP/scgi"
vars='${LISTEN} ${SERVER_NAME} ${SIGNAL_UPSTREAM} ${ROOMAPI_UPSTREAM} ${WEB_ROOT} ${NGINX_TMP}'
case "${PD_WEB_MODE:-ingress}" in
ingress) site=$etc/privydrop.conf.template ;;
static)  site=$etc/web-static.conf.template ;;
*) echo "web-entrypoint: PD_WEB_MODE must be ingress or static" >&2; exit 2 ;;
esac
envsubst "$vars" <"$site" >"$NGINX_TMP/conf.d/privydrop.conf"
envsubst "$vars" <"$etc/nginx.conf" >"$NGINX_TMP/nginx.conf"
if [ "${PD_NGINX_TEST:-0}" = 1 ]; then
    exec nginx -t -q -c "$NGINX_TMP/nginx.conf"
fi
exec nginx -c "$NGINX_TMP/nginx.conf" -g 'daemon off;'
