"""durable=True, and the first open after a reboot.

A power cut cannot be staged from a test, but what the next boot sees can: the store file as
it was at some instant (every write made before it, none after) and no usable lock file (it
was built under another boot id, or is missing). Copying only the store file while every
writer is SIGSTOPped gives exactly that; with durable=True writers each copy must open, roll
back the change that was in flight, pass check() and hold every change committed before the
stop. (Pages reaching the disk out of order is the part a copy cannot show: FORMAT.md §10.8
argues it.)
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import persist
from procs import StoppedWriters, fork_child, kill_child


def test_durable_store_works_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with persist.open(path, durable=True) as store:
        root = store.root
        root["x"] = 0
        for _ in range(50):
            root.lockExcl()
            root["x"] += 1
            root.unlock()
        root["l"] = list(range(1000))
        root["l"].extend(range(10))
        with store.transaction():
            root["d"] = {"a": [1, 2, 3]}
        try:
            with store.transaction():
                root["d"]["a"].append(4)
                root["big"] = "y" * 100_000
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        store.check()
    with persist.open(path) as store:
        assert store.root["x"] == 50
        assert len(store.root["l"]) == 1010
        assert store.root["d"] == {"a": [1, 2, 3]}
        assert "big" not in store.root
        store.check()


def _stale_boot(path: Path) -> None:
    """Makes the lock file look built before the last boot (nobody is attached)."""
    lock = Path(str(path) + ".lock")
    with open(lock, "r+b") as f:
        f.seek(24)
        boot = f.read(16)
        f.seek(24)
        f.write(bytes(b ^ 0xFF for b in boot))


def test_a_lock_file_from_another_boot_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path) as store:
        store.root["k"] = [1, 2, 3]
    _stale_boot(path)
    with persist.open(path) as store:
        assert store.root["k"] == [1, 2, 3]
        store.check()


def _section_then_stop(path: str, ready_fd: int) -> None:
    store = persist.open(path, durable=True)
    root = store.root
    root.lockExcl()
    root["x"] = "changed"
    root["l"].extend(range(5000))
    del root["gone"]
    root["new"] = {"n": list(range(100))}
    os.write(ready_fd, b"r")
    time.sleep(60)


def test_a_durable_change_cut_short_by_a_reboot_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path, durable=True) as store:
        root = store.root
        root["x"] = "before"
        root["l"] = [1, 2]
        root["gone"] = ["still", "here"]
        before = root.to_python()
    r, w = os.pipe()
    pid = fork_child(lambda: _section_then_stop(str(path), w))
    os.close(w)
    assert os.read(r, 1) == b"r"
    os.close(r)
    os.kill(pid, signal.SIGSTOP)
    # The disk as a power cut would leave it: the store file, and no lock file.
    copy = tmp_path / "after-reboot.db"
    shutil.copyfile(path, copy)
    kill_child(pid)
    with persist.open(copy) as store:
        assert store.root.to_python() == before
        store.check()
        # The stopped process's block cache went with the lock file: garbage for gc, no more.
        store.gc()
        assert store.check()["unreachable_blocks"] == 0


def test_store_file_copies_of_stopped_durable_writers_open_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path, durable=True) as store:
        store.root["log"] = []
    names = ["a", "b"]
    rng = random.Random(5)
    copies = 0
    with StoppedWriters(path, names, durable=True, blob=False) as writers:
        for k in range(15):
            time.sleep(rng.uniform(0.01, 0.1))
            dst = str(tmp_path / f"copy{k}.db")
            # The store file only: the lock file is lost.
            expect = writers.copy_while_stopped(dst, lock_file=False)
            with persist.open(dst) as copy:
                copy.check()
                root = copy.root
                log = root["log"].to_python()
                for name, last in expect.items():
                    mine = [i for n, i in log if n == name]
                    assert mine == list(range(1, len(mine) + 1))
                    assert len(mine) >= last, (name, len(mine), last)
                    assert root[name] == len(mine)
            copies += 1
            os.unlink(dst)
            os.unlink(dst + ".lock")
        committed = writers.committed
    print(f"\ndurable snapshots: {copies} store-file copies recovered; commits {committed}")
    assert all(committed.get(n, 0) > 0 for n in names), committed


# ---- an earlier copy of the store file put back ---------------------------------------------
#
# A clean close leaves the process's block cache in its slot of the lock file, for the next
# process to open in that slot: blocks that the store file counts as taken. An earlier copy of
# the store file put back (a backup restored with cp) does not match those caches: the blocks
# they name may be in use there. Every writable open sets a new random epoch in the store header
# (byte 2816) and in the lock file (byte 768, and 776 for the one being set); a lock file whose
# epoch the store does not hold is rebuilt, and its caches are lost to gc.

STORE_EPOCH = 2816
LOCK_EPOCH, LOCK_NEXT_EPOCH = 768, 776


def _word(path: Path, offset: int) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        return int.from_bytes(f.read(8), "little")


def _put_word(path: Path, offset: int, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(value.to_bytes(8, "little"))


def _strings(tag: str, n: int) -> list[str]:
    return [f"{tag}{i}" * (1 + i % 30) for i in range(n)]


def _churn(path: Path) -> None:
    """Opens, frees small blocks into this process's cache, closes (leaving it to the slot)."""
    with persist.open(path) as store:
        for _ in range(30):
            store.root["tmp"] = _strings("t", 100)
            del store.root["tmp"]
        store.root["more"] = _strings("m", 100)


def test_an_earlier_copy_put_back_gets_a_new_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path) as store:
        store.root["keep"] = _strings("k", 200)
    backup = tmp_path / "backup.db"
    shutil.copyfile(path, backup)
    _churn(path)
    shutil.copyfile(backup, path)  # put back in place, the lock file left as it was
    with persist.open(path) as store:
        # Without the epoch, the cache left by the churn was taken over here: blocks the copy
        # uses or never carved, handed out again (check: "a cached block is not a carved,
        # taken block of its segment", or values overwritten).
        store.root["new"] = _strings("n", 300)
        store.check()
        assert store.root["keep"].to_python() == _strings("k", 200)
        assert store.root["new"].to_python() == _strings("n", 300)
        assert "more" not in store.root
        # What the copy's own caches held went with the old lock file: gc's, no more.
        store.gc()
        assert store.check()["unreachable_blocks"] == 0


def test_an_earlier_copy_put_back_under_a_running_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path) as store:
        store.root["k"] = 1
    backup = tmp_path / "backup.db"
    shutil.copyfile(path, backup)
    with persist.open(path) as running:
        running.root["k"] = 2
        shutil.copyfile(backup, path)
        try:
            persist.open(path).close()
        except persist.CorruptionError as e:
            assert "earlier copy of the store put back" in str(e), e
        else:
            raise AssertionError("an open of a store put back under a running process worked")


def test_an_open_killed_while_setting_the_epoch_keeps_the_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    lock = Path(str(path) + ".lock")
    with persist.open(path) as store:
        store.root["k"] = _strings("k", 50)
    _churn(path)
    epoch = _word(path, STORE_EPOCH)
    assert epoch != 0 and _word(lock, LOCK_EPOCH) == epoch
    # Killed after the store took the new epoch, before the lock file's `epoch` did: the lock
    # file names it as `next epoch` and is kept, with the cache the churn left in its slot.
    _put_word(lock, LOCK_NEXT_EPOCH, epoch)
    _put_word(lock, LOCK_EPOCH, epoch ^ 0x5A5A)
    with persist.open(path) as store:
        assert store.check()["unreachable_blocks"] == 0
        assert store.root["k"].to_python() == _strings("k", 50)
        assert _word(path, STORE_EPOCH) not in (0, epoch)  # a new one, in both files
        assert _word(lock, LOCK_EPOCH) == _word(path, STORE_EPOCH)
    _churn(path)
    # An epoch in neither word: the lock file is rebuilt, and the cache left in it is garbage.
    _put_word(lock, LOCK_NEXT_EPOCH, 0)
    _put_word(lock, LOCK_EPOCH, _word(path, STORE_EPOCH) ^ 0x5A5A)
    with persist.open(path) as store:
        assert store.check()["unreachable_blocks"] > 0
        store.gc()
        assert store.check()["unreachable_blocks"] == 0
        assert store.root["k"].to_python() == _strings("k", 50)
