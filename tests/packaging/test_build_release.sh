#!/usr/bin/env bash
# Runs scripts/build-release.sh (the profile-guided build: instrumented build, bench/train's
# training run, optimised build) into BUILD_DIR and checks its result:
#   - the training wrote a profile for the objects of the request path, and the final build
#     used them (GCC's -fprofile-use is in the compile commands);
#   - the binary runs --version and --check-config on the shipped config.
# Usage: test_build_release.sh BUILD_DIR (kept between runs; the script starts from no profile)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(mkdir -p "${1:?usage: $0 BUILD_DIR}" && cd "$1" && pwd)"
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

echo "== scripts/build-release.sh $build"
"$repo/scripts/build-release.sh" "$build"

for obj in sluice_server.dir/daemon/http/session.cpp sluice_http.dir/daemon/http/request_target.cpp \
  sluice_upstream.dir/daemon/upstream/tls_stream.cpp; do
  gcda="$build/CMakeFiles/$obj.gcda"
  if [ -s "$gcda" ]; then pass "profile $obj.gcda written by the training"; else fail "no profile $gcda"; fi
done
if grep -q -- "-fprofile-use" "$build/compile_commands.json"; then
  pass "the final build compiles with -fprofile-use"
else
  fail "compile_commands.json has no -fprofile-use"
fi
bin="$build/sluice"
version="$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")"
if "$bin" --version | grep -qF "$version"; then pass "$bin --version is $version"; else fail "$bin --version"; fi
if "$bin" --check-config "$repo/config/sluice.yaml" >/dev/null; then
  pass "--check-config config/sluice.yaml"
else
  fail "--check-config config/sluice.yaml"
fi
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
