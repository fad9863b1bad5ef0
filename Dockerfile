# fetchd container image: Debian 12 build stage, slim runtime stage.
#
#   docker build -t fetchd .
#   docker run --rm -p 50051:50051 -p 9464:9464 --read-only fetchd
#
# The runtime stage has only the shared libraries fetchd and fetchctl link
# against (tests/deploy checks the list against the binaries' NEEDED
# entries), runs as an unprivileged user and writes nothing to its root
# filesystem, so it runs with --read-only / readOnlyRootFilesystem.
# Configuration: /etc/fetchd/fetchd.json (listens on all interfaces; mount
# your own file there), FETCHD_* variables or flags (README, Operations).

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libcurl4-openssl-dev libabsl-dev libspdlog-dev libcpp-httplib-dev \
      prometheus-cpp-dev grpc-proto libboost-dev libssl-dev \
      libgoogle-perftools-dev libcli11-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The build type `make test` checks; strip drops the debug info.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFETCHD_BUILD_TESTS=OFF -DFETCHD_BUILD_BENCH=OFF \
 && cmake --build /build --target fetchd fetchctl \
 && strip /build/service/fetchd /build/client/fetchctl

FROM debian:12-slim AS runtime
# Runtime libraries only (keep in sync with tests/deploy/check_image_libs).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libgrpc++1.51 libgrpc29 libprotobuf32 libcurl4 \
      libabsl20220623 libspdlog1.10 libfmt9 libssl3 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libtcmalloc-minimal4 \
      libhiredis0.14 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fetchd \
 && useradd --system --uid 10001 --gid fetchd --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin fetchd
COPY --from=build /build/service/fetchd /build/client/fetchctl /usr/local/bin/
COPY deploy/docker/fetchd.json /etc/fetchd/fetchd.json
USER 10001:10001
# gRPC (FetchService, health, reflection) and Prometheus /metrics.
EXPOSE 50051 9464
# SIGTERM drains: NOT_SERVING, running calls finish for --drain_seconds.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/fetchctl", "--server", "127.0.0.1:50051", "--deadline", "2", "health"]
ENTRYPOINT ["/usr/local/bin/fetchd"]
CMD ["--config", "/etc/fetchd/fetchd.json"]
