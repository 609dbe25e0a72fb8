"""The cost of durable=True on the counter workload (issue 4).

    python benches/python/durable_counter.py [--n 2000] [--dir /var/tmp]

Runs `lockExcl(); root['x'] += 1; unlock()` on a fresh store opened with the defaults and on
one opened with durable=True, in the same run, three times each, and prints the rates and
their ratio. The store lives in --dir (a directory on a real disk: on tmpfs an msync costs
nothing and the ratio means nothing).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import persist


def rate(directory: str, durable: bool, n: int) -> float:
    with tempfile.TemporaryDirectory(dir=directory) as d:
        with persist.open(os.path.join(d, "s.db"), durable=durable) as store:
            root = store.root
            root["x"] = 0
            t = time.perf_counter()
            for _ in range(n):
                root.lockExcl()
                try:
                    root["x"] += 1
                finally:
                    root.unlock()
            dt = time.perf_counter() - t
            assert root["x"] == n
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="increments of the durable run")
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    for _ in range(3):
        fast = rate(a.dir, False, a.n * 50)
        slow = rate(a.dir, True, a.n)
        print(
            f"default {fast:>12,.0f} incr/s   durable=True {slow:>8,.0f} incr/s   "
            f"ratio {fast / slow:,.0f}x"
        )


if __name__ == "__main__":
    main()
