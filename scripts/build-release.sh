#!/usr/bin/env bash
# Builds sluice for production with profile-guided optimisation (GCC): an instrumented build
# serves bench/train's workload (the everyday proxy path, on loopback, with nginx as the TLS
# upstream and wrk as the clients) and records which branches and calls are hot; the second
# build lays the code out and inlines for that profile. In bench/compare this binary spends
# about 9 % less CPU per request than the plain RelWithDebInfo build (BENCHMARKS.md). Both
# stages run in BUILD_DIR (default build-release), so each object finds its profile.
#
#   scripts/build-release.sh [BUILD_DIR]      -> BUILD_DIR/sluice
# Needs the packages of scripts/install-deps.sh (nginx-light and wrk for the training run).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-release}"
jobs="$(nproc)"

cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_TESTS=OFF \
  -DSLUICE_PGO=generate
# A profile of older sources would not match them: every training starts from none.
find "$dir" -name '*.gcda' -delete
cmake --build "$dir" -j"$jobs" --target sluice
bench/train "$dir/sluice"
cmake -S . -B "$dir" -DSLUICE_PGO=use
cmake --build "$dir" -j"$jobs" --target sluice
echo "built $dir/sluice (profile-guided)"
