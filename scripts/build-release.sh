#!/usr/bin/env bash
# Builds sluice for production with profile-guided optimisation (GCC): an instrumented build
# serves bench/train's workload (the everyday proxy path, on loopback, with nginx as the TLS
# upstream and wrk as the clients) and records which branches and calls are hot; the second
# build lays the code out and inlines for that profile. In bench/compare this binary spends
# 4-9 % less CPU per request than a build without a profile (BENCHMARKS.md). Both stages run
# in BUILD_DIR (default build-release), so each object finds its profile. This is how the
# binaries users run are built: scripts/run.sh, the Docker image (scripts/docker-build.sh) and
# the .deb (README, "systemd").
#
#   scripts/build-release.sh [BUILD_DIR [CMAKE_ARG...]]      -> BUILD_DIR/sluice
#
# CMAKE_ARGs are added to both configure steps after the defaults (RelWithDebInfo, no tests),
# so they can override them, e.g. -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr.
# Needs the packages of scripts/install-deps.sh (nginx-light, wrk, openssl, curl and python3
# for the training run). Exits non-zero, with bench/train's message, when the training fails.
# SLUICE_PGO=off makes it one build without a profile (the same CMake arguments, no training:
# faster, about 5 % more CPU per request; for a compiler other than GCC). Environment: JOBS
# (parallel build jobs, default: nproc). Uses ccache when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-release}"
[ $# -gt 0 ] && shift
jobs="${JOBS:-$(nproc)}"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

configure() {
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_TESTS=OFF \
    "${launcher[@]}" "$@"
}

case "${SLUICE_PGO:-on}" in
  on) ;;
  off)
    configure "$@" -DSLUICE_PGO=off
    cmake --build "$dir" -j"$jobs" --target sluice
    echo "built $dir/sluice (no profile: SLUICE_PGO=off)"
    exit 0 ;;
  *) echo "SLUICE_PGO must be on or off (got '$SLUICE_PGO')" >&2; exit 2 ;;
esac

configure "$@" -DSLUICE_PGO=generate
# A profile of older sources would not match them: every training starts from none.
find "$dir" -name '*.gcda' -delete
cmake --build "$dir" -j"$jobs" --target sluice
bench/train "$dir/sluice"
configure "$@" -DSLUICE_PGO=use
cmake --build "$dir" -j"$jobs" --target sluice
echo "built $dir/sluice (profile-guided)"
