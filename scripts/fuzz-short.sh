#!/usr/bin/env bash
# A short, bounded run of the hostile-file fuzz target (fuzz/fuzz_targets/open_and_walk.rs)
# over the committed corpus: fails if the fuzzer finds a crash, a panic or a hang.
#
#   bash scripts/fuzz-short.sh [SECONDS]        # default 60
#
# Needs rustup with a nightly toolchain (cargo-fuzz builds with -Zsanitizer=address); installs
# cargo-fuzz itself if it is missing. One fuzzing job (libFuzzer's default). New corpus entries
# go to a scratch directory, so the committed corpus is only read. A finding is written to
# fuzz/artifacts/open_and_walk/ and reproduced with
#   cargo +nightly fuzz run open_and_walk fuzz/artifacts/open_and_walk/<file>
#
# Environment:
#   FUZZ_TARGET     target to run (default: open_and_walk)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default: 10)
#   FUZZ_TOOLCHAIN  toolchain for cargo fuzz (default: nightly)
#   FUZZ_BUILD_FLAGS  extra cargo-fuzz build flags (default: none, i.e. cargo-fuzz's release
#                   build with debug assertions, overflow checks and AddressSanitizer; "-O"
#                   builds with the arithmetic of a production release build instead)
#   PERSIST_FUZZ_XFAIL  checks of the target to skip because their bug is known and open
#                   (default: none; "writer-word-leak" skips the check that a failed change
#                   gave the writer word back)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_RUN="${1:-60}"
TARGET="${FUZZ_TARGET:-open_and_walk}"
PER_INPUT="${FUZZ_TIMEOUT:-10}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

export PERSIST_FUZZ_XFAIL="${PERSIST_FUZZ_XFAIL-}"

case "$SECONDS_TO_RUN" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

if ! command -v rustup >/dev/null; then
    echo "fuzz-short: rustup is needed (with a nightly toolchain)" >&2
    exit 2
fi
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "fuzz-short: installing the $TOOLCHAIN toolchain"
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo +"$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "fuzz-short: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$ROOT/fuzz"
CORPUS="corpus/$TARGET"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/persist-fuzz-corpus.XXXXXX")"
# Where the target writes its store files (one directory per fuzzing process): tmpfs if any.
SHM=/dev/shm
[ -d "$SHM" ] && [ -w "$SHM" ] || SHM="${TMPDIR:-/tmp}"
export PERSIST_FUZZ_TMP
PERSIST_FUZZ_TMP="$(mktemp -d "$SHM/persist-fuzz-stores.XXXXXX")"
trap 'rm -rf "$SCRATCH" "$PERSIST_FUZZ_TMP"' EXIT

echo "fuzz-short: $TARGET for ${SECONDS_TO_RUN}s over $CORPUS ($(ls "$CORPUS" | wc -l) inputs)"
# The first directory receives new inputs; the committed corpus is read only. The saved
# findings (artifacts/, each the input of a bug since fixed) run first, as regression tests.
ARTIFACTS="artifacts/$TARGET"
[ -d "$ARTIFACTS" ] || ARTIFACTS=""
# shellcheck disable=SC2086 # FUZZ_BUILD_FLAGS is a list of flags
cargo +"$TOOLCHAIN" fuzz run ${FUZZ_BUILD_FLAGS:-} "$TARGET" "$SCRATCH" $ARTIFACTS "$CORPUS" -- \
    -max_total_time="$SECONDS_TO_RUN" \
    -timeout="$PER_INPUT" \
    -rss_limit_mb=4096 \
    -max_len=512 \
    -print_final_stats=1
echo "fuzz-short: no findings in ${SECONDS_TO_RUN}s"
