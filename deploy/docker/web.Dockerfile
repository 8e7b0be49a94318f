# syntax=docker/dockerfile:1
# privydrop web client behind nginx (non-root, port 8080).
#   docker build -f deploy/docker/web.Dockerfile -t privydrop-web .
# PD_WEB_MODE=ingress (default, docker-compose): this nginx is the single
# origin and proxies /socket.io/ and /api/ (deploy/nginx/privydrop.conf.template).
# PD_WEB_MODE=static (Helm chart): static files only, the Ingress routes the rest.

# ---- build: the same `make web` that CI runs --------------------------------
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      make nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY mk/ mk/
COPY services/web/ services/web/
# The npm half of `make deps`, from the lock file, then the build.
RUN cd services/web && npm ci --no-audit --no-fund --loglevel=error
RUN make web && test -f services/web/dist/index.html

# ---- runtime: nginx + envsubst only -------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx-light gettext-base \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && groupadd --system --gid 10001 privydrop \
 && useradd --system --uid 10001 --gid privydrop --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin privydrop
COPY --from=build /src/services/web/dist/ /usr/share/privydrop/web/
COPY deploy/nginx/privydrop.conf.template /etc/privydrop/privydrop.conf.template
COPY deploy/docker/web-static.conf.template /etc/privydrop/web-static.conf.template
COPY deploy/docker/nginx.conf /etc/privydrop/nginx.conf
COPY deploy/docker/web-entrypoint.sh /usr/local/bin/web-entrypoint
COPY deploy/docker/healthcheck.sh /usr/local/bin/pd-healthcheck
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["pd-healthcheck", "8080", "/index.html"]
ENTRYPOINT ["/usr/local/bin/web-entrypoint"]
