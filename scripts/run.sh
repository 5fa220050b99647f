#!/usr/bin/env bash
# Installs the dependencies (Debian 12), builds sluice and runs it in the foreground with the
# shipped default config (config/sluice.yaml): proxy on 127.0.0.1:3128.
# Usage: scripts/run.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config/sluice.yaml}"
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)" --target sluice
exec build/sluice --config "$config"
