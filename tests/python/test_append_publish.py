"""Appends without a lock: ``l.append(v)`` of a scalar (an int, a str, bytes, a float, None, a
bool, a datetime...) or of a tuple of small values into room the list's items block has, by a
claim on the list's tail and no lock, while other processes are attached (issue 12). A value
that is not an inline word has its one block allocated and written inside the append.

Checked with real processes: appends from several processes are each kept exactly once and in
each process's order, beside a consumer whose pops make the items block move and grow; a
blocked pop wakes for one; appenders SIGKILLed at random leave every append whole or absent
(each killed worker's items are a prefix of what it appended), block nothing, leave no
claim behind that keeps the next appends from running without a lock, and leave no block
behind (an appended value's block is freed at recovery unless the list holds it).
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, gc_takes_what_kills_left, kill_child, kill_loop, reap_child

# Item i of appender a is the int a * STRIDE + i (small ints: inline words).
STRIDE = 10_000_000


def split(items: list[int]) -> dict[int, list[int]]:
    """The items of each appender, in list order."""
    by: dict[int, list[int]] = {}
    for v in items:
        by.setdefault(v // STRIDE, []).append(v % STRIDE)
    return by


def test_appends_from_several_processes_are_each_kept_once_in_order(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    n = 20_000
    with persist.open(path) as store:
        store.root["l"] = []
    go_r, go_w = os.pipe()

    def appender(a: int) -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            for i in range(n):
                lst.append(a * STRIDE + i)

    def reader() -> None:
        # Each read is one snapshot: its length and its last item agree with some serial
        # order of the appends (the last item is never missing, and never from a later one).
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            while True:
                snap = lst.to_python()
                if snap:
                    by = split(snap)
                    for items in by.values():
                        assert items == list(range(len(items))), items[:10]
                if len(snap) == 3 * n:
                    return

    pids = [fork_child(lambda a=a: appender(a)) for a in (1, 2, 3)]
    pids.append(fork_child(reader))
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0, 0, 0, 0]
    with persist.open(path) as store:
        by = split(store.root["l"].to_python())
        assert sorted(by) == [1, 2, 3]
        for items in by.values():
            assert items == list(range(n))
        assert store.check()["leaked_references"] == 0


def test_appends_beside_a_consumer_that_moves_the_items_block_are_all_kept(
    tmp_path: Path,
) -> None:
    # The consumer's pops step `start` on and its own appends grow the block (a new items
    # block, on the list's part): the lock-free appends beside them are never lost into the
    # old block, never duplicated.
    path = str(tmp_path / "s.db")
    n = 15_000
    with persist.open(path) as store:
        store.root["l"] = []
    go_r, go_w = os.pipe()
    got_r, got_w = os.pipe()

    def appender(a: int) -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            for i in range(n):
                lst.append(a * STRIDE + i)

    def consumer() -> None:
        taken: list[int] = []
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            rng = random.Random(3)
            while len(taken) < 2 * n:
                try:
                    v = lst.popleft(block=True, timeout=20)
                except IndexError:
                    raise AssertionError(f"starved after {len(taken)} items") from None
                if isinstance(v, int) and v >= 0:
                    taken.append(v)
                if rng.random() < 0.05:
                    # Its own appends of a str block (not inline: on the part) now and then,
                    # and a pop from the end, so that the block moves and is rebuilt.
                    lst.append("a str too long to be inline")
                    lst.extend([-1, -2])
            for a in (1, 2):
                mine = [v % STRIDE for v in taken if v // STRIDE == a]
                assert mine == list(range(n)), (a, len(mine))
        os.write(got_w, b"ok")

    pids = [fork_child(lambda a=a: appender(a)) for a in (1, 2)]
    pids.append(fork_child(consumer))
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0, 0, 0]
    assert os.read(got_r, 2) == b"ok"
    with persist.open(path) as store:
        left = store.root["l"].to_python()
        assert all(v in (-1, -2, "a str too long to be inline") for v in left)
        assert store.check()["leaked_references"] == 0


def test_a_blocked_pop_wakes_for_an_append_in_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["l"] = [0, 0]
        lst = store.root["l"]
        lst.pop()
        lst.pop()  # room in the items block: the next append is a publication

        def producer() -> None:
            with persist.open(path) as other:
                time.sleep(0.3)
                other.root["l"].append(7)
                time.sleep(0.5)

        pid = fork_child(producer)
        try:
            t0 = time.monotonic()
            assert lst.popleft(block=True, timeout=20) == 7
            assert time.monotonic() - t0 < 10
        finally:
            assert reap_child(pid) == 0


def test_killed_appenders_leave_each_append_whole_or_absent_and_block_nothing(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["l"] = []
    report_r, report_w = os.pipe()

    def worker(seed: int, ready: int) -> None:
        # `seed` (below 2**30, distinct but by a negligible chance) names this one's items.
        a = seed + 100
        with persist.open(path) as store:
            lst = store.root["l"]
            os.write(ready, b"r")
            i = 0
            while True:
                lst.append(a * STRIDE + i)
                i += 1

    def steady() -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            for i in range(30_000):
                lst.append(1 * STRIDE + i)
            os.write(report_w, b"done")

    pid = fork_child(steady)
    kill_loop(worker, rng=random.Random(11), workers=3, kills=40, seconds=120)
    assert reap_child(pid) == 0
    assert os.read(report_r, 4) == b"done"
    with persist.open(path) as store:
        lst = store.root["l"]
        items = lst.to_python()
        by = split(items)
        assert by.pop(1) == list(range(30_000))
        # Each killed worker's appends are a prefix of 0, 1, 2, ...: none lost before its last,
        # none twice, none half there.
        for a, seq in by.items():
            assert seq == list(range(len(seq))), (a, seq[:20])
        # Whatever the dead left: a section, appends of both kinds and a check go through.
        lst.lockExcl(timeout=10)
        try:
            lst.append(-1)
        finally:
            lst.unlock()
        lst.append(-2)
        lst.append("not inline, a block")
        assert lst[-3:] == [-1, -2, "not inline, a block"]
        assert len(lst) == len(items) + 3
        report = store.check(timeout=10)
        assert report["leaked_references"] == 0


def test_an_append_outlives_its_appender(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["l"] = [1, 2, 3]
        lst = store.root["l"]
        lst.pop()
        r, w = os.pipe()

        def appender() -> None:
            with persist.open(path) as other:
                other.root["l"].append(42)
                os.write(w, b"x")
                time.sleep(60)

        pid = fork_child(appender)
        assert os.read(r, 1) == b"x"
        kill_child(pid)
        assert lst.to_python() == [1, 2, 42]
        lst.append(43)  # after the dead one's recovery
        assert lst.to_python() == [1, 2, 42, 43]


def test_appends_of_values_with_blocks_are_each_kept_once(tmp_path: Path) -> None:
    # Strs longer than 7 bytes, floats and bytes: each append allocates its block.
    path = str(tmp_path / "s.db")
    n = 8_000
    with persist.open(path) as store:
        store.root["l"] = []
    go_r, go_w = os.pipe()

    def value(a: int, i: int) -> object:
        return (f"appender {a} item {i}", float(a * STRIDE + i), f"{a}:{i}".encode() * 3)[i % 3]

    def appender(a: int) -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            for i in range(n):
                lst.append(value(a, i))

    pids = [fork_child(lambda a=a: appender(a)) for a in (1, 2)]
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0, 0]
    with persist.open(path) as store:
        items = store.root["l"].to_python()
        assert len(items) == 2 * n
        for a in (1, 2):
            mine = [
                v
                for v in items
                if (isinstance(v, str) and v.startswith(f"appender {a} "))
                or (isinstance(v, float) and int(v) // STRIDE == a)
                or (isinstance(v, bytes) and v.startswith(f"{a}:".encode()))
            ]
            assert mine == [value(a, i) for i in range(n)]
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


# Appended values that are one block each: a str of more than 7 bytes, and a tuple of small
# values (inline words); (worker, item) is read back from each.
ONE_BLOCK_ITEMS: dict[str, tuple[Callable[[int, int], Any], Callable[[Any], tuple[int, int]]]] = {
    "str": (
        lambda seed, i: f"worker {seed} item {i}",
        lambda v: (int(v.split()[1]), int(v.split()[3])),
    ),
    "tuple": (lambda seed, i: (seed, i, None, "item"), lambda v: (v[0], v[1])),
}


@pytest.mark.parametrize("kind", sorted(ONE_BLOCK_ITEMS))
def test_killed_appenders_of_values_with_blocks_leave_no_block_behind(
    tmp_path: Path, kind: str
) -> None:
    path = str(tmp_path / "s.db")
    make, parse = ONE_BLOCK_ITEMS[kind]
    with persist.open(path) as store:
        store.root["l"] = []

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            os.write(ready, b"r")
            i = 0
            while True:
                lst.append(make(seed, i))
                i += 1

    kill_loop(worker, rng=random.Random(5), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        lst = store.root["l"]
        by: dict[int, list[int]] = {}
        items = lst.to_python()
        for v in items:
            seed, i = parse(v)
            by.setdefault(seed, []).append(i)
        for seed, seq in by.items():
            assert seq == list(range(len(seq))), (seed, seq[:20])
        # Every block an appender took is in the list or was given back by its recovery,
        # but for the windows that every allocation and free has (FORMAT.md §10.7 step 0): a
        # kill between the allocator's take and the journal's taken bit, or, for an append
        # that gave its block back, between the journal's settling and the free. Those few
        # are left to gc, which frees exactly them (one run in CI left one in 60 kills).
        gc_takes_what_kills_left(store)
        assert store.check(timeout=10)["unreachable_blocks"] == 0
        assert lst.to_python() == items  # gc freed nothing the list holds
        lst.append("and one more, after them all")
        assert lst[-1] == "and one more, after them all"


def test_extends_of_small_values_from_several_processes_are_whole_and_in_order(
    tmp_path: Path,
) -> None:
    # Each extend of small ints is one claim: its items stay together, in order, all or none.
    path = str(tmp_path / "s.db")
    batches = 3_000
    with persist.open(path) as store:
        store.root["l"] = []
    go_r, go_w = os.pipe()

    def extender(a: int) -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            for b in range(batches):
                lst.extend([a * STRIDE + b * 4 + k for k in range(4)])

    pids = [fork_child(lambda a=a: extender(a)) for a in (1, 2)]
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0, 0]
    with persist.open(path) as store:
        items = store.root["l"].to_python()
        assert len(items) == 2 * 4 * batches
        for at in range(0, len(items), 4):
            run = items[at : at + 4]
            assert run == list(range(run[0], run[0] + 4)) and run[0] % 4 == 0, run
        by = split(items)
        for a in (1, 2):
            assert by[a] == list(range(4 * batches))


def consume_beside_a_producer(
    tmp_path: Path, make: Callable[[int], Any], n: int
) -> tuple[str, list[Any], list[Any]]:
    """Two consumers take from the front and one from the back of a list of ``make(i)`` for i
    below n, while a producer appends 5,000 more: (the store's path, what they took, what is
    left)."""
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["l"] = [make(i) for i in range(n)]
    go_r, go_w = os.pipe()

    def consumer(me: int, front: bool) -> None:
        got = []
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            while True:
                try:
                    v = lst.popleft() if front else lst.pop()
                except IndexError:
                    break
                got.append(v)
        (tmp_path / f"got{me}").write_text(json.dumps(got))

    def producer() -> None:
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            for i in range(n, n + 5_000):
                lst.append(make(i))

    pids = [fork_child(producer)]
    pids += [fork_child(lambda m=m, f=f: consumer(m, f)) for m, f in enumerate((True, True, False))]
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0, 0, 0, 0]
    taken = [v for m in range(3) for v in json.loads((tmp_path / f"got{m}").read_text())]
    with persist.open(path) as store:
        left = store.root["l"].to_python()
    return path, taken, left


def test_pops_from_several_processes_take_each_item_once(tmp_path: Path) -> None:
    # Every item is taken once (popleft and pop of a small value take no lock).
    n = 20_000
    path, taken, left = consume_beside_a_producer(tmp_path, lambda i: i, n)
    with persist.open(path) as store:
        assert sorted(taken + left) == list(range(n + 5_000))
        assert store.check()["leaked_references"] == 0


def kill_poppers(path: str, items: list[Any], seed: int) -> tuple[list[Any], list[Any]]:
    """Three workers pop from the two ends of a list of ``items`` and record each item in a
    second list, SIGKILLed 60 times: (what is left, what was recorded); no item taken twice,
    none both taken and left, at most one lost per kill."""
    n = len(items)
    with persist.open(path) as store:
        store.root["l"] = items
        store.root["taken"] = []

    def worker(seed: int, ready: int) -> None:
        # Each taken item is recorded in another list right after: a kill between the two
        # loses it (the pop was whole), never duplicates it.
        with persist.open(path) as store:
            lst = store.root["l"]
            taken = store.root["taken"]
            os.write(ready, b"r")
            front = seed % 2 == 0
            while True:
                taken.append(lst.popleft() if front else lst.pop())

    kill_loop(worker, rng=random.Random(seed), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        left = store.root["l"].to_python()
        taken = store.root["taken"].to_python()
    seen = set(taken)
    assert len(seen) == len(taken), "an item was taken twice"
    assert not seen & set(left), "a taken item is still in the list"
    assert len(taken) + len(left) <= n
    # The items lost with a kill are one per kill at most.
    assert n - len(taken) - len(left) <= 60
    return left, taken


def test_killed_poppers_take_each_item_at_most_once_and_block_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    left, taken = kill_poppers(path, list(range(400_000)), seed=13)
    with persist.open(path) as store:
        # The list is still a run of the original order with its ends taken.
        assert left == list(range(left[0], left[0] + len(left))) if left else True
        report = store.check(timeout=10)
        assert report["leaked_references"] == 0
        lst = store.root["l"]
        lst.lockExcl(timeout=10)
        try:
            lst.append(-1)
        finally:
            lst.unlock()
        assert lst.pop() == -1
        if left:
            assert lst.popleft() == left[0]


def test_str_pops_from_several_processes_take_each_item_once_and_free_its_block(
    tmp_path: Path,
) -> None:
    # As above with strs of more than 7 bytes (each item a block): popleft and pop take them
    # with no lock too, and free each taken item's block.
    n = 20_000
    path, taken, left = consume_beside_a_producer(tmp_path, lambda i: f"item {i:08d}", n)
    with persist.open(path) as store:
        assert sorted(taken + left) == [f"item {i:08d}" for i in range(n + 5_000)]
        report = store.check()
        # Every taken item's block was freed: none is left allocated and unreachable.
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_tuples_of_small_values_are_appended_and_popped_each_once_and_freed(
    tmp_path: Path,
) -> None:
    # A tuple whose items are inline words (small ints, None, short strs) is one block with no
    # references: appended and popped with no lock, as a str is, its block freed by the pop.
    n = 20_000
    path, taken, left = consume_beside_a_producer(tmp_path, lambda i: (i, None, "t"), n)
    # The consumers' lists came back through JSON, which turns tuples into lists.
    taken = [tuple(v) for v in taken]
    with persist.open(path) as store:
        assert sorted(taken + left) == [(i, None, "t") for i in range(n + 5_000)]
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


# Items that are one block each (a str of more than 7 bytes; a tuple of small values), the
# number each stands for, and the seed of the kills.
BLOCK_ITEMS: dict[str, tuple[Callable[[int], Any], Callable[[Any], int], int]] = {
    "str": (lambda i: f"item {i:08d}", lambda v: int(v.split()[1]), 17),
    "tuple": (lambda i: (i, "t"), lambda v: v[0], 19),
}


@pytest.mark.parametrize("kind", sorted(BLOCK_ITEMS))
def test_killed_block_poppers_take_each_item_at_most_once_and_leave_no_block_behind(
    tmp_path: Path, kind: str
) -> None:
    make, number, seed = BLOCK_ITEMS[kind]
    path = str(tmp_path / "s.db")
    left, taken = kill_poppers(path, [make(i) for i in range(200_000)], seed=seed)
    numbers = [number(v) for v in left]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
    with persist.open(path) as store:
        # A popped block is freed by its popper, or by the popper's recovery once the pop
        # committed; one the list still holds is kept. What may be left to gc are the
        # windows every allocation and free has (FORMAT.md §10.7 step 0): here a kill
        # between a popper's settling of its journal and its free, and the recording
        # appends' own; gc frees exactly those and nothing the lists hold.
        gc_takes_what_kills_left(store)
        assert store.root["l"].to_python() == left
        assert store.root["taken"].to_python() == taken


def test_pops_of_floats_big_ints_bytes_and_packed_values_free_their_blocks(
    tmp_path: Path,
) -> None:
    # Every value that is one block with no references (a float, a big int, bytes, a datetime,
    # a Decimal, a UUID, a tuple of small values...) is popped without a lock and its block
    # freed; a tuple that holds a block is popped on the list's part, as before.
    path = str(tmp_path / "s.db")
    base = datetime.datetime(2026, 12, 7, 4, 0, 0)
    values: list[object] = []
    for i in range(600):
        values += [
            i + 0.5,
            2**70 + i,
            b"bytes %08d" % i,
            base + datetime.timedelta(seconds=i),
            decimal.Decimal(i) / 7,
            uuid.UUID(int=i),
            (i, None, "tuple"),
            (i, f"tuple item {i:08d}"),
        ]
    with persist.open(path) as store:
        store.root["l"] = values
    go_r, go_w = os.pipe()

    def consumer(me: int) -> None:
        got = []
        with persist.open(path) as store:
            lst = store.root["l"]
            os.read(go_r, 1)
            while True:
                try:
                    got.append(lst.popleft() if me == 0 else lst.pop())
                except IndexError:
                    break
        with persist.open(path) as store:
            store.root[f"got{me}"] = got

    pids = [fork_child(lambda m=m: consumer(m)) for m in (0, 1)]
    os.write(go_w, b"xx")
    assert [reap_child(p) for p in pids] == [0, 0]
    with persist.open(path) as store:
        got0 = store.root["got0"].to_python()
        got1 = store.root["got1"].to_python()
        assert got0 + got1[::-1] == values
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report
