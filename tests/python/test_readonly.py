"""readonly=True: the store file is opened and mapped read-only and never written.

Reads work and follow other processes' changes; every change raises ReadOnlyError; the file
stays byte for byte the same (its hash, size and modification time). A read-only process keeps
what its proxies show alive like any other (its held set lives in its lock-file slot), also
beyond the slot's 16 entries (it pins), also when it is killed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess

import pytest

import persist
from procs import fork_child, kill_child, reap_child


def digest(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), st.st_size, st.st_mtime_ns


class Person(persist.pbase):
    def __init__(self, name: str, age: int) -> None:
        self.name = name
        self.age = age


@pytest.fixture
def store_path(tmp_path):
    path = str(tmp_path / "ro.db")
    with persist.open(path) as s:
        r = s.root
        r["x"] = 1
        r["l"] = [1, 2, [3, 4]]
        r["d"] = {"a": (1, 2.5, b"z"), 7: "seven" * 10}
        r["p"] = Person("Joe", 41)
        r["big"] = b"B" * 20_000
    return path


def test_reads_work_and_the_file_is_never_written(store_path):
    before = digest(store_path)
    with persist.open(store_path, readonly=True) as s:
        r = s.root
        assert r["x"] == 1
        assert r["l"].to_python() == [1, 2, [3, 4]]
        assert r["d"]["a"] == (1, 2.5, b"z")
        assert r["p"].name == "Joe" and r["p"].age == 41
        assert r["big"] == b"B" * 20_000
        assert r.to_python()["d"][7] == "seven" * 10
        assert s.stats()["objects"]
        assert s.check()["objects"] > 0
        s.flush()
    assert digest(store_path) == before


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.__setitem__("x", 2),
        lambda r: r.__delitem__("x"),
        lambda r: r.update(y=1),
        lambda r: r.setdefault("new", 1),
        lambda r: r.pop("x"),
        lambda r: r.popitem(),
        lambda r: r.clear(),
        lambda r: r["l"].append(5),
        lambda r: r["l"].extend([5, 6]),
        lambda r: r["l"].insert(0, 5),
        lambda r: r["l"].pop(),
        lambda r: r["l"].__setitem__(0, 9),
        lambda r: r["l"].__delitem__(0),
        lambda r: r["l"].sort(key=str, reverse=True),
        lambda r: r["l"].reverse(),
        lambda r: r["l"][2].append(1),
        lambda r: r["d"].__setitem__("b", 1),
        lambda r: setattr(r["p"], "age", 42),
        lambda r: delattr(r["p"], "age"),
        lambda r: r.lockExcl(),
        lambda r: r.lockShared(),
    ],
)
def test_every_change_raises_read_only_error(store_path, change):
    before = digest(store_path)
    with persist.open(store_path, readonly=True) as s:
        r = s.root
        with pytest.raises(persist.ReadOnlyError):
            change(r)
        # Nothing changed, and the store still reads.
        assert r["x"] == 1 and r["l"].to_python() == [1, 2, [3, 4]]
    assert digest(store_path) == before


def test_augmented_assignment_transaction_and_gc_raise(store_path):
    before = digest(store_path)
    with persist.open(store_path, readonly=True) as s:
        r = s.root
        with pytest.raises(persist.ReadOnlyError):
            r["x"] += 1
        with pytest.raises(persist.ReadOnlyError):
            with s.transaction():
                pass
        with pytest.raises(persist.ReadOnlyError):
            s.gc()
        assert issubclass(persist.ReadOnlyError, persist.Error)
    assert digest(store_path) == before


def test_a_missing_or_empty_path_is_not_created(tmp_path):
    missing = str(tmp_path / "missing.db")
    with pytest.raises(FileNotFoundError):
        persist.open(missing, readonly=True)
    assert not os.path.exists(missing)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(persist.FormatError):
        persist.open(str(empty), readonly=True)
    assert empty.read_bytes() == b""


def test_a_file_nobody_may_write_opens_read_only(store_path):
    # Without write permission; as root (which ignores permissions) the file is made
    # immutable instead, which root cannot write either.
    immutable = os.geteuid() == 0
    if immutable:
        try:
            subprocess.run(["chattr", "+i", store_path], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            pytest.skip(f"running as root and chattr +i is not available here: {e}")
    else:
        os.chmod(store_path, stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(PermissionError):
            open(store_path, "r+b")
        before = digest(store_path)
        with persist.open(store_path, readonly=True) as s:
            assert s.root["l"][2][1] == 4
            with pytest.raises(persist.ReadOnlyError):
                s.root["x"] = 5
        assert digest(store_path) == before
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", store_path], check=True)
        else:
            os.chmod(store_path, stat.S_IRUSR | stat.S_IWUSR)


def test_a_reader_follows_a_writers_changes_and_keeps_what_it_holds(store_path):
    with persist.open(store_path, readonly=True) as ro, persist.open(store_path) as rw:
        held = ro.root["l"]  # a proxy: its list must stay alive
        inner = held[2]
        rw.root["x"] = 99
        assert ro.root["x"] == 99
        del rw.root["l"]
        rw.gc()
        # The writer dropped the list; the reader's proxies still show it whole.
        assert held.to_python() == [1, 2, [3, 4]]
        assert inner.to_python() == [3, 4]
        assert "l" not in ro.root
        del held, inner
        assert ro.root["x"] == 99  # the reader's next step gives its holds back
        # Once the reader lets go, a writer frees the list.
        rw.root["poke"] = 1
        rw.gc()
        assert rw.check()["unreachable_blocks"] == 0


def test_beyond_the_slots_entries_a_reader_pins(store_path):
    with persist.open(store_path) as rw:
        rw.root["many"] = [[i, str(i) * 20] for i in range(100)]
    with persist.open(store_path, readonly=True) as ro, persist.open(store_path) as rw:
        proxies = list(ro.root["many"])  # 100 containers held at once: 16 named, the rest pinned
        assert len(proxies) == 100
        rw.root["many"] = None
        freed = rw.gc()
        assert freed["objects"] == 0  # pinned: nothing may be freed yet
        for i, p in enumerate(proxies):
            assert p.to_python() == [i, str(i) * 20]
        del proxies, p
        assert ro.root["x"] == 1  # the reader's next step gives back what its proxies held
        rw.root["poke"] = 2  # a change after the reader let go collects the orphans
        rw.gc()
        assert rw.check()["unreachable_blocks"] == 0
        assert rw.check()["orphans"] == 0


def test_a_killed_reader_is_recovered_by_a_writer(store_path):
    r_fd, w_fd = os.pipe()

    def reader() -> None:
        os.close(r_fd)
        s = persist.open(store_path, readonly=True)
        keep = [s.root["l"], s.root["d"]] + [s.root["l"][2] for _ in range(3)]
        os.write(w_fd, b"R")
        signal.pause()
        del keep

    pid = fork_child(reader)
    os.close(w_fd)
    assert os.read(r_fd, 1) == b"R"
    os.close(r_fd)
    kill_child(pid)
    with persist.open(store_path) as rw:
        del rw.root["l"]
        assert rw.check()["unreachable_blocks"] == 0
        assert rw.stats()["processes"] == 1


def test_a_reader_refuses_a_store_with_a_change_cut_short(tmp_path):
    # A durable lockExcl section stopped half-way, copied without its lock file (what a
    # power cut leaves): only a writable opener may roll it back.
    path = str(tmp_path / "cut.db")
    with persist.open(path, durable=True) as s:
        s.root["x"] = 1
    r_fd, w_fd = os.pipe()

    def writer() -> None:
        os.close(r_fd)
        s = persist.open(path, durable=True)
        s.root.lockExcl()
        s.root["x"] = 2
        os.write(w_fd, b"W")
        signal.pause()

    pid = fork_child(writer)
    os.close(w_fd)
    assert os.read(r_fd, 1) == b"W"
    os.close(r_fd)
    os.kill(pid, signal.SIGSTOP)
    copy = str(tmp_path / "copy.db")
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    os.kill(pid, signal.SIGKILL)
    reap_child(pid)
    before = digest(copy)
    with pytest.raises(persist.ReadOnlyError, match="cut short"):
        persist.open(copy, readonly=True)
    assert digest(copy) == before
    with persist.open(copy) as s:
        assert s.root["x"] == 1
    with persist.open(copy, readonly=True) as s:
        assert s.root["x"] == 1


def test_a_forked_child_of_a_reader_reads_and_is_refused_changes(store_path):
    before = digest(store_path)
    with persist.open(store_path, readonly=True) as ro:
        held = ro.root["l"]

        def child() -> None:
            assert held.to_python() == [1, 2, [3, 4]] and ro.root["x"] == 1
            try:
                ro.root["x"] = 2
            except persist.ReadOnlyError:
                return
            raise AssertionError("a change went through in the child")

        assert reap_child(fork_child(child)) == 0
        assert held[2][0] == 3
    assert digest(store_path) == before
