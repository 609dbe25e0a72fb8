"""Appends per second as a stored list grows (issue 3: they must not fall with the length).

    python benches/python/list_growth.py [--n 200000] [--window 2000]

Appends ``root['l'].append(i)`` (the peer harness's W4 operation) until the list holds N
items and reports the rate of the window of appends ending at 2,000, 20,000, 100,000 and N
items (a window is WINDOW appends or a tenth of the length, whichever is more, so that the
occasional move of the items to a larger block is counted at its amortized cost), and the
ratio of the last window's rate to the first's. Uses a fresh store in a temp dir.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import persist


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--window", type=int, default=2_000)
    a = ap.parse_args()
    marks = sorted({m for m in (2_000, 20_000, 100_000, a.n) if m <= a.n})
    with tempfile.TemporaryDirectory() as d, persist.open(os.path.join(d, "s.db")) as store:
        root = store.root
        root["l"] = []
        rates = {}
        i = 0
        for m in marks:
            window = max(a.window, m // 10)
            start = m - window
            while i < start:
                root["l"].append(i)
                i += 1
            t0 = time.perf_counter()
            while i < m:
                root["l"].append(i)
                i += 1
            rates[m] = window / (time.perf_counter() - t0)
            print(f"appends {start:>8,}..{m:>8,}: {rates[m] / 1e3:8.0f}k/s", flush=True)
        assert root["l"][-1] == a.n - 1 and len(root["l"]) == a.n
        first, last = rates[marks[0]], rates[marks[-1]]
        print(f"last window / first window: {last / first:.2f}x")


if __name__ == "__main__":
    main()
