# syntax=docker/dockerfile:1
# A local stand-in for the official redis image, built from Debian's
# redis-server package where no registry can be reached (make images).
#   docker build -f deploy/docker/redis.Dockerfile -t privydrop-redis .
# docker-compose.yml runs it like the official image (PD_REDIS_IMAGE): the
# same /data volume, redis-server and redis-cli on the PATH, /bin/sh for the
# entrypoint that feeds the password through stdin. Debian 12 ships Redis
# 7.0; everything the project uses (ACL-less requirepass, volatile-ttl,
# RDB snapshots, pub/sub) behaves the same as in 7.2.
FROM debian:bookworm-slim
# The official image's redis user is uid/gid 999: the same here, so a data
# volume moves between the two images unchanged.
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid redis --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin redis \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
# Not root: Redis needs nothing beyond its own /data (the official image
# reaches the same user through its entrypoint).
USER 999:999
EXPOSE 6379
CMD ["redis-server"]
