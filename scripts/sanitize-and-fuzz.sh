#!/usr/bin/env bash
# Runs the whole test suite once under AddressSanitizer + UndefinedBehaviorSanitizer (gcc,
# BUILD_ASAN, packaging tests excluded), then every libFuzzer target of tests/fuzz for a bounded
# time on a copy of its seed corpus (clang, BUILD_FUZZ). Fails on any sanitizer report, test
# failure or fuzzer crash; a fuzzer's crashing input is kept in BUILD_FUZZ/fuzz-run/<target>/.
#
# Usage: scripts/sanitize-and-fuzz.sh [asan] [fuzz]        (both when none is named)
# Environment: FUZZ_SECONDS (60) per target, FUZZ_SEED (1: the same inputs on every run, so a
#              CI result can be reproduced; 0 lets libFuzzer pick), FUZZ_JOBS (2) targets at once,
#              BUILD_ASAN (build-asan), BUILD_FUZZ (build-fuzz), CXX_FUZZ (clang++).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
build_asan="${BUILD_ASAN:-build-asan}"
build_fuzz="${BUILD_FUZZ:-build-fuzz}"
fuzz_seconds="${FUZZ_SECONDS:-60}"
fuzz_jobs="${FUZZ_JOBS:-2}"
fuzz_seed="${FUZZ_SEED:-1}"
stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then stages=(asan fuzz); fi

scripts/install-deps.sh

# Reports go to stderr with symbolised stacks; the first error ends the process with a failure.
symbolizer="$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:print_stacktrace=1:check_initialization_order=1:detect_stack_use_after_return=1${symbolizer:+:external_symbolizer_path=$symbolizer}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${symbolizer:+:external_symbolizer_path=$symbolizer}"

run_asan() {
    local start=$SECONDS
    cmake -S . -B "$build_asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=ON \
        -DSLUICE_BUILD_BENCH=OFF
    cmake --build "$build_asan" -j2
    local built=$SECONDS
    # Reports also go to files: tests that capture a process's stderr (the access-log tests,
    # the e2e runners' sluice) would otherwise swallow them.
    local reports
    reports="$(cd "$build_asan" && pwd)/sanitizer-reports"
    rm -rf "$reports"
    mkdir -p "$reports"
    local status=0
    ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$reports/asan" \
        UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$reports/ubsan" \
        ctest --test-dir "$build_asan" --output-on-failure -j2 --timeout 600 -LE packaging ||
        status=$?
    echo "sanitize: build $((built - start)) s, tests $((SECONDS - built)) s"
    if [ -n "$(ls -A "$reports")" ]; then
        echo "sanitize: sanitizer reports in $reports:" >&2
        tail -n +1 "$reports"/* >&2
        return 1
    fi
    return "$status"
}

# Runs fuzz target $1 for fuzz_seconds on a fresh copy of its corpus; extra seed directories
# (read, never written) follow. Its exit status goes to fuzz-run/$1/status.
fuzz_one() {
    local name="$1"
    shift
    local run="$build_fuzz/fuzz-run/$name"
    rm -rf "$run"
    mkdir -p "$run/artifacts"
    cp -r "tests/fuzz/corpus/$name" "$run/corpus"
    # -timeout: an input that takes 10 s is a hang and fails the run like a crash.
    timeout $((fuzz_seconds + 300)) "$build_fuzz/tests/fuzz/fuzz_$name" \
        -max_total_time="$fuzz_seconds" -seed="$fuzz_seed" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="tests/fuzz/$name.dict" -artifact_prefix="$run/artifacts/" \
        "$run/corpus" "$@" >"$run/log" 2>&1 && echo 0 >"$run/status" || echo $? >"$run/status"
}

run_fuzz() {
    local start=$SECONDS
    cmake -S . -B "$build_fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" -DSLUICE_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF \
        -DSLUICE_BUILD_BENCH=OFF
    cmake --build "$build_fuzz" -j2 --target fuzz
    local built=$SECONDS
    # The shipped configs are seeds of the config target, read from where they live.
    local -A extra=([config]="$root/config")
    local targets=(request_target request_head retry_after config)
    local name failed=()
    for name in "${targets[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$fuzz_jobs" ]; do wait -n || true; done
        echo "fuzz: $name for ${fuzz_seconds} s"
        # shellcheck disable=SC2086  # the extra seed directory is one word or none
        fuzz_one "$name" ${extra[$name]:-} &
    done
    wait
    for name in "${targets[@]}"; do
        if [ "$(cat "$build_fuzz/fuzz-run/$name/status" 2>/dev/null)" != 0 ]; then
            failed+=("$name")
        fi
        grep -E '^stat::number_of_executed_units|^stat::new_units_added' \
            "$build_fuzz/fuzz-run/$name/log" | sed "s/^/fuzz: $name: /" || true
    done
    for name in "${failed[@]}"; do
        echo "fuzz: $name FAILED; the end of $build_fuzz/fuzz-run/$name/log:" >&2
        tail -n 60 "$build_fuzz/fuzz-run/$name/log" >&2
        echo "fuzz: reproduce with $build_fuzz/tests/fuzz/fuzz_$name" \
            "$build_fuzz/fuzz-run/$name/artifacts/<file>; once fixed, add that file to" \
            "tests/fuzz/corpus/$name/" >&2
    done
    echo "fuzz: build $((built - start)) s, fuzzing $((SECONDS - built)) s"
    [ ${#failed[@]} -eq 0 ]
}

for stage in "${stages[@]}"; do
    case "$stage" in
        asan) run_asan ;;
        fuzz) run_fuzz ;;
        *) echo "unknown stage $stage (asan, fuzz)" >&2; exit 2 ;;
    esac
done
