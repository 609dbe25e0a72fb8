"""persist.Set against persist.Dict, in ns per operation: a set is a dict table without values
(FORMAT.md §10.2), so ``s.add(x)`` and ``x in s`` should cost what ``d[x] = None`` and ``x in d``
cost.

    python benches/python/set_vs_dict.py [--n 100000] [--repeats 5]

On one fresh store in one process, for int members (stored in the word) and 12-byte str members
(a block each): ``add`` of new members against ``d[x] = None`` of new keys (the table grows),
``add`` of members already there against ``d[x] = None`` of keys already there, and ``in`` of
members and of absent values. The set and dict runs alternate; the best of --repeats of each is
printed with the ratio set / dict (above 1: the set is slower).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any


def cases(root: Any, keys: list[Any], absent: list[Any]) -> dict[str, tuple[Callable, Callable]]:
    def fresh() -> tuple[Any, Any]:
        root["s"] = set()
        root["d"] = {}
        return root["s"], root["d"]

    s, d = fresh()

    def add_new_set() -> None:
        nonlocal s
        s, _ = fresh()
        for x in keys:
            s.add(x)

    def add_new_dict() -> None:
        nonlocal d
        _, d = fresh()
        for x in keys:
            d[x] = None

    def add_present_set() -> None:
        for x in keys:
            s.add(x)

    def add_present_dict() -> None:
        for x in keys:
            d[x] = None

    def in_set() -> None:
        for x in keys:
            x in s  # noqa: B015

    def in_dict() -> None:
        for x in keys:
            x in d  # noqa: B015

    def miss_set() -> None:
        for x in absent:
            x in s  # noqa: B015

    def miss_dict() -> None:
        for x in absent:
            x in d  # noqa: B015

    return {
        "add new": (add_new_set, add_new_dict),
        "add present": (add_present_set, add_present_dict),
        "in (hit)": (in_set, in_dict),
        "in (miss)": (miss_set, miss_dict),
    }


def timed(f: Callable[[], None]) -> float:
    t0 = time.perf_counter_ns()
    f()
    return float(time.perf_counter_ns() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import persist

    n = args.n
    kinds = {
        "int": ([i * 7 for i in range(n)], [i * 7 + 3 for i in range(n)]),
        "str12": ([f"member{i:06d}" for i in range(n)], [f"absent{i:06d}" for i in range(n)]),
    }
    print(f"persist {persist.__version__}, n = {n}, best of {args.repeats}")
    print(f"{'members':8} {'operation':12} {'Set ns/op':>10} {'Dict ns/op':>10} {'Set/Dict':>9}")
    with tempfile.TemporaryDirectory() as tmp, persist.open(os.path.join(tmp, "s.db")) as st:
        for kind, (keys, absent) in kinds.items():
            # In order: "add new" leaves the set and the dict full for the runs after it.
            for name, (on_set, on_dict) in cases(st.root, keys, absent).items():
                if name == "add new":
                    on_set(), on_dict()  # warm-up: pages first touched
                best_s = best_d = float("inf")
                for _ in range(args.repeats):
                    best_s = min(best_s, timed(on_set))
                    best_d = min(best_d, timed(on_dict))
                s_ns, d_ns = best_s / n, best_d / n
                print(f"{kind:8} {name:12} {s_ns:10.0f} {d_ns:10.0f} {s_ns / d_ns:9.2f}")


if __name__ == "__main__":
    main()
