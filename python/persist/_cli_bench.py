"""``python -m persist bench``: a short run of the peer benchmark's workloads on persist alone.

The workloads are those of the peer harness (``../shared/bench/peers.py`` in the project's
workspace; its README defines them), restated here so that the installed package alone can
run them: W1 counter (P processes each make K increments of ``root['x']`` under lockExcl,
P = 1 and 2), W2 kv (put N keys ``key000123`` -> int, get them all in random order, update
them all), W4 list append (K appends to ``root['l']``), W5 blob (1,000 values of 4 KiB random
bytes: put each once, get them in random order over several passes). Same sizes, same seeds,
same checks, the same time cap per phase; every worker is a fresh interpreter (spawn), opens
the store, waits at a barrier, and times its phase with perf_counter. The rate is all
operations over the time from the first start to the last finish.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue as queues
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import persist
from persist._cli_common import CliError, Progress, progress_wanted, rate

SEED = 20240601  # as the harness: every random choice derives from it
CHUNK = 256  # operations between two looks at the time cap

# "quick" and "full" are the harness's --quick and default sizes. Their phases are short (the
# counter's 5,000 increments take about 5 ms, which the harness marks as noisy), so the
# command's default, "short", runs every phase for roughly 50 to 300 ms: a few seconds in all.
SIZES = {
    "short": {
        "counter_K": 50_000,
        "kv_N": 50_000,
        "list_K": 50_000,
        "blob_count": 1_000,
        "blob_passes": 50,
        "cap": 4.0,
    },
    "smoke": {
        "counter_K": 500,
        "kv_N": 1_000,
        "list_K": 200,
        "blob_count": 100,
        "blob_passes": 2,
        "cap": 2.0,
    },
    "quick": {
        "counter_K": 5_000,
        "kv_N": 20_000,
        "list_K": 2_000,
        "blob_count": 1_000,
        "blob_passes": 10,
        "cap": 4.0,
    },
    "full": {
        "counter_K": 20_000,
        "kv_N": 100_000,
        "list_K": 5_000,
        "blob_count": 1_000,
        "blob_passes": 50,
        "cap": 15.0,
    },
}


# ---- the workloads (run in worker processes) --------------------------------------------------


def _chunks(seq: Sequence[Any], deadline: float) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), CHUNK):
        yield seq[i : i + CHUNK]
        if time.perf_counter() > deadline:
            return


def _phase(name: str, done: int, t0: float, t1: float, want: int) -> dict[str, Any]:
    return {"phase": name, "ops": done, "t0": t0, "t1": t1, "truncated": done < want}


def _check(
    root: Any, keys: list[str], expect: Callable[[int], Any], rng: random.Random, what: str
) -> None:
    for i in rng.sample(range(len(keys)), min(200, len(keys))):
        got = root[keys[i]]
        if got != expect(i):
            raise AssertionError(f"{what}: {keys[i]!r} read {got!r}, wrote {expect(i)!r}")


def job_counter(root: Any, p: dict[str, Any], ready: Callable[[], Any]) -> dict[str, Any]:
    """W1: K increments of root['x'], each under lockExcl."""
    k = p["K"]
    ready()
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(range(k), t0 + p["cap"]):
        for _ in chunk:
            root.lockExcl()
            try:
                root["x"] += 1
            finally:
                root.unlock()
        done += len(chunk)
    return {"phases": [_phase("incr", done, t0, time.perf_counter(), k)]}


def job_kv(root: Any, p: dict[str, Any], ready: Callable[[], Any]) -> dict[str, Any]:
    """W2: put N keys, get them all in random order, update them all."""
    n, cap = p["N"], p["cap"]
    rng = random.Random(SEED)
    keys = [f"key{i:06d}" for i in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    phases = []
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(range(n), t0 + cap):
        for i in chunk:
            root[keys[i]] = i
        done += len(chunk)
    phases.append(_phase("put", done, t0, time.perf_counter(), n))
    keys = keys[:done]
    order = [i for i in order if i < done]
    _check(root, keys, lambda i: i, rng, "put")
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(order, t0 + cap):
        for i in chunk:
            root[keys[i]]
        done += len(chunk)
    phases.append(_phase("get", done, t0, time.perf_counter(), len(order)))
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(order, t0 + cap):
        for i in chunk:
            root[keys[i]] = i + 1
        done += len(chunk)
    phases.append(_phase("update", done, t0, time.perf_counter(), len(order)))
    updated = set(order[:done])
    _check(root, keys, lambda i: i + 1 if i in updated else i, rng, "update")
    return {"phases": phases}


def job_list(root: Any, p: dict[str, Any], ready: Callable[[], Any]) -> dict[str, Any]:
    """W4: K appends to the list stored under 'l', in place."""
    k = p["K"]
    root["l"] = []
    lst = root["l"]
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(range(k), t0 + p["cap"]):
        for i in chunk:
            lst.append(i)
        done += len(chunk)
    t1 = time.perf_counter()
    if lst[:] != list(range(done)):
        raise AssertionError(f"the list has {len(lst)} items, expected 0..{done - 1}")
    return {"phases": [_phase("append", done, t0, t1, k)]}


def job_blob(root: Any, p: dict[str, Any], ready: Callable[[], Any]) -> dict[str, Any]:
    """W5: put COUNT values of 4 KiB random bytes, then get them in random order, PASSES
    times over."""
    count, cap = p["COUNT"], p["cap"]
    rng = random.Random(SEED + 5)
    keys = [f"blob{i:05d}" for i in range(count)]
    blobs = [rng.randbytes(4096) for _ in range(count)]
    order = list(range(count))
    rng.shuffle(order)
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(range(count), t0 + cap):
        for i in chunk:
            root[keys[i]] = blobs[i]
        done += len(chunk)
    phases = [_phase("put", done, t0, time.perf_counter(), count)]
    stored = done
    order = [i for i in order if i < stored] * p["PASSES"]
    done, t0 = 0, time.perf_counter()
    for chunk in _chunks(order, t0 + cap):
        for i in chunk:
            root[keys[i]]
        done += len(chunk)
    phases.append(_phase("get", done, t0, time.perf_counter(), len(order)))
    _check(root, keys[:stored], lambda i: blobs[i], rng, "blob")
    return {"phases": phases}


JOBS = {"counter": job_counter, "kv": job_kv, "list": job_list, "blob": job_blob}


def _worker(job: str, path: str, params: dict[str, Any], barrier: Any, results: Any) -> None:
    out: dict[str, Any] = {"wid": params["wid"]}
    try:
        with persist.open(path) as store:
            out.update(JOBS[job](store.root, params, lambda: barrier.wait(timeout=120)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which fails the run
        out["error"] = f"{type(e).__name__}: {e}"
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001 - the barrier may be gone already
            pass
    results.put(out)


# ---- the runner (the command's process) -----------------------------------------------------


class Runner:
    def __init__(self, sizes: dict[str, Any], workdir: str, progress: Progress) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.sizes = sizes
        self.workdir = workdir
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.seq = 0

    def run(
        self, job: str, params: dict[str, Any], procs: int, setup: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str]:
        self.seq += 1
        self.progress.phase(f"running {job}, {procs} process{'es' if procs > 1 else ''}")
        path = os.path.join(self.workdir, f"{self.seq:02d}-{job}.persist")
        with persist.open(path) as store:
            store.root.update(setup)
        barrier = self.ctx.Barrier(procs)
        results = self.ctx.Queue()
        ps = [
            self.ctx.Process(
                target=_worker,
                args=(
                    job,
                    path,
                    dict(params, wid=w, P=procs, cap=self.sizes["cap"]),
                    barrier,
                    results,
                ),
            )
            for w in range(procs)
        ]
        for p in ps:
            p.start()
        outs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 8 * self.sizes["cap"] + 120
        while len(outs) < procs:
            try:
                outs.append(results.get(timeout=0.5))
                continue
            except queues.Empty:
                pass
            if all(p.exitcode is not None for p in ps) or time.monotonic() > deadline:
                outs.append({"error": "a worker process died without reporting"})
                break
        for p in ps:
            p.join(30)
            if p.is_alive():  # our own child, by its handle
                p.kill()
                p.join()
        errors = [o["error"] for o in outs if "error" in o]
        if errors:
            raise CliError(f"bench {job} (P={procs}) failed: {errors[0]}")
        return outs, path

    def record(
        self, row: str, outs: list[dict[str, Any]], phase: str, unit: str, note: str = ""
    ) -> None:
        ph = [next(x for x in o["phases"] if x["phase"] == phase) for o in outs]
        ops = sum(x["ops"] for x in ph)
        secs = max(x["t1"] for x in ph) - min(x["t0"] for x in ph)
        marks = ("*" if any(x["truncated"] for x in ph) else "") + ("~" if secs < 0.02 else "")
        self.rows.append(
            {
                "workload": row,
                "ops": ops,
                "seconds": secs,
                "rate": ops / secs,
                "unit": unit,
                "marks": marks,
                "check": note,
            }
        )
        self.progress.note(f"{row}: {rate(ops / secs)} {unit}{marks}")

    def counter(self) -> None:
        k = self.sizes["counter_K"]
        for procs in (1, 2):
            outs, path = self.run("counter", {"K": k}, procs, {"x": 0})
            ops = sum(o["phases"][0]["ops"] for o in outs)
            with persist.open(path) as store:
                final = store.root["x"]
            if final != ops:
                raise CliError(
                    f"bench counter P={procs}: LOST UPDATES: final count {final} != {ops} "
                    "increments"
                )
            self.record(
                f"W1 counter P={procs} K={k} (lockExcl)",
                outs,
                "incr",
                "incr/s",
                f"final {final} = {ops}",
            )

    def kv(self) -> None:
        n = self.sizes["kv_N"]
        outs, _ = self.run("kv", {"N": n}, 1, {})
        for ph in ("put", "get", "update"):
            self.record(f"W2 kv {ph} N={n}", outs, ph, "ops/s")

    def list_append(self) -> None:
        k = self.sizes["list_K"]
        outs, _ = self.run("list", {"K": k}, 1, {})
        self.record(f"W4 list append K={k}", outs, "append", "appends/s", "list is 0..K-1")

    def blob(self) -> None:
        count, passes = self.sizes["blob_count"], self.sizes["blob_passes"]
        outs, _ = self.run("blob", {"COUNT": count, "PASSES": passes}, 1, {})
        self.record(f"W5 blob put {count}x4KiB", outs, "put", "ops/s")
        self.record(f"W5 blob get {count}x4KiB x{passes}", outs, "get", "ops/s")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench(args: argparse.Namespace) -> int:
    sizes = SIZES[args.sizes]
    progress = Progress("bench", progress_wanted(args.progress))
    machine = (
        f"{_cpu()}, {os.cpu_count()} CPUs; CPython {platform.python_version()}; "
        f"persist {persist.__version__}"
    )
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="persist-bench-") as workdir:
        runner = Runner(sizes, workdir, progress)
        for step in (runner.counter, runner.kv, runner.list_append, runner.blob):
            step()
    total = time.monotonic() - t0
    progress.done("done")
    if args.json:
        print(
            json.dumps(
                {"machine": machine, "sizes": args.sizes, "seconds": total, "rows": runner.rows},
                indent=2,
            )
        )
        return 0
    print(
        f"persist bench ({args.sizes} sizes, cap {sizes['cap']:g} s a phase, {total:.1f} s in all)"
    )
    print(f"machine: {machine}")
    width = max(len(r["workload"]) for r in runner.rows)
    print(f"{'workload':<{width}}  {'rate':>10}")
    for r in runner.rows:
        cell = f"{rate(r['rate'])} {r['unit']}{r['marks']}"
        print(f"{r['workload']:<{width}}  {cell:>10}")
    print("* the time cap stopped the phase early; ~ the phase took under 20 ms (noisy)")
    return 0
