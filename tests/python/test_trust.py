"""Trust boundaries seen from Python (issue 16): another local user cannot turn the lock file
against the store's owner, and modes are what a Unix user expects.

The bug story. Another user who planted ``ln -s /path/precious /tmp/v.db.lock`` made the
owner's ``persist.open('/tmp/v.db')`` (also ``readonly=True``, also ``python -m persist info``)
rewrite ``precious``; a lock file the attacker created first was adopted, world-writable and
theirs; new stores were 0644 whatever the umask; ``dump -o``, ``compact`` and ``load`` gave a
0600 store's copy the umask's mode; and the read-only commands opened the store for writing, so
a user who may only read it could not run them. Here each attack is made by a second user
(created with ``useradd``: these tests run as root, as CI does), and each refusal is a
``PermissionError`` naming the file, with nothing changed.

The second user's side runs in a forked child that drops to that user (no new interpreter:
the one running the tests may live where that user cannot read), so everything the child
uses is imported here first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

import persist
import persist.__main__
import persist._cli_commands  # noqa: F401 - imported before a child drops its rights
import users
from conftest import child_env
from users import OTHER, User, as_user


@pytest.fixture(scope="module")
def other() -> User:
    """The second user (users.py), created if missing."""
    return users.other()


@pytest.fixture
def shared() -> Iterator[str]:
    """A directory like /tmp: world-writable with the sticky bit, reachable by every user."""
    d = tempfile.mkdtemp(prefix="persist-trust-", dir="/tmp")
    os.chmod(d, 0o1777)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def cli_in_process(*args: str) -> str:
    """``python -m persist ARGS`` in this process: 'EXIT n', then stdout, then stderr."""
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = persist.__main__.main(list(args))
    out.flush()
    return f"EXIT {rc}\n{out.buffer.getvalue().decode()}\n{err.getvalue()}"


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "persist", *args],
        input=stdin,
        capture_output=True,
        env=child_env(),
        timeout=120,
        check=False,
    )


def make_store(path: str) -> None:
    with persist.open(path) as s:
        s.root["x"] = [1, 2, 3]
        s.root["name"] = "store"
        s.check()


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_refused(e: pytest.ExceptionInfo[PermissionError], path: str, *words: str) -> None:
    assert e.value.errno == errno.EACCES
    assert e.value.filename == path
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_planted_symlink_at_the_lock_path_is_refused_and_its_target_untouched(other, shared):
    path = os.path.join(shared, "v.db")
    lock = path + ".lock"
    precious = os.path.join(shared, "precious")
    with open(precious, "wb") as f:
        f.write(b"the owner's data")
    make_store(path)
    os.unlink(lock)  # nobody attached: the next open would make a new one
    as_user(other, lambda: os.symlink(precious, lock) or "")
    for kwargs in ({}, {"readonly": True}):
        with pytest.raises(PermissionError) as e:
            persist.open(path, **kwargs)
        assert_refused(e, lock, "symbolic link", precious)
    # The command line says the same in one line.
    r = cli("info", path)
    assert r.returncode == 1
    assert b"symbolic link" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    with open(precious, "rb") as f:
        assert f.read() == b"the owner's data"
    assert os.path.islink(lock)
    os.unlink(lock)
    with persist.open(path) as s:
        assert s.root["x"] == [1, 2, 3]
        s.check()


def test_a_dangling_symlink_at_the_lock_path_creates_nothing(other, shared):
    path = os.path.join(shared, "v.db")
    chosen = os.path.join(shared, "chosen")
    as_user(other, lambda: os.symlink(chosen, path + ".lock") or "")
    with pytest.raises(PermissionError) as e:
        persist.open(path)
    assert_refused(e, path + ".lock", "symbolic link")
    assert not os.path.lexists(chosen)


def test_a_lock_file_another_user_made_first_is_refused(other, shared):
    path = os.path.join(shared, "v.db")
    lock = path + ".lock"

    def plant() -> str:
        os.umask(0)
        with open(lock, "wb") as f:
            f.write(b"planted")
        return ""

    as_user(other, plant)
    assert mode(lock) == 0o666
    with pytest.raises(PermissionError) as e:
        persist.open(path)
    assert_refused(e, lock, OTHER, "may not write the store")
    with open(lock, "rb") as f:
        assert f.read() == b"planted"
    os.unlink(lock)  # the fix the message gives
    with persist.open(path) as s:
        s.root["ok"] = 1
        s.check()


def test_a_world_writable_lock_file_is_refused(tmp_path):
    path = str(tmp_path / "v.db")
    make_store(path)
    os.chmod(path, 0o644)
    os.chmod(path + ".lock", 0o666)
    with pytest.raises(PermissionError) as e:
        persist.open(path, readonly=True)
    assert_refused(e, path + ".lock", "writable by every user", "chmod o-w")
    os.chmod(path + ".lock", 0o644)
    with persist.open(path) as s:
        s.check()


@pytest.mark.parametrize("umask, expected", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_a_new_store_and_its_lock_file_take_the_umask(tmp_path, umask, expected):
    path = str(tmp_path / "v.db")
    old = os.umask(umask)
    try:
        with persist.open(path) as s:
            s.root["x"] = 1
            s.check()
    finally:
        os.umask(old)
    assert mode(path) == expected
    # The lock file follows the store file (and its owner may always write it).
    assert mode(path + ".lock") == expected | 0o600


def test_a_group_writable_store_is_shared_by_its_group(other, shared):
    # umask 002: the group may write both files; a member of the group (here: the second
    # user, the store given its group) opens the store and changes it.
    path = os.path.join(shared, "team.db")
    old = os.umask(0o002)
    try:
        make_store(path)
    finally:
        os.umask(old)
    os.chown(path, -1, other.gid)
    os.chown(path + ".lock", -1, other.gid)

    def member() -> str:
        with persist.open(path) as s:
            s.root["by member"] = True
            return repr(s.root["x"])

    # The child keeps the group: the store's group is its own.
    assert as_user(other, member) == "[1, 2, 3]"
    with persist.open(path) as s:
        assert s.root["by member"] is True
        s.check()


@pytest.mark.parametrize("src_mode", [0o600, 0o640])
def test_dump_compact_and_load_keep_the_source_mode(tmp_path, src_mode):
    src = str(tmp_path / "src.db")
    make_store(src)
    os.chmod(src, src_mode)
    dump = str(tmp_path / "d.jsonl")
    assert cli("dump", "-o", dump, src).returncode == 0
    assert mode(dump) == src_mode
    compacted = str(tmp_path / "c.db")
    assert cli("compact", src, compacted).returncode == 0
    assert mode(compacted) == src_mode
    # load: the dump file's mode.
    os.chmod(dump, 0o600)
    loaded = str(tmp_path / "l.db")
    assert cli("load", dump, loaded).returncode == 0
    assert mode(loaded) == 0o600
    # From a pipe: 0666 & ~umask, as any new file.
    with open(dump, "rb") as f:
        piped = str(tmp_path / "p.db")
        assert cli("load", "-", piped, stdin=f.read()).returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    assert mode(piped) == 0o666 & ~mask
    for p in (compacted, loaded, piped):
        with persist.open(p, readonly=True) as s:
            assert s.root["x"] == [1, 2, 3]
            s.check()


def test_the_read_only_commands_work_for_a_user_who_may_only_read(other, shared):
    # The store is root's, readable by all; the owner lets the reader's group write the lock
    # file (README: read-only users).
    path = os.path.join(shared, "v.db")
    make_store(path)
    os.chmod(path, 0o644)
    lock = path + ".lock"
    before = digest(path)

    # Without write access to the lock file: a clear PermissionError.
    out = as_user(other, lambda: cli_in_process("info", path))
    assert out.startswith("EXIT 1") and "may not be written by this user" in out, out

    os.chown(lock, -1, other.gid)
    os.chmod(lock, 0o664)
    info = as_user(other, lambda: cli_in_process("info", "--json", path))
    assert info.startswith("EXIT 0"), info
    assert json.loads(info.split("\n", 1)[1].rsplit("\n\n", 1)[0])["objects"]
    check = as_user(other, lambda: cli_in_process("check", path))
    assert check.startswith("EXIT 0\nOK: "), check
    dump = as_user(other, lambda: cli_in_process("dump", path))
    assert dump.startswith("EXIT 0"), dump
    assert dump.splitlines()[1].startswith('{"format":"persist-dump"'), dump
    compacted = os.path.join(shared, "copy.db")
    out = as_user(other, lambda: cli_in_process("compact", path, compacted))
    assert out.startswith("EXIT 0"), out
    # The copy is the reader's: the group it could not give it gets what every user gets.
    assert os.stat(compacted).st_uid == other.uid and mode(compacted) == 0o644
    # A command that writes fails as the system says.
    out = as_user(other, lambda: cli_in_process("gc", path))
    assert out.startswith("EXIT 1") and "Permission denied" in out, out
    assert digest(path) == before
    with persist.open(compacted, readonly=True) as s:
        assert s.root["x"] == [1, 2, 3]
        s.check()
    with persist.open(path) as s:
        s.check()
