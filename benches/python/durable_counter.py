"""The cost of durable=True on the counter workload (issue 4), and on appends.

    python benches/python/durable_counter.py [--n 2000] [--dir /var/tmp] [--workload append]

Runs `lockExcl(); root['x'] += 1; unlock()` (or, with --workload append, `root['l'].append(s)`
of a 100-byte string: an allocation per call, so the allocator's persist barriers are paid
too) on a fresh store opened with the defaults and on one opened with durable=True, in the
same run, three times each, and prints the rates and their ratio. The store lives in --dir (a
directory on a real disk: on tmpfs an msync costs nothing and the ratio means nothing).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import persist


def rate(directory: str, durable: bool, n: int, workload: str) -> float:
    with tempfile.TemporaryDirectory(dir=directory) as d:
        with persist.open(os.path.join(d, "s.db"), durable=durable) as store:
            root = store.root
            root["x"] = 0
            root["l"] = []
            items = root["l"]
            t = time.perf_counter()
            if workload == "counter":
                for _ in range(n):
                    root.lockExcl()
                    try:
                        root["x"] += 1
                    finally:
                        root.unlock()
            else:
                for i in range(n):
                    items.append(f"{i:>100}")
            dt = time.perf_counter() - t
            assert root["x"] == n or len(items) == n
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="increments of the durable run")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--workload", choices=["counter", "append"], default="counter")
    a = ap.parse_args()
    unit = "incr/s" if a.workload == "counter" else "appends/s"
    for _ in range(3):
        fast = rate(a.dir, False, a.n * 50, a.workload)
        slow = rate(a.dir, True, a.n, a.workload)
        print(
            f"default {fast:>12,.0f} {unit}   durable=True {slow:>8,.0f} {unit}   "
            f"ratio {fast / slow:,.0f}x"
        )


if __name__ == "__main__":
    main()
