"""Containers stored and dropped on their parent's part lock (FORMAT.md §10.9): a new record
written into a dict or list, an old record replaced or deleted, while other processes read,
hold and change the same dict. A dropped record is freed only when no process holds a proxy
to it: a held one is kept (store-wide, on the orphan list) until its holder lets go."""

from __future__ import annotations

import os
import random
from pathlib import Path

import persist
from procs import fork_child, reap_child, sequence


def _record(n: int, by: int) -> dict:
    return {"n": n, "by": by, "items": [n, "item " * (n % 9 + 2), (n, by)]}


def test_a_record_replaced_while_another_process_holds_it_stays_readable(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["d"] = {}
    d = store.root["d"]
    d["k"] = _record(1, 0)
    held_r, held_w = os.pipe()
    go_r, go_w = os.pipe()

    def holder() -> None:
        with persist.open(path) as s:
            x = s.root["d"]["k"]
            os.write(held_w, b"h")
            assert os.read(go_r, 1) == b"g"
            # The record left the dict while this proxy held it: still whole.
            assert x.to_python() == _record(1, 0)
            assert x["items"][1] == "item item item "
            del x

    pid = fork_child(holder)
    try:
        assert os.read(held_r, 1) == b"h"
        # Replaced while the child holds it, then deleted while this process holds one: both
        # on the dict's part (the held record pushed on the orphan list there), none
        # store-wide.
        before = sequence(path)
        d["k"] = _record(2, 0)
        mine = d["k"]
        del d["k"]
        moved = sequence(path) - before
        assert mine.to_python() == _record(2, 0)
    finally:
        os.write(go_w, b"g")
        assert reap_child(pid) == 0
    assert moved == 0, f"the sequence moved by {moved}: the drops ran store-wide"
    assert store.check()["orphans"] == 1
    del mine
    d["k"] = _record(3, 0)
    report = store.check()
    assert report["orphans"] == 0 and report["unreachable_blocks"] == 0, report
    assert store.gc()["blocks"] == 0
    store.close()


def _replacer(path: str, me: int, rounds: int) -> None:
    with persist.open(path) as s:
        d = s.root["d"]
        for n in range(rounds):
            k = f"w{me}k{n % 8}"
            if n % 5 == 4:
                if k in d:
                    del d[k]
            else:
                d[k] = _record(n, me)
        del d


def _reader(path: str, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    with persist.open(path) as s:
        d = s.root["d"]
        kept = []
        for _ in range(rounds):
            rec = d.get(f"w{rng.randrange(2)}k{rng.randrange(8)}")
            if rec is None:
                continue
            # A record found is whole, and stays whole while held (its key replaced since).
            kept.append((rec, rec.to_python()))
            if len(kept) > 16:
                rec, seen = kept.pop(0)
                assert rec.to_python() == seen == _record(seen["n"], seen["by"])
        del d, kept, rec


def test_records_replaced_and_deleted_beside_readers_that_hold_them(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["d"] = {}
    pids = [fork_child(lambda me=me: _replacer(path, me, 6000)) for me in range(2)]
    pids += [fork_child(lambda: _reader(path, 7, 6000))]
    assert [reap_child(p) for p in pids] == [0, 0, 0]
    d = store.root["d"]
    for me in range(2):
        for j in range(8):
            # The last write of each key: round 5992 + j (a put unless it is a delete).
            n = 5992 + j
            if n % 5 == 4:
                assert f"w{me}k{j}" not in d
            else:
                assert d[f"w{me}k{j}"].to_python() == _record(n, me)
    report = store.check()
    assert report["orphans"] == 0 and report["unreachable_blocks"] == 0, report
    assert report["leaked_references"] == 0, report
    store.close()


def test_a_record_shared_by_two_keys_is_dropped_store_wide_and_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["d"] = {}
        d = store.root["d"]
        d["a"] = _record(1, 0)
        d["b"] = d["a"]  # one record, two references
        other = persist.open(path)  # a second participant: parts are on
        d["a"] = _record(2, 0)
        assert d["b"].to_python() == _record(1, 0)
        del d["b"]
        assert store.check()["unreachable_blocks"] == 0
        other.close()


def _grouper(path: str, me: int, n: int) -> None:
    with persist.open(path) as s:
        groups = s.root["groups"]
        for i in range(n):
            v = me * n + i
            # The group's list is made by whichever process gets there first: one atomic
            # change of the dict, on its part.
            groups.setdefault(f"g{v % 10}", []).append(v)
        del groups


def test_setdefault_groups_from_processes_run_on_the_dicts_part(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    store.root["groups"] = {}
    # Records stored, replaced and deleted beside them, on the part too.
    store.root["d"] = {}
    n = 3000
    before = sequence(path)
    pids = [fork_child(lambda me=me: _grouper(path, me, n)) for me in range(3)]
    pids.append(fork_child(lambda: _replacer(path, 0, n)))
    assert [reap_child(p) for p in pids] == [0, 0, 0, 0]
    moved = sequence(path) - before
    groups = store.root["groups"].to_python()
    assert sorted(groups) == [f"g{j}" for j in range(10)]
    assert sorted(v for g in groups.values() for v in g) == list(range(3 * n))
    for name, g in groups.items():
        assert all(v % 10 == int(name[1:]) for v in g)
    # Each worker's open and close moves it (a few changes each); 3 * 3000 setdefaults and
    # 3000 records run store-wide would have moved it by 24,000 more.
    assert moved < 200, f"the sequence moved by {moved}: changes ran store-wide"
    report = store.check()
    assert report["orphans"] == 0 and report["unreachable_blocks"] == 0, report
    store.close()


def test_an_update_releasing_more_than_a_part_change_logs_runs_store_wide(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store, persist.open(path):  # two participants: parts on
        store.root["d"] = {}
        d = store.root["d"]
        d.update({k: {"n": k, "l": [k]} for k in range(2000)})
        before = sequence(path)
        # 100 records replaced: released on the part. 2000: more log entries than a part
        # change runs before its commit point, so the whole update runs store-wide.
        d.update({k: {"n": -k, "l": [k]} for k in range(100)})
        assert sequence(path) == before
        d.update({k: {"n": k + 1, "l": [k]} for k in range(2000)})
        assert sequence(path) == before + 2
        assert d.to_python() == {k: {"n": k + 1, "l": [k]} for k in range(2000)}
        report = store.check()
        assert report["unreachable_blocks"] == 0 and report["orphans"] == 0, report


def _producer(path: str, me: int, n: int) -> None:
    with persist.open(path) as s:
        q = s.root["q"]
        for i in range(n):
            q.append({"id": me * n + i, "payload": "p" * (i % 50 + 8), "tags": [me, i]})
        del q


def _consumer(path: str, total: int) -> None:
    with persist.open(path) as s:
        q, done, left = s.root["q"], s.root["done"], s.root["left"]
        while left.incr("n", -1) >= 0:
            # A record popped comes back as a proxy that holds it: popped on the list's part,
            # the record on the orphan list until the proxy goes.
            job = q.popleft(block=True, timeout=30)
            assert job["payload"] == "p" * (job["tags"][1] % 50 + 8)
            done.append(job["id"])
            del job
        del q, done, left


def test_records_popped_as_jobs_are_each_taken_once(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = persist.open(path)
    n = 1500
    store.root["q"] = []
    store.root["done"] = []
    store.root["left"] = {"n": 2 * n}
    before = sequence(path)
    pids = [fork_child(lambda me=me: _producer(path, me, n)) for me in range(2)]
    pids += [fork_child(lambda: _consumer(path, 2 * n)) for _ in range(2)]
    assert [reap_child(p) for p in pids] == [0, 0, 0, 0]
    # Each popped record, once its proxy went, was collected on the orphan list's own part:
    # 3,000 collections run store-wide would have moved the sequence by 6,000.
    moved = sequence(path) - before
    assert moved < 200, f"the sequence moved by {moved}: collections ran store-wide"
    assert sorted(store.root["done"]) == list(range(2 * n))
    assert len(store.root["q"]) == 0
    report = store.check()
    assert report["orphans"] == 0 and report["unreachable_blocks"] == 0, report
    assert report["leaked_references"] == 0, report
    store.close()
