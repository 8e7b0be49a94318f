# syntax=docker/dockerfile:1
# coturn (Debian's package) with privydrop's configuration, non-root.
#   docker build -f deploy/docker/coturn.Dockerfile -t privydrop-coturn .
# Needs PD_TURN_SECRET at run time (the same value as the room API's); see
# deploy/coturn/run-coturn.sh for the other variables.
# Nothing is compiled, so one stage: the package is the build.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends coturn \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 privydrop \
 && useradd --system --uid 10001 --gid privydrop --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin privydrop
COPY deploy/coturn/turnserver.conf /etc/privydrop/coturn/turnserver.conf
COPY deploy/coturn/run-coturn.sh /usr/local/bin/run-coturn
ENV PD_TURN_CONFIG=/etc/privydrop/coturn/turnserver.conf \
    PD_TURN_RUN_DIR=/tmp/coturn
# A fixed uid (the package's own 'turnserver' user gets a random one), so
# Kubernetes can check runAsNonRoot. Ports 3478 and 5349 and the relay range
# are all above 1024: no capability is needed.
USER 10001:10001
EXPOSE 3478/udp 3478/tcp 5349/tcp 5349/udp
ENTRYPOINT ["/usr/local/bin/run-coturn"]
