#!/usr/bin/env bash
# Runs every check and test of persist, in order, and stops at the first failure.
#
#   bash scripts/test-all.sh
#
# Meant for a fresh Debian machine (as CI runs it, through .ci/run): it needs Rust with
# cargo (cargo-nextest if present) and CPython >= 3.10 with pip, and installs the rest itself
# into a virtual environment at .venv-test (maturin, pytest and the other packages of the
# `test` dependency group in pyproject.toml). The venv is kept between runs, as is .venv-build
# (maturin, ziglang and auditwheel, for the published wheel: scripts/build-wheel.sh).
#
# Environment:
#   PYTHON                 interpreter for the venv (default: python3)
#   PERSIST_TEST_VENV      where the venv lives (default: .venv-test in the repo root)
#   LOOM_MAX_PREEMPTIONS   depth of the loom models (default: 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="${PERSIST_TEST_VENV:-$ROOT/.venv-test}"
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

now_ms() { date +%s%3N; }
seconds_since() { # START_MS -> "12.3"
    local ms=$(($(now_ms) - $1))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

STEP=""
STEPS_DONE=0
START_ALL="$(now_ms)"
on_exit() {
    local rc=$?
    if ((rc != 0)); then
        echo
        echo "test-all: FAILED at step: ${STEP:-setup} (exit ${rc})" >&2
    fi
}
trap on_exit EXIT

# step TITLE COMMAND...: prints a header, runs the command, prints how long it took.
step() {
    STEP="$1"
    shift
    echo
    echo "==================================================================="
    echo "== ${STEP}"
    echo "== \$ $*"
    echo "==================================================================="
    local t0
    t0="$(now_ms)"
    "$@"
    echo "-- ${STEP}: ok in $(seconds_since "$t0") s"
    STEPS_DONE=$((STEPS_DONE + 1))
}

nextest_or_test() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace
        # nextest does not run doctests.
        cargo test --workspace --doc
    else
        echo "cargo-nextest not found: falling back to cargo test"
        cargo test --workspace
    fi
}

loom() {
    # loom needs --cfg loom on every crate, so it gets a target dir of its own and does not
    # invalidate the normal build.
    local t0
    t0="$(now_ms)"
    RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="$LOOM_MAX_PREEMPTIONS" \
        CARGO_TARGET_DIR="$ROOT/target/loom" \
        cargo test -p loom-tests --release
    echo "loom: LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS}, wall time $(seconds_since "$t0") s"
}

# The code that only exists under --cfg loom (the models, and persist's loom shims) gets the
# same lints as the rest; the normal clippy runs never compile it.
clippy_loom() {
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$ROOT/target/loom" \
        cargo clippy -p loom-tests --release --all-targets -- -D warnings
}

# make_venv, install_package
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"

step "rustfmt" cargo fmt --all --check
step "clippy (workspace, no python)" cargo clippy --workspace --all-targets -- -D warnings
step "clippy (python extension)" cargo clippy --all-targets --features python -- -D warnings
step "Rust tests" nextest_or_test
step "clippy (loom models, --cfg loom)" clippy_loom
step "rustdoc (warnings as errors)" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
step "loom models" loom
step "Python venv" make_venv
PY_SOURCES=(python/ tests/ build_backend/ benches/ examples/)
step "ruff check" "$VENV/bin/ruff" check "${PY_SOURCES[@]}"
step "ruff format --check" "$VENV/bin/ruff" format --check "${PY_SOURCES[@]}"
step "Python package: build and install" install_package
# The stubs (python/persist/_persist.pyi) against the installed native module; no allowlist.
step "stubtest" "$VENV/bin/python" -m mypy.stubtest persist._persist
step "pytest" "$VENV/bin/python" -m pytest
# The docs site from docs/ and the installed package's docstrings, warnings as errors (-E: a
# fresh environment, so the reference always shows the package just installed). Its examples
# ran in the pytest step (tests/python/test_docs.py, with mypy --strict over them).
step "docs (sphinx -W)" "$VENV/bin/python" -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
# What is published: the manylinux wheel (zig, glibc 2.17) and the sdist, then the wheel in
# fresh venvs (demo, metadata) and the sdist refusing to build without cargo.
step "wheel and sdist: build" bash "$ROOT/scripts/build-wheel.sh"
step "wheel and sdist: install and check" bash "$ROOT/scripts/check-wheel.sh"
# A bounded fuzz run of hostile store files over the committed corpus (needs a nightly
# toolchain, which rustup has here; the script installs cargo-fuzz if it is missing).
step "fuzz (60 s)" bash "$ROOT/scripts/fuzz-short.sh" 60

echo
echo "test-all: all ${STEPS_DONE} steps passed in $(seconds_since "$START_ALL") s"
