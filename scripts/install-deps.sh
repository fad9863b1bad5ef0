#!/usr/bin/env bash
# Installs the Debian 12 packages fetchd needs to build, test and benchmark.
# Idempotent: only missing packages are installed, so `make` targets can call
# it every time. Uses sudo when not root. No downloads outside apt.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ca-certificates git
  # fuzz/: clang with libFuzzer and the sanitizer runtimes, and a symbolizer
  clang libclang-rt-14-dev llvm-14
  # make lint: clang's -Wthread-safety pass (clang above), clang-tidy,
  # clang-format (all LLVM 14)
  clang-tidy clang-format
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcurl4-openssl-dev zlib1g-dev libabsl-dev libspdlog-dev libcpp-httplib-dev
  prometheus-cpp-dev
  libgoogle-perftools-dev  # tcmalloc_minimal, fetchd's allocator
  libssl-dev  # fetchd_auth: PEM checks, token digests; test certificates
  libboost-dev  # Boost.Beast (header-only): the WebSocket bridge, service/ws
  libbrotli-dev libzstd-dev  # the test server's br and zstd bodies
  grpc-proto  # health.proto and reflection.proto, for the clients
  libcli11-dev  # CLI11 (header-only): fetchctl's command line
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev nginx curl prometheus
  python3-grpcio python3-protobuf python3-aiohttp
  # client/python: its tests, examples and offline pip install
  python3-pytest python3-pytest-asyncio python3-bs4 python3-tqdm
  python3-setuptools python3-wheel python3-venv
  # bench/: the Python peers, nginx's delay endpoints, the run's TLS certificate
  python3-httpx python3-h2 libnginx-mod-http-echo openssl
  dnsmasq-base  # the resolver of tests/api/resolver_policy_test
  # service/cluster: the Redis client; tests/cluster: a real redis-server
  libhiredis-dev redis-server
  # deployment checks (tests/deploy): compose, YAML, the npm tools' unpacking
  docker-compose python3-yaml unzip
)
# scripts/install-tools.sh needs node and npm; keep a node that is already
# there (e.g. a NodeSource build, which conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
