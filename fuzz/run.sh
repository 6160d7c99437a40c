#!/usr/bin/env bash
# Builds the tide-agent protocol fuzzer (fuzz_agent_protocol.c + guest-agent/protocol.c) with
# clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer, and runs it on a scratch
# copy of the seed corpus, so nothing the run finds is written into the source tree.
#
#   fuzz/run.sh [BUILD_DIR] [SECONDS]     defaults: build-fuzz (in the source tree, git-ignored), 60
#
# Exits non-zero when the fuzzer finds a crash, a leak, undefined behaviour or a broken promise
# (the reproducer is left in BUILD_DIR as crash-*/leak-*/timeout-*); exits 0 with a "skipped"
# line when clang, libFuzzer or json-c is missing, so a machine without them does not fail CI.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-fuzz}
seconds=${2:-60}
cc=${CLANG:-clang}

case $seconds in '' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac

# By hand a missing toolchain is a skip; `make test` sets FUZZ_REQUIRED=1, where it is a failure
# (scripts/install-deps installs clang, so a skip there would hide a broken setup).
skip() {
        if [ "${FUZZ_REQUIRED:-0}" = 1 ]; then
                echo "fuzz: cannot run: $*" >&2
                exit 1
        fi
        echo "fuzz: skipped: $*"
        exit 0
}

command -v "$cc" >/dev/null 2>&1 || skip "$cc not found (install clang to fuzz)"
command -v pkg-config >/dev/null 2>&1 || skip "pkg-config not found"
pkg-config --exists json-c || skip "json-c development files not found (libjson-c-dev)"

mkdir -p "$build"
build=$(cd "$build" && pwd)
probe=$build/.libfuzzer-probe
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void) d; (void) n; return 0; }\n' >"$probe.c"
"$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >/dev/null 2>&1 ||
        skip "$cc cannot link -fsanitize=fuzzer,address,undefined (libFuzzer or the sanitizer runtimes are missing)"
rm -f "$probe" "$probe.c"

bin=$build/fuzz_agent_protocol
# shellcheck disable=SC2046 # pkg-config output is meant to split into words
"$cc" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-unused-parameter \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
        -I"$src" $(pkg-config --cflags json-c) \
        "$src/guest-agent/protocol.c" "$src/fuzz/fuzz_agent_protocol.c" \
        -o "$bin" $(pkg-config --libs json-c) -lm

corpus=$build/corpus-agent_protocol
rm -rf "$corpus"
cp -r "$src/fuzz/corpus/agent_protocol" "$corpus"

marker=$build/.run-started
touch "$marker"
echo "fuzz: running $bin for ${seconds}s on a copy of the seed corpus ($corpus)"
set +e
# -max_len: a few lines, oversized ones included; -artifact_prefix keeps reproducers out of the
# current directory; -timeout: one input must never take seconds.
(cd "$build" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -dict="$src/fuzz/agent_protocol.dict" -artifact_prefix="$build/" -print_final_stats=1 "$corpus")
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
        echo "fuzz: FAILED (exit $rc): reproducers in $build:" >&2
        find "$build" -maxdepth 1 -newer "$marker" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                -o -name 'oom-*' -o -name 'slow-unit-*' \) >&2
        echo "fuzz: replay one with: $bin $build/crash-..." >&2
        exit 1
fi
echo "fuzz: ok, nothing found in ${seconds}s"
