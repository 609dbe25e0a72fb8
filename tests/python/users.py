"""Second users for the tests of issue 16 (each attack made by another local user): created
with ``groupadd`` and ``useradd`` when missing (these tests run as root, as CI does; the Rust
tests use the same names, tests/harness/users.rs), and a forked child that runs as one of them.

- ``OTHER``: a user outside every group below (an attacker, a reader).
- ``MATE``: a member of ``GROUP``, the group a store's owner shares the store with (umask 002,
  the files in that group): since the lock file's trust checks, the only way another user may
  write a store's files.

The child is forked, not a new interpreter (the one running the tests may live where that
user cannot read), so everything it uses is imported by the caller first.
"""

from __future__ import annotations

import os
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from procs import fork_child, reap_child

OTHER = "persist-t-other"
MATE = "persist-t-mate"
GROUP = "persist-t-share"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def _id(*args: str) -> int | None:
    r = subprocess.run(["id", *args], capture_output=True, text=True, check=False)
    return int(r.stdout) if r.returncode == 0 else None


def _group_id(name: str) -> int | None:
    r = subprocess.run(["getent", "group", name], capture_output=True, text=True, check=False)
    return int(r.stdout.split(":")[2]) if r.returncode == 0 else None


def _retry(cmd: list[str], done: Callable[[], bool], what: str) -> None:
    for _ in range(100):
        if done():
            return
        # Fails while another process holds the user database's lock: try again.
        subprocess.run(cmd, capture_output=True, check=False)
        time.sleep(0.05)
    assert done(), f"could not {what} (these tests run as root, as CI does)"


def require_root() -> None:
    """Skips where users cannot be made (not root: nothing to create them with); CI runs as
    root, where they always run."""
    if os.geteuid() != 0:
        pytest.skip("a second user is created with useradd, which needs root (CI runs as root)")


def other() -> User:
    require_root()
    _retry(
        ["useradd", "-M", "-s", "/bin/sh", "-U", OTHER],
        lambda: _id("-u", OTHER) is not None,
        f"create the user {OTHER}",
    )
    gid = _id("-g", OTHER)
    assert gid is not None
    return User(OTHER, _id("-u", OTHER) or 0, gid, (gid,))


def mate() -> tuple[User, int]:
    """The group member, and the group's id."""
    require_root()
    _retry(["groupadd", "-f", GROUP], lambda: _group_id(GROUP) is not None, "create the group")
    _retry(
        ["useradd", "-M", "-s", "/bin/sh", "-U", "-G", GROUP, MATE],
        lambda: _id("-u", MATE) is not None,
        f"create the user {MATE}",
    )
    share = _group_id(GROUP)
    gid = _id("-g", MATE)
    assert share is not None and gid is not None
    return User(MATE, _id("-u", MATE) or 0, gid, (gid, share)), share


def as_user(user: User, body: Callable[[], str]) -> str:
    """Runs ``body`` in a forked child as ``user`` (its groups only); returns what it
    returned, or 'CHILD RAISED' and the traceback."""
    r, w = os.pipe()

    def child() -> None:
        os.close(r)
        try:
            os.setgroups(list(user.groups))
            os.setgid(user.gid)
            os.setuid(user.uid)
            out = body()
        except BaseException:  # noqa: BLE001 - the parent shows it
            out = "CHILD RAISED\n" + traceback.format_exc()
        os.write(w, out.encode())

    pid = fork_child(child)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    assert reap_child(pid) == 0
    return b"".join(chunks).decode()


def share_with_group(path: str, share: int) -> None:
    """Gives the store at ``path`` and its lock file to the group ``share``, mode 0660."""
    for f in (path, path + ".lock"):
        os.chown(f, -1, share)
        os.chmod(f, 0o660)
