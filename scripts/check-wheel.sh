#!/usr/bin/env bash
# Checks what scripts/build-wheel.sh built, as a user meets it:
#   - the wheel installs into a fresh venv of each CPython found (3.10 to 3.13 on PATH, or the
#     interpreters named in PERSIST_CHECK_PYTHONS), from the file alone (--no-index);
#     `python -m persist demo` passes there, and `pip show` and the installed metadata carry
#     the name, summary, author, license (and its file), URLs, classifiers and readme;
#   - installing the sdist where no `cargo` is on PATH stops with the build backend's message
#     (it never downloads a Rust toolchain). pip fetches maturin for that build from the index.
#
#   bash scripts/build-wheel.sh && bash scripts/check-wheel.sh
#
# Takes about a minute: no Rust is compiled (scripts/test-all.sh runs both).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

wheels=(dist/persist_store-*.whl)
sdists=(dist/persist_store-*.tar.gz)
if [[ ! -f "${wheels[0]}" || ! -f "${sdists[0]}" ]]; then
    echo "check-wheel: no wheel or sdist in dist/: run scripts/build-wheel.sh first" >&2
    exit 1
fi
wheel="$ROOT/${wheels[0]}"
sdist="$ROOT/${sdists[0]}"

if [[ -n "${PERSIST_CHECK_PYTHONS:-}" ]]; then
    read -r -a pythons <<<"$PERSIST_CHECK_PYTHONS"
else
    pythons=()
    for v in 3.10 3.11 3.12 3.13; do
        if command -v "python$v" >/dev/null && "python$v" -c 'import venv, ensurepip' 2>/dev/null; then
            pythons+=("python$v")
        fi
    done
    if ((${#pythons[@]} == 0)); then pythons=("${PYTHON:-python3}"); fi
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fail() {
    echo "check-wheel: $*" >&2
    exit 1
}

n=0
for py in "${pythons[@]}"; do
    n=$((n + 1))
    venv="$WORK/venv-$n"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-index --no-deps "$wheel"
    # The demo makes its stores in its working directory: a fresh one, outside the tree.
    mkdir -p "$WORK/run-$n"
    out="$(cd "$WORK/run-$n" && "$venv/bin/python" -m persist demo)" || fail "$py: the demo failed: $out"
    [[ "$out" == *"Nothing lost."* ]] || fail "$py: the demo did not end with 'Nothing lost.': $out"
    show="$("$venv/bin/python" -m pip show -v persist-store)"
    for field in "Name: persist-store" "Summary: A persistent object store" \
        "Author: The persist authors" "Classifiers:" "Typing :: Typed" "Project-URLs:"; do
        [[ "$show" == *"$field"* ]] || fail "$py: pip show lacks '$field':"$'\n'"$show"
    done
    (cd "$WORK" && "$venv/bin/python" - <<'PY') || fail "$py: the installed metadata is incomplete"
import sys
from importlib import metadata

import persist

dist = metadata.distribution("persist-store")
meta = dist.metadata
assert meta["Version"] == persist.__version__, (meta["Version"], persist.__version__)
assert meta["License-Expression"] == "MIT", meta["License-Expression"]
assert meta["License-File"] == "LICENSE", meta["License-File"]
assert meta["Description-Content-Type"].startswith("text/markdown"), meta["Description-Content-Type"]
assert meta.get_payload().startswith("# persist"), "the readme is not the long description"
assert meta["Keywords"], "no keywords"
assert meta.get_all("Project-URL"), "no URLs"
licence = [f for f in dist.files if f.name == "LICENSE"]
assert licence and "MIT License" in licence[0].read_text(), "LICENSE is not installed"
if sys.version_info >= (3, 11):  # 3.10 reads only top_level.txt, which maturin does not write
    assert metadata.packages_distributions()["persist"] == ["persist-store"]
print("metadata: ok")
PY
    echo "$py ($("$venv/bin/python" --version)): installed $(basename "$wheel"), demo passed, metadata complete"
done

# The sdist where Rust is missing: every PATH entry that holds a cargo is left out.
nocargo=""
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do
    [[ -x "$d/cargo" ]] || nocargo="${nocargo:+$nocargo:}$d"
done
venv="$WORK/venv-sdist"
"${pythons[0]}" -m venv "$venv"
set +e
out="$(PATH="$nocargo" "$venv/bin/python" -m pip install --no-cache-dir "$sdist" 2>&1)"
rc=$?
set -e
((rc != 0)) || fail "the sdist installed without cargo on PATH"
[[ "$out" == *"building from source needs Rust's cargo"* ]] ||
    fail "installing the sdist without cargo failed, but not with the backend's message:"$'\n'"$out"
[[ "$out" != *"installing into a temporary directory"* ]] || fail "a Rust toolchain was fetched"
echo "sdist without cargo: refused with the backend's message (pip exit $rc)"
