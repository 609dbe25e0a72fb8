"""A store file or lock file truncated under a running process gives `CorruptionError`, not a
SIGBUS (issue 16, item 4).

The bug story. Another process (or user) truncated the store or its lock file while a process
had the store open; the next `root[...]` touched a page past the new end of the file, the
kernel sent SIGBUS, and the process died with exit 135. Now persist's SIGBUS handler maps a
zero page over the vanished page and poisons the mapping (FORMAT.md §8.1): the operation that
touched it raises `CorruptionError` naming the truncated file, every later operation on that
store does too, and the process runs on. Each truncation is made once by the owner and once by
a second user, a member of the group the owner shares the store with (issue 16). A SIGBUS that
is not about a persist mapping (one sent with kill) still kills, as it would without persist.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

import users
from users import as_user, share_with_group

CHILD = r"""
import sys
import persist

s = persist.open(sys.argv[1])
r = s.root
for i in range(200):
    r[f"k{i}"] = "x" * 3000
print("ready", flush=True)
sys.stdin.readline()

def attempt(what, f):
    try:
        f()
    except persist.CorruptionError as e:
        print(what, "CorruptionError", str(e).replace("\n", " "), flush=True)
    except Exception as e:
        print(what, "other", type(e).__name__, e, flush=True)
    else:
        print(what, "ok", flush=True)

def read():
    r["k150"]

def write():
    r["k7"] = "new"

if sys.argv[2] == "read":
    attempt("first", read)
    attempt("second", write)
else:
    attempt("first", write)
    attempt("second", read)
attempt("later", lambda: len(r))
try:
    s.close()
except persist.CorruptionError:
    pass
print("alive", flush=True)
"""


def _truncate_as_group_member(path: Path, target: Path, length: int) -> None:
    """Shares the store with the group (both files in it, mode 0660: since the lock file's
    trust checks the only way another user may write them), checks that a user outside the
    group may not truncate ``target``, and has a member truncate it from a process running
    under the member's uid."""
    member, share = users.mate()
    share_with_group(str(path), share)
    size = target.stat().st_size

    def truncate() -> str:
        try:
            os.truncate(target, length)
        except PermissionError:
            return "refused"
        return "truncated"

    assert as_user(users.other(), truncate) == "refused"
    assert target.stat().st_size == size
    assert as_user(member, truncate) == "truncated"
    assert target.stat().st_size == length


@pytest.mark.parametrize("by", ["owner", "group-member"])
@pytest.mark.parametrize(
    ("victim", "length", "first"),
    [
        ("store", 0, "read"),
        ("store", 4096, "write"),
        ("lock", 0, "read"),
        ("lock", 0, "write"),
    ],
)
def test_truncation_under_a_running_process_raises(
    tmp_path: Path,
    group_dir: str,
    spawn_py: Any,
    victim: str,
    length: int,
    first: str,
    by: str,
) -> None:
    """The owner's process (a child) fills the store and waits; the file is truncated by the
    owner (another of its processes) or by a member of the group the store is shared with (a
    second user, issue 16); the child's next steps must raise, and it must live on."""
    where = tmp_path if by == "owner" else Path(group_dir)
    path = where / "s.db"
    child = spawn_py(CHILD, cwd=where, args=(str(path), first))
    child.expect("ready")
    target = path if victim == "store" else Path(f"{path}.lock")
    assert target.stat().st_size > length + 8192
    if by == "owner":
        os.truncate(target, length)
    else:
        _truncate_as_group_member(path, target, length)
    child.send("go")
    rc, out, err = child.wait()
    lines = child.lines + out.splitlines()
    assert rc == 0, f"child exited with {rc} after the {victim} file was truncated\n{lines}\n{err}"
    for tag in ("first", "second", "later"):
        line = next(x for x in lines if x.startswith(tag + " "))
        assert line.startswith(f"{tag} CorruptionError "), line
        assert "was truncated by another process" in line, line
        assert str(target) in line, line
    assert "alive" in lines


def test_a_sigbus_sent_by_kill_still_kills(tmp_path: Path, spawn_py: Any) -> None:
    child = spawn_py(
        """
        import sys
        import persist
        s = persist.open(sys.argv[1])
        s.root["a"] = 1
        print("ready", flush=True)
        sys.stdin.readline()
        print("survived", flush=True)
        """,
        cwd=tmp_path,
        args=(str(tmp_path / "s.db"),),
    )
    child.expect("ready")
    child.signal(signal.SIGBUS)
    rc, out, _ = child.wait()
    assert rc == -signal.SIGBUS, (rc, out)
    assert "survived" not in out
