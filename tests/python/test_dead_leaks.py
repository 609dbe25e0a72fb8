"""Processes that end without closing leave nothing behind (issue 16, item 6).

A participant that exits through ``os._exit`` (a multiprocessing fork child, a pre-fork server's
worker) or is SIGKILLed never closes: its block cache, its held set, its undo log and its
journals stay in its slot of the lock file. The recovery of its slot (FORMAT.md §7.10, §10.7)
gives all of that back, so ``check()`` finds nothing unreachable and ``gc()`` has nothing to
free. Only a kill that lands inside one step of the allocator or of a commit may leave that
step's blocks behind (§9), and those are what gc is for.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import persist
from procs import fork_child, kill_child, reap_child

NOTHING_FREED = {"objects": 0, "blocks": 0, "bytes": 0}

# Strings of these lengths fall into nine different cached size classes (§6.5: blocks of at
# most 512 bytes go through a participant's block cache).
CACHED_LENGTHS = (10, 30, 50, 70, 100, 150, 200, 300, 450)


def _fill_caches(root: persist.Dict) -> None:
    """Frees three strings of each of nine cached classes at once: the block cache of every one
    of those classes is full afterwards (3 blocks), the rest goes back to the segments."""
    root["fill"] = [c * n for n in CACHED_LENGTHS for c in "abcd"]
    del root["fill"]


def test_200_children_leaving_through_os_exit_leave_no_block(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    # The parent's store, opened by persist.root as multiprocessing users do; fork children
    # inherit it (and attach as participants of their own, FORMAT.md §6.3).
    root = persist.root(path)
    store = persist._roots[os.path.realpath(path)]
    root["l"] = []
    root["d"] = {}
    assert store.check()["unreachable_blocks"] == 0
    n = 200
    for i in range(n):

        def child(i: int = i) -> None:
            r = persist.root(path)
            r["l"].append(i)
            r["d"][f"k{i % 10}"] = "x" * (20 + i % 400)  # replaces (frees) an older string
            r[f"v{i}"] = [i, "y" * 50, {"a": "z" * 200}]
            del r[f"v{i}"]  # frees into this child's block cache
            if i % 3 == 0:
                _fill_caches(r)
            if i % 4 == 0:
                # A container that only this child's held set names when it exits: an orphan.
                r[f"o{i}"] = [i, "w" * 30]
                kept = r[f"o{i}"]
                del r[f"o{i}"]
                assert kept[0] == i

        pid = fork_child(child)
        assert reap_child(pid) == 0
    report = store.check()
    assert report["unreachable_blocks"] == 0, report
    assert report["orphans"] == 0, report
    assert store.gc() == NOTHING_FREED
    assert root["l"].to_python() == list(range(n))
    assert len(root["d"]) == 10
    assert set(root.keys()) == {"l", "d"}
    after = store.check()
    assert after["unreachable_blocks"] == 0 and after["orphans"] == 0, after


def test_dead_children_are_given_back_by_the_next_process_that_opens(
    tmp_path: Path,
) -> None:
    """Recovery at attach (a fresh process opens the store after the children died) returns
    the same, and collects the orphans they held."""
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["l"] = []
    for i in range(40):

        def child(i: int = i) -> None:
            s = persist.open(path)
            r = s.root
            r["l"].append(i)
            _fill_caches(r)
            r[f"o{i}"] = {"k": "v" * 60}
            kept = r[f"o{i}"]
            del r[f"o{i}"]
            assert kept["k"] == "v" * 60
            # Leave here: returning would drop `s`, and a dropped store closes cleanly.
            os._exit(0)

        assert reap_child(fork_child(child)) == 0
    # A fresh process recovers the dead at attach; its own slot is one of theirs.
    pid = fork_child(lambda: persist.open(path).close())
    assert reap_child(pid) == 0
    with persist.open(path) as store:
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["orphans"] == 0, report
        assert store.gc() == NOTHING_FREED
        assert store.root["l"].to_python() == list(range(40))


# ---- SIGKILL ------------------------------------------------------------------------------

# What one kill may leave (FORMAT.md §9, §10.7): one block at most, of the one step the process
# was in, and in practice none. A block it had taken (popped, carved, taken off its cache, a
# large run) and not linked comes back with its recovery (its block journal names it as taken,
# §6.4, §10.7 step 0), and so do the frees still due of a change it had committed, store-wide or
# on a part (the release cursor, §10.3), the one it was in included when the dead process's
# block cache tells that it did not happen. What may still be left: a block taken in the few
# instructions between the step that took it and the store of its journal's taken bit, or the
# block of a free cut short whose class is not cached (above 512 bytes) or whose cache was full.
# Nothing from the dead process's block cache, held set or undo log may remain.
MOST_LEFT_BY_ONE_KILL = 1

# What 120 kills may leave in all. Measured: 0 in each of 9 runs (every block this worker frees
# is of a cached class). Before the taken bit and the cache's answer, 2 to 4 in 8 runs, each a
# free in flight or a part change's frees (the recoverer's log named the leaked block); before
# the release cursor, 139 to 186 (a kill among a commit's frees left all of them).
MOST_LEFT_BY_120_KILLS = 0


def _worker(path: str, seed: int, ready_fd: int) -> None:
    rng = random.Random(seed)
    r = persist.root(path)
    _fill_caches(r)
    os.write(ready_fd, b"r")
    i = 0
    while True:
        i += 1
        lst = r["l"]
        lst.append(i)
        if len(lst) > 40:
            del lst[:20]
        r["d"][f"k{rng.randrange(8)}"] = "x" * rng.randrange(1, 400)
        r["t"] = [i, "y" * 50]
        del r["t"]


def _kill_when_started(
    worker: Callable[[str, int, int], None], path: str, rng: random.Random, at_most: float
) -> None:
    """Forks `worker(path, seed, ready_fd)`, waits for its ready byte, SIGKILLs it a random
    time of up to `at_most` seconds later, and reaps it."""
    r, w = os.pipe()
    seed = rng.randrange(1 << 30)
    pid = fork_child(lambda: worker(path, seed, w))
    os.close(w)
    assert os.read(r, 1) == b"r", "a worker died before it was ready"
    os.close(r)
    time.sleep(rng.uniform(0, at_most))
    kill_child(pid)


def test_sigkilled_workers_leave_at_most_their_last_step(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["l"] = []
    store.root["d"] = {}
    rng = random.Random(16_6)
    kills = 0
    leaked = 0
    worst = 0
    before = store.check()["unreachable_blocks"]
    assert before == 0
    for _ in range(120):
        _kill_when_started(_worker, path, rng, 0.005)
        kills += 1
        now = store.check()["unreachable_blocks"]
        left = now - before
        assert 0 <= left <= MOST_LEFT_BY_ONE_KILL, (
            f"kill {kills} left {left} unreachable blocks (at most {MOST_LEFT_BY_ONE_KILL})"
        )
        worst = max(worst, left)
        leaked += left
        before = now
    assert leaked <= MOST_LEFT_BY_120_KILLS, (
        f"{kills} kills left {leaked} unreachable blocks (at most {MOST_LEFT_BY_120_KILLS})"
    )
    report = store.check()
    assert report["unreachable_blocks"] == leaked
    assert report["orphans"] == 0, report
    freed = store.gc()
    assert freed["blocks"] == leaked, (freed, leaked)
    after = store.check()
    assert after["unreachable_blocks"] == 0, after
    assert store.gc() == NOTHING_FREED
    print(f"\n{kills} kills: {leaked} blocks left to gc in all, at most {worst} by one kill")
    store.close()


def test_a_worker_killed_with_full_caches_leaves_nothing(tmp_path: Path) -> None:
    """Killed while idle (between steps), a worker leaves nothing at all."""
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["l"] = []
        for i in range(30):
            r, w = os.pipe()

            def idle(i: int = i, w: int = w) -> None:
                root = persist.root(path)
                root["l"].append(i)
                _fill_caches(root)
                os.write(w, b"r")
                time.sleep(60)

            pid = fork_child(idle)
            os.close(w)
            assert os.read(r, 1) == b"r"
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            assert reap_child(pid) == -signal.SIGKILL
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert store.gc() == NOTHING_FREED
        assert store.root["l"].to_python() == list(range(30))


def _part_changer(path: str, seed: int, ready_fd: int) -> None:
    rng = random.Random(seed)
    r = persist.root(path)
    d = r["d"]
    os.write(ready_fd, b"r")
    i = 0
    while True:
        i += 1
        # A single change on d's part (FORMAT.md §10.9): the string it replaces is freed after
        # the commit point, before the change leaves the gate.
        d[f"k{i % 4}"] = "x" * rng.randrange(200, 400)


# What 400 kills of part changers may leave. Their recoverer finishes the frees of a committed
# part change from its release cursor (its `active` word is 1, FORMAT.md §10.7 step 1), the one
# the cursor had just passed included if it did not happen (the dead process's block cache
# tells: the strings are of cached classes). Measured: 0 in each of 9 runs. Before, the
# recoverer finished a dead owner's frees only under the writer word, which a part change never
# holds, and 400 kills left 34 and 47 blocks (200 kills: 14 to 23 in 6 runs); with the frees
# finished but the passed entry left to gc, 3 to 9 per 200 kills.
KILLS_OF_PART_CHANGERS = 400
MOST_LEFT_BY_PART_KILLS = 0


def test_sigkilled_part_changers_leave_only_a_free_in_flight(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["d"] = {}
    rng = random.Random(12_1)
    leaked = 0
    before = store.check()["unreachable_blocks"]
    assert before == 0
    for _ in range(KILLS_OF_PART_CHANGERS):
        _kill_when_started(_part_changer, path, rng, 0.005)
        now = store.check()["unreachable_blocks"]
        assert 0 <= now - before <= MOST_LEFT_BY_ONE_KILL, (now, before)
        leaked += now - before
        before = now
    assert leaked <= MOST_LEFT_BY_PART_KILLS, (
        f"{KILLS_OF_PART_CHANGERS} kills left {leaked} unreachable blocks "
        f"(at most {MOST_LEFT_BY_PART_KILLS})"
    )
    assert store.gc()["blocks"] == leaked
    after = store.check()
    assert after["unreachable_blocks"] == 0 and after["orphans"] == 0, after
    assert len(store.root["d"]) == 4
    print(f"\n{KILLS_OF_PART_CHANGERS} part-change kills: {leaked} blocks left to gc")
    store.close()


def _record(k: int) -> dict:
    return {"n": k, "s": "x" * k, "l": [k, "y" * k, (k, 2.5)]}


def _container_storer(path: str, seed: int, ready_fd: int) -> None:
    rng = random.Random(seed)
    r = persist.root(path)
    d, recs = r["d"], r["recs"]
    os.write(ready_fd, b"r")
    i = 0
    popped = None
    while True:
        i += 1
        # A new container (a dict holding a list, strs and a tuple: seven blocks) written on
        # the part of the container it goes into, not store-wide (FORMAT.md §10.9); an old one
        # replaced or deleted, freed on the part; one popped and held until the next pop (on
        # the orphan list meanwhile, pushed from the part).
        rec = _record(rng.randrange(8, 200))
        if i % 16 == 8 and len(recs) > 1:
            popped = recs.pop()
            assert popped["s"] == "x" * popped["n"]
        elif i % 4 == 0:
            recs.append(rec)
        elif i % 4 == 1:
            d[f"{os.getpid()}-{i}"] = rec
        elif i % 8 == 2:
            with contextlib.suppress(KeyError):
                del d[f"fixed{rng.randrange(8)}"]
        else:
            d[f"fixed{rng.randrange(8)}"] = rec


# Kills of processes storing new containers on a part, replacing and deleting old ones there,
# and popping them (each held until the next pop, then collected): the recoverer rolls back the
# blocks a killed change had taken (each logged as it is taken) or finishes its frees, and every
# record stored is whole. Small blocks (32 to 176 bytes) are left all the same, within
# MOST_LEFT_BY_ONE_KILL: measured 1 to 4 per 200 kills in 6 runs; where they come from is not
# known. Before orphans were collected through the undo log, whole records were left too (a
# kill between freeing a collected record's header and releasing what it held): 10 to 26 blocks
# in 6 of 10 runs.
KILLS_OF_CONTAINER_STORERS = 200
MOST_LEFT_BY_CONTAINER_KILLS = 6


def test_sigkilled_container_storers_leave_nothing_half_stored(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["d"] = {}
    store.root["recs"] = []
    rng = random.Random(12_2)
    assert store.check()["unreachable_blocks"] == 0
    for _ in range(KILLS_OF_CONTAINER_STORERS):
        _kill_when_started(_container_storer, path, rng, 0.01)
    report = store.check()
    leaked = report["unreachable_blocks"]
    assert leaked <= MOST_LEFT_BY_CONTAINER_KILLS, report
    assert report["orphans"] == 0 and report["leaked_references"] == 0, report
    assert store.gc()["blocks"] == leaked
    recs = store.root["recs"].to_python()
    stored = store.root["d"].to_python()
    assert recs and stored
    for rec in [*recs, *stored.values()]:
        assert rec == _record(rec["n"]), rec
    print(f"\n{KILLS_OF_CONTAINER_STORERS} kills: {len(recs) + len(stored)} records whole")
    store.close()


def _popper_and_closer(path: str, seed: int, ready_fd: int) -> None:
    rng = random.Random(seed)
    s = persist.open(path)
    os.write(ready_fd, b"r")
    while True:
        r = s.root
        q = r["q"]
        for _ in range(rng.randrange(1, 40)):
            # A str item over 7 bytes is a block: its pop is a publication that frees the
            # block through the cache with journal 1 still naming it (FORMAT.md §6.4).
            q.append("task-" + "p" * rng.randrange(8, 300))
            q.popleft()
        # 130 containers held: a held set of three blocks, which the close gives back a block
        # at a time under journal 3 (§10.5).
        held = [r["c"][i] for i in range(130)]
        assert len(held) == 130
        del held, q, r
        s.close()
        s = persist.open(path)


# Kills of processes that pop str items (publications without a lock) and close stores that
# hold three held blocks. Every block either frees is of a cached class, so nothing may be
# left. Measured: 0 in each of 5 runs.
KILLS_OF_POPPERS_AND_CLOSERS = 200


def test_sigkilled_poppers_and_closers_leave_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["q"] = []
    store.root["c"] = [[i] for i in range(130)]
    rng = random.Random(26)
    before = store.check()["unreachable_blocks"]
    assert before == 0
    for _ in range(KILLS_OF_POPPERS_AND_CLOSERS):
        _kill_when_started(_popper_and_closer, path, rng, 0.01)
    report = store.check()
    assert report["unreachable_blocks"] == 0, report
    assert report["orphans"] == 0, report
    assert store.gc() == NOTHING_FREED
    # Each worker's appends were popped by itself, at most one item per kill left behind.
    assert len(store.root["q"]) <= KILLS_OF_POPPERS_AND_CLOSERS
    assert all(isinstance(x, str) and x.startswith("task-") for x in store.root["q"])
    store.close()
