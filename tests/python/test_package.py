"""The package as installed: it imports, it exports what its ``__all__`` promises, its exception
tree is the documented one, and ``python -m persist`` behaves as a command line should.

These tests run against the installed wheel (scripts/test-all.sh runs ``pip install .`` first),
so they also catch packaging mistakes: a stub or ``py.typed`` left out of the wheel, or a native
module built under the wrong name.
"""

from __future__ import annotations

import ast
import inspect
import pickle
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import persist
from persist import _persist

REPO = Path(__file__).resolve().parents[2]

ERRORS = [
    "FormatError",
    "CorruptionError",
    "StoreFullError",
    "LockTimeout",
    "ClosedError",
    "ReadOnlyError",
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "persist", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_native_module_is_inside_the_package() -> None:
    assert _persist.__name__ == "persist._persist"
    assert Path(_persist.__file__).parent == Path(persist.__file__).parent


def test_all_names_exist() -> None:
    assert sorted(persist.__all__) == sorted(set(persist.__all__))
    for name in persist.__all__:
        assert hasattr(persist, name), name


def test_version_is_the_crates() -> None:
    cargo = (REPO / "Cargo.toml").read_text()
    package = cargo[cargo.index("[package]") :]
    match = re.search(r'^version\s*=\s*"([^"]+)"', package, re.MULTILINE)
    assert match is not None
    assert persist.__version__ == match.group(1)


def test_format_version_is_a_positive_int() -> None:
    assert type(persist.FORMAT_VERSION) is int
    assert persist.FORMAT_VERSION >= 1
    assert persist.FORMAT_VERSION == _persist.FORMAT_VERSION


def test_error_is_an_exception() -> None:
    assert issubclass(persist.Error, Exception)
    assert persist.Error.__bases__ == (Exception,)


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_derives_from_error(name: str) -> None:
    cls = getattr(persist, name)
    assert issubclass(cls, persist.Error)
    assert cls is not persist.Error
    assert name in persist.__all__


@pytest.mark.parametrize("name", ERRORS)
def test_errors_are_named_as_users_see_them(name: str) -> None:
    cls = getattr(persist, name)
    assert cls.__module__ == "persist"
    assert cls.__qualname__ == name
    assert cls.__doc__


def test_store_full_error_is_a_memory_error() -> None:
    assert issubclass(persist.StoreFullError, MemoryError)
    with pytest.raises(MemoryError):
        raise persist.StoreFullError("no space left on device")
    with pytest.raises(persist.Error):
        raise persist.StoreFullError("no space left on device")


@pytest.mark.parametrize("name", [n for n in ERRORS if n != "StoreFullError"])
def test_other_errors_are_not_memory_errors(name: str) -> None:
    assert not issubclass(getattr(persist, name), MemoryError)


@pytest.mark.parametrize("name", ["Error", *ERRORS])
def test_native_module_raises_the_same_classes(name: str) -> None:
    # One definition: the classes Rust raises are the classes users catch.
    assert getattr(_persist, name) is getattr(persist, name)


@pytest.mark.parametrize("name", ["Error", *ERRORS])
def test_errors_pickle(name: str) -> None:
    # An error raised in a multiprocessing worker reaches the parent as the same class.
    err = getattr(persist, name)("at offset 0x40")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert back.args == err.args


def test_stubs_and_marker_are_installed() -> None:
    package = resources.files("persist")
    assert package.joinpath("py.typed").is_file()
    assert package.joinpath("_persist.pyi").is_file()


def test_stubs_match_the_native_module() -> None:
    # A cheap stand-in for mypy.stubtest: the stub declares exactly the module's names.
    stub = resources.files("persist").joinpath("_persist.pyi").read_text()
    declared: set[str] = set()
    stub_all: list[str] | None = None
    for node in ast.parse(stub).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__":
            stub_all = ast.literal_eval(node.value)
        elif isinstance(node, ast.ImportFrom):
            declared.update(a.name for a in node.names if a.asname == a.name)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
    runtime = {n for n in vars(_persist) if not n.startswith("__") or n == "__version__"}
    assert declared == runtime
    assert stub_all == _persist.__all__


def test_cli_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "usage: python -m persist" in result.stdout
    assert "demo" in result.stdout
    assert result.stderr == ""


def test_cli_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"persist {persist.__version__} (store format {persist.FORMAT_VERSION})"
    )


def test_cli_demo_runs_the_seed_programs_and_shares_a_store() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in ("You are visitor 1", "You are visitor 3", "Joe is 27 years old"):
        assert line in out
    assert "counter = 8000 (expected 8000), list length = 8000" in out
    assert out.rstrip().endswith("Nothing lost.")


@pytest.mark.parametrize("args", [("no-such-command",), ()])
def test_cli_usage_error_exits_2_without_traceback(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "usage: python -m persist" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_distribution_is_persist_store() -> None:
    # `persist` on the package index is another project: this one is published as
    # persist-store, and installing it gives the module `persist`.
    from importlib import metadata

    dist = metadata.distribution("persist-store")
    assert dist.metadata["Name"] == "persist-store"
    assert dist.version == persist.__version__
    assert dist.metadata["License-Expression"] == "MIT"
    assert any(f.name == "LICENSE" for f in dist.files or [])
    assert any(str(f).startswith("persist/") for f in dist.files or [])


def test_list_pop_takes_an_index_as_list_pop_does(tmp_path: Path) -> None:
    # The stub says pop(i=-1, /), as list.pop (and the queue's keywords); the runtime
    # signature and behaviour agree.
    assert (
        str(inspect.signature(persist.List.pop)) == "(self, i=-1, /, *, block=False, timeout=None)"
    )
    with persist.open(str(tmp_path / "s.db")) as store:
        store.root["l"] = [1, 2, 3]
        lst = store.root["l"]
        for args in [(None,), (1, 2), ("0",)]:
            with pytest.raises(TypeError) as ours:
                lst.pop(*args)
            with pytest.raises(TypeError) as theirs:
                [1, 2, 3].pop(*args)
            assert str(ours.value) == str(theirs.value)
        assert lst.pop() == 3
        assert lst.pop(0) == 1
        assert list(lst) == [2]
