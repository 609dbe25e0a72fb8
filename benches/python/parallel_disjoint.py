"""Throughput of single changes from P processes at once (issue 12): P=1 against P=2.

    python benches/python/parallel_disjoint.py [--n 200000] [--procs 1,2] [--rounds 3]

Each of P forked processes opens the store and makes --n ``d[k] = i`` puts (random keys of
1000, each key existing): on a dict of its own (``disjoint``) or all on one dict (``one
dict``); or --n inserts of new int keys (its own range) into one dict that starts empty (``one
dict inserts``), or of new 16-character str keys with 16-character str values (two blocks each,
``one dict str inserts``); or --n ``s.add(m)`` to one set of 1000 ints, new ints of its own
range (``one set adds``) or members already there (``one set adds present``), or --n
``s.discard(m); s.add(m)`` pairs over 100 members of its own (``one set discards``, counted as
one operation each), or --n ``d[k] = d.pop(k) + 1`` over 100 int keys of its own in one dict
(``one dict pops``, a pop and an insert counted as one operation), or --n ``d[k] = s`` of
16-character strs (a block each, replacing the last one) over 100 int keys of its own in one
dict (``one dict strs``), or --n inserts of new int keys (its own range) into one dict whose
values are new records, each ``{"i": i, "by": me, "tags": ["a", "b"]}`` (a dict holding a list:
``one dict records``), or --n such records stored over those of 100 int keys of its own in one
dict (``one dict record swaps``, the old record freed); then --n ``l.append(i)`` on a list of
its own (``appends``) or all on one list (``one list``), of such records on a list of its own
(``record appends``) or all on one list (``one list records``), and ``l.append(s)`` of
14-character strs (a block each) on one list (``one list str``) and of tuples ``(i, me, None)``
of small values (one block each, ``one list tuple``); and --n ``l.popleft()`` each from one
list filled with P * --n ints beforehand (``one list pops``), with as many 14-character strs
(``one list str pops``), with as many tuples of small values (``one list tuple pops``) or with
as many records (``one list record pops``, each popped record dropped at once); and --n
``l.reverse()`` of a 16-int list of its own (``own list reverses``, a whole-list change), or
--n ``d[k] = record; d.popitem()`` pairs on a dict of its own (``own dict record popitems``,
one operation each: the record popped, then dropped at once, so collected as an orphan). The
throughput is all the processes' operations over the wall time from the first start to the last
end (a barrier through a pipe starts them together). The parent closes the store before the
workers open it, so P=1 is one process alone, as a user's single process is. Prints the best of
--rounds runs per workload and P, and each P's ratio to P=1. Say how many cores the machine has
when quoting it (``os.cpu_count()`` is printed).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import persist


def worker(path: str, me: int, n: int, workload: str, go_r: int) -> None:
    with persist.open(path) as store:
        root = store.root
        if workload in ("appends", "record appends", "own list reverses"):
            target = root[f"l{me}"]
        elif workload.startswith("one list"):
            target = root["l0"]
        elif workload.startswith("one set"):
            target = root["s0"]
        else:
            target = root["d0" if workload.startswith("one dict") else f"d{me}"]
        keys = [random.randrange(1000) for _ in range(n)]
        os.read(go_r, 1)
        if workload in ("appends", "one list"):
            for i in range(n):
                target.append(i)
        elif workload == "one list str":
            for i in range(n):
                target.append(f"item {i:09d}")
        elif workload == "one list tuple":
            for i in range(n):
                target.append((i, me, None))
        elif workload in ("record appends", "one list records"):
            for i in range(n):
                target.append({"i": i, "by": me, "tags": ["a", "b"]})
        elif workload == "own list reverses":
            for _ in range(n):
                target.reverse()
        elif workload == "own dict record popitems":
            for i in range(n):
                target[i] = {"i": i, "by": me, "tags": ["a", "b"]}
                target.popitem()
        elif workload == "one dict records":
            base = (me + 1) * 100_000_000
            for i in range(n):
                target[base + i] = {"i": i, "by": me, "tags": ["a", "b"]}
        elif workload == "one dict record swaps":
            mine = [(me + 1) * 100_000_000 + j for j in range(100)]
            for i in range(n):
                target[mine[i % 100]] = {"i": i, "by": me, "tags": ["a", "b"]}
        elif workload == "one dict inserts":
            base = me * 100_000_000
            for i in range(n):
                target[base + i] = i
        elif workload == "one dict str inserts":
            for i in range(n):
                target[f"key {me} {i:010d}"] = f"value {i:010d}"
        elif workload == "one set adds":
            base = (me + 1) * 100_000_000
            for i in range(n):
                target.add(base + i)
        elif workload == "one set adds present":
            for k in keys:
                target.add(k)
        elif workload == "one set discards":
            mine = [(me + 1) * 100_000_000 + j for j in range(100)]
            for i in range(n):
                m = mine[i % 100]
                target.discard(m)
                target.add(m)
        elif workload == "one dict strs":
            mine = [(me + 1) * 100_000_000 + j for j in range(100)]
            for i in range(n):
                target[mine[i % 100]] = f"value {i:010d}"
        elif workload == "one dict pops":
            mine = [(me + 1) * 100_000_000 + j for j in range(100)]
            for i in range(n):
                k = mine[i % 100]
                target[k] = target.pop(k) + 1
        elif workload in (
            "one list pops",
            "one list str pops",
            "one list tuple pops",
            "one list record pops",
        ):
            for _ in range(n):
                target.popleft()
        else:
            for i, k in enumerate(keys):
                target[k] = i


def run(path: str, procs: int, n: int, workload: str) -> float:
    with persist.open(path) as store:
        root = store.root
        for p in range(procs):
            root[f"d{p}"] = {k: 0 for k in range(1000)}
            root[f"l{p}"] = list(range(16)) if workload == "own list reverses" else []
            if workload == "own dict record popitems":
                root[f"d{p}"] = {}
        if workload in ("one dict inserts", "one dict str inserts", "one dict records"):
            root["d0"] = {}
        root["s0"] = set(range(1000))
        if workload == "one set discards":
            root["s0"].update((p + 1) * 100_000_000 + j for p in range(procs) for j in range(100))
        if workload in ("one dict pops", "one dict strs", "one dict record swaps"):
            root["d0"].update(
                ((p + 1) * 100_000_000 + j, 0) for p in range(procs) for j in range(100)
            )
        if workload == "one list pops":
            root["l0"] = list(range(procs * n))
        elif workload == "one list str pops":
            root["l0"] = [f"item {i:09d}" for i in range(procs * n)]
        elif workload == "one list tuple pops":
            root["l0"] = [(i, 0, None) for i in range(procs * n)]
        elif workload == "one list record pops":
            root["l0"] = [{"i": i, "by": 0, "tags": ["a", "b"]} for i in range(procs * n)]
    go_r, go_w = os.pipe()
    pids = []
    for p in range(procs):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(path, p, n, workload, go_r)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    time.sleep(0.3)  # let every worker open the store and wait at the barrier
    t = time.perf_counter()
    os.write(go_w, b"x" * procs)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert status == 0, f"a worker failed ({status})"
    dt = time.perf_counter() - t
    os.close(go_r)
    os.close(go_w)
    return procs * n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--workloads",
        default=(
            "disjoint,one dict,one dict inserts,one set adds,one set adds present,"
            "one set discards,appends,"
            "one list,one list str,one list tuple,one list pops,one list str pops,"
            "one list tuple pops,record appends,one list records,one dict records,"
            "one dict record swaps,one list record pops,own list reverses,"
            "own dict record popitems"
        ),
        help="comma-separated",
    )
    a = ap.parse_args()
    procs = [int(p) for p in a.procs.split(",")]
    print(f"persist {persist.__version__}; {os.cpu_count()} cores; n = {a.n} per process")
    for workload in a.workloads.split(","):
        best: dict[int, float] = {}
        for _ in range(a.rounds):
            for p in procs:
                with tempfile.TemporaryDirectory() as tmp:
                    r = run(os.path.join(tmp, "s.db"), p, a.n, workload)
                best[p] = max(best.get(p, 0.0), r)
        base = best[procs[0]]
        line = "  ".join(
            f"P={p}: {best[p] / 1e3:7.0f}k ops/s ({best[p] / base:.2f}x)" for p in procs
        )
        print(f"{workload:19} {line}")


if __name__ == "__main__":
    main()
