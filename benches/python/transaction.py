"""transaction() against a lockExcl section doing the same work, as a ratio in one run.

    python benches/python/transaction.py [--threads 8] [--n 10000] [--repeat 3]

Each of --threads threads makes --n increments of one counter, `root['x'] += 1`, each inside
its own section: `lockExcl(); ...; unlock()`, `with root.lockExcl(): ...`, or `with
store.transaction(): ...`. The three run one after another on one fresh store, --repeat times
interleaved, and the script prints each rate (increments per second, all threads together,
the median of the repeats) and transaction()'s rate as a ratio of the plain lockExcl section's.
The count is checked: a lost update fails the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import persist


def plain(store: Any, root: Any) -> None:
    root.lockExcl()
    try:
        root["x"] += 1
    finally:
        root.unlock()


def guard(store: Any, root: Any) -> None:
    with root.lockExcl():
        root["x"] += 1


def transaction(store: Any, root: Any) -> None:
    with store.transaction():
        root["x"] += 1


def rate(store: Any, section: Callable[[Any, Any], None], threads: int, n: int) -> float:
    root = store.root
    root["x"] = 0

    def work() -> None:
        for _ in range(n):
            section(store, root)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    if root["x"] != threads * n:
        raise SystemExit(f"{section.__name__}: lost updates ({root['x']} of {threads * n})")
    return threads * n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sections = [plain, guard, transaction]
    rates: dict[str, list[float]] = {s.__name__: [] for s in sections}
    with tempfile.TemporaryDirectory() as d:
        with persist.open(os.path.join(d, "s.db")) as store:
            for _ in range(args.repeat):
                for s in sections:
                    rates[s.__name__].append(rate(store, s, args.threads, args.n))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        runs = ", ".join(f"{x / 1e3:.0f}k" for x in rates[k])
        print(f"{k:12s} {v / 1e3:8.0f}k increments/s  ({runs})")
    print(f"transaction() / lockExcl: {med['transaction'] / med['plain']:.2f}x the rate")
    print(f"with lockExcl() / lockExcl: {med['guard'] / med['plain']:.2f}x the rate")


if __name__ == "__main__":
    main()
