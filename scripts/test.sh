#!/usr/bin/env bash
# Installs the build and test dependencies (Debian 12), builds sluice and runs the whole test
# suite: unit, integration (in-process TLS upstream) and e2e (the binary with curl, Python and a
# real nginx), then scripts/sanitize-and-fuzz.sh. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
build="${1:-build}"
scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2 --timeout 600
cd "$root"
# The same suite under ASan + UBSan, then every fuzz target for FUZZ_SECONDS (README,
# "Sanitizers and fuzzing"). SLUICE_SKIP_SANITIZE=1 skips it for a quick local run.
if [ "${SLUICE_SKIP_SANITIZE:-0}" != 1 ]; then
    scripts/sanitize-and-fuzz.sh
fi
