# Shared by scripts/test-all.sh and scripts/demo.sh (source it): makes a virtual environment
# with the `test` dependency group of pyproject.toml, and builds and installs persist into it.
#
#   PYTHON  interpreter for the venv (default: python3)
#   VENV    where the venv lives

make_venv() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
        echo "reusing $VENV ($("$VENV/bin/python" --version))"
    else
        rm -rf "$VENV"
        if ! "$PYTHON" -m venv "$VENV"; then
            # Debian's python3 ships venv (ensurepip) in a package of its own.
            if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
                echo "$PYTHON cannot make a venv: installing python3-venv"
                rm -rf "$VENV"
                apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
                "$PYTHON" -m venv "$VENV"
            else
                echo "$PYTHON cannot make a venv (on Debian: apt-get install python3-venv)" >&2
                return 1
            fi
        fi
    fi
    # `pip install --group` needs pip >= 25.1.
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q --group test
    "$VENV/bin/python" -m pip --version
}

install_package() {
    # What a user does: build the wheel with maturin (pyproject.toml) and install it. The tests
    # import this installed copy, not python/ in the work tree.
    "$VENV/bin/python" -m pip install --force-reinstall --no-deps .
    "$VENV/bin/python" -c 'import persist; print("installed persist", persist.__version__, "from", persist.__file__)'
}
