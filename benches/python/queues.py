"""Blocking queues (issue 14): a persist list used as a queue against multiprocessing.Queue, a
Manager queue and Redis BLPOP, in one run, as ratios.

    python benches/python/queues.py [--items 50000] [--trips 5000] [--rounds 3]
                                   [--backends persist,persist-move,mpqueue,manager,redis]

Two workloads, each cell in fresh forked processes:

- stream: a producer (the parent) puts --items small ints as fast as it can; a consumer (a
  forked child) takes them one at a time with a blocking get, so it sleeps whenever it has
  caught up. Rate: items over the time from the producer's start to the consumer's last get
  (perf_counter, CLOCK_MONOTONIC, the same clock in both processes). The consumer checks that
  it got 0, 1, 2, ... in order (FIFO, nothing lost or doubled).
- pingpong: two processes and two queues; the parent puts i on the first and waits on the
  second, the child waits on the first and puts the item back on the second: --trips round
  trips, each a blocking get on both sides (two wake-ups a trip). Rate: round trips/s.

The ratio column is each cell's rate over multiprocessing.Queue's in the same round; the
summary gives the median of the rounds.

The queues (none touches a disk per item):

- persist: ``q.append(i)`` and ``q.popleft(block=True)`` on a list in a store opened with the
  defaults (durable=False).
- persist-move: the consumer takes each item with ``q.move_to(mine, block=True)`` into a list
  of its own (the reliable hand-off, as Redis BLMOVE) and then drops it there with
  ``mine.pop()``: two changes an item. (stream only)
- mpqueue: ``multiprocessing.Queue`` (a pipe, pickling, and a feeder thread in the producer).
- manager: a ``multiprocessing.Manager().Queue()`` (a round trip to the manager process per
  call).
- redis: ``RPUSH`` and ``BLPOP`` on a private redis-server on a unix socket (``save ''``,
  ``appendonly no``), redis-py (hiredis if installed), no pipelining. Needs redis-server on
  PATH and ``pip install redis``; skipped with the reason otherwise.

LMDB has no blocking read (a consumer would have to poll), so it is not a queue to compare.

The store processes (the manager, redis-server) take their CPU from the same cores as the
clients: on a 2-core machine every cell of them shares the cores three ways.
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

# A backend's setup(d) returns (make_producer, make_consumer, cleanup): each make_* runs in its
# process (after the fork for the child) and returns (put, get) for the named queue.
Ends = tuple[Callable[[Any], None], Callable[[], Any]]
Setup = Callable[[str], tuple[Callable[[str], Ends], Callable[[str], Ends], Any]]


def persist_setup(move: bool) -> Setup:
    def setup(d: str) -> Any:
        path = os.path.join(d, "s.db")
        with persist.open(path) as s:
            s.root["a"] = []
            s.root["b"] = []
            s.root["mine"] = []

        def ends(name: str) -> Ends:
            root = persist.open(path).root
            q = root[name]
            if move:
                mine = root["mine"]

                def get() -> Any:
                    v = q.move_to(mine, block=True)
                    mine.pop()
                    return v

                return q.append, get
            return q.append, lambda: q.popleft(block=True)

        return ends, ends, None

    return setup


def mpqueue_setup(d: str) -> Any:
    qs = {"a": CTX.Queue(), "b": CTX.Queue()}

    def ends(name: str) -> Ends:
        q = qs[name]
        return q.put, q.get

    return ends, ends, None


def manager_setup(d: str) -> Any:
    mgr = CTX.Manager()
    qs = {"a": mgr.Queue(), "b": mgr.Queue()}

    def ends(name: str) -> Ends:
        q = qs[name]
        return q.put, q.get

    return ends, ends, mgr.shutdown


def redis_missing() -> str | None:
    try:
        import redis  # noqa: F401
    except ImportError as e:
        return f"redis-py is not installed ({e}; /work/shared/bench/setup.sh installs it)"
    if not shutil.which("redis-server"):
        return "redis-server is not on PATH (/work/shared/bench/setup.sh installs it)"
    return None


def redis_setup(d: str) -> Any:
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
            client.delete("a", "b")
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError("redis-server did not answer within 10 s")

    def ends(name: str) -> Ends:
        r = redis.Redis(unix_socket_path=sock)

        def put(v: Any) -> None:
            r.rpush(name, v)

        def get() -> Any:
            return int(r.blpop([name])[1])

        return put, get

    def cleanup() -> None:
        client.close()
        server.terminate()
        server.wait(10)

    return ends, ends, cleanup


BACKENDS: dict[str, tuple[str, Setup, Callable[[], str | None], bool]] = {
    # name: (label, setup, why it cannot run, runs pingpong)
    "persist": ("persist popleft", persist_setup(False), lambda: None, True),
    "persist-move": ("persist move_to", persist_setup(True), lambda: None, False),
    "mpqueue": ("multiprocessing.Queue", mpqueue_setup, lambda: None, True),
    "manager": ("Manager().Queue()", manager_setup, lambda: None, True),
    "redis": ("Redis RPUSH/BLPOP", redis_setup, redis_missing, True),
}


# --- cells -------------------------------------------------------------------------------------


def _stream_consumer(make: Callable[[str], Ends], n: int, ready: Any, out: Any) -> None:
    _, get = make("a")
    ready.send(b"r")
    for i in range(n):
        v = get()
        if v != i:
            out.send(("bad", f"expected {i}, got {v!r}"))
            return
    out.send(("ok", time.perf_counter()))


def _pong(make: Callable[[str], Ends], n: int, ready: Any) -> None:
    _, get = make("a")
    put, _ = make("b")
    ready.send(b"r")
    for _ in range(n):
        put(get())


def stream(setup: Setup, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as d:
        make_p, make_c, cleanup = setup(d)
        try:
            ready_r, ready_w = CTX.Pipe(False)
            out_r, out_w = CTX.Pipe(False)
            c = CTX.Process(target=_stream_consumer, args=(make_c, n, ready_w, out_w))
            c.start()
            put, _ = make_p("a")
            ready_r.recv_bytes()
            time.sleep(0.05)  # the consumer is asleep on the empty queue
            t0 = time.perf_counter()
            for i in range(n):
                put(i)
            status, end = out_r.recv()
            c.join()
            if status != "ok" or c.exitcode != 0:
                raise AssertionError(f"the consumer failed: {end} (exit {c.exitcode})")
            return n / (end - t0)
        finally:
            if cleanup:
                cleanup()


def pingpong(setup: Setup, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as d:
        make_p, make_c, cleanup = setup(d)
        try:
            ready_r, ready_w = CTX.Pipe(False)
            c = CTX.Process(target=_pong, args=(make_c, n, ready_w))
            c.start()
            put, _ = make_p("a")
            _, get = make_p("b")
            ready_r.recv_bytes()
            t0 = time.perf_counter()
            for i in range(n):
                put(i)
                if get() != i:
                    raise AssertionError("pingpong: the item that came back is another")
            rate = n / (time.perf_counter() - t0)
            c.join()
            if c.exitcode != 0:
                raise AssertionError(f"the child failed (exit {c.exitcode})")
            return rate
        finally:
            if cleanup:
                cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=50_000, help="items a stream cell sends")
    ap.add_argument("--trips", type=int, default=5_000, help="round trips a pingpong cell makes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    a = ap.parse_args()
    names = a.backends.split(",")
    if "mpqueue" not in names:
        names.append("mpqueue")  # the baseline
    skipped = {n: why for n in names if (why := BACKENDS[n][2]())}
    names = [n for n in names if n not in skipped]
    print(
        f"persist {persist.__version__}, {os.cpu_count()} CPUs, {a.items} items a stream, "
        f"{a.trips} round trips a pingpong, {a.rounds} rounds; "
        "ratio = rate / multiprocessing.Queue's, same workload, same round"
    )
    for n, why in skipped.items():
        print(f"skipped {BACKENDS[n][0]}: {why}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the start: {load} (other work on the machine skews every cell)")
    work: dict[str, tuple[Callable[[Setup, int], float], int, str]] = {
        "stream": (stream, a.items, "items/s"),
        "pingpong": (pingpong, a.trips, "trips/s"),
    }
    rates: dict[tuple[str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    for rnd in range(1, a.rounds + 1):
        print(f"\nround {rnd}")
        for w, (run, n, unit) in work.items():
            got = {b: run(BACKENDS[b][1], n) for b in names if w == "stream" or BACKENDS[b][3]}
            base = got["mpqueue"]
            for b, r in got.items():
                rates.setdefault((w, b), []).append(r)
                ratios.setdefault((w, b), []).append(r / base)
                print(f"  {w:<9} {BACKENDS[b][0]:<22} {r:>12,.0f} {unit}  {r / base:>6.2f}x")
    print("\nmedian of the rounds")
    print(f"  {'workload':<9} {'queue':<22} {'rate':>12}          {'x mp.Queue':>10}   (rounds)")
    for w, (_, _, unit) in work.items():
        for b in names:
            if (w, b) not in rates:
                continue
            rs, xs = rates[(w, b)], ratios[(w, b)]
            each = " ".join(f"{x:.2f}" for x in xs)
            print(
                f"  {w:<9} {BACKENDS[b][0]:<22} {statistics.median(rs):>12,.0f} {unit:<8} "
                f"{statistics.median(xs):>9.2f}x   ({each})"
            )


if __name__ == "__main__":
    main()
