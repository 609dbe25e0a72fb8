"""Forked worker processes for the crash tests: started in about a millisecond (so kills land
inside the work, not inside interpreter start-up), never returning into pytest; and committers
whose files are copied while they are stopped."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from collections.abc import Callable

import persist


def fork_child(body: Callable[[], None]) -> int:
    """Runs ``body`` in a forked child; the child leaves with os._exit (1 if body raised)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException:  # noqa: BLE001 - report anything, then leave at once
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def reap_child(pid: int) -> int:
    """Waits for ``pid``; returns its exit status (negative: killed by that signal)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def attach_another_process(path: str) -> None:
    """Opens the store at ``path`` in a forked child, which closes it and leaves. The lock file
    then records that a second participant attached (``slots high`` above 1, FORMAT.md
    §10.9), so from here on every single change runs on its container's part lock or
    publishes, as in a store that several processes share, instead of taking the store-wide
    writer word."""
    assert reap_child(fork_child(lambda: persist.open(path).close())) == 0


def sequence(path: str) -> int:
    """The lock file's store-wide sequence word (FORMAT.md §6.1, offset 128): moved by 2 for
    every store-wide change, by none on a part."""
    with open(path + ".lock", "rb") as f:
        f.seek(128)
        return int.from_bytes(f.read(8), "little")


def kill_child(pid: int) -> None:
    """SIGKILLs ``pid`` (if it still runs) and reaps it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    reap_child(pid)


def kill_loop(
    worker: Callable[[int, int], None],
    *,
    rng: random.Random,
    workers: int,
    kills: int,
    seconds: float,
) -> None:
    """Keeps ``workers`` forked ``worker(seed, ready_fd)`` running (each writes b"r" to
    ready_fd once it has opened the store) and SIGKILLs one at random, ``kills`` times within
    ``seconds``, starting a new one after each kill: mostly a worker at work, sometimes one
    still opening or recovering. Every worker is killed and reaped at the end."""
    running: dict[int, int] = {}  # pid -> read end of its ready pipe
    deadline = time.monotonic() + seconds

    def start() -> None:
        r, w = os.pipe()
        seed = rng.randrange(1 << 30)
        pid = fork_child(lambda: worker(seed, w))
        os.close(w)
        running[pid] = r

    done = 0
    try:
        for _ in range(workers):
            start()
        while done < kills:
            assert time.monotonic() < deadline, f"only {done} kills in the time allowed"
            pid = rng.choice(list(running))
            r = running.pop(pid)
            if rng.random() < 0.8:
                assert os.read(r, 1) == b"r", "a worker died before it opened the store"
                time.sleep(rng.uniform(0, 0.015))
            os.close(r)
            kill_child(pid)
            done += 1
            start()
    finally:
        for pid, r in running.items():
            os.close(r)
            kill_child(pid)


def _committer(path: str, name: str, report_fd: int, durable: bool, blob: bool) -> None:
    """Commits transaction i = 1, 2, ... (appends (name, i) to root['log'], sets root[name] =
    i, and with ``blob`` replaces a string too), reporting each commit after it returned."""
    store = persist.open(path, durable=durable)
    root = store.root
    i = 0
    while True:
        i += 1
        with store.transaction():
            root["log"].append((name, i))
            root[name] = i
            if blob:
                root["blob"] = "z" * (i % 200)
        os.write(report_fd, f"{name} {i}\n".encode())


class StoppedWriters:
    """Forked committers (one per name) on the store at ``path``, whose files can be copied
    while every one of them is SIGSTOPped; a context manager that kills them at exit.

    ``committed`` maps each name to the last transaction it reported as committed.
    """

    def __init__(self, path: str, names: list[str], *, durable: bool, blob: bool) -> None:
        self.path = path
        self.committed: dict[str, int] = {}
        self._pending = b""
        self._r, w = os.pipe()
        os.set_blocking(self._r, False)
        self.pids = [
            fork_child(lambda name=name: _committer(path, name, w, durable, blob)) for name in names
        ]
        os.close(w)

    def __enter__(self) -> StoppedWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids:
            kill_child(pid)
        os.close(self._r)

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._r, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._pending += chunk
            *lines, self._pending = self._pending.split(b"\n")
            for line in lines:
                name, i = line.decode().split()
                self.committed[name] = max(self.committed.get(name, 0), int(i))

    def copy_while_stopped(self, dst: str, *, lock_file: bool) -> dict[str, int]:
        """Stops every writer, copies the store file (and the lock file if asked) to ``dst``,
        lets them go on; returns the commits reported before the stop (all in the copy)."""
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        self._drain()  # reports written before the stop: those transactions are committed
        expect = dict(self.committed)
        shutil.copyfile(self.path, dst)
        if lock_file:
            shutil.copyfile(self.path + ".lock", dst + ".lock")
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT)
        return expect


def gc_takes_what_kills_left(store: persist.Store, at_most: int = 3) -> None:
    """After SIGKILLed workers: ``check()`` finds at most ``at_most`` unreachable blocks (the
    windows every allocation and free has, FORMAT.md §10.7 step 0: a kill between the
    allocator's take and the journal's taken bit, or between a settling and its free) and no
    leaked reference, and ``gc()`` frees exactly those blocks."""
    report = store.check(timeout=10)
    assert report["unreachable_blocks"] <= at_most, report
    assert report["leaked_references"] == 0, report
    freed = store.gc()
    assert freed["blocks"] == report["unreachable_blocks"], (freed, report)
