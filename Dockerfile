# syntax=docker/dockerfile:1
# sluice as a container (sidecar or shared egress proxy). Build and run:
#   docker build -t sluice:0.1.0 .
#   docker run --rm -p 127.0.0.1:3128:3128 -p 127.0.0.1:9464:9464 sluice:0.1.0
# The build stage runs scripts/docker-build.sh, the same script CI runs
# (tests/packaging/test_docker_build_script.sh); the runtime stage holds only the shared
# libraries sluice links against, the CA bundle, the binary and config/docker.yaml.

FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/docker-build.sh /staging build-docker

FROM debian:bookworm-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.description="Local forward proxy for outbound API traffic: rate limits, circuit breaker, retries, pooled TLS" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# Runtime libraries of /usr/bin/sluice (what dpkg-shlibdeps finds; the CI test checks that
# this list covers it) and the system trust store for upstream TLS verification.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libboost-url1.81.0 libboost-json1.81.0 libssl3 libyaml-cpp0.7 \
      libprometheus-cpp-core1.0 libspdlog1.10 libfmt9 libsystemd0 libcrypt1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can verify it and mounted
# secrets can be made readable to it.
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid sluice --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sluice
COPY --from=build /staging/usr/bin/sluice /usr/bin/sluice
COPY config/docker.yaml /etc/sluice/sluice.yaml
USER 10001:10001
# 3128: the proxy (HTTP_PROXY=http://sluice:3128); 9464: /metrics /healthz /readyz /status.
EXPOSE 3128 9464
# "sluice healthcheck URL" GETs URL over plain HTTP and exits 0 on a 2xx answer, else 1:
# no curl or wget needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["sluice", "healthcheck", "http://127.0.0.1:9464/healthz"]
# SIGTERM drains (in-flight requests finish) and exits 0 within drain_timeout; SIGHUP reloads.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/sluice"]
CMD ["--config", "/etc/sluice/sluice.yaml"]
