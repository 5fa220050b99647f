#!/usr/bin/env bash
# Installs the build and test dependencies (Debian 12), builds sluice and runs the whole test
# suite: unit, integration (in-process TLS upstream) and e2e (the binary with curl, Python and a
# real nginx). Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
build="${1:-build}"
scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2 --timeout 600
# scripts/sanitize-and-fuzz.sh (the suite under ASan + UBSan, then the fuzz targets) is run
# separately until one whole run of it on this tree has been verified (issue 6 stays open).
