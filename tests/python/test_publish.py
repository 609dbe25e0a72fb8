"""Publications: a new inline value for an existing key (``d[k] = 5``, ``d.incr(k)``) written by
one CAS on its value word, with no lock, while other processes are attached (issue 12).

Checked with real processes: a reader never keeps a snapshot that no serial order explains
(two keys written one after the other are never seen with only the second one new); a dict
that grows and shrinks under its own part lock never loses an increment published beside it;
``Store.wait`` wakes for a publication; publishers SIGKILLed at random neither lose the other
processes' increments nor leave anything that blocks a lockExcl section, an insert or a check.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import persist
from procs import fork_child, kill_child, kill_loop, reap_child


def test_a_reader_never_sees_the_second_of_two_publications_without_the_first(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    rounds = 20_000
    with persist.open(path) as store:
        store.root["d"] = {"a": 0, "b": 0, "pad": 0}
    go_r, go_w = os.pipe()

    def writer() -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for i in range(1, rounds + 1):
                d["a"] = i
                d.incr("b")

    def reader(how: str) -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            seen = 0
            while seen < rounds:
                # Each is one read (the live views' iterators read step by step, as a dict's
                # do, and are no snapshot).
                snap = d.to_python() if how == "to_python" else d.copy()
                # "a" is written first: a snapshot never holds a newer "b" than "a".
                assert snap["a"] >= snap["b"], snap
                seen = snap["b"]

    readers = ("to_python", "copy", "to_python")
    pids = [fork_child(writer)] + [fork_child(lambda h=h: reader(h)) for h in readers]
    os.write(go_w, b"x" * len(pids))
    codes = [reap_child(p) for p in pids]
    assert codes == [0, 0, 0, 0]
    with persist.open(path) as store:
        assert store.root["d"].to_python() == {"a": rounds, "b": rounds, "pad": 0}


def test_increments_published_beside_a_growing_and_shrinking_dict_are_all_kept(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    n = 30_000
    with persist.open(path) as store:
        store.root["d"] = {"c": 0}
    go_r, go_w = os.pipe()

    def counter() -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for _ in range(n):
                d.incr("c")

    def churn(me: int) -> None:
        # Inserts and deletes: the table grows and is rebuilt under the dict's part lock.
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for i in range(6_000):
                d[f"k{me}-{i}"] = i
                if i % 3 == 0:
                    del d[f"k{me}-{i // 2}"]

    pids = [fork_child(counter), fork_child(counter), fork_child(lambda: churn(0))]
    pids.append(fork_child(lambda: churn(1)))
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0, 0, 0, 0]
    with persist.open(path) as store:
        d = store.root["d"]
        assert d["c"] == 2 * n
        for me in (0, 1):
            deleted = {i // 2 for i in range(0, 6_000, 3)}
            for i in range(6_000):
                assert (f"k{me}-{i}" in d) == (i not in deleted)
        assert store.check()["leaked_references"] == 0


def test_store_wait_wakes_for_a_publication_in_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["d"] = {"k": 0, "n": 0}
        d = store.root["d"]
        for how in ("set", "incr"):
            token = store.change_token(d)

            def change(how: str = how) -> None:
                with persist.open(path) as other:
                    time.sleep(0.2)
                    if how == "set":
                        other.root["d"]["k"] = 1
                    else:
                        other.root["d"].incr("n")
                    # Stay attached until the parent has seen it.
                    time.sleep(0.5)

            pid = fork_child(change)
            try:
                got = store.wait(d, since=token, timeout=10)
                assert got is not None and got != token
            finally:
                assert reap_child(pid) == 0
        assert d.to_python() == {"k": 1, "n": 1}


def test_killed_publishers_lose_no_other_increment_and_block_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["d"] = {f"c{i}": 0 for i in range(4)}
    report_r, report_w = os.pipe()

    def worker(seed: int, ready: int) -> None:
        rng = random.Random(seed)
        with persist.open(path) as store:
            d = store.root["d"]
            os.write(ready, b"r")
            while True:
                k = f"c{rng.randrange(4)}"
                if rng.random() < 0.5:
                    d.incr(k)
                else:
                    d[k] = rng.randrange(1000)

    def steady() -> None:
        # A survivor beside the killed ones: its own key, published throughout.
        with persist.open(path) as store:
            d = store.root["d"]
            d["mine"] = 0
            for _ in range(40_000):
                d.incr("mine")
            os.write(report_w, b"done")

    pid = fork_child(steady)
    kill_loop(worker, rng=random.Random(7), workers=3, kills=60, seconds=120)
    assert reap_child(pid) == 0
    assert os.read(report_r, 4) == b"done"
    with persist.open(path) as store:
        d = store.root["d"]
        assert d["mine"] == 40_000
        # Whatever the dead left: sections, inserts and a check all go through.
        d.lockExcl(timeout=10)
        try:
            d["after"] = 1
        finally:
            d.unlock()
        d["new key"] = 2
        report = store.check(timeout=10)
        assert report["leaked_references"] == 0


def test_a_published_value_outlives_its_publisher(tmp_path: Path) -> None:
    # A publisher killed after its publication: the value stays, and recovery undoes nothing.
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["d"] = {"k": 0}
        d = store.root["d"]
        r, w = os.pipe()

        def publisher() -> None:
            with persist.open(path) as other:
                other.root["d"]["k"] = 42
                os.write(w, b"x")
                time.sleep(60)

        pid = fork_child(publisher)
        assert os.read(r, 1) == b"x"
        kill_child(pid)
        assert d["k"] == 42
        d["k"] = 43  # a change after the dead one: recovers it first
        assert d["k"] == 43
