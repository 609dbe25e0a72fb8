"""Inserts without a lock: ``d[k] = v`` for a key the dict does not hold, where the key and the
value are small values (None, a bool, an int of up to 62 bits, a str of up to 7 bytes) and the
table has room, is an insert under the dict's insert claim with no lock, while other
processes are attached (issue 12).

Checked with real processes: inserts of disjoint keys from several processes beside updates
and deletes are each kept once; inserts of the same keys from two processes leave each key
once, with one of the values; inserters SIGKILLed at random leave every insert whole or absent
(each killed worker's keys are a prefix of what it inserted), ``len()`` equal to the keys
there, nothing for ``check()`` to report, and no claim behind that keeps later inserts on the
slow path.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, gc_takes_what_kills_left, kill_loop, reap_child

# Key i of worker w is the int w * STRIDE + i (small ints: inline words).
STRIDE = 1_000_000


def assert_prefixes(by: dict[int, list[int]]) -> None:
    """Each killed worker inserted (or added) its items 0, 1, 2... one after another, so what
    is there of each is a prefix of them."""
    for seed, got in by.items():
        assert sorted(got) == list(range(len(got))), (seed, sorted(got)[:20])


def run_together(workers: list, go_r: int, go_w: int) -> None:
    pids = [fork_child(w) for w in workers]
    os.write(go_w, b"x" * len(pids))
    assert [reap_child(p) for p in pids] == [0] * len(pids)


def test_inserts_from_several_processes_are_each_kept_once(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    n = 20_000
    with persist.open(path) as store:
        store.root["d"] = {"x": 0}
    go_r, go_w = os.pipe()

    def inserter(w: int) -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for i in range(n):
                d[w * STRIDE + i] = i
                if i % 7 == 0:
                    # An update and a delete of this worker's own keys between inserts.
                    d[w * STRIDE + i] = -i
                if i % 11 == 0:
                    del d[w * STRIDE + i]

    def updater() -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for i in range(n):
                d["x"] = i
                assert len(d) >= 1

    def str_inserter() -> None:
        # Keys of more than 7 bytes: each insert allocates the key's block.
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for i in range(n):
                d[f"key {i:08d}"] = i

    workers = [lambda w=w: inserter(w) for w in (1, 2, 3)] + [updater, str_inserter]
    run_together(workers, go_r, go_w)
    with persist.open(path) as store:
        d = store.root["d"].to_python()
        want: dict[object, int] = {"x": n - 1}
        want.update({f"key {i:08d}": i for i in range(n)})
        for w in (1, 2, 3):
            for i in range(n):
                if i % 11 != 0:
                    want[w * STRIDE + i] = -i if i % 7 == 0 else i
        assert d == want
        assert len(store.root["d"]) == len(want)
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_inserts_of_the_same_keys_from_two_processes_leave_each_key_once(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    n = 20_000
    with persist.open(path) as store:
        store.root["d"] = {}
    go_r, go_w = os.pipe()

    def inserter(w: int) -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            order = list(range(n))
            random.Random(w).shuffle(order)
            for i in order:
                d[i] = w

    run_together([lambda w=w: inserter(w) for w in (1, 2)], go_r, go_w)
    with persist.open(path) as store:
        d = store.root["d"]
        items = list(d.items())
        assert sorted(k for k, _ in items) == list(range(n))
        assert {v for _, v in items} <= {1, 2}
        assert len(d) == n
        assert store.check()["leaked_references"] == 0


# What a killed inserter inserts, and how (worker, item) is read back: small ints (nothing to
# allocate), a str key of more than 7 bytes (its block allocated inside the insert), a str
# value of more than 7 bytes, or both.
INSERTS: dict[
    str, tuple[Callable[[int, int], tuple[Any, Any]], Callable[[Any, Any], tuple[int, int]]]
] = {
    "ints": (
        lambda seed, i: (seed * STRIDE + i, i),
        lambda k, v: (k // STRIDE, v if k % STRIDE == v else -1),
    ),
    "str key": (
        lambda seed, i: (f"worker {seed} key {i}", i),
        lambda k, v: (int(k.split()[1]), v if int(k.split()[3]) == v else -1),
    ),
    "str value": (
        lambda seed, i: (seed * STRIDE + i, f"value {i:08d}"),
        lambda k, v: (k // STRIDE, int(v.split()[1]) if k % STRIDE == int(v.split()[1]) else -1),
    ),
    # Both: two blocks in one insert, the value's named by a second journal.
    "str key and value": (
        lambda seed, i: (f"worker {seed} key {i}", f"value {i:08d}"),
        lambda k, v: (
            int(k.split()[1]),
            int(v.split()[1]) if int(k.split()[3]) == int(v.split()[1]) else -1,
        ),
    ),
}


@pytest.mark.parametrize("kind", sorted(INSERTS))
def test_killed_inserters_leave_each_insert_whole_or_absent(tmp_path: Path, kind: str) -> None:
    path = str(tmp_path / "s.db")
    make, parse = INSERTS[kind]
    with persist.open(path) as store:
        store.root["d"] = {}

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            os.write(ready, b"r")
            i = 0
            while True:
                k, v = make(seed, i)
                d[k] = v
                i += 1

    kill_loop(worker, rng=random.Random(23), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        d = store.root["d"]
        items = list(d.items())
        by: dict[int, list[int]] = {}
        for k, v in items:
            seed, i = parse(k, v)
            assert i >= 0, (k, v)
            by.setdefault(seed, []).append(i)
        assert_prefixes(by)
        assert len(d) == len(items)
        # An insert without a lock allocates nothing (but a key's or value's block, named by its
        # journal): what gc may find comes from the table's growths on the dict's part (a new
        # table, the old one freed after the commit).
        gc_takes_what_kills_left(store)
        assert list(d.items()) == items
        # No claim was left behind: inserts still run, and are counted.
        before = len(d)
        d[-1] = "last"
        assert len(d) == before + 1
        assert d[-1] == "last"


def test_set_adds_from_several_processes_are_each_kept_once(tmp_path: Path) -> None:
    # A set's add is an insert without a lock too (a member that is a small value or a str):
    # three processes add overlapping members, each member is in the set once.
    path = str(tmp_path / "s.db")
    n = 10_000
    with persist.open(path) as store:
        store.root["s"] = set()
    go_r, go_w = os.pipe()

    def adder(w: int) -> None:
        with persist.open(path) as store:
            s = store.root["s"]
            os.read(go_r, 1)
            for i in range(w, n, 2):
                s.add(i)
                s.add(f"member {i:08d}")

    run_together([lambda w=w: adder(w) for w in (0, 1, 0)], go_r, go_w)
    with persist.open(path) as store:
        s = store.root["s"]
        want = set(range(n)) | {f"member {i:08d}" for i in range(n)}
        assert set(s) == want
        assert len(s) == len(want)
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_killed_set_adders_leave_each_member_whole_or_absent(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["s"] = set()

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            s = store.root["s"]
            os.write(ready, b"r")
            i = 0
            while True:
                s.add(f"worker {seed} member {i}" if i % 2 else seed * STRIDE + i)
                i += 1

    kill_loop(worker, rng=random.Random(29), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        s = store.root["s"]
        members = list(s)
        by: dict[int, list[int]] = {}
        for m in members:
            if isinstance(m, str):
                _, seed, _, i = m.split()
                by.setdefault(int(seed), []).append(int(i))
            else:
                by.setdefault(m // STRIDE, []).append(m % STRIDE)
        assert_prefixes(by)
        assert len(s) == len(members)
        # As for dicts: only the table growths' allocation windows are left to gc.
        gc_takes_what_kills_left(store)
        assert sorted(map(str, s)) == sorted(map(str, members))
        s.add("one more")
        assert "one more" in s and len(s) == len(members) + 1


def test_set_discards_pass_members_between_processes_one_at_a_time(tmp_path: Path) -> None:
    # A set's discard of a small member is a delete without a lock. Members are tokens: a
    # process that removes one holds it (no other remove of it succeeds) until it adds it
    # back, so each holder finds its token absent, and at the end every token is back.
    path = str(tmp_path / "s.db")
    tokens = 64
    with persist.open(path) as store:
        store.root["s"] = set(range(tokens))
        store.root["taken"] = [0, 0, 0]
    go_r, go_w = os.pipe()

    def passer(w: int) -> None:
        rng = random.Random(w)
        taken = 0
        with persist.open(path) as store:
            s = store.root["s"]
            os.read(go_r, 1)
            for _ in range(20_000):
                m = rng.randrange(tokens)
                try:
                    s.remove(m)
                except KeyError:
                    continue
                taken += 1
                # Ours until we add it back: nobody else can take it meanwhile.
                assert m not in s
                s.discard(m)  # not a member: changes nothing
                s.add(m)
            store.root["taken"][w] = taken

    run_together([lambda w=w: passer(w) for w in range(3)], go_r, go_w)
    with persist.open(path) as store:
        s = store.root["s"]
        assert set(s) == set(range(tokens))
        assert len(s) == tokens
        assert min(store.root["taken"]) > 0
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_killed_set_discarders_leave_each_member_whole_or_absent(tmp_path: Path) -> None:
    # Workers remove each of their own members in turn and add it back; killed anywhere, a
    # worker leaves its members all there but at most the one it held, and the set counted
    # right.
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["s"] = set()

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            s = store.root["s"]
            mine = [seed * STRIDE + i for i in range(50)]
            for m in mine:
                s.add(m)
            os.write(ready, b"r")
            while True:
                for m in mine:
                    s.remove(m)
                    s.add(m)

    kill_loop(worker, rng=random.Random(31), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        s = store.root["s"]
        members = list(s)
        by: dict[int, list[int]] = {}
        for m in members:
            by.setdefault(m // STRIDE, []).append(m % STRIDE)
        for seed, got in by.items():
            # All of its 50 but at most the one it held when killed (or fewer if it was
            # killed while still adding them: then a prefix).
            missing = set(range(50)) - set(got)
            assert len(missing) <= 1 or sorted(got) == list(range(len(got))), (seed, missing)
        assert len(s) == len(members)
        gc_takes_what_kills_left(store)
        assert sorted(s) == sorted(members)
        s.discard(members[0])
        assert members[0] not in s and len(s) == len(members) - 1


def test_dict_pops_and_increments_of_the_same_keys_lose_nothing(tmp_path: Path) -> None:
    # A dict's pop of a small int value is a delete without a lock, and an increment of one is
    # a value publication: they race on the same keys. Each process pops a key and adds what
    # it popped back with incr (a missing key is inserted), or increments a key by one. A pop
    # that missed an increment, or an increment lost in a deleted entry, would change the sum.
    path = str(tmp_path / "s.db")
    keys = 16
    with persist.open(path) as store:
        store.root["d"] = dict.fromkeys(range(keys), 100)
        store.root["ones"] = [0, 0, 0]
        store.root["pops"] = [0, 0, 0]
    go_r, go_w = os.pipe()

    def racer(w: int) -> None:
        rng = random.Random(w)
        ones = pops = 0
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for _ in range(15_000):
                k = rng.randrange(keys)
                if rng.random() < 0.5:
                    d.incr(k)
                    ones += 1
                    continue
                v = d.pop(k, None)
                if v is None:
                    continue
                pops += 1
                d.incr(k, v)
            store.root["ones"][w] = ones
            store.root["pops"][w] = pops

    run_together([lambda w=w: racer(w) for w in range(3)], go_r, go_w)
    with persist.open(path) as store:
        d = store.root["d"]
        assert sorted(d) == list(range(keys))
        assert len(d) == keys
        assert sum(d.values()) == 100 * keys + sum(store.root["ones"])
        assert min(store.root["pops"]) > 0
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_dict_deletes_pass_keys_between_processes_one_at_a_time(tmp_path: Path) -> None:
    # `del d[k]` of a small key and value is a delete without a lock: keys are tokens, as in
    # the set test above, and each holder puts its token back with the next value.
    path = str(tmp_path / "s.db")
    tokens = 64
    with persist.open(path) as store:
        store.root["d"] = dict.fromkeys(range(tokens), 0)
        store.root["taken"] = [0, 0, 0]
    go_r, go_w = os.pipe()

    def passer(w: int) -> None:
        rng = random.Random(w)
        taken = 0
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for _ in range(15_000):
                k = rng.randrange(tokens)
                v = d.get(k)
                if v is None:
                    continue
                try:
                    del d[k]
                except KeyError:
                    continue
                taken += 1
                # Ours until we put it back: nobody else can delete it meanwhile.
                assert k not in d
                assert d.pop(k, "gone") == "gone"
                d[k] = v + 1
            store.root["taken"][w] = taken

    run_together([lambda w=w: passer(w) for w in range(3)], go_r, go_w)
    with persist.open(path) as store:
        d = store.root["d"]
        assert sorted(d) == list(range(tokens))
        assert len(d) == tokens
        assert min(store.root["taken"]) > 0
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_killed_dict_poppers_leave_each_key_whole_or_absent(tmp_path: Path) -> None:
    # Workers pop each of their own keys in turn and put it back with the next value; killed
    # anywhere, a worker leaves its keys all there but at most the one it held, each with a
    # value one of the two its last round could leave, and the dict counted right.
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["d"] = {}

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            mine = [seed * STRIDE + i for i in range(50)]
            for k in mine:
                d[k] = 0
            os.write(ready, b"r")
            while True:
                for k in mine:
                    d[k] = d.pop(k) + 1

    kill_loop(worker, rng=random.Random(37), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        d = store.root["d"]
        items = dict(d.items())
        by: dict[int, dict[int, int]] = {}
        for k, v in items.items():
            by.setdefault(k // STRIDE, {})[k % STRIDE] = v
        for seed, got in by.items():
            missing = set(range(50)) - set(got)
            assert len(missing) <= 1 or sorted(got) == list(range(len(got))), (seed, missing)
            # Rounds run over the keys in order: values fall by at most one along them.
            values = [got[i] for i in sorted(got)]
            assert max(values) - min(values) <= 1, (seed, values)
        assert len(d) == len(items)
        gc_takes_what_kills_left(store)
        assert dict(d.items()) == items
        k = next(iter(items))
        assert d.pop(k) == items[k] and k not in d and len(d) == len(items) - 1


def _value_of(w: int, i: int) -> Any:
    # Each writer's i-th value: a long str, a float or a small int, in turn (blocks and words).
    return (f"writer {w} value {i:08d}", w + i / 4, i)[i % 3]


def _well_formed(v: Any) -> bool:
    if isinstance(v, str):
        parts = v.split()
        return len(parts) == 4 and parts[0] == "writer" and parts[2] == "value"
    return isinstance(v, (int, float))


def test_block_values_replaced_from_several_processes_read_whole(tmp_path: Path) -> None:
    # `d[k] = v` for a present key, v a long str or a float (a block), is a publication that
    # swaps the new block in and frees the old one: readers in another process see each value
    # whole, never a freed block's bytes, and nothing leaks.
    path = str(tmp_path / "s.db")
    keys = 8
    with persist.open(path) as store:
        store.root["d"] = {k: "initial value, a long str" for k in range(keys)}
        store.root["reads"] = 0
    go_r, go_w = os.pipe()

    def writer(w: int) -> None:
        rng = random.Random(w)
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for i in range(20_000):
                d[rng.randrange(keys)] = _value_of(w, i)

    def reader() -> None:
        rng = random.Random(99)
        reads = 0
        with persist.open(path) as store:
            d = store.root["d"]
            os.read(go_r, 1)
            for _ in range(30_000):
                v = d[rng.randrange(keys)]
                assert v == "initial value, a long str" or _well_formed(v), v
                reads += 1
            store.root["reads"] = reads

    run_together([lambda: writer(0), lambda: writer(1), reader], go_r, go_w)
    with persist.open(path) as store:
        assert store.root["reads"] == 30_000
        d = store.root["d"]
        assert len(d) == keys and all(_well_formed(v) for v in d.values())
        report = store.check()
        assert report["unreachable_blocks"] == 0, report
        assert report["leaked_references"] == 0, report


def test_killed_block_value_replacers_leave_old_or_new_values(tmp_path: Path) -> None:
    # Workers replace the values of their own keys with long strs, floats and ints in turn;
    # killed anywhere, each key holds one of the values its worker wrote, and gc frees at most
    # what the kills left (an old block taken out but not yet named for freeing).
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["d"] = {}

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            d = store.root["d"]
            mine = [seed * STRIDE + j for j in range(20)]
            for k in mine:
                d[k] = _value_of(seed, 0)
            os.write(ready, b"r")
            i = 0
            while True:
                i += 1
                for k in mine:
                    d[k] = _value_of(seed, i)

    kill_loop(worker, rng=random.Random(41), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        d = store.root["d"]
        items = dict(d.items())
        assert all(_well_formed(v) for v in items.values()), items
        assert len(d) == len(items)
        # A kill between a swap and the old block's journal leaves that block (runs here
        # showed none left; three more than the allocator's own windows allowed).
        gc_takes_what_kills_left(store, at_most=6)
        assert dict(d.items()) == items


class Job(persist.pbase):
    """A stored object whose attributes are replaced, added and removed without a lock."""


def test_killed_object_attribute_changers_leave_each_attribute_whole(tmp_path: Path) -> None:
    # An object's attributes are a dict's entries: a new str or int for an attribute, a new
    # attribute, and `del obj.attr` are publications too. Workers, each on an object of its
    # own, replace `state` (a long str, a float or an int in turn), count `steps`, and add and
    # remove `note`; killed anywhere, each object holds values its worker wrote, and gc frees
    # nothing a publication left.
    path = str(tmp_path / "s.db")
    with persist.open(path) as store:
        store.root["jobs"] = {}

    def worker(seed: int, ready: int) -> None:
        with persist.open(path) as store:
            job = Job()
            job.state = _value_of(seed, 0)
            job.steps = 0
            store.root["jobs"][seed] = job
            job = store.root["jobs"][seed]
            os.write(ready, b"r")
            i = 0
            while True:
                i += 1
                job.state = _value_of(seed, i)
                job.steps += 1
                if i % 2:
                    job.note = i
                else:
                    del job.note

    kill_loop(worker, rng=random.Random(43), workers=3, kills=60, seconds=120)
    with persist.open(path) as store:
        jobs = store.root["jobs"]
        seen = {}
        for seed, job in jobs.items():
            assert _well_formed(job.state), job.state
            assert isinstance(job.steps, int) and job.steps >= 0
            note = getattr(job, "note", None)
            assert note is None or (isinstance(note, int) and note % 2 == 1), note
            seen[seed] = (job.state, job.steps, note)
        gc_takes_what_kills_left(store)
        assert {s: (j.state, j.steps, getattr(j, "note", None)) for s, j in jobs.items()} == seen
        report = store.check()
        assert report["leaked_references"] == 0, report
