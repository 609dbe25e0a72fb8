"""Single-process cost of the common operations, in ns per operation (issue 12: single changes
on part locks must not make one process slower).

    python benches/python/micro_loop.py [--n 200000] [--repeats 5]
    python benches/python/micro_loop.py --compare OTHER_PYTHON [--n 200000] [--rounds 3]

Times, on a fresh store in one process: ``d[k] = i`` (set int, an existing key), ``d[k]`` (get),
``l.append(i)``, ``lockExcl; root['x'] += 1; unlock`` (counter) and ``d[k] = s`` with a 20-byte
str (set str: an allocation and a free per call). Prints the best of --repeats runs of each.

With --compare, the same operations run alternately in this interpreter's persist and in
OTHER_PYTHON's (say, a venv with main's build), --rounds times each, and the best of each side
is printed with the ratio this / other (above 1: this build is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import persist


def ops(root: object, n: int) -> dict[str, Callable[[], None]]:
    d = root["d"]  # type: ignore[index]
    lst = root["l"]  # type: ignore[index]

    def set_int() -> None:
        for i in range(n):
            d["k"] = i

    def get() -> None:
        for _ in range(n):
            d["k"]

    def append() -> None:
        for i in range(n):
            lst.append(i)

    def counter() -> None:
        for _ in range(n):
            root.lockExcl()  # type: ignore[attr-defined]
            try:
                root["x"] += 1  # type: ignore[index]
            finally:
                root.unlock()  # type: ignore[attr-defined]

    s = "twenty bytes of str!"

    def set_str() -> None:
        for _ in range(n):
            d["s"] = s

    return {
        "set int": set_int,
        "get": get,
        "append": append,
        "counter": counter,
        "set str": set_str,
    }


def measure(n: int, repeats: int) -> dict[str, float]:
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with persist.open(os.path.join(tmp, "s.db")) as store:
            root = store.root
            root["d"] = {"k": 0}
            root["l"] = []
            root["x"] = 0
            for run in ops(root, max(n // 10, 1)).values():
                run()  # warm-up: the first change's allocations, the pages first touched
            for _ in range(repeats):
                root["d"] = {"k": 0}
                root["l"] = []
                root["x"] = 0
                for name, run in ops(root, n).items():
                    t = time.perf_counter()
                    run()
                    ns = (time.perf_counter() - t) / n * 1e9
                    best[name] = min(best.get(name, ns), ns)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compare", help="another interpreter whose persist to time alternately")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if not a.compare:
        r = measure(a.n, a.repeats)
        if a.json:
            print(json.dumps(r))
            return
        print(f"persist {persist.__version__} from {persist.__file__}")
        for name, ns in r.items():
            print(f"{name:10} {ns:8.1f} ns/op")
        return
    me: dict[str, float] = {}
    other: dict[str, float] = {}
    cmd = [__file__, "--n", str(a.n), "--repeats", "1", "--json"]
    for _ in range(a.rounds):
        for side, py in ((me, sys.executable), (other, a.compare)):
            out = subprocess.run([py, *cmd], check=True, capture_output=True, text=True).stdout
            for name, ns in json.loads(out).items():
                side[name] = min(side.get(name, ns), ns)
    print(f"this: {sys.executable}; other: {a.compare}; n = {a.n}, best of {a.rounds} rounds")
    print(f"{'op':10} {'this ns':>9} {'other ns':>9} {'this/other':>10}")
    for name in me:
        print(f"{name:10} {me[name]:9.1f} {other[name]:9.1f} {me[name] / other[name]:10.2f}")


if __name__ == "__main__":
    main()
