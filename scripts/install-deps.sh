#!/usr/bin/env bash
# Installs the Debian 12 packages sluice needs to build, test and benchmark.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs=(build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libssl-dev libcrypt-dev libyaml-cpp-dev prometheus-cpp-dev libspdlog-dev libsystemd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  ca-certificates openssl curl python3 python3-yaml nginx-light haproxy wrk tcpdump prometheus
  clang libclang-rt-14-dev llvm-14)   # clang, libFuzzer and llvm-symbolizer: sanitize-and-fuzz.sh
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The prometheus package is here for promtool and the e2e scrape test, which start their
  # own server on an ephemeral port: do not leave the packaged service running on :9090.
  if printf '%s\n' "${missing[@]}" | grep -qx prometheus && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
