#!/usr/bin/env bash
# Builds the sluice .deb with CPack and checks it the way an operator would use it:
#   - dpkg-deb -c lists /usr/bin/sluice, /lib/systemd/system/sluice.service,
#     /etc/sluice/sluice.yaml, /usr/lib/sysusers.d/sluice.conf and the docs, and nothing
#     outside those places; dpkg-deb -I shows the package fields and Depends (the libraries
#     dpkg-shlibdeps found, plus ca-certificates); conffiles and maintainer scripts are there;
#   - as root (CI): dpkg -i installs it, the sluice system user exists, /usr/bin/sluice
#     --check-config /etc/sluice/sluice.yaml succeeds (also as that user), systemd-analyze
#     verify accepts the installed unit and systemd-analyze security rates it 2.0 or better,
#     a local edit of the conffile survives a reinstall, dpkg -r keeps the conffile and
#     dpkg -P removes everything. The machine is left as it was (the user too, if the test
#     created it).
# Usage: test_deb.sh BUILD_DIR   (configured Release, prefix /usr, without tests; shared with
# test_docker_build_script.sh so that the second of them does not rebuild). Exit 77 (skipped)
# for the install part when not root and no passwordless sudo, or when a sluice package is
# already installed here.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(mkdir -p "${1:?usage: $0 BUILD_DIR}" && cd "$1" && pwd)"
work="$(mktemp -d /tmp/sluice-deb.XXXXXX)"
SUDO=""
installed=0
user_created=0
cleanup() {
  if [ "$installed" = 1 ]; then $SUDO dpkg -P sluice >/dev/null 2>&1 || true; fi
  if [ "$user_created" = 1 ] && getent passwd sluice >/dev/null; then
    $SUDO userdel sluice >/dev/null 2>&1 || true
    $SUDO groupdel sluice >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what="$1"; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

version="$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")"
arch="$(dpkg --print-architecture)"

echo "== build (Release, prefix /usr, no tests) in $build"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target sluice -j "${JOBS:-2}"
echo "== cpack -G DEB"
(cd "$build" && cpack -G DEB -B "$work/out") | tail -3
deb="$work/out/sluice_${version}_${arch}.deb"
[ -f "$deb" ] || { echo "FAIL no $deb: $(ls "$work/out")"; exit 1; }
pass "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

echo "== dpkg-deb -c"
dpkg-deb -c "$deb" | tee "$work/contents"
mode_of() { awk -v p="./$1" '$6 == p {print $1}' "$work/contents"; }
for f in usr/bin/sluice:-rwxr-xr-x lib/systemd/system/sluice.service:-rw-r--r-- \
         etc/sluice/sluice.yaml:-rw-r--r-- usr/lib/sysusers.d/sluice.conf:-rw-r--r-- \
         usr/share/doc/sluice/README.md:-rw-r--r-- \
         usr/share/doc/sluice/configuration.md:-rw-r--r--; do
  p="${f%%:*}" want="${f#*:}"
  got="$(mode_of "$p")"
  [ "$got" = "$want" ] && pass "contains /$p ($got)" || fail "/$p: mode '$got', want $want"
done
stray="$(awk '{print $6}' "$work/contents" | grep -vE '^\./((usr/(bin|lib/sysusers\.d|share/doc/sluice)|etc/sluice|lib/systemd/system)(/.*)?|usr/?|usr/lib/?|usr/share/?|usr/share/doc/?|lib/?|lib/systemd/?|etc/?)?$' || true)"
[ -z "$stray" ] && pass "no files outside the expected places" || fail "unexpected paths: $stray"

echo "== dpkg-deb -I"
dpkg-deb -I "$deb" | tee "$work/info"
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: sluice" test "$(field Package)" = sluice
check "Version: $version" test "$(field Version)" = "$version"
check "Architecture: $arch" test "$(field Architecture)" = "$arch"
check "Section: net" test "$(field Section)" = net
check "Maintainer set" test -n "$(field Maintainer)"
check "Description set" test -n "$(field Description)"
depends="$(field Depends)"
want_deps=(ca-certificates libboost-json1.81.0 libboost-url1.81.0 libssl3 libyaml-cpp0.7
  libprometheus-cpp-core1.0 "libspdlog1.10(-fmt9)?" libfmt9 libc6 "libstdc\+\+6")
if readelf -d "$build/sluice" | grep -q 'libsystemd\.so\.0'; then want_deps+=(libsystemd0); fi
for d in "${want_deps[@]}"; do
  if grep -qE "(^|, )${d}( \(|,|$)" <<<"$depends"; then pass "Depends: $d"; else fail "Depends lacks $d: $depends"; fi
done
dpkg-deb -e "$deb" "$work/control"
check "conffiles lists /etc/sluice/sluice.yaml" grep -qx /etc/sluice/sluice.yaml "$work/control/conffiles"
for s in postinst prerm postrm; do
  check "$s is an executable sh script" test -x "$work/control/$s"
  check "$s parses (sh -n)" sh -n "$work/control/$s"
done

# ---- installation ----
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo"; else
    echo "SKIP install checks: need root or passwordless sudo ($fails failed so far)"
    [ "$fails" = 0 ] && exit 77 || exit 1
  fi
fi
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'ok installed'; then
  echo "SKIP install checks: a sluice package is already installed on this machine"
  [ "$fails" = 0 ] && exit 77 || exit 1
fi
if ! command -v systemd-analyze >/dev/null; then
  echo "== installing systemd (for systemd-analyze)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd
fi
getent passwd sluice >/dev/null || user_created=1

echo "== dpkg -i"
installed=1
if ! $SUDO dpkg -i "$deb"; then
  echo "dpkg -i failed; letting apt install the missing dependencies"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$deb"
fi
check "dpkg says installed" sh -c "dpkg-query -W -f='\${Status}' sluice | grep -q 'install ok installed'"
check "/usr/bin/sluice --version" sh -c "/usr/bin/sluice --version | grep -qx 'sluice $version'"
if out="$(/usr/bin/sluice --check-config /etc/sluice/sluice.yaml 2>&1)"; then
  pass "/usr/bin/sluice --check-config /etc/sluice/sluice.yaml: $out"
else fail "/usr/bin/sluice --check-config /etc/sluice/sluice.yaml: $out"; fi
check "system user sluice exists" getent passwd sluice
shell="$(getent passwd sluice | cut -d: -f7)"
uid="$(id -u sluice 2>/dev/null || echo 0)"
check "sluice has no login shell ($shell)" test "$shell" = /usr/sbin/nologin -o "$shell" = /bin/false
check "sluice is a system user (uid $uid)" test "$uid" -gt 0 -a "$uid" -lt 1000
check "the sluice user can read and check the config" \
  $SUDO runuser -u sluice -- /usr/bin/sluice --check-config /etc/sluice/sluice.yaml
check "dpkg registers the conffile" \
  sh -c "dpkg-query -W -f='\${Conffiles}' sluice | grep -q ' /etc/sluice/sluice.yaml '"

echo "== systemd-analyze verify /lib/systemd/system/sluice.service"
if out="$(systemd-analyze verify /lib/systemd/system/sluice.service 2>&1)" && [ -z "$out" ]; then
  pass "systemd-analyze verify accepts the unit"
else fail "systemd-analyze verify: $out"; fi
sec="$(systemd-analyze security --offline=yes /lib/systemd/system/sluice.service 2>&1 || true)"
score="$(sed -n 's/.*Overall exposure level for sluice.service: \([0-9.]*\).*/\1/p' <<<"$sec")"
echo "systemd-analyze security: exposure $score"
if [ -n "$score" ] && awk -v s="$score" 'BEGIN {exit !(s <= 2.0)}'; then
  pass "systemd-analyze security rates the unit $score (<= 2.0)"
else fail "systemd-analyze security: '$score'"; grep '✗' <<<"$sec" || true; fi

echo "== conffile, remove, purge"
echo "# local edit" | $SUDO tee -a /etc/sluice/sluice.yaml >/dev/null
$SUDO dpkg -i --force-confold "$deb" >/dev/null
check "a local edit of the conffile survives a reinstall" grep -qx '# local edit' /etc/sluice/sluice.yaml
$SUDO dpkg -r sluice >/dev/null
check "dpkg -r removes /usr/bin/sluice" test ! -e /usr/bin/sluice
check "dpkg -r removes the unit" test ! -e /lib/systemd/system/sluice.service
check "dpkg -r keeps the conffile" test -f /etc/sluice/sluice.yaml
$SUDO dpkg -P sluice >/dev/null
installed=0
check "dpkg -P removes /etc/sluice" test ! -e /etc/sluice
check "dpkg -P leaves no package state" sh -c "! dpkg-query -W sluice >/dev/null 2>&1 || dpkg-query -W -f='\${Status}' sluice | grep -q not-installed"

echo "$fails failed"
[ "$fails" = 0 ]
