# Radar Pod images, FROM scratch: nothing is pulled and no toolchain image is
# needed. `make build-all` (or `make build-host`) cross-compiles the static
# binaries into dist/<os>/<arch>[/<variant>]/ and this file copies the ones for
# TARGETPLATFORM; `make images` also stages the updater's root CA in dist/pki/.
# The build context is dist/ and deploy/docker/ only (.dockerignore). BuildKit
# sets TARGETPLATFORM itself; the legacy builder gets it as a build argument
# (see `make images`). Each stage declares it without a default: a default
# (or a global declaration) would shadow BuildKit's value and put the build
# machine's binary into every platform's image. Foreign platforms need
# BuildKit (buildx, or DOCKER_BUILDKIT=1 with a docker CLI before 23): the
# legacy builder refuses a FROM scratch image for another platform.
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 --target agent .
#   docker build --build-arg TARGETPLATFORM=linux/amd64 --target agent .

# ---------------------------------------------------------------- agent ----
FROM scratch AS agent
ARG TARGETPLATFORM
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/radarpod/radarpod
# The Ookla CLI is proprietary and not redistributed by default (see
# deploy/docker/ookla/README.md). CI puts the official binary for each
# platform into OOKLA_DIR/<platform>/speedtest (OOKLA_DIR must lie in the
# build context: under deploy/docker/ or dist/); without it the directory
# holds only a placeholder and the Ookla runner reports itself unavailable.
ARG OOKLA_DIR=deploy/docker/ookla
COPY dist/${TARGETPLATFORM}/radar-agent /radar-agent
COPY ${OOKLA_DIR}/${TARGETPLATFORM}/ /usr/local/bin/
# An empty /data owned by the runtime user: a fresh named volume copies it,
# so the non-root agent can write to its volume.
COPY --chown=65532:65532 deploy/docker/data/ /data/
# HOME: the Ookla CLI writes its licence acceptance under $HOME, and the root
# filesystem is read-only.
# RADAR_LISTEN_ADDR: the status page, /healthz and /metrics listen on the
# container's own network namespace, so that a published port (compose:
# the host's loopback only) reaches them; the program's own default,
# 127.0.0.1:9100, would be unreachable from outside the container.
# PATH: / holds radar-agent itself, so `docker compose exec agent
# radar-agent test` finds it (the root filesystem is read-only).
ENV PATH=/usr/local/bin:/ \
    HOME=/data \
    RADAR_DATA_DIR=/data \
    RADAR_LISTEN_ADDR=0.0.0.0:9100
USER 65532:65532
VOLUME ["/data"]
# The updater installs a new agent once Docker reports it healthy, so the
# first probe sets how long an update takes. --start-interval=1s would make
# engines from 25 probe every second during the start period, but the
# builders of Debian's Docker 20.10 (the legacy one and its BuildKit 0.8)
# reject the flag ("Unknown flag: start-interval"), which would break
# `make images` on such hosts; there the first probe comes one interval
# after the start. 10 s keeps an update to about 11 s; a shorter interval
# would cost a Pi more (each probe is a runc exec plus a Go process start,
# on the order of 100 ms of CPU there). Three failures (30 s) make an
# agent unhealthy, well inside RADAR_HEALTH_TIMEOUT (90s).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/radar-agent", "healthcheck"]
LABEL org.opencontainers.image.title="radar-agent" \
      org.opencontainers.image.description="Radar pod agent: registers with the Radar pods service, runs NDT7 and Ookla speed tests, uploads the results" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.radarpod.component="radar-agent"
ENTRYPOINT ["/radar-agent"]
CMD ["run"]

# -------------------------------------------------------------- updater ----
FROM scratch AS updater
ARG TARGETPLATFORM
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/radarpod/radarpod
COPY dist/${TARGETPLATFORM}/radar-updater /radar-updater
# The pinned trust anchor, staged by make from ROOT_CA: the release root for
# release builds, else a development root it generates (.pki/dev). .pki/
# itself, which holds private keys, is never in the build context.
COPY dist/pki/root-ca.pem /etc/radar/root-ca.pem
COPY --chown=65532:65532 deploy/docker/data/ /data/
# The updater's private state (journal, CRL state, heartbeat), the default
# RADAR_UPDATER_STATE_DIR, outside the agent's /data. Compose mounts a
# volume of its own here; a fresh volume takes this directory's owner, so
# the non-root updater can write it. VOLUME gives a container run without
# that mount (a plain `docker run`, or an old compose file that mounted the
# state at /data/updater-state) a writable anonymous volume on the
# read-only root filesystem.
COPY --chown=65532:65532 deploy/docker/data/ /var/lib/radar-updater/
VOLUME ["/var/lib/radar-updater"]
ENV RADAR_DATA_DIR=/data \
    RADAR_ROOT_CA_FILE=/etc/radar/root-ca.pem
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/radar-updater", "healthcheck"]
LABEL org.opencontainers.image.title="radar-updater" \
      org.opencontainers.image.description="Radar pod updater: installs signed, revocation-checked agent images and rolls back unhealthy ones" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.radarpod.component="radar-updater"
ENTRYPOINT ["/radar-updater"]
CMD ["run"]
