"""Atomic counters (issue 14): persist's Dict.incr against its own lockExcl counter and the
counters of other stores, in one run, as ratios.

    python benches/python/incr.py [--seconds 1.0] [--rounds 3] [--procs 1,2]
                                  [--backends incr,lockexcl,manager,redis,lmdb]

Each cell is P forked processes incrementing one shared counter as fast as they can for
--seconds, all released together; the rate is all their increments over the time from the
release to the last one's end (perf_counter, CLOCK_MONOTONIC, the same clock in every
process). After each cell the counter must equal the increments the processes counted (a
lost update fails the run). The ratio column is each cell's rate over persist's lockExcl
counter at the same P in the same round; the summary gives the median of the rounds, and also
how many times faster persist's incr was than each counter (same P, same round, median).

The counters (none fsyncs per increment):

- incr: persist ``root.incr('x')``, store opened with the defaults (durable=False).
- lockexcl: persist ``with root.lockExcl(): root['x'] += 1``.
- manager: a multiprocessing SyncManager dict and a manager Lock: ``with lock: d['x'] =
  d['x'] + 1`` (three round trips to the manager process).
- redis: ``INCR`` on a private redis-server on a unix socket (``save ''``, ``appendonly no``:
  nothing on disk), redis-py (hiredis if installed), no pipelining. Needs redis-server on PATH
  and ``pip install redis``; skipped with the reason otherwise.
- lmdb: py-lmdb, ``sync=False, metasync=False``; a write transaction that reads the value
  (ASCII digits) and writes it back plus one. Needs ``pip install lmdb``.

The store processes (the manager, redis-server) take their CPU from the same cores as the
clients: on a 2-core machine P=2 shows contention, not scaling. Each process opens its store
after the fork, and the parent keeps none open during a cell, so that P=1 is one process
attached (persist then changes under its store-wide writer word; with two attached, on the
dict's part lock).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import persist

CTX = multiprocessing.get_context("fork")


# --- backends: setup() -> (make_incr, read_total, cleanup) ----------------------------------
# make_incr runs in the worker after the fork and returns run(n): n increments in a loop.


def persist_backend(kind: str) -> Callable[[str], Any]:
    def setup(d: str) -> tuple[Callable[[], Callable[[int], None]], Callable[[], int], Any]:
        path = os.path.join(d, "s.db")
        with persist.open(path) as s:
            s.root["x"] = 0

        def make() -> Callable[[int], None]:
            root = persist.open(path).root
            if kind == "incr":
                incr = root.incr

                def counted(n: int) -> None:
                    for _ in range(n):
                        incr("x")

                return counted

            def locked(n: int) -> None:
                for _ in range(n):
                    with root.lockExcl():
                        root["x"] += 1

            return locked

        def total() -> int:
            with persist.open(path) as s:
                return int(s.root["x"])

        return make, total, None

    return setup


def manager_setup(d: str) -> tuple[Any, Any, Any]:
    mgr = CTX.Manager()
    shared = mgr.dict({"x": 0})
    lock = mgr.Lock()

    def make() -> Callable[[int], None]:
        def incr(n: int) -> None:
            for _ in range(n):
                with lock:
                    shared["x"] = shared["x"] + 1

        return incr

    return make, lambda: int(shared["x"]), mgr.shutdown


def redis_missing() -> str | None:
    try:
        import redis  # noqa: F401
    except ImportError as e:
        return f"redis-py is not installed ({e})"
    if not shutil.which("redis-server"):
        return "redis-server is not on PATH"
    return None


def redis_setup(d: str) -> tuple[Any, Any, Any]:
    import redis

    sock = os.path.join(d, "redis.sock")
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            "0",
            "--unixsocket",
            sock,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            d,
            "--daemonize",
            "no",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=sock)
    for _ in range(200):
        try:
            client.set("x", 0)
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError("redis-server did not answer within 10 s")

    def make() -> Callable[[int], None]:
        r = redis.Redis(unix_socket_path=sock)

        def incr(n: int) -> None:
            for _ in range(n):
                r.incr("x")

        return incr

    def cleanup() -> None:
        client.close()
        server.terminate()
        server.wait(10)

    return make, lambda: int(client.get("x")), cleanup


def lmdb_missing() -> str | None:
    try:
        import lmdb  # noqa: F401
    except ImportError as e:
        return f"py-lmdb is not installed ({e})"
    return None


def lmdb_setup(d: str) -> tuple[Any, Any, Any]:
    import lmdb

    def env() -> Any:
        return lmdb.open(d, map_size=1 << 28, sync=False, metasync=False)

    with env() as e, e.begin(write=True) as txn:
        txn.put(b"x", b"0")

    def make() -> Callable[[int], None]:
        e = env()

        def incr(n: int) -> None:
            for _ in range(n):
                with e.begin(write=True) as txn:
                    txn.put(b"x", str(int(txn.get(b"x")) + 1).encode())

        return incr

    def total() -> int:
        with env() as e, e.begin() as txn:
            return int(txn.get(b"x"))

    return make, total, None


BACKENDS: dict[str, tuple[str, Callable[[str], Any], Callable[[], str | None]]] = {
    "incr": ("persist incr", persist_backend("incr"), lambda: None),
    "lockexcl": ("persist lockExcl", persist_backend("lockexcl"), lambda: None),
    "manager": ("Manager dict+Lock", manager_setup, lambda: None),
    "redis": ("Redis INCR", redis_setup, redis_missing),
    "lmdb": ("LMDB write txn", lmdb_setup, lmdb_missing),
}


# --- one cell ----------------------------------------------------------------------------------


def _worker(
    make: Callable[[], Callable[[int], None]], seconds: float, ready: Any, go: Any, out: Any
) -> None:
    incr = make()
    ready.send(b"r")
    ready.close()
    go.recv_bytes()
    start = time.perf_counter()
    stop = start + seconds
    n = 0
    while True:
        incr(100)
        n += 100
        if time.perf_counter() >= stop:
            break
    out.send((n, time.perf_counter()))


def cell(setup: Callable[[str], Any], procs: int, seconds: float) -> float:
    """Increments per second of `procs` processes together; checks the count."""
    with tempfile.TemporaryDirectory(prefix="bench-incr-") as d:
        make, total, cleanup = setup(d)
        try:
            pipes = [CTX.Pipe() for _ in range(3 * procs)]
            ready, go, out = pipes[:procs], pipes[procs : 2 * procs], pipes[2 * procs :]
            ps = [
                CTX.Process(target=_worker, args=(make, seconds, ready[i][1], go[i][0], out[i][1]))
                for i in range(procs)
            ]
            for p in ps:
                p.start()
            for r, _ in ready:
                r.recv_bytes()
            t0 = time.perf_counter()
            for _, g in go:
                g.send_bytes(b"g")
            results = [o.recv() for o, _ in out]
            for p in ps:
                p.join()
            if any(p.exitcode != 0 for p in ps):
                raise RuntimeError(f"a worker failed: {[p.exitcode for p in ps]}")
            done = sum(n for n, _ in results)
            end = max(t for _, t in results)
            got = total()
            if got != done:
                raise AssertionError(f"LOST: {done} increments made, the counter says {got}")
            return done / (end - t0)
        finally:
            if cleanup:
                cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0, help="time per cell")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    a = ap.parse_args()
    procs = [int(p) for p in a.procs.split(",")]
    names = a.backends.split(",")
    if "lockexcl" not in names:
        names.append("lockexcl")  # the baseline
    skipped = {}
    for n in names:
        why = BACKENDS[n][2]()
        if why:
            skipped[n] = why
    names = [n for n in names if n not in skipped]
    print(
        f"persist {persist.__version__}, {os.cpu_count()} CPUs, {a.seconds} s per cell, "
        f"{a.rounds} rounds; ratio = rate / persist lockExcl at the same P, same round"
    )
    for n, why in skipped.items():
        print(f"skipped {BACKENDS[n][0]}: {why}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the start: {load} (other work on the machine skews every cell)")
    rates: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    behind: dict[tuple[str, int], list[float]] = {}
    for rnd in range(1, a.rounds + 1):
        print(f"\nround {rnd}")
        got: dict[tuple[str, int], float] = {}
        for p in procs:
            for n in names:
                got[(n, p)] = cell(BACKENDS[n][1], p, a.seconds)
        for p in procs:
            base = got[("lockexcl", p)]
            for n in names:
                r = got[(n, p)]
                rates.setdefault((n, p), []).append(r)
                ratios.setdefault((n, p), []).append(r / base)
                if "incr" in names:
                    behind.setdefault((n, p), []).append(got[("incr", p)] / r)
                print(f"  {BACKENDS[n][0]:<20} P={p}  {r:>12,.0f} incr/s  {r / base:>6.2f}x")
    print("\nmedian of the rounds")
    print(
        f"  {'counter':<20} {'P':>3}  {'incr/s':>12}  {'x lockExcl':>10}  {'incr is':>8}   (rounds)"
    )
    for p in procs:
        for n in names:
            rs, xs = rates[(n, p)], ratios[(n, p)]
            each = " ".join(f"{x:.2f}" for x in xs)
            vs = f"{statistics.median(behind[(n, p)]):>7.1f}x" if behind else ""
            print(
                f"  {BACKENDS[n][0]:<20} {p:>3}  {statistics.median(rs):>12,.0f}  "
                f"{statistics.median(xs):>9.2f}x  {vs:>8}   ({each})"
            )


if __name__ == "__main__":
    main()
