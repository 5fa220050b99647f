#!/usr/bin/env bash
# Installs the dependencies (Debian 12), builds sluice and runs it in the foreground with the
# shipped default config (config/sluice.yaml): proxy on 127.0.0.1:3128.
# The build is the profile-guided one users get in the image and the .deb
# (scripts/build-release.sh, into build-release: about twice as long as a plain build, with a
# 30 s training run on loopback). Should the training fail (no loopback nginx here, say), the
# binary is built without a profile instead, with a warning: it works the same, with about 5 %
# more CPU per request. SLUICE_PGO=off skips the profile from the start.
# Usage: scripts/run.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-config/sluice.yaml}"
scripts/install-deps.sh
if ! scripts/build-release.sh build-release; then
  # Only a failed profile-guided build falls back: a failed plain build (SLUICE_PGO=off) or a
  # bad SLUICE_PGO value would fail the same way again.
  [ "${SLUICE_PGO:-on}" = on ] || exit 1
  echo "run.sh: warning: the profile-guided build failed (above); building without a profile" >&2
  SLUICE_PGO=off scripts/build-release.sh build-release
fi
exec build-release/sluice --config "$config"
