"""The seed's two programs (the 2004 extension's examples), run as written, each in fresh processes.

Each program is written to a file verbatim and run three times, each time in a new
interpreter whose working directory is one temporary directory, so ``persist.root()`` makes
``persist.db`` there; a variant sets ``PERSIST_PATH`` instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

import persist

# The first seed program, verbatim.
COUNTER = """\
import persist
root = persist.root()
root.lockExcl()
try:    root['x'] += 1                 # increment counter
except KeyError: root['x'] = 1         # first pass
print("You are visitor", root['x'])
root.unlock()
"""

# The second seed program, verbatim.
PERSON = """\
import persist
from pbase import pbase                # also: from persist import pbase

class person(pbase):
    def __init__(self, name="", age=0):
        pbase.__init__(self)
        self.name = name
        self.age = age
    def printAge(self):
        print(self.name, "is", self.age, "years old")

root = persist.root()
root.lockExcl()
if not root.has_key('Joe'):
    root['Joe'] = person('Joe', 27)
root['Joe'].printAge()                 # later runs: the stored object, re-instantiated
root.unlock()
"""

# The second program with a witness: every call of __init__ appends a line to init_calls.txt,
# and each run reports what it read back.
PERSON_WITNESS = """\
import persist
from persist import pbase

class person(pbase):
    def __init__(self, name="", age=0):
        with open("init_calls.txt", "a") as f:
            f.write("init\\n")
        pbase.__init__(self)
        self.name = name
        self.age = age
    def printAge(self):
        print(self.name, "is", self.age, "years old")

root = persist.root()
root.lockExcl()
if not root.has_key('Joe'):
    root['Joe'] = person('Joe', 27)
joe = root['Joe']
joe.printAge()
print("class", type(joe).__module__, type(joe).__qualname__, isinstance(joe, person))
root.unlock()
"""


@pytest.fixture
def run_program(run_script: Any) -> Any:
    """run_program(source, workdir, name, env=None) -> stdout: write the program to
    workdir/name (verbatim) and run it there in a fresh interpreter; it must succeed quietly."""

    def run(source: str, workdir: Path, name: str, env: dict[str, str] | None = None) -> str:
        program = workdir / name
        program.write_text(source)
        proc = run_script(program, cwd=workdir, env=env)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
        assert proc.stderr == "", proc.stderr
        return proc.stdout

    return run


def test_counter_counts_visitors(tmp_path: Path, run_program: Any) -> None:
    outputs = [run_program(COUNTER, tmp_path, "counter.py") for _ in range(3)]
    assert outputs == [f"You are visitor {n}\n" for n in (1, 2, 3)]
    # persist.root() with no argument and no PERSIST_PATH: persist.db in the working directory.
    assert (tmp_path / "persist.db").is_file()


def test_counter_with_persist_path(tmp_path: Path, run_program: Any) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    elsewhere = tmp_path / "elsewhere" / "visits.db"
    elsewhere.parent.mkdir()
    env = {"PERSIST_PATH": str(elsewhere)}
    outputs = [run_program(COUNTER, workdir, "counter.py", env) for _ in range(3)]
    assert outputs == [f"You are visitor {n}\n" for n in (1, 2, 3)]
    assert elsewhere.is_file()
    assert not (workdir / "persist.db").exists()
    # Without PERSIST_PATH the same directory starts a count of its own.
    assert run_program(COUNTER, workdir, "counter.py") == "You are visitor 1\n"
    assert (workdir / "persist.db").is_file()
    # And the count under PERSIST_PATH went on untouched.
    assert run_program(COUNTER, workdir, "counter.py", env) == "You are visitor 4\n"


def test_counter_value_is_visible_to_this_process(tmp_path: Path, run_program: Any) -> None:
    for _ in range(3):
        run_program(COUNTER, tmp_path, "counter.py")
    with persist.open(str(tmp_path / "persist.db")) as store:
        value = store.root["x"]
        assert type(value) is int
        assert value == 3


def test_person_program(tmp_path: Path, run_program: Any) -> None:
    outputs = [run_program(PERSON, tmp_path, "person.py") for _ in range(3)]
    assert outputs == ["Joe is 27 years old\n"] * 3
    assert (tmp_path / "persist.db").is_file()


def test_person_program_with_persist_path(tmp_path: Path, run_program: Any) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    db = tmp_path / "people.db"
    env = {"PERSIST_PATH": str(db)}
    outputs = [run_program(PERSON, workdir, "person.py", env) for _ in range(3)]
    assert outputs == ["Joe is 27 years old\n"] * 3
    assert db.is_file()
    assert not (workdir / "persist.db").exists()


def test_person_init_runs_only_on_the_first_pass(tmp_path: Path, run_program: Any) -> None:
    outputs = [run_program(PERSON_WITNESS, tmp_path, "person.py") for _ in range(3)]
    expected = "Joe is 27 years old\nclass __main__ person True\n"
    assert outputs == [expected] * 3
    # One construction in three runs: the later runs re-instantiated the stored object.
    assert (tmp_path / "init_calls.txt").read_text() == "init\n"


def test_person_read_where_the_class_is_unknown(tmp_path: Path, run_program: Any) -> None:
    run_program(PERSON, tmp_path, "person.py")
    # This process has no class __main__.person: it gets a persist.Object with the same
    # attributes.
    assert not hasattr(sys.modules["__main__"], "person")
    with persist.open(str(tmp_path / "persist.db")) as store:
        joe: Any = store.root["Joe"]
        assert type(joe) is persist.Object
        assert joe.name == "Joe"
        assert joe.age == 27


def test_pbase_is_importable_both_ways(tmp_path: Path, run_program: Any) -> None:
    from persist import pbase as from_persist

    assert isinstance(from_persist, type)
    code = (
        "import persist\n"
        "from pbase import pbase as a\n"
        "from persist import pbase as b\n"
        "print(a is b, a is persist.pbase)\n"
    )
    assert run_program(code, tmp_path, "imports.py") == "True True\n"


@pytest.mark.parametrize("program", ["counter", "person"])
def test_programs_leave_no_stray_files(tmp_path: Path, program: str, run_program: Any) -> None:
    source = COUNTER if program == "counter" else PERSON
    run_program(source, tmp_path, f"{program}.py")
    run_program(source, tmp_path, f"{program}.py")
    names = {p.name for p in tmp_path.iterdir()} - {f"{program}.py", "__pycache__"}
    # The store, and at most a lock file beside it (as LMDB's lock.mdb).
    assert "persist.db" in names
    assert all(name.startswith("persist.db") for name in names), names
    assert os.path.getsize(tmp_path / "persist.db") > 0
