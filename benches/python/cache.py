"""persist.Cache against a plain persist.Dict and diskcache, in ns per operation, in one run.

    python benches/python/cache.py [--n 20000] [--repeats 3]

On fresh stores in one process, with 12-byte str keys and int values (stored in the entry's
word): ``set`` of new keys and ``get`` of present keys on

- a persist.Cache with a ttl (``persist.Cache(ttl=3600)``: every entry expires, so every set
  writes an entry tuple and runs the bounded sweep, and every read checks the clock),
- a persist.Cache with an entry limit of n / 2 (``max_entries``: half the sets evict, and
  every get moves the entry in the recency order: a small change of the store),
- a persist.Dict (``d[k] = v``, ``d[k]``),
- diskcache.Cache (``set(k, v, expire=3600)``, ``get(k)``) if ``import diskcache`` works (the
  bench venv of ../shared/bench/README.md has it; else that row is skipped).

Each variant runs --repeats times, alternating; the best is printed with its ratio to the
persist.Dict and to diskcache (below 1: faster).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any


def timed(f: Callable[[], None]) -> float:
    t0 = time.perf_counter_ns()
    f()
    return float(time.perf_counter_ns() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import persist

    try:
        import diskcache
    except ImportError:
        diskcache = None
    n = args.n
    keys = [f"key{i:09d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, persist.open(os.path.join(tmp, "c.db")) as st:
        root = st.root
        variants: dict[str, tuple[Callable[[], Any], Callable[[Any], None], Callable[[Any], None]]]
        variants = {}

        def persist_variant(make: Callable[[], Any]) -> tuple[Any, Any, Any]:
            def fresh() -> Any:
                root["x"] = make()
                return root["x"]

            def put(c: Any) -> None:
                for i, k in enumerate(keys):
                    c[k] = i

            def get(c: Any) -> None:
                for k in keys:
                    c[k]

            return fresh, put, get

        variants["Cache(ttl=3600)"] = persist_variant(lambda: persist.Cache(ttl=3600))
        variants[f"Cache(max_entries={n // 2})"] = persist_variant(
            lambda: persist.Cache(max_entries=n // 2)
        )
        variants["Dict"] = persist_variant(dict)
        if diskcache is not None:
            dc_dir = os.path.join(tmp, "dc")

            def dc_fresh() -> Any:
                c = diskcache.Cache(dc_dir)
                c.clear()
                return c

            def dc_put(c: Any) -> None:
                for i, k in enumerate(keys):
                    c.set(k, i, expire=3600)

            def dc_get(c: Any) -> None:
                for k in keys:
                    c.get(k)

            variants["diskcache.Cache"] = (dc_fresh, dc_put, dc_get)

        best: dict[tuple[str, str], float] = {}
        for _ in range(args.repeats):
            for name, (fresh, put, get) in variants.items():
                c = fresh()
                t_put = timed(lambda c=c, put=put: put(c))
                # The limited cache holds the last n / 2 keys: get those (all hits).
                t_get = timed(lambda c=c, get=get: get(c)) if "max_entries" not in name else None
                if t_get is None:
                    half = keys[n // 2 :]
                    t0 = time.perf_counter_ns()
                    for k in half:
                        c[k]
                    t_get = float(time.perf_counter_ns() - t0) * 2
                for op, t in (("set", t_put), ("get", t_get)):
                    best[(name, op)] = min(best.get((name, op), float("inf")), t / n)
        print(
            f"persist {persist.__version__}, n = {n}, best of {args.repeats}"
            + (f", diskcache {diskcache.__version__}" if diskcache is not None else "")
        )
        print(f"{'variant':26} {'op':4} {'ns/op':>8} {'/Dict':>7} {'/diskcache':>10}")
        for name in variants:
            for op in ("set", "get"):
                ns = best[(name, op)]
                rel_d = ns / best[("Dict", op)]
                rel_dc = (
                    f"{ns / best[('diskcache.Cache', op)]:10.2f}"
                    if ("diskcache.Cache", op) in best
                    else f"{'-':>10}"
                )
                print(f"{name:26} {op:4} {ns:8.0f} {rel_d:7.2f} {rel_dc}")


if __name__ == "__main__":
    main()
