"""Errors from ``persist.open``: each is the exception Python's own file functions would raise
(an ``OSError`` subclass chosen by its errno, or ``ValueError``), names the path the user gave
(in ``filename`` and so in the message), says what persist could not do, and never shows a
name the user did not choose (the temporary a store is created under) or Rust's "(os error N)".

Cases that need a user who may not write somewhere run as ``nobody`` in a forked child when
the tests run as root (as CI does).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import persist
from procs import fork_child, reap_child

NOBODY = 65534


def described(e: BaseException) -> dict[str, object]:
    return {
        "type": type(e).__name__,
        "errno": getattr(e, "errno", None),
        "filename": getattr(e, "filename", None),
        "text": str(e),
    }


def open_error(path: str, **kw: bool) -> dict[str, object]:
    try:
        store = persist.open(path, **kw)
    except (OSError, ValueError, persist.Error) as e:
        return described(e)
    store.close()
    raise AssertionError(f"persist.open({path!r}, {kw}) succeeded")


def clean(err: dict[str, object], path: str) -> None:
    """The checks every error from opening must pass."""
    text = str(err["text"])
    assert path in text, err
    assert ".tmp" not in text, err
    assert "os error" not in text, err
    assert "<lock file>" not in text, err


def as_other_user(body: Callable[[], dict[str, object]]) -> dict[str, object]:
    """``body()`` run by a user who owns none of the test's files: ``nobody`` in a forked child
    when we are root, else this user (whose test files the callers make unwritable)."""
    r, w = os.pipe()

    def child() -> None:
        os.close(r)
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        os.write(w, json.dumps(body()).encode())

    pid = fork_child(child)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    assert reap_child(pid) == 0
    return dict(json.loads(b"".join(chunks)))


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory in /tmp that every user may enter and read but only its owner may write."""
    d = Path(tempfile.mkdtemp(prefix="persist-open-errors-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        d.chmod(0o755)
        shutil.rmtree(d)


def locked_down(d: Path) -> None:
    # Not root: take this user's own write permission away (root's cannot be).
    if os.geteuid() != 0:
        d.chmod(0o555)


def test_missing_directory(tmp_path: Path) -> None:
    path = str(tmp_path / "nodir" / "x.db")
    err = open_error(path)
    assert err["type"] == "FileNotFoundError"
    assert err["errno"] == errno.ENOENT
    assert err["filename"] == path
    assert "cannot open the directory of the store" in str(err["text"])
    clean(err, path)


@pytest.mark.parametrize("kw", [{"readonly": True}, {"create": False}])
def test_missing_store_not_created(tmp_path: Path, kw: dict[str, bool]) -> None:
    path = str(tmp_path / "nodir" / "x.db")
    err = open_error(path, **kw)
    assert err["type"] == "FileNotFoundError"
    assert err["filename"] == path
    clean(err, path)
    assert not (tmp_path / "nodir").exists()


def test_relative_path_is_kept_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = open_error("nodir/x.db")
    assert err["filename"] == "nodir/x.db"
    assert err["text"] == (
        "[Errno 2] cannot open the directory of the store: No such file or directory: 'nodir/x.db'"
    )


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    path = str(tmp_path / "file" / "x.db")
    err = open_error(path)
    assert err["type"] == "NotADirectoryError"
    assert err["errno"] == errno.ENOTDIR
    assert err["filename"] == path
    clean(err, path)


@pytest.mark.parametrize("suffix", ["", "/"])
def test_path_is_a_directory(tmp_path: Path, suffix: str) -> None:
    (tmp_path / "adir").mkdir()
    path = str(tmp_path / "adir") + suffix
    err = open_error(path)
    assert err["type"] == "IsADirectoryError"
    assert err["errno"] == errno.EISDIR
    assert err["filename"] == path
    clean(err, path)
    assert os.listdir(tmp_path / "adir") == []


@pytest.mark.parametrize("content", [b"", b"hello, world\n", bytes(4096)])
def test_not_a_store_is_left_unchanged(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    if not content:
        # An empty file becomes a new store (as documented); read-only opening refuses it.
        err = open_error(str(bad), readonly=True)
    else:
        err = open_error(str(bad))
    assert err["type"] == "FormatError", err
    clean(err, str(bad))
    assert bad.read_bytes() == content


def test_directory_not_writable(shared_dir: Path) -> None:
    locked_down(shared_dir)
    path = str(shared_dir / "x.db")
    err = as_other_user(lambda: open_error(path))
    assert err["type"] == "PermissionError", err
    assert err["errno"] == errno.EACCES
    assert err["filename"] == path
    assert "cannot create the store" in str(err["text"])
    clean(err, path)
    assert os.listdir(shared_dir) == []


def test_store_not_readable(shared_dir: Path) -> None:
    path = str(shared_dir / "x.db")
    persist.open(path).close()
    os.chmod(path, 0o600 if os.geteuid() == 0 else 0o000)
    locked_down(shared_dir)
    err = as_other_user(lambda: open_error(path))
    assert err["type"] == "PermissionError", err
    assert err["filename"] == path
    assert "cannot open the store" in str(err["text"])
    clean(err, path)


def test_lock_file_cannot_be_created(shared_dir: Path) -> None:
    # A store this user may write, in a directory it may not: the lock file beside the store
    # cannot be made. The error names the lock file (the store's path with .lock).
    path = str(shared_dir / "x.db")
    persist.open(path).close()
    os.unlink(path + ".lock")
    os.chmod(path, 0o666)
    locked_down(shared_dir)
    err = as_other_user(lambda: open_error(path))
    assert err["type"] == "PermissionError", err
    assert err["errno"] == errno.EACCES
    assert err["filename"] == path + ".lock"
    assert "cannot create the lock file" in str(err["text"])
    clean(err, path)


def test_file_system_without_o_tmpfile() -> None:
    # procfs has no O_TMPFILE: creation falls back to a named temporary there, whose name
    # must not reach the user when it cannot be made either.
    path = "/proc/persist-open-errors.db"
    err = open_error(path)
    assert isinstance(err["errno"], int), err
    assert err["filename"] == path
    assert "cannot create the store" in str(err["text"])
    clean(err, path)


def test_symbolic_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real.db").write_bytes(b"")
    link = tmp_path / "link.db"
    link.symlink_to("real.db")
    err = open_error(str(link))
    assert err["type"] == "PermissionError"
    assert err["filename"] == str(link)
    clean(err, str(link))


def test_empty_path() -> None:
    err = open_error("")
    assert err["type"] == "FileNotFoundError"
    assert err["errno"] == errno.ENOENT
    assert err["filename"] == ""


def test_nul_byte_in_path(tmp_path: Path) -> None:
    err = open_error(str(tmp_path / "x\0y.db"))
    assert err["type"] == "ValueError"
    assert "null byte" in str(err["text"])
    assert not any(tmp_path.iterdir())


def test_root_names_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root() opens the resolved path (one store per file, however it is named), but its errors
    # name the path the caller gave.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError) as e:
        persist.root("adir")
    assert e.value.filename == "adir"
    assert str(e.value) == "[Errno 21] cannot open the store: Is a directory: 'adir'"
    with pytest.raises(FileNotFoundError) as missing:
        persist.root("nodir/x.db")
    assert missing.value.filename == "nodir/x.db"
    assert str(tmp_path) not in str(missing.value)


def test_lock_file_of_another_version_in_use_is_refused_not_called_damage(
    tmp_path: Path,
) -> None:
    """A process of another persist build (another lock file version) has the store open: the
    open is refused with a message that says so, and nothing is rebuilt under it."""
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["k"] = 1
    with open(path + ".lock", "r+b") as f:
        f.seek(8)
        ours = f.read(4)
        f.seek(8)
        # The version of the build before this one's lock file protocol.
        f.write((int.from_bytes(ours, "little") - 1).to_bytes(4, "little"))
    r, w = os.pipe()

    def child() -> None:
        os.close(r)
        os.write(w, json.dumps(open_error(path)).encode())

    pid = fork_child(child)
    os.close(w)
    err = json.loads(os.read(r, 65536))
    os.close(r)
    assert reap_child(pid) == 0
    with open(path + ".lock", "r+b") as f:
        f.seek(8)
        f.write(ours)
    assert err["type"] == "PermissionError", err
    assert err["filename"] == path + ".lock", err
    assert "another persist version" in str(err["text"]), err
    assert "damaged" not in str(err["text"]), err
    assert store.root["k"] == 1
    store.close()
