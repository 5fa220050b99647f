#!/usr/bin/env bash
# The build steps of the Dockerfile's build stage, as one script so that CI runs exactly what
# the image build runs (tests/packaging/test_docker_build_script.sh): install the Debian 12
# build dependencies, build the sluice target profile-guided (scripts/build-release.sh: an
# instrumented build, a training run on loopback, the optimised build; Release, without tests
# or benchmarks) and install it into a staging directory (DESTDIR) with the FHS layout of the
# .deb:
#   STAGE/usr/bin/sluice  STAGE/etc/sluice/sluice.yaml  STAGE/lib/systemd/system/sluice.service
#   STAGE/usr/lib/sysusers.d/sluice.conf  STAGE/usr/share/doc/sluice/...
#
# Usage: scripts/docker-build.sh STAGE_DIR [BUILD_DIR]
#   STAGE_DIR  where to install (created; files from an earlier run are replaced)
#   BUILD_DIR  CMake build directory (default build-docker; relative to the repository)
# Environment: JOBS (parallel build jobs, default: nproc), SLUICE_SKIP_DEPS=1 (do not check or
# install packages), SLUICE_PGO=off (one build without a profile: faster, about 5 % more CPU
# per request; for a compiler other than GCC). Uses ccache when it is installed.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 STAGE_DIR [BUILD_DIR]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
stage="$(mkdir -p "$1" && cd "$1" && pwd)"
build="${2:-build-docker}"
jobs="${JOBS:-$(nproc)}"

# Build dependencies only (scripts/install-deps.sh also installs test and benchmark tools).
build_deps=(build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libssl-dev libyaml-cpp-dev prometheus-cpp-dev libspdlog-dev libsystemd-dev)
pgo="${SLUICE_PGO:-on}"
case "$pgo" in
  on) # The training run (bench/train): nginx as the TLS upstream, wrk as the clients.
    build_deps+=(nginx-light wrk openssl curl python3 ca-certificates) ;;
  off) ;;
  *) echo "SLUICE_PGO must be on or off (got '$pgo')" >&2; exit 2 ;;
esac
if [ "${SLUICE_SKIP_DEPS:-0}" != 1 ]; then
  missing=()
  for p in "${build_deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    echo "docker-build: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# The install rules put the config in /etc and the unit in /lib/systemd/system only when the
# prefix is /usr (as in the .deb); DESTDIR then redirects everything into the stage.
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DSLUICE_BUILD_TESTS=OFF
  -DSLUICE_BUILD_BENCH=OFF)
SLUICE_PGO="$pgo" JOBS="$jobs" scripts/build-release.sh "$build" "${cmake_args[@]}"
DESTDIR="$stage" cmake --install "$build" --strip
echo "docker-build: installed into $stage"
"$stage/usr/bin/sluice" --version
