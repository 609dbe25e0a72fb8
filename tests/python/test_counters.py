"""Dict.incr and Dict.decr: atomic counters (issue 14).

``d.incr(k, by=1, default=0)`` is ``d[k] = d.get(k, default) + by`` on numbers (int of any
size, bool as int, float, Decimal) as one atomic change, returning the new value; ``decr`` is
``- by``. Checked here: the results against Python's arithmetic (across the 2**62 boundary of
the inline int word both ways), the TypeErrors and that they leave the store as it was,
read-only stores, lockExcl sections and transactions, and, with real processes, 8 processes x
10,000 increments giving exactly 80,000 and processes SIGKILLed in the middle of increments
leaving every increment wholly in or wholly out. test_dict_differential.py runs incr and decr
against a plain dict among the other operations.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, kill_child, reap_child

SMALL_MAX = 2**62 - 1  # the largest int stored in the value word itself (FORMAT.md §10.1)
SMALL_MIN = -(2**62)


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


# --- semantics, against Python ---------------------------------------------------------------

CASES = [
    # (stored value or MISSING, by, default)
    ("missing", 1, 0),
    ("missing", 5, 10),
    ("missing", -3, 0),
    ("missing", True, 0),
    ("missing", 1, False),
    ("missing", 0.5, 0),
    ("missing", 1, 2.5),
    ("missing", Decimal("0.1"), 0),
    ("missing", 2**70, 0),
    (0, 1, 0),
    (41, 1, 0),
    (5, -7, 0),
    (True, 1, 0),
    (True, True, 0),
    (False, False, 0),
    (3, True, 0),
    (SMALL_MAX, 1, 0),  # inline -> big int
    (SMALL_MAX + 1, -1, 0),  # big int -> inline
    (SMALL_MIN, -1, 0),  # inline -> big int, negative
    (SMALL_MIN - 1, 1, 0),  # big int -> inline, negative
    (SMALL_MAX, SMALL_MAX, 0),
    (SMALL_MIN, SMALL_MIN, 0),
    (2**63 - 1, 1, 0),  # past an i64
    (-(2**63), -1, 0),
    (10**40, 10**40, 0),
    (10**40, -(10**40), 0),  # big -> 0
    (0, 2**200, 0),
    (1, 2**63, 0),  # a by that no machine word holds
    (1.5, 1, 0),
    (1, 0.25, 0),
    (float("inf"), 1, 0),
    (-0.0, 0.0, 0),
    (1e308, 1e308, 0),  # inf, as Python
    (Decimal("1.1"), 2, 0),
    (Decimal("1.1"), Decimal("2.2"), 0),
    (2**62, 0.5, 0),
]


@pytest.mark.parametrize("sub", [False, True], ids=["incr", "decr"])
@pytest.mark.parametrize(("stored", "by", "default"), CASES)
def test_incr_is_python_addition(store: Any, stored: Any, by: Any, default: Any, sub: bool) -> None:
    d = store.root
    if stored != "missing":
        d["k"] = stored
        base = stored
    else:
        base = default
    expected = base - by if sub else base + by
    got = d.decr("k", by, default) if sub else d.incr("k", by, default)
    assert same(got, expected), (got, expected)
    assert same(d["k"], expected)
    # Seen whole by a fresh read of the dict, and the store is sound.
    assert same(store.root["k"], expected)
    assert store.check()["unreachable_blocks"] == 0


def test_defaults_and_keywords(store: Any) -> None:
    d = store.root
    assert d.incr("n") == 1
    assert d.incr("n") == 2
    assert d.decr("n") == 1
    assert d.incr("n", by=10) == 11
    assert d.decr("m") == -1  # missing: 0 - 1
    assert d.incr("o", default=100) == 101
    assert d.decr("p", by=2, default=100) == 98
    assert d.incr("o", 1, "unused") == 102  # default is only used for a missing key
    # Any storable key: tuples, floats equal to ints (one key, the first one kept).
    assert d.incr((1, "a")) == 1
    assert d.incr(2) == 1
    assert d.incr(2.0) == 2
    assert [k for k in d if k == 2] == [2] and type([k for k in d if k == 2][0]) is int
    assert d.to_python() == {"n": 11, "m": -1, "o": 102, "p": 98, (1, "a"): 1, 2: 2}


def test_a_nested_dict_counts_too(store: Any) -> None:
    store.root["stats"] = {"hits": 0}
    s = store.root["stats"]
    for _ in range(100):
        s.incr("hits")
    s.incr("misses", 3)
    assert store.root["stats"].to_python() == {"hits": 100, "misses": 3}


def test_an_int_subclass_and_a_float_subclass_count_as_their_base(store: Any) -> None:
    import enum

    class Step(enum.IntEnum):
        TWO = 2

    class F(float):
        pass

    d = store.root
    assert same(d.incr("a", Step.TWO), 2)
    assert same(d["a"], 2)
    assert same(d.incr("a", F(0.5)), 2.5)


BAD = [
    # (stored or missing, by, default): Python's + refuses them, and so does incr
    ("text", 1, 0),
    ("missing", "x", 0),
    (1, "x", 0),
    (1, None, 0),
    (1, b"1", 0),
    (1, (1,), 0),
    (1, [1], 0),
    ("missing", 1, "x"),
    ("missing", 1, None),
    (None, 1, 0),
    (b"b", 1, 0),
    ((1, 2), 1, 0),
    ([1, 2], 1, 0),
    ({"a": 1}, 1, 0),
    (Decimal("1.5"), 0.5, 0),  # Decimal + float
    (1.5, Decimal("0.5"), 0),
    ("text", "more", 0),  # str + str concatenates in Python, but a counter is a number
]


@pytest.mark.parametrize("sub", [False, True], ids=["incr", "decr"])
@pytest.mark.parametrize(("stored", "by", "default"), BAD)
def test_type_errors_leave_the_store_unchanged(
    store: Any, store_path: Path, stored: Any, by: Any, default: Any, sub: bool
) -> None:
    d = store.root
    d["other"] = [1, 2.5, "x"]
    if stored != "missing":
        d["k"] = stored
    before = d.to_python()
    store.flush()
    with pytest.raises(TypeError):
        if sub:
            d.decr("k", by, default)
        else:
            d.incr("k", by, default)
    assert d.to_python() == before
    assert ("k" in d) == (stored != "missing")
    if stored != "missing":
        assert same(d["k"], stored) or isinstance(stored, (list, dict))
    assert store.check()["unreachable_blocks"] == 0
    # The store still counts.
    assert d.incr("fine") == 1


def test_an_unstorable_key_raises_TypeError(store: Any) -> None:
    with pytest.raises(TypeError):
        store.root.incr([1])
    assert len(store.root) == 0


def test_decimal_overflow_raises_and_leaves_the_value(store: Any) -> None:
    import decimal

    d = store.root
    d["k"] = Decimal("9e999999")
    with decimal.localcontext() as ctx:
        ctx.traps[decimal.Overflow] = True
        with pytest.raises(decimal.Overflow):
            d.incr("k", Decimal("9e999999"))
    assert d["k"] == Decimal("9e999999")
    # An int too large for a float: OverflowError, as Python's 10**400 + 1.0.
    d["big"] = 10**400
    with pytest.raises(OverflowError):
        d.incr("big", 1.0)
    assert d["big"] == 10**400


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_readonly_store_raises_ReadOnlyError(tmp_path: Path) -> None:
    path = str(tmp_path / "ro.db")
    with persist.open(path) as s:
        s.root["n"] = 5
    before = digest(path)
    with persist.open(path, readonly=True) as s:
        with pytest.raises(persist.ReadOnlyError):
            s.root.incr("n")
        with pytest.raises(persist.ReadOnlyError):
            s.root.decr("new")
        assert s.root["n"] == 5
    assert digest(path) == before


def test_inside_lockExcl_and_transactions(store: Any) -> None:
    d = store.root
    with d.lockExcl():
        assert d.incr("n") == 1
        assert d.incr("n") == 2
    assert d["n"] == 2
    with store.transaction():
        d.incr("n", 10)
    assert d["n"] == 12
    with pytest.raises(KeyError), store.transaction():
        d.incr("n", 100)
        d.incr("big", 2**100)
        raise KeyError("abandon")
    assert d["n"] == 12  # rolled back with the transaction
    assert "big" not in d
    with store.transaction():
        d.incr("n")
        with pytest.raises(ValueError), store.transaction():  # a savepoint
            d.incr("n", 1000)
            raise ValueError
        d.incr("n")
    assert d["n"] == 14


def test_lockShared_holder_cannot_count(store: Any) -> None:
    d = store.root
    d["n"] = 1
    with d.lockShared(), pytest.raises(RuntimeError):
        d.incr("n")
    assert d["n"] == 1


def test_threads_lose_no_increment(store: Any) -> None:
    d = store.root
    n, per = 4, 3000

    def work() -> None:
        for _ in range(per):
            d.incr("n")

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d["n"] == n * per


# --- many processes --------------------------------------------------------------------------

PROCS = 8
PER_PROC = 10_000


def _counter_worker(path: str, key: str, n: int, ready_w: int, go_r: int) -> None:
    store = persist.open(path)
    d = store.root["c"]
    os.write(ready_w, b"r")
    os.read(go_r, 1)  # all start together, to race
    for _ in range(n):
        d.incr(key)
    store.close()


# Starting near the top of the inline range, the counter turns into a big int mid-race.
@pytest.mark.parametrize("start", [0, SMALL_MAX - 40_000], ids=["small", "across-2**62"])
def test_8_processes_x_10000_incr_is_exactly_80000(tmp_path: Path, start: int) -> None:
    path = str(tmp_path / "c.db")
    with persist.open(path) as s:
        s.root["c"] = {"n": start}
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pids = [
        fork_child(lambda: _counter_worker(path, "n", PER_PROC, ready_w, go_r))
        for _ in range(PROCS)
    ]
    try:
        for _ in range(PROCS):
            assert os.read(ready_r, 1) == b"r"
        os.write(go_w, b"g" * PROCS)
        codes = [reap_child(p) for p in pids]
        pids = []
    finally:
        for p in pids:
            kill_child(p)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
    assert codes == [0] * PROCS
    with persist.open(path) as s:
        assert s.root["c"]["n"] == start + PROCS * PER_PROC
        assert s.check()["unreachable_blocks"] == 0


def _killable_counter(path: str, rec_w: int, mode: str, durable: bool) -> None:
    """Increments root['c']['n'] forever; after each call returns, writes its result to the
    pipe (one line, under PIPE_BUF: whole or not at all). ``mode`` "locked": each increment
    inside a lockExcl section that also rewrites another key (a dead holder's section is
    rolled back by whoever recovers it, while the others keep counting)."""
    store = persist.open(path, durable=durable)
    root = store.root
    d = root["c"]
    os.write(rec_w, b"open\n")
    i = 0
    while True:
        i += 1
        if mode == "locked":
            with root.lockExcl():
                root["note"] = i
                v = d.incr("n")
                root["note"] = -i
        else:
            v = d.incr("n")
        os.write(rec_w, f"{v}\n".encode())


# plain: incr on the dict's part lock (two processes attached); mixed: one of the two
# processes increments inside lockExcl sections, store-wide; durable: durable=True stores
# take no parts, every increment runs under the store-wide writer word.
@pytest.mark.parametrize(
    ("modes", "durable", "kills"),
    [(("plain", "plain"), False, 150), (("plain", "locked"), False, 150), (("plain",), True, 40)],
    ids=["plain", "mixed-lockExcl", "durable"],
)
def test_sigkilled_counters_leave_each_increment_wholly_in_or_out(
    tmp_path: Path, modes: tuple[str, ...], durable: bool, kills: int
) -> None:
    """Processes increment one counter and report each value their call returned; one of
    them is SIGKILLed at a random moment, again and again (replaced by a fresh one).

    A killed process's increment in flight is either in the counter (its value taken, perhaps
    never reported) or not at all. So the reported values are all different (no increment
    lost or applied twice by a rollback of a dead process's change), all at most the final
    count, and the final count exceeds the number reported by at most one per kill. A counter
    whose increments could be lost, applied twice or half done fails one of these."""
    path = str(tmp_path / "k.db")
    with persist.open(path) as s:
        s.root["c"] = {"n": 0}
    rng = random.Random(20261206)
    rec_r, rec_w = os.pipe()
    os.set_blocking(rec_r, False)
    buf = bytearray()
    target, kills = kills, 0
    workers: list[tuple[int, str]] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(rec_r, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                return
            buf.extend(chunk)

    def start(mode: str) -> None:
        workers.append((fork_child(lambda: _killable_counter(path, rec_w, mode, durable)), mode))

    deadline = time.monotonic() + 120
    try:
        for mode in modes:
            start(mode)
        while kills < target:
            assert time.monotonic() < deadline, f"only {kills} kills in the time allowed"
            # A durable increment waits for msyncs (about 1 ms): give it time to make some.
            time.sleep(rng.uniform(0.02, 0.2) if durable else rng.uniform(0.001, 0.02))
            drain()
            victim, mode = workers.pop(rng.randrange(len(workers)))
            kill_child(victim)
            kills += 1
            start(mode)
    finally:
        for p, _ in workers:
            kill_child(p)
    drain()
    os.close(rec_w)
    drain()
    os.close(rec_r)
    lines = bytes(buf).decode().split("\n")
    assert lines[-1] == "" or lines[-1].isdigit()
    # A line cut short cannot happen (one write each); the last may be empty.
    values = [int(x) for x in lines if x and x != "open"]
    assert values, "no increment returned"
    with persist.open(path) as s:
        final = s.root["c"]["n"]
        # A lockExcl section cut short by the kill was rolled back whole (its note undone).
        note = s.root.get("note", 0)
        report = s.check()
        # Nobody is left blocked: a fresh process counts at once.
        t0 = time.monotonic()
        assert s.root["c"].incr("n") == final + 1
        assert time.monotonic() - t0 < 5
    assert len(set(values)) == len(values), "two calls returned the same value"
    assert max(values) <= final
    assert 0 <= final - len(values) <= kills, (final, len(values), kills)
    assert report["objects"] > 0
    assert note <= 0, f"a killed section's first change survived: note {note}"
    print(f"\ncounters {modes} durable={durable}: {kills} kills, {len(values)} returned, {final}")
