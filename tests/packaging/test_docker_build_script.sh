#!/usr/bin/env bash
# Runs scripts/docker-build.sh, the Dockerfile's build stage, the way the image build does
# (into a staging directory) and checks what the runtime stage takes from it:
#   - the staged files the Dockerfile COPYs exist; the binary runs --version (the CMake
#     project version, which is also the image's version label) and --check-config on
#     config/docker.yaml (the image's config) and on the staged /etc/sluice/sluice.yaml;
#   - it is the profile-guided build (configured SLUICE_PGO=use, with the training's profiles);
#   - the runtime stage's apt-get install list covers every shared-library package
#     dpkg-shlibdeps finds for the staged binary (so the slim image can run it).
# No Docker engine is needed. Usage: test_docker_build_script.sh BUILD_DIR
# (BUILD_DIR is kept between runs so that a re-run only rebuilds what changed; the deb test
# shares it.)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(mkdir -p "${1:?usage: $0 BUILD_DIR}" && cd "$1" && pwd)"
work="$(mktemp -d /tmp/sluice-docker-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
stage="$work/staging"
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

echo "== scripts/docker-build.sh $stage $build"
JOBS="${JOBS:-2}" "$repo/scripts/docker-build.sh" "$stage" "$build"

version="$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")"
[ -n "$version" ] || { echo "FAIL no project version in CMakeLists.txt"; exit 1; }
bin="$stage/usr/bin/sluice"

# What the Dockerfile's runtime stage copies from the build stage (COPY --from=build /staging/X).
stage_in_dockerfile="$(sed -n 's#^RUN scripts/docker-build.sh \([^ ]*\).*#\1#p' "$repo/Dockerfile")"
[ -n "$stage_in_dockerfile" ] && pass "Dockerfile runs scripts/docker-build.sh $stage_in_dockerfile" \
  || fail "Dockerfile does not RUN scripts/docker-build.sh STAGE"
copied=0
while read -r src; do
  rel="${src#"$stage_in_dockerfile"/}"
  if [ -e "$stage/$rel" ]; then pass "staged $rel (COPY --from=build $src)"; else fail "COPY --from=build $src: $stage/$rel not staged"; fi
  copied=$((copied + 1))
done < <(sed -n 's#^COPY --from=build \([^ ]*\) .*#\1#p' "$repo/Dockerfile")
[ "$copied" -gt 0 ] || fail "Dockerfile copies nothing from the build stage"
for f in usr/bin/sluice etc/sluice/sluice.yaml lib/systemd/system/sluice.service \
         usr/lib/sysusers.d/sluice.conf usr/share/doc/sluice/README.md; do
  [ -e "$stage/$f" ] && pass "staged /$f" || fail "not staged: /$f"
done

out="$("$bin" --version)"
[ "$out" = "sluice $version" ] && pass "--version: $out" || fail "--version printed '$out', want 'sluice $version'"
for cfg in "$repo/config/docker.yaml" "$stage/etc/sluice/sluice.yaml"; do
  if out="$("$bin" --check-config "$cfg" 2>&1)"; then pass "--check-config $cfg"; else fail "--check-config $cfg: $out"; fi
done
printf 'listen: 127.0.0.1:3128\nnot_a_key: 1\n' > "$work/bad.yaml"
set +e; out="$("$bin" --check-config "$work/bad.yaml" 2>&1)"; rc=$?; set -e
if [ "$rc" = 2 ] && grep -q "bad.yaml:2:1" <<<"$out"; then pass "--check-config on a bad file: exit 2 with its position"
else fail "--check-config on a bad file: exit $rc, '$out'"; fi
# The image ships the profile-guided build (scripts/build-release.sh): the training wrote a
# profile for the request path, and the final build compiled with it.
if grep -qx 'SLUICE_PGO:STRING=use' "$build/CMakeCache.txt"; then pass "built with SLUICE_PGO=use"
else fail "the build tree is not configured SLUICE_PGO=use"; fi
if [ -s "$build/CMakeFiles/sluice_server.dir/daemon/http/session.cpp.gcda" ]; then
  pass "the training wrote a profile of session.cpp"
else fail "no profile of session.cpp in $build"; fi
if readelf -S "$bin" | grep -q '\.symtab'; then fail "the staged binary is not stripped"; else pass "the staged binary is stripped"; fi

# The runtime stage's packages cover the binary's shared-library dependencies. Packages that
# every Debian image has (libc6, libgcc-s1, libstdc++6: apt itself needs them) may be left out.
runtime_pkgs="$(awk '/^FROM debian:bookworm-slim/ {rt=1} rt' "$repo/Dockerfile" \
  | sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' \
  | grep -vE '^(apt-get|install|rm|&&|update)$' | sort -u)"
flat() { tr -s '\n' ' '; }
echo "runtime stage installs: $(flat <<<"$runtime_pkgs")"
provided=" $(flat <<<"$runtime_pkgs") "
for p in $runtime_pkgs; do
  prov="$(dpkg-query -W -f='${Provides}' "$p" 2>/dev/null | tr ',' '\n' | sed 's/(.*)//; s/ //g')"
  provided+="$(flat <<<"$prov") "
done
mkdir -p "$work/shlibdeps/debian" && touch "$work/shlibdeps/debian/control"
deps="$(cd "$work/shlibdeps" && dpkg-shlibdeps -O "$bin" 2>/dev/null | sed 's/^shlibs:Depends=//')"
echo "dpkg-shlibdeps: $deps"
[ -n "$deps" ] || fail "dpkg-shlibdeps found nothing"
while read -r dep; do
  [ -n "$dep" ] || continue
  ok=0
  for alt in $(tr '|' '\n' <<<"$dep" | sed 's/(.*)//; s/ //g'); do
    case " libc6 libgcc-s1 libstdc++6 $provided" in *" $alt "*) ok=1 ;; esac
  done
  [ $ok = 1 ] && pass "runtime image has $dep" || fail "runtime stage does not install '$dep' (Dockerfile apt-get install list)"
done < <(tr ',' '\n' <<<"$deps" | sed 's/^ *//')

echo "$fails failed"
[ "$fails" = 0 ]
