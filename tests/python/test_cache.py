"""persist.Cache: a stored dict whose entries expire (per-key ttl on CLOCK_REALTIME, the clock
of time.time()) and that evicts least recently used entries at max_entries / max_bytes.

Proven here against real store files: the dict protocol; expiry seen by every reader at once
(a second process; four processes reading while keys expire, each read checked against the
exact expiry time with the reader's own clock readings around it, so no timing margin is
needed); the limits never exceeded after a change returns, with four processes inserting at
once; the recency order; SIGKILLs in the middle of cache changes; dump/load and check.
"""

from __future__ import annotations

import collections.abc
import copy
import json
import math
import os
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, kill_loop, reap_child


def _cache(store: Any, **opts: Any) -> Any:
    store.root["c"] = persist.Cache(**opts)
    return store.root["c"]


def _wait_past(t: float) -> None:
    """Sleeps until time.time() is past ``t`` (the expiry clock)."""
    while time.time() <= t:
        time.sleep(max(0.001, t - time.time()))


# ---- the description, and the dict protocol -------------------------------------------------


def test_an_unstored_cache_describes_options_and_is_used_once_stored(store: Any) -> None:
    d = persist.Cache(ttl=1.5, max_entries=3, max_bytes=1000)
    assert (d.ttl, d.max_entries, d.max_bytes) == (1.5, 3, 1000)
    assert repr(d) == "persist.Cache(ttl=1.5, max_entries=3, max_bytes=1000)"
    assert d == d and d != {} and d != persist.Cache(ttl=1.5)
    with pytest.raises(TypeError, match="not stored yet"):
        len(d)
    with pytest.raises(TypeError, match="not stored yet"):
        d["a"] = 1
    store.root["c"] = d
    c = store.root["c"]
    assert isinstance(c, persist.Cache) and c is not d
    assert (c.ttl, c.max_entries, c.max_bytes) == (1.5, 3, 1000)
    assert c == {} and len(c) == 0
    assert persist.Cache().ttl is None and persist.Cache().max_entries is None
    for bad in ({"ttl": 0}, {"ttl": -1}, {"ttl": math.nan}, {"max_entries": 0}, {"max_bytes": -5}):
        with pytest.raises(ValueError):
            persist.Cache(**bad)


def test_a_cache_behaves_like_a_dict(store: Any) -> None:
    c = _cache(store)
    ref: dict = {}
    for k, v in [("a", 1), (("t", 1), [1, 2]), (3, {"x": None}), (2.5, "s" * 50), ("a", 2)]:
        c[k] = v
        ref[k] = v
    assert isinstance(c, collections.abc.MutableMapping)
    assert c == ref and ref == c and not (c != ref)
    assert len(c) == len(ref) and bool(c)
    assert list(c) == list(ref) and list(c.keys()) == list(ref.keys())
    assert list(c.values()) == list(ref.values())
    assert list(c.items()) == list(ref.items())
    assert repr(c) == repr(ref)
    assert list(reversed(c)) == list(reversed(ref))
    assert c.get("missing") is None and c.get("missing", 7) == 7
    assert "a" in c and "zz" not in c
    with pytest.raises(TypeError, match="unhashable"):
        [1] in c  # noqa: B015 - as dict: an unhashable key raises
    with pytest.raises(KeyError) as e:
        c[("t", 2)]
    assert e.value.args == (("t", 2),)
    assert c.pop("a") == 2 and c.pop("a", "d") == "d"
    with pytest.raises(KeyError):
        c.pop("a")
    del ref["a"]
    with pytest.raises(KeyError):
        del c["a"]
    assert c.setdefault("n", 5) == 5 and c.setdefault("n", 6) == 5
    ref["n"] = 5
    c.update({"u": 1}, v=2)
    c.update([("w", 3)])
    c |= {"x": 4}
    ref.update(u=1, v=2, w=3, x=4)
    assert c == ref
    assert c | {"y": 0} == ref | {"y": 0} and {"y": 0} | c == {"y": 0} | ref
    assert c.popitem() == ref.popitem()
    assert c.copy() == ref and type(c.copy()) is dict
    assert copy.copy(c) == ref and copy.deepcopy(c) == ref and c.to_python() == ref
    with pytest.raises(TypeError):
        pickle.dumps(c)
    with pytest.raises(TypeError):
        c[[1]] = 1
    with pytest.raises(TypeError, match="object"):
        c["k"] = object()
    c.clear()
    assert c == {} and len(c) == 0 and c.size_bytes == 0
    assert store.check()["leaked_references"] == 0


def test_json_of_a_cache_is_its_live_entries(store: Any) -> None:
    c = _cache(store)
    c["a"] = [1, 2]
    c.set("gone", 1, ttl=0.001)
    _wait_past(time.time() + 0.002)
    assert json.dumps(c, default=persist.json_default) == '{"a": [1, 2]}'


# ---- expiry ----------------------------------------------------------------------------------


def test_expired_entries_are_absent_for_every_read(store: Any) -> None:
    c = _cache(store, ttl=3600)
    t0 = time.time()
    c["keep"] = "default ttl"
    c.set("forever", 1, ttl=math.inf)
    c.set("short", [1, 2, 3], ttl=0.05)
    c.set(("t", 1), "x" * 100, ttl=0.05)
    t1 = time.time()
    assert t0 + 3600 <= c.expires_at("keep") <= t1 + 3600 + 1e-6
    assert c.expires_at("forever") is None
    short_expiry = t1 + 0.05
    if time.time() < t1 + 0.04:  # unless the machine stalled past their expiry
        assert len(c) == 4 and "short" in c
        short_expiry = max(c.expires_at("short"), c.expires_at(("t", 1)))
    bytes_before = c.size_bytes
    _wait_past(short_expiry)
    assert "short" not in c and c.get("short") is None and c.peek(("t", 1)) is None
    with pytest.raises(KeyError):
        c["short"]
    with pytest.raises(KeyError):
        c.expires_at("short")
    assert len(c) == 2 and set(c) == {"keep", "forever"}
    assert c == {"keep": "default ttl", "forever": 1}
    assert dict(c.items()) == {"keep": "default ttl", "forever": 1}
    assert c.pop("short", "absent") == "absent"  # reclaimed on the way
    assert c.touch(("t", 1)) is False
    assert c.size_bytes < bytes_before and c.expire() == 0
    # touch gives a new expiry; expire() reclaims everything expired at once.
    c.set("a", 1, ttl=60)
    c.set("b", 2, ttl=0.05)
    b_expiry = time.time() + 0.05
    assert c.touch("a", ttl=3600) is True and c.expires_at("a") > time.time() + 3000
    _wait_past(b_expiry)
    assert c.expire() == 1 and set(c) == {"keep", "forever", "a"}
    report = store.check()
    assert report["leaked_references"] == 0 and report["unreachable_blocks"] == 0


def test_writes_reclaim_expired_entries_without_a_full_sweep(store: Any) -> None:
    c = _cache(store)
    for i in range(200):
        c.set(i, "v" * 30, ttl=0.02)
    _wait_past(time.time() + 0.03)
    assert len(c) == 0 and c.size_bytes > 0
    # Each set looks at 8 entries from where the last one stopped: 10 sets reclaim at most 80
    # of the 200 expired ones, 40 sets (320 looks) all of them.
    store.root["fresh"] = persist.Cache()
    fresh = store.root["fresh"]
    for i in range(40):
        c[("new", i)] = i
        fresh[("new", i)] = i
        if i == 9:
            assert c.size_bytes > fresh.size_bytes
    assert c.size_bytes == fresh.size_bytes
    assert len(c) == 40 and store.check()["leaked_references"] == 0


def test_expiry_is_seen_by_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    with persist.open(path) as store:
        c = _cache(store)
        c.set("k", "v", ttl=0.3)
        expiry = c.expires_at("k")
        r, w = os.pipe()

        def child() -> None:
            with persist.open(path) as other:
                oc = other.root["c"]
                before = time.time()
                seen = oc.get("k")
                after = time.time()
                theirs = oc.expires_at("k") if seen is not None else None
                os.write(w, json.dumps([before, seen, after, theirs]).encode() + b"\n")
                _wait_past(expiry)
                os.write(w, json.dumps([oc.get("k"), "k" in oc, len(oc)]).encode())

        pid = fork_child(child)
        os.close(w)
        assert reap_child(pid) == 0
        lines = os.read(r, 4096).decode().splitlines()
        os.close(r)
        before, seen, after, theirs = json.loads(lines[0])
        # Found only before its expiry (the same expiry time for both processes), missing only
        # after it, by the child's clock.
        if seen is not None:
            assert seen == "v" and before < expiry and theirs == expiry
        else:
            assert after >= expiry
        assert json.loads(lines[1]) == [None, False, 0]


KEYS_TTL = 0.04


def _expiring_writer(path: str, seconds: float) -> None:
    """Sets key i (never reused) with a short ttl, records its exact expiry under
    root['exp'][i] and publishes i in root['n']."""
    with persist.open(path) as store:
        c, exp = store.root["c"], store.root["exp"]
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            c.set(i, ("value", i), ttl=KEYS_TTL)
            exp[i] = c.expires_at(i)
            store.root["n"] = i
            i += 1
            time.sleep(0.001)


def _expiry_reader(path: str, seed: int, w: int) -> None:
    """Reads recent keys; reports (key, clock before, found, clock after) for each read."""
    rng = random.Random(seed)
    out = []
    with persist.open(path) as store:
        c = store.root["c"]
        while not store.root.get("stop", False):
            n = store.root["n"]
            if n < 0:
                continue
            k = rng.randint(max(0, n - 60), n)
            before = time.time()
            v = c.get(k)
            after = time.time()
            if v is not None:
                assert v == ("value", k), v
            out.append((k, before, v is not None, after))
            if rng.random() < 0.2:
                # Every read path: in, len and a snapshot never show an expired entry.
                before = time.time()
                snap = dict(c.items())
                for key in snap:
                    out.append((key, before, True, time.time()))
    os.write(w, json.dumps(out).encode())


def test_four_processes_reading_while_keys_expire_never_see_an_expired_value(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "c.db")
    with persist.open(path) as store:
        _cache(store)
        store.root["exp"] = {}
        store.root["n"] = -1
        store.root["stop"] = False
        writer = fork_child(lambda: _expiring_writer(path, 1.5))
        pipes = []
        readers = []
        for seed in range(4):
            r, w = os.pipe()
            readers.append(fork_child(lambda seed=seed, w=w: _expiry_reader(path, seed, w)))
            os.close(w)
            pipes.append(r)
        assert reap_child(writer) == 0
        store.root["stop"] = True
        reports = []
        for r in pipes:
            chunks = []
            while chunk := os.read(r, 1 << 20):
                chunks.append(chunk)
            os.close(r)
            reports.append(json.loads(b"".join(chunks)))
        assert [reap_child(pid) for pid in readers] == [0, 0, 0, 0]
        exp = store.root["exp"].to_python()
        # A float expiry (seconds) rounds the exact nanoseconds: a microsecond covers it.
        eps = 1e-6
        for report in reports:
            found = missing = 0
            for k, before, got, after in report:
                e = exp[k]
                if got:
                    assert before < e + eps, (k, before, e)
                    found += 1
                else:
                    assert after >= e - eps, (k, after, e)
                    missing += 1
            assert found > 0 and missing > 0, (found, missing)
        assert store.check()["leaked_references"] == 0


# ---- limits and recency ----------------------------------------------------------------------


def test_reads_refresh_the_recency_order(store: Any) -> None:
    c = _cache(store, max_entries=3)
    c["a"], c["b"], c["c"] = 1, 2, 3
    assert c["a"] == 1  # a is now the most recent: b goes first
    c["d"] = 4
    assert list(c) == ["c", "a", "d"]
    assert c.get("c") == 3
    c["e"] = 5
    assert list(c) == ["d", "c", "e"]
    # peek, in and iteration do not refresh; setting an existing key does.
    assert c.peek("c") == 3 and "c" in c and list(c.items())
    c["d"] = 40
    c["f"] = 6
    assert list(c) == ["e", "d", "f"]
    assert c.touch("e") and c.setdefault("g", 7) == 7
    assert list(c) == ["f", "e", "g"]
    assert store.check()["leaked_references"] == 0


def test_the_byte_limit(store: Any) -> None:
    c = _cache(store, max_bytes=2000)
    for i in range(100):
        c[i] = "x" * random.Random(i).randrange(200)
        assert c.size_bytes <= 2000
    assert 0 < len(c) < 100 and list(c) == sorted(c)  # the oldest went first
    with pytest.raises(ValueError, match="max_bytes"):
        c["big"] = "y" * 3000
    assert "big" not in c and c.size_bytes <= 2000
    c.clear()
    assert c.size_bytes == 0
    assert store.check()["leaked_references"] == 0


LIMIT = 40
BYTES = 6000


def _inserter(path: str, k: int, n: int) -> None:
    rng = random.Random(k)
    with persist.open(path) as store:
        c = store.root["c"]
        for i in range(n):
            c[(k, i)] = "v" * rng.randrange(60) if i % 3 else i
            # After the change returned, every process sees the cache within its limits.
            assert len(c) <= LIMIT, len(c)
            assert c.size_bytes <= BYTES, c.size_bytes
            if i % 7 == 0:
                c.get((k, rng.randrange(i + 1)))
            if i % 11 == 0:
                c.pop((k, rng.randrange(i + 1)), None)


def test_limits_hold_with_four_processes_inserting_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    with persist.open(path) as store:
        _cache(store, max_entries=LIMIT, max_bytes=BYTES)
        n = 400
        pids = [fork_child(lambda k=k: _inserter(path, k, n)) for k in range(4)]
        assert [reap_child(pid) for pid in pids] == [0, 0, 0, 0]
        c = store.root["c"]
        assert 0 < len(c) <= LIMIT and c.size_bytes <= BYTES
        assert all(isinstance(k, tuple) and len(k) == 2 for k in c)
        report = store.check()
        assert report["leaked_references"] == 0 and report["unreachable_blocks"] == 0


# ---- crash safety ----------------------------------------------------------------------------


def _changer(path: str, seed: int, ready_fd: int) -> None:
    rng = random.Random(seed)
    store = persist.open(path)
    c, t = store.root["c"], store.root["t"]
    os.write(ready_fd, b"r")
    while True:
        k = rng.randrange(60)
        op = rng.randrange(8)
        if op < 3:
            c.set(k, "v" * rng.randrange(80) if op else [k], ttl=rng.choice([None, 0.01, 5]))
        elif op == 3:
            c.get(k)
        elif op == 4:
            c.pop(k, None)
        elif op == 5:
            t[k] = k
            t.touch(k, ttl=0.005)
        elif op == 6:
            c.update({(k, j): j for j in range(rng.randrange(5))})
        else:
            c.setdefault(k, ("d", k))


def test_caches_survive_kills_in_the_middle_of_their_changes(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    with persist.open(path) as store:
        store.root["c"] = persist.Cache(ttl=1, max_entries=30, max_bytes=3000)
        store.root["t"] = persist.Cache()
    rng = random.Random(20261206)
    kill_loop(
        lambda seed, w: _changer(path, seed, w),
        rng=rng,
        workers=2,
        kills=80,
        seconds=120,
    )
    with persist.open(path) as store:
        c = store.root["c"]
        # check() verifies every entry block and the counts each cache header keeps.
        report = store.check()
        assert report["leaked_references"] == 0
        assert len(c) <= 30 and c.size_bytes <= 3000
        items = dict(c.items())
        assert all(isinstance(k, (int, tuple)) for k in items)
        c["after"] = 1
        assert c["after"] == 1
        store.gc()
        assert store.check()["unreachable_blocks"] == 0


# ---- a damaged cache -------------------------------------------------------------------------


def test_check_and_reads_refuse_a_damaged_cache_entry(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    with persist.open(path) as store:
        c = _cache(store)
        c["k"] = "a value"
    # Make the entry's tuple block a 2-tuple: its head's length field says 2.
    data = bytearray(Path(path).read_bytes())
    marker = (3 << 8 | 5).to_bytes(8, "little")  # a tuple block of three words
    at = data.find(marker)
    assert at > 0 and data.find(marker, at + 1) < 0
    data[at : at + 8] = (2 << 8 | 5).to_bytes(8, "little")
    Path(path).write_bytes(bytes(data))
    with persist.open(path) as store:
        c = store.root["c"]
        with pytest.raises(persist.CorruptionError):
            c.get("k")
        with pytest.raises(persist.CorruptionError):
            store.check()


# ---- dump, load, compact, check --------------------------------------------------------------


def test_dump_load_and_compact_keep_caches(tmp_path: Path) -> None:
    src, dump, dst, compacted = (tmp_path / n for n in ("a.db", "a.jsonl", "b.db", "c.db"))
    with persist.open(str(src)) as store:
        shared = [1, 2]
        store.root.update(
            {
                "c": persist.Cache(ttl=3600, max_entries=10, max_bytes=5000),
                "plain": persist.Cache(),
                "shared": shared,
            }
        )
        c = store.root["c"]
        c["a"] = ("t", 1)
        c.set("b", store.root["shared"], ttl=math.inf)
        c.set(("k", 2), b"bytes", ttl=7200)
        c.set("gone", 1, ttl=0.001)
        c.get("a")  # a is now the most recent
        store.root["plain"][1] = {"nested": [1]}
        store.root["again"] = [store.root["c"]]
        _wait_past(time.time() + 0.002)
        expiry = {k: c.expires_at(k) for k in c}
        assert "gone" not in expiry
    cli = [sys.executable, "-m", "persist"]
    subprocess.run([*cli, "dump", "-o", str(dump), str(src)], check=True, timeout=120)
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert lines[0]["version"] == 4
    caches = [r for r in lines[1:-1] if r.get("type") == "cache"]
    assert len(caches) == 2
    big = next(r for r in caches if r["max_entries"] == 10)
    assert (big["ttl"], big["max_bytes"]) == (3600, 5000)
    assert [e[0] for e in big["entries"]] == ["b", {"tuple": ["k", 2]}, "a"]  # no "gone"
    assert big["entries"][0][2] is None and all(type(e[2]) is int for e in big["entries"][1:])
    subprocess.run([*cli, "load", str(dump), str(dst)], check=True, timeout=120)
    subprocess.run([*cli, "check", str(dst)], check=True, timeout=120, capture_output=True)
    subprocess.run([*cli, "compact", str(src), str(compacted)], check=True, timeout=120)
    again = subprocess.run(
        [*cli, "dump", str(dst)], check=True, timeout=120, capture_output=True, text=True
    ).stdout
    assert again == dump.read_text()
    for path in (dst, compacted):
        with persist.open(str(path)) as store:
            c = store.root["c"]
            assert (c.ttl, c.max_entries, c.max_bytes) == (3600, 10, 5000)
            assert list(c) == ["b", ("k", 2), "a"]
            assert c == {"a": ("t", 1), "b": [1, 2], ("k", 2): b"bytes"}
            assert {k: c.expires_at(k) for k in c} == expiry
            assert c.peek("b")._ident == store.root["shared"]._ident
            assert store.root["again"][0]._ident == c._ident
            assert store.root["plain"] == {1: {"nested": [1]}}
            assert store.check()["leaked_references"] == 0


# ---- durable and read-only stores ------------------------------------------------------------


def test_a_durable_store_keeps_cache_changes(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    with persist.open(path, durable=True) as st:
        st.root["c"] = persist.Cache(max_entries=2)
        c = st.root["c"]
        c["a"], c["b"] = 1, ("two", 2)
        assert c["a"] == 1
        c.set("c", "x" * 50, ttl=3600)
        del c["c"]
        c["d"] = 4
    with persist.open(path, durable=True) as st:
        assert list(st.root["c"].items()) == [("a", 1), ("d", 4)]
        assert st.check()["leaked_references"] == 0


def test_a_read_only_store_reads_a_limited_cache_without_refreshing(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    with persist.open(path) as st:
        st.root["c"] = persist.Cache(max_entries=3)
        c = st.root["c"]
        c["a"], c["b"] = 1, 2
    with persist.open(path, readonly=True) as st:
        c = st.root["c"]
        assert c["a"] == 1 and c.get("b") == 2 and list(c) == ["a", "b"]
        with pytest.raises(persist.ReadOnlyError):
            c["x"] = 1
        with pytest.raises(persist.ReadOnlyError):
            c.expire()
