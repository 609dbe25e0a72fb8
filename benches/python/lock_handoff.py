"""How often the store-wide lock changes hands between processes that take it in a loop.

    python benches/python/lock_handoff.py [--seconds 0.5] [--rounds 8] [--procs 1,2,4]
                                          [--work 0]

Each of P forked processes runs ``lockExcl; v = root['x']; root['x'] = v + 1; unlock`` as fast
as it can for --seconds, all released together, then --work iterations of an empty Python loop
outside the lock (0: none, the tightest loop). A section *changed hands* when the value a
process reads is not the one it wrote last: another process had the lock in between, and the
lock's and the counter's cache lines moved between cores. Per round and P it prints the
increments per second of all processes together (from the release to the last one's end), the
ratio to P=1 in the same round, and the share of sections that changed hands; then the median
of the rounds. After each cell the counter must equal the increments counted (a lost update
fails the run).

On a machine with fewer cores than P the processes also share cores; say how many cores the
machine has when quoting it (``os.cpu_count()`` is printed). The rates of a shared VM swing
from round to round, so compare builds by alternating them, round by round.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any

import persist

CTX = multiprocessing.get_context("fork")


def worker(path: str, seconds: float, work: int, go: Any, out: Any) -> None:
    with persist.open(path) as store:
        root = store.root
        lock, unlock = root.lockExcl, root.unlock
        go.wait()
        done, changed, last = 0, 0, None
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            for _ in range(200):
                lock()
                v = root["x"]
                root["x"] = v + 1
                unlock()
                if v != last:
                    changed += 1
                last = v + 1
                for _ in range(work):
                    pass
            done += 200
        out.put((done, changed, t0, time.perf_counter()))


def cell(procs: int, seconds: float, work: int) -> tuple[float, float]:
    """(increments/s of all processes, share of sections that changed hands)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s.db")
        with persist.open(path) as s:
            s.root["x"] = 0
        go, out = CTX.Event(), CTX.Queue()
        ps = [CTX.Process(target=worker, args=(path, seconds, work, go, out)) for _ in range(procs)]
        for p in ps:
            p.start()
        time.sleep(0.2)  # every worker attached and waiting
        go.set()
        results = [out.get(timeout=60 + 10 * seconds) for _ in ps]
        for p in ps:
            p.join()
        if any(p.exitcode != 0 for p in ps):
            raise SystemExit(f"a worker failed: exit codes {[p.exitcode for p in ps]}")
        done = sum(r[0] for r in results)
        with persist.open(path) as s:
            if s.root["x"] != done:
                raise SystemExit(f"lost update: the counter is {s.root['x']}, {done} increments")
        # The first section of each process always counts as changed hands: leave it out.
        changed = sum(r[1] for r in results) - procs
        wall = max(r[3] for r in results) - min(r[2] for r in results)
        return done / wall, changed / done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--work", type=int, default=0)
    a = ap.parse_args()
    procs = [int(p) for p in a.procs.split(",")]
    if procs[0] != 1:
        procs.insert(0, 1)
    print(
        f"cpus {os.cpu_count()}, {a.seconds} s per cell, work {a.work}, persist {persist.__file__}"
    )
    rows: dict[int, list[tuple[float, float, float]]] = {p: [] for p in procs}
    for rnd in range(1, a.rounds + 1):
        base = 0.0
        line = []
        for p in procs:
            rate, changed = cell(p, a.seconds, a.work)
            base = base or rate
            rows[p].append((rate, rate / base, changed))
            line.append(f"P={p} {rate / 1e6:.2f}M {rate / base:.2f}x {changed:.1%}")
        print(f"round {rnd}: " + "  ".join(line), flush=True)
    print("median of the rounds")
    for p in procs:
        r = rows[p]
        print(
            f"  P={p}  {statistics.median(x[0] for x in r):>12,.0f} incr/s"
            f"  {statistics.median(x[1] for x in r):.2f}x P=1"
            f"  changed hands {statistics.median(x[2] for x in r):.1%}"
        )


if __name__ == "__main__":
    main()
