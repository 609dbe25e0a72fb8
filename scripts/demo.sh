#!/usr/bin/env bash
# The main job: builds persist into a virtual environment and runs `python -m persist demo`
# (the 2004 seed programs, then processes sharing a counter and a list in one store).
#
#   bash scripts/demo.sh
#
# Needs Rust (cargo) and CPython >= 3.10 with pip; the venv is .venv-test, shared with
# scripts/test-all.sh (PERSIST_TEST_VENV picks another).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${PERSIST_TEST_VENV:-$ROOT/.venv-test}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"

echo "Building persist into $VENV (the first build takes a few minutes)..."
make_venv >/dev/null
install_package >/dev/null
exec "$VENV/bin/python" -m persist demo
