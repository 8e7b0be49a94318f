# syntax=docker/dockerfile:1
# privydrop-c backend: the signal worker and the room API, built once.
#   docker build -f deploy/docker/backend.Dockerfile --target signal  -t privydrop-signal .
#   docker build -f deploy/docker/backend.Dockerfile --target roomapi -t privydrop-roomapi .
# Build context: the repository root (deploy/docker/backend.Dockerfile.dockerignore
# keeps host build trees and node_modules out of it).

# ---- build: the same `make c` that CI runs (C binaries + unit tests) ----------
FROM debian:bookworm AS build
# The Debian half of `make deps` (deploy/local/deps.sh) for the C build.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libuv1-dev libwslay-dev libhiredis-dev \
      libjansson-dev libssl-dev libcmocka-dev node-llhttp \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY mk/ mk/
COPY libshared/ libshared/
COPY services/signal/ services/signal/
COPY services/roomapi/ services/roomapi/
RUN make c -j"$(nproc)" \
 && install -D -m 0755 build/bin/privydrop-signal /out/privydrop-signal \
 && install -D -m 0755 build/bin/privydrop-roomapi /out/privydrop-roomapi

# ---- runtime base: only the shared libraries the binaries link against -------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libwslay1 libhiredis0.14 libjansson4 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 privydrop \
 && useradd --system --uid 10001 --gid privydrop --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin privydrop
COPY deploy/docker/healthcheck.sh /usr/local/bin/pd-healthcheck
ENV NODE_ENV=production \
    PD_LISTEN_ADDR=0.0.0.0
USER 10001:10001
# SIGTERM drains (PD_DRAIN_TIMEOUT_MS) and exits; give it that long.
STOPSIGNAL SIGTERM

# ---- signal worker --------------------------------------------------------------
FROM runtime AS signal
COPY --from=build /out/privydrop-signal /usr/local/bin/privydrop-signal
ENV PD_SIGNAL_PORT=3001
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["pd-healthcheck", "3001", "/readyz"]
ENTRYPOINT ["/usr/local/bin/privydrop-signal"]

# ---- room API -------------------------------------------------------------------
FROM runtime AS roomapi
COPY --from=build /out/privydrop-roomapi /usr/local/bin/privydrop-roomapi
ENV PD_API_PORT=3002
EXPOSE 3002
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["pd-healthcheck", "3002", "/health"]
ENTRYPOINT ["/usr/local/bin/privydrop-roomapi"]
