"""``python -m persist demo``: a short run a newcomer can watch.

It runs the 2004 seed programs as written (each in a fresh interpreter, several times), then
starts worker processes that share a counter and a list in one store, and checks the result.
Everything happens in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import textwrap
import time

COUNTER = textwrap.dedent(
    """\
    import persist
    root = persist.root()
    root.lockExcl()
    try:    root['x'] += 1                 # increment counter
    except KeyError: root['x'] = 1         # first pass
    print("You are visitor", root['x'])
    root.unlock()
    """
)

PERSON = textwrap.dedent(
    """\
    import persist
    from pbase import pbase                # also: from persist import pbase

    class person(pbase):
        def __init__(self, name="", age=0):
            pbase.__init__(self)
            self.name = name
            self.age = age
        def printAge(self):
            print(self.name, "is", self.age, "years old")

    root = persist.root()
    root.lockExcl()
    if not root.has_key('Joe'):
        root['Joe'] = person('Joe', 27)
    root['Joe'].printAge()                 # later runs: the stored object, re-instantiated
    root.unlock()
    """
)


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _run_program(workdir: str, name: str, source: str, runs: int) -> None:
    path = os.path.join(workdir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    for i in range(runs):
        out = subprocess.run(
            [sys.executable, name],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PERSIST_PATH": ""},
        )
        if out.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{out.stderr}")
        _say(f"    run {i + 1}: {out.stdout.strip()}")


def _worker(path: str, n: int, ident: int) -> None:
    import persist

    with persist.open(path) as store:
        root = store.root
        shared = root["log"]
        for i in range(n):
            root.lockExcl()
            root["counter"] += 1
            root.unlock()
            shared.append((ident, i))  # one atomic append, no lock needed


def main(workers: int = 4, increments: int = 2000) -> int:
    import persist

    _say("persist demo: a persistent object store shared by processes.\n")
    with tempfile.TemporaryDirectory(prefix="persist-demo-") as workdir:
        _say(f"Working in {workdir} (removed at the end).\n")

        _say("1. The 2004 visitor counter, run three times as separate programs:")
        _say(textwrap.indent(COUNTER, "       | "))
        _run_program(workdir, "counter.py", COUNTER, 3)
        _say("   Each run found the count the previous one left in persist.db.\n")

        _say("2. A user object (a pbase subclass), stored once and read back by later runs")
        _say("   without calling __init__:")
        _run_program(workdir, "person.py", PERSON, 2)
        _say()

        path = os.path.join(workdir, "shared.db")
        with persist.open(path) as store:
            store.root["counter"] = 0
            store.root["log"] = []
        _say(
            f"3. {workers} processes share one store: each adds 1 to a counter {increments} "
            "times under lockExcl,"
        )
        _say("   and appends to a shared list without any lock.")
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(path, increments, k)) for k in range(workers)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        with persist.open(path) as store:
            root = store.root
            expected = workers * increments
            while any(p.is_alive() for p in procs):
                done = len(root["log"])
                bar = "#" * (30 * done // expected)
                print(f"\r   [{bar:<30}] {done}/{expected} appends", end="", flush=True)
                time.sleep(0.1)
            for p in procs:
                p.join()
            elapsed = time.perf_counter() - t0
            count = root["counter"]
            log = root["log"]
            print(f"\r   [{'#' * 30}] {len(log)}/{expected} appends", flush=True)
            failed = [p.exitcode for p in procs if p.exitcode != 0]
            if failed:
                _say(f"   a worker failed (exit codes {failed})")
                return 1
            distinct = len(set(log.to_python()))
            _say(f"   counter = {count} (expected {expected}), list length = {len(log)}, ")
            _say(f"   distinct entries = {distinct}, in {elapsed:.2f} s.")
            report = store.check()
            _say(
                f"   store.check(): consistent ({report['objects']} containers, "
                f"{report['live_bytes']} live bytes)."
            )
            ok = count == expected and len(log) == expected and distinct == expected
        _say()
        _say("Nothing lost." if ok else "MISMATCH: something was lost.")
        return 0 if ok else 1
