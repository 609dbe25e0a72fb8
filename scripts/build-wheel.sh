#!/usr/bin/env bash
# Builds what is published: the manylinux wheel (abi3, so one wheel serves CPython 3.10 and
# later) and the sdist, into dist/, and prints the wheel's platform tag and size.
#
#   bash scripts/build-wheel.sh
#
# The wheel is linked with zig against glibc 2.17 (manylinux2014, the oldest glibc Rust's
# standard library supports), so any Linux with glibc >= 2.17 takes it; maturin strips the
# extension (pyproject.toml: strip). maturin, ziglang and auditwheel go into a venv of their
# own (.venv-build; PERSIST_BUILD_VENV picks another). The wheel is built in target/wheel, apart
# from the normal build, whose linker it does not share.
#
# Fails if the wheel is not manylinux_2_17 by auditwheel's check or is 2 MB or more.
# scripts/check-wheel.sh then installs it into fresh venvs and runs the demo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
BVENV="${PERSIST_BUILD_VENV:-$ROOT/.venv-build}"
MAX_WHEEL_BYTES=$((2 * 1000 * 1000))
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [[ ! -x "$BVENV/bin/python" ]]; then
    "$PYTHON" -m venv "$BVENV"
fi
"$BVENV/bin/python" -m pip install -q "maturin>=1.5,<2" ziglang auditwheel

mkdir -p dist
rm -f dist/persist_store-*.whl dist/persist_store-*.tar.gz
# maturin finds zig through the ziglang package of the Python that runs it.
PATH="$BVENV/bin:$PATH" CARGO_TARGET_DIR="$ROOT/target/wheel" \
    "$BVENV/bin/maturin" build --release --zig --compatibility manylinux2014 --out dist
PATH="$BVENV/bin:$PATH" "$BVENV/bin/maturin" sdist --out dist

wheels=(dist/persist_store-*.whl)
sdists=(dist/persist_store-*.tar.gz)
if ((${#wheels[@]} != 1 || ${#sdists[@]} != 1)); then
    echo "build-wheel: expected one wheel and one sdist in dist/, found: ${wheels[*]} ${sdists[*]}" >&2
    exit 1
fi
wheel="${wheels[0]}"
"$BVENV/bin/auditwheel" show "$wheel" | tee dist/auditwheel-show.txt
# auditwheel wraps its lines: join them before looking for the tag.
if ! tr '\n' ' ' <dist/auditwheel-show.txt | grep -q '"manylinux_2_17_x86_64"'; then
    echo "build-wheel: auditwheel does not call $wheel manylinux_2_17" >&2
    exit 1
fi
size=$(stat -c %s "$wheel")
so_size=$("$BVENV/bin/python" - "$wheel" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(sum(i.file_size for i in z.infolist() if i.filename.endswith(".so")))
PY
)
tag="$(basename "$wheel" .whl)"
tag="${tag#persist_store-*-}"
echo
echo "wheel:  $wheel"
echo "  tag:  $tag"
echo "  size: $size bytes (extension unpacked: $so_size bytes)"
echo "sdist:  ${sdists[0]} ($(stat -c %s "${sdists[0]}") bytes)"
if ((size >= MAX_WHEEL_BYTES)); then
    echo "build-wheel: the wheel is $size bytes, over the $MAX_WHEEL_BYTES-byte budget" >&2
    exit 1
fi
