"""persist.Set in the store: what the differential and CPython tests cannot see.

Other processes see every change; iteration notices a change of size; lockExcl and
transaction() make several changes one (and a rollback undoes them); a process SIGKILLed in
the middle of set changes leaves every set whole; check() validates sets and gc frees those
nobody refers to; dump and load carry them; a read-only store refuses to change them.
"""

from __future__ import annotations

import collections.abc
import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, kill_loop, reap_child


def test_a_stored_set_is_a_persist_set(store: Any) -> None:
    store.root["s"] = {1, "a", (1, 2), frozenset({3})}
    s = store.root["s"]
    assert type(s) is persist.Set
    assert isinstance(s, collections.abc.MutableSet)
    assert isinstance(s, collections.abc.Set) and not isinstance(s, collections.abc.Hashable)
    with pytest.raises(TypeError, match="unhashable"):
        hash(s)
    with pytest.raises(TypeError, match="made by storing a set"):
        persist.Set()
    assert s == {1, "a", (1, 2), frozenset({3})}
    assert type(s.copy()) is set and type(copy.copy(s)) is set
    assert type(copy.deepcopy(s)) is set and type(s.to_python()) is set
    with pytest.raises(TypeError, match="pickled"):
        s.__reduce__()
    # A set stored twice is one container: a change through one name shows through the other.
    store.root["l"] = [s, s]
    store.root["l"][0].add("new")
    assert "new" in store.root["l"][1] and "new" in store.root["s"]
    plain = store.root["l"].to_python()
    assert plain[0] is plain[1]  # deep copies keep the sharing


def test_members_are_what_a_dict_key_may_be(store: Any) -> None:
    store.root["s"] = set()
    s = store.root["s"]
    s.add(1)
    s.add(1.0)
    s.add(True)
    assert len(s) == 1 and repr(s) == "{1}"  # the first of equal members stays
    for bad in ([1], {"a": 1}, {1}, bytearray(b"x")):
        with pytest.raises(TypeError, match="unhashable"):
            s.add(bad)
        if type(bad) is not set:
            with pytest.raises(TypeError, match="unhashable"):
                _ = bad in s
    with pytest.raises(TypeError, match="cannot store a set member of type 'object'"):
        s.add(object())
    assert object() not in s  # hashable but never stored: simply absent
    with pytest.raises(TypeError, match="complex"):
        store.root["t"] = {1, 2j}
    assert "t" not in store.root
    assert s == {1}


def test_json_default_refuses_a_set_as_json_does(store: Any) -> None:
    store.root["s"] = {1}
    with pytest.raises(TypeError, match="Set is not JSON serializable"):
        json.dumps(store.root["s"], default=persist.json_default)
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        json.dumps({1}, default=persist.json_default)


def test_another_process_sees_every_change(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["s"] = {"start"}
        s = store.root["s"]

        def child() -> None:
            with persist.open(path) as other:
                t = other.root["s"]
                assert t == {"start"}
                t.add(("from", "child"))
                t.discard("start")
                t |= {1, 2, 3}

        assert reap_child(fork_child(child)) == 0
        assert s == {("from", "child"), 1, 2, 3}
        s.remove(2)
        code = (
            "import persist, sys\n"
            "with persist.open(sys.argv[1]) as st:\n"
            "    print(sorted(map(repr, st.root['s'])))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == str(sorted(map(repr, {("from", "child"), 1, 3})))
        assert store.check()["leaked_references"] == 0


def _adder(path: str, first: int, n: int) -> None:
    with persist.open(path) as store:
        s = store.root["s"]
        for i in range(first, first + n):
            s.add(i if i % 3 else ("t", i))  # ints on the part lock, tuples store-wide
            if i % 5 == 0:
                s.discard(-1)


def test_processes_adding_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["s"] = {-1}
        n = 2000
        pids = [fork_child(lambda k=k: _adder(path, k * n, n)) for k in range(3)]
        assert [reap_child(pid) for pid in pids] == [0, 0, 0]
        s = store.root["s"]
        want = {i if i % 3 else ("t", i) for i in range(3 * n)}
        assert s == want and len(s) == 3 * n
        assert store.check()["leaked_references"] == 0


def test_iterating_while_the_size_changes_raises(store: Any) -> None:
    store.root["s"] = set(range(10))
    s = store.root["s"]
    it = iter(s)
    next(it)
    s.add(100)
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        next(it)  # at once, as set's iterator
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        next(it)  # and at every later step
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        for x in s:
            s.discard(x)
    # A change that keeps the size is not noticed (as in set).
    assert sorted(s) == sorted(set(s))


def test_lockexcl_and_transactions_make_several_changes_one(store: Any) -> None:
    store.root["a"] = {1, 2, 3}
    store.root["b"] = set()
    a, b = store.root["a"], store.root["b"]
    with a.lockExcl():
        while a:
            b.add(a.pop())
    assert a == set() and b == {1, 2, 3}
    with pytest.raises(KeyError), store.transaction():
        a.add("x")
        b.clear()
        b.remove("missing")
    assert a == set() and b == {1, 2, 3}
    with b.lockShared():
        assert len(b) == 3
    store.check()


def test_updates_that_depend_on_the_members_end_under_changes_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # intersection_update and symmetric_difference_update compute their change from a
    # snapshot and apply it if the set did not move meanwhile; after a few tries they take
    # lockExcl. Another process adds without pause: each still ends, with set's result.
    from persist import _ops

    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["s"] = set(range(100))
        store.root["stop"] = False
        s = store.root["s"]
        r, w = os.pipe()

        def churn() -> None:
            with persist.open(path) as other:
                t = other.root["s"]
                os.write(w, b"r")
                i = 1000
                while not other.root["stop"]:
                    t.add(i)
                    i += 1

        pid = fork_child(churn)
        try:
            assert os.read(r, 1) == b"r"
            for attempts in (3, 0):
                monkeypatch.setattr(_ops, "_CHANGE_ATTEMPTS", attempts)
                s.intersection_update(range(50), range(25, 200))
                assert set(range(25, 50)) <= s and not s & set(range(25))
                s.symmetric_difference_update(range(40))
                assert not s & set(range(25, 40)) and set(range(25)) <= s
                s ^= set(range(25))
                s &= set(range(40, 50))
                # The churn's members (>= 1000) may come back at any time.
                assert {x for x in s.copy() if x < 1000} == set(range(40, 50))
                s |= set(range(100))
        finally:
            store.root["stop"] = True
            assert reap_child(pid) == 0
            os.close(r)
            os.close(w)
        assert store.check()["leaked_references"] == 0


def test_check_and_gc_cover_sets(store: Any) -> None:
    store.root["s"] = {(i, str(i) * 9) for i in range(200)}
    report = store.check()
    assert report["objects"] == 2
    s = store.root["s"]
    for i in range(150):
        s.discard((i, str(i) * 9))
    s.update(range(1000, 1300))
    del s
    assert store.check()["leaked_references"] == 0
    del store.root["s"]
    store.gc()
    after = store.check()
    assert after["objects"] == 1 and after["unreachable_blocks"] == 0, after
    assert "set" not in store.stats()["objects"]


def test_check_refuses_a_set_entry_with_a_value(store_path: Path) -> None:
    # FORMAT.md §10.2: a set's entries have value word 0; one with a value would hold a
    # reference that no release drops.
    from test_hostile import K_SET, parse, rd, wr

    with persist.open(str(store_path)) as st:
        st.root["s"] = {"a", "b", 7}
        st.root["x"] = "a str of its own block"
    data = bytearray(store_path.read_bytes())
    g = parse(bytes(data))
    ((c, t),) = [(c, t) for c, t in g.tables if g.blocks.get(c) == K_SET]
    first_entry = t + 16 + 8 * (rd(data, t) >> 8)
    assert rd(data, first_entry + 16) == 0
    wr(data, first_entry + 16, 3)  # the small int 1
    store_path.write_bytes(bytes(data))
    with persist.open(str(store_path)) as st:
        assert st.root["s"] == {"a", "b", 7}  # members read as they are
        with pytest.raises(persist.CorruptionError, match="set entry 0 has a value word"):
            st.check()
        # Removing the damaged entry refuses (its release would drop a reference that is not
        # the set's), and the change is rolled back whole.
        s = st.root["s"]
        with pytest.raises(persist.CorruptionError, match="a set entry has a value"):
            s.clear()
        assert len(s) == 3
        refused = 0
        for m in list(s):
            try:
                s.discard(m)
            except persist.CorruptionError:
                refused += 1
        assert refused == 1 and len(s) == 1


def test_a_durable_store_keeps_set_changes(store_path: Path) -> None:
    with persist.open(str(store_path), durable=True) as st:
        st.root["s"] = {1}
        s = st.root["s"]
        s.add(("two", 2))
        s.discard(1)
        s |= {3, "x" * 50}
    with persist.open(str(store_path), durable=True) as st:
        assert st.root["s"] == {("two", 2), 3, "x" * 50}
        assert st.check()["leaked_references"] == 0


def test_a_read_only_store_refuses_changes(store_path: Path) -> None:
    with persist.open(str(store_path)) as w:
        w.root["s"] = {1, 2}
    with persist.open(str(store_path), readonly=True) as ro:
        s = ro.root["s"]
        assert s == {1, 2} and 1 in s
        for change in (lambda: s.add(3), lambda: s.discard(1), s.pop, s.clear):
            with pytest.raises(persist.ReadOnlyError):
                change()
        with pytest.raises(persist.ReadOnlyError):
            s |= {5}
        assert s == {1, 2}


def test_dump_and_load_carry_sets(tmp_path: Path) -> None:
    src, dump, dst = tmp_path / "a.db", tmp_path / "a.jsonl", tmp_path / "b.db"
    with persist.open(str(src)) as store:
        shared = {1, 2.5, "x", b"y", (1, (2,)), frozenset({3})}
        # One assignment: the set is one container, named twice.
        store.root.update({"s": shared, "again": [shared]})
        store.root["empty"] = set()
        store.root[frozenset({1})] = {None, True}
    py = [sys.executable, "-m", "persist"]
    subprocess.run([*py, "dump", "-o", str(dump), str(src)], check=True, timeout=120)
    lines = dump.read_text().splitlines()
    assert json.loads(lines[0])["version"] == 4
    assert any('"type":"set"' in line for line in lines)
    subprocess.run([*py, "load", str(dump), str(dst)], check=True, timeout=120)
    with persist.open(str(dst)) as store:
        root = store.root
        assert type(root["s"]) is persist.Set
        assert root["s"] == shared and root["empty"] == set()
        assert root[frozenset({1})] == {None, True}
        root["again"][0].add("one container")
        assert "one container" in root["s"]
        assert store.check()["leaked_references"] == 0
    again = subprocess.run(
        [*py, "dump", str(dst)], check=True, timeout=120, capture_output=True
    ).stdout
    # The same store, but for the one member added after loading.
    assert again.count(b'"type":"set"') == dump.read_bytes().count(b'"type":"set"')


def test_a_hostile_dump_with_a_container_in_a_set_is_refused(tmp_path: Path) -> None:
    dump, dst = tmp_path / "bad.jsonl", tmp_path / "b.db"
    header = '{"format":"persist-dump","version":3,"root":0}\n'
    for bad in ('{"ref":0}', "[1]", '{"set":[1]}'):
        dump.write_text(
            header + '{"id":0,"type":"dict","items":[["s",{"ref":1}]]}\n'
            '{"id":1,"type":"set","members":[1,' + bad + "]}\n"
            '{"end":2}\n'
        )
        r = subprocess.run(
            [sys.executable, "-m", "persist", "load", str(dump), str(dst)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert not dst.exists()


# ---- SIGKILL in the middle of set changes ----------------------------------------------------

MEMBERS = 40


def _universe(x: int) -> Any:
    """Member ``x`` of root['c']: an int (stored in its word) or a tuple (a block of its own)."""
    return x if x % 2 else ("member", x, "." * (x % 7))


def _mover(path: str, seed: int, ready_fd: int) -> None:
    """Moves members between root['a'] and root['b'] in every way a change can take; every
    change keeps their union the whole range and their intersection empty. And single
    changes of root['c'] (on its part lock, or store-wide for a tuple member)."""
    rng = random.Random(seed)
    store = persist.open(path)
    root = store.root
    a, b, c = root["a"], root["b"], root["c"]
    os.write(ready_fd, b"r")
    while True:
        src, dst = (a, b) if rng.random() < 0.5 else (b, a)
        style = rng.randrange(4)
        if style == 0:
            with store.transaction():
                if src:
                    x = src.pop()
                    dst.add(x)
                    root["note"] = "moved " + str(x) * rng.randrange(40)
        elif style == 1:
            with src.lockExcl():
                moving = set(list(src)[: rng.randrange(1, 8)])
                src -= moving
                dst |= moving
        elif style == 2:
            # A transaction that fails half-way: rolled back.
            try:
                with store.transaction():
                    src.clear()
                    raise KeyError("abandoned")
            except KeyError:
                pass
        else:
            x = _universe(rng.randrange(MEMBERS))
            if rng.random() < 0.5:
                c.add(x)
            else:
                c.discard(x)


def test_sets_survive_kills_in_the_middle_of_their_changes(tmp_path: Path) -> None:
    path = str(tmp_path / "sets.db")
    with persist.open(path) as store:
        store.root["a"] = set(range(MEMBERS))
        store.root["b"] = set()
        store.root["c"] = set()
        store.root["note"] = ""
    rng = random.Random(20261206)
    kill_loop(
        lambda seed, w: _mover(path, seed, w),
        rng=rng,
        workers=3,
        kills=150,
        seconds=180,
    )
    with persist.open(path) as store:
        a, b = store.root["a"].to_python(), store.root["b"].to_python()
        c = store.root["c"]
        members = list(c)
        assert len(members) == len(c) == len(set(members))
        assert set(members) <= {_universe(x) for x in range(MEMBERS)}
        assert all(x in c for x in members)
        report = store.check()
        freed = store.gc()
        assert store.check()["unreachable_blocks"] == 0
        assert freed["blocks"] == report["unreachable_blocks"], (freed, report)
    assert a | b == set(range(MEMBERS)) and not a & b, (a, b)
