#!/usr/bin/env bash
# bench/lib.sh's pin_split (bench/compare --pin): which CPUs the proxy gets and which wrk and the
# upstream get, and the refusal when none would be left for them.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"

failures=0
expect() {  # expect WANT_STATUS WANT_OUTPUT THREADS CPU...
  local want_status="$1" want="$2" got status
  shift 2
  got="$(pin_split "$@" 2>/dev/null)"
  status=$?
  if [ "$status" != "$want_status" ] || [ "$got" != "$want" ]; then
    echo "FAIL: pin_split $*: got status $status, output '$got'; want $want_status, '$want'"
    failures=$((failures + 1))
  fi
}

expect 0 "0 1" 1 0 1
expect 0 "0,1 2,3" 2 0 1 2 3
expect 0 "0 1,2,3" 1 0 1 2 3
expect 0 "0,1,2 3" 3 0 1 2 3
# A cpuset that does not start at CPU 0 (a container's): the lists are its own CPUs.
expect 0 "4 6,7" 1 4 6 7
# No CPU left for wrk and the upstream.
expect 1 "" 2 0 1
expect 1 "" 1 0
expect 1 "" 3 0 1

msg="$(pin_split 2 0 1 2>&1 >/dev/null)"
case "$msg" in
  *"2 proxy thread(s) on 2 CPU(s)"*"--threads 1"*) ;;
  *) echo "FAIL: refusal message: '$msg'"; failures=$((failures + 1)) ;;
esac

# Fewer than 2 CPUs (or none found): no suggestion of a thread count that cannot work.
for args in "1 0" "1"; do
  # shellcheck disable=SC2086
  msg="$(pin_split $args 2>&1 >/dev/null)"
  case "$msg" in
    *"at least 2 CPUs"*) ;;
    *) echo "FAIL: pin_split $args: '$msg'"; failures=$((failures + 1)) ;;
  esac
  case "$msg" in *"--threads"*) echo "FAIL: pin_split $args suggests a thread count"; failures=$((failures + 1)) ;; esac
done

[ "$failures" = 0 ] && echo "pin_split: all cases pass"
exit $((failures > 0))
