"""The store at its limits: a disk that is full, a participant table that is full, and a store
of gigabytes that grows under a reader that opened it small.

The bug stories these tests guard against:

- **Disk full.** The file grows by ``posix_fallocate`` before a larger size is published
  (FORMAT.md §7.3), so a full disk must surface as ``StoreFullError`` (also a ``MemoryError``)
  at the operation that needed the room, never as a SIGBUS later, and never by losing what
  was stored before. The failing writer runs in a child under a small ``RLIMIT_FSIZE`` (SIGXFSZ
  ignored, so the kernel answers EFBIG instead of killing it) or on a small tmpfs (ENOSPC);
  the child checks that the store is intact and still usable; the test process, with no
  limit, reopens the file and checks every committed value again.
- **Participant slots.** The lock file has 1024 slots (§6.2); each open store takes one. When
  all are held, opening must be a clear ``persist.Error`` at once, never a hang, and a slot
  given back (a close, or a holder's death) must be usable again.
- **A big store.** A process that opened the store while it was a few KiB long must read
  gigabytes that another process wrote later, without configuration and without remapping
  (every process maps a large reservation, §2).

Figures (how far the full-disk writers got, the big store's write and read times) are printed;
``pytest -s tests/python/test_limits.py`` shows them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import persist
from conftest import child_env

CHILD_TIMEOUT = 120.0


def run_child(
    code: str, *args: str, timeout: float = CHILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter; a hang fails the test (TimeoutExpired)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child did not finish within {timeout} s (a hang?)\n{e.stdout}\n{e.stderr}")


def child_report(proc: subprocess.CompletedProcess[str], *, expect_rc: int = 0) -> dict[str, Any]:
    """The JSON line the child printed last; fails the test on an unexpected exit."""
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != expect_rc or not lines:
        pytest.fail(
            f"child exited with {proc.returncode} (expected {expect_rc})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return json.loads(lines[-1])


# ---- disk full ------------------------------------------------------------------------------

# The values every writer stores, derived from their key so that any process can recompute
# and compare them byte for byte.
VALUES = r"""
import hashlib

def value(key, size):
    d = hashlib.sha256(key.encode()).digest()
    return (d * (size // 32 + 1))[:size]

def small_size(i):
    # 16 .. 1039 bytes: spread over many size classes.
    return 16 + (i * 37) % 1024

HUGE = 3 << 20  # more than one 2 MiB chunk: a huge run (FORMAT.md §7.6)
PRE = 300       # values committed before a failing section
"""

# The filling child: argv = path, shape, limit (0: no rlimit, the file system is small).
# It writes until StoreFullError, checks that what it stored is intact and that the store is
# still usable, and prints a JSON report. Shapes:
#   small  root[f"k{i}"] = small values
#   list   root["l"].append(small value)
#   huge   PRE small values, then root[f"h{i}"] = 3 MiB values
#   txn    PRE small values, then one transaction() writing until full (rolled back whole)
#   excl   PRE small values, then lockExcl writing until full; close() without unlock rolls
#          the section back
#   die    as excl, but the child kills itself inside the section; the parent's open recovers
FILLER = (
    VALUES
    + r"""
import json, os, resource, signal, sys, time
import persist

path, shape, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
store = persist.open(path)
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
root = store.root
rep = {"shape": shape}

def fill(write):
    # Calls write(i) for i = 0, 1, ... until StoreFullError; returns (count, error).
    i = 0
    t = time.monotonic()
    while True:
        try:
            write(i)
        except persist.StoreFullError as e:
            rep["fill_seconds"] = round(time.monotonic() - t, 3)
            return i, e
        i += 1
        assert i < 10_000_000, "never full"

def pre():
    for i in range(PRE):
        root[f"c{i}"] = value(f"c{i}", small_size(i))

def check_pre():
    for i in range(PRE):
        assert root[f"c{i}"] == value(f"c{i}", small_size(i)), f"c{i} changed"

if shape == "small":
    def w(i):
        root[f"k{i}"] = value(f"k{i}", small_size(i))
    n, err = fill(w)
elif shape == "list":
    root["l"] = []
    lst = root["l"]
    def w(i):
        lst.append(value(f"l{i}", small_size(i)))
    n, err = fill(w)
elif shape == "huge":
    pre()
    def w(i):
        root[f"h{i}"] = value(f"h{i}", HUGE)
    n, err = fill(w)
elif shape == "txn":
    pre()
    def w(i):
        with store.transaction():
            for j in range(10_000_000):
                root[f"t{j}"] = value(f"t{j}", small_size(j))
                rep["section_writes"] = j + 1
    n, err = fill(w)
    assert n == 0
elif shape in ("excl", "die"):
    pre()
    root.lockExcl()
    def w(i):
        root[f"t{i}"] = value(f"t{i}", small_size(i))
    n, err = fill(w)
    rep["section_writes"] = n
    # Inside the section, everything written before the failure is still visible.
    assert all(root[f"t{i}"] == value(f"t{i}", small_size(i)) for i in range(0, n, 97))
    if shape == "die":
        rep["count"] = n
        rep["message"] = str(err)
        rep["is_memory_error"] = isinstance(err, MemoryError)
        print(json.dumps(rep), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    store.close()  # holding lockExcl: the section is rolled back
    store = persist.open(path)
    root = store.root
else:
    raise SystemExit("unknown shape " + shape)

rep["count"] = n
rep["message"] = str(err)
rep["is_memory_error"] = isinstance(err, MemoryError)
rep["is_persist_error"] = isinstance(err, persist.Error)
rep["file_size"] = store.stats()["file_size"]

# Nothing stored before the failure is lost or changed.
if shape == "small":
    for i in range(n):
        assert root[f"k{i}"] == value(f"k{i}", small_size(i)), f"k{i} changed"
    assert f"k{n}" not in root, "the failed assignment left its key behind"
    assert len(root) == n
elif shape == "list":
    assert len(lst) == n, (len(lst), n)
    for i in range(n):
        assert lst[i] == value(f"l{i}", small_size(i)), f"l[{i}] changed"
elif shape == "huge":
    check_pre()
    for i in range(n):
        assert root[f"h{i}"] == value(f"h{i}", HUGE), f"h{i} changed"
    assert f"h{n}" not in root
    assert len(root) == PRE + n
else:  # txn, excl: the failing section rolled back whole
    check_pre()
    assert len(root) == PRE, f"{len(root) - PRE} writes of the failed section survived"
    assert "t0" not in root
store.check()

# Still usable: reads above; now free something and write into the room it left.
if shape == "small":
    # (A new key would not do: inserting into a full dict table builds a table twice the
    # live size, and there is no room for that; replacing a value needs no new table.)
    for i in range(10):
        del root[f"k{i}"]
    root["k10"] = value("after", 200)
elif shape == "list":
    for _ in range(10):
        lst.pop()
    lst.append(value("after", 200))
elif shape == "huge":
    del root["h0"]
    root["h_again"] = value("h_again", HUGE)  # into the chunks h0 left
else:
    for i in range(10):
        del root[f"c{i}"]
    with store.transaction():
        root["after"] = value("after", 200)
rep["check"] = store.check()
store.close()
print(json.dumps(rep), flush=True)
"""
)

# The verifier: the test process's stand-in, with no limit. Reopens the file, compares every
# committed value, runs check(), and grows the store past the old limit.
VERIFIER = (
    VALUES
    + r"""
import json, sys
import persist

path, shape, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
grow = int(sys.argv[4])
store = persist.open(path)
root = store.root
if shape == "small":
    assert len(root) == n - 10, (len(root), n)
    for i in range(11, n):
        assert root[f"k{i}"] == value(f"k{i}", small_size(i)), f"k{i}"
    assert root["k10"] == value("after", 200)
elif shape == "list":
    lst = root["l"]
    assert len(lst) == n - 10 + 1
    for i in range(n - 10):
        assert lst[i] == value(f"l{i}", small_size(i)), f"l[{i}]"
    assert lst[-1] == value("after", 200)
elif shape == "huge":
    assert len(root) == 300 + n
    for i in range(300):
        assert root[f"c{i}"] == value(f"c{i}", small_size(i)), f"c{i}"
    for i in range(1, n):
        assert root[f"h{i}"] == value(f"h{i}", HUGE), f"h{i}"
    assert root["h_again"] == value("h_again", HUGE)
elif shape == "die":
    assert len(root) == 300, f"{len(root) - 300} writes of the dead holder's section survived"
    for i in range(300):
        assert root[f"c{i}"] == value(f"c{i}", small_size(i)), f"c{i}"
else:  # txn, excl
    assert len(root) == 300 - 10 + 1
    for i in range(10, 300):
        assert root[f"c{i}"] == value(f"c{i}", small_size(i)), f"c{i}"
    assert root["after"] == value("after", 200)
assert not any(isinstance(k, str) and k.startswith("t") for k in root), "section leftovers"
store.check()
# With the limit gone, the same store grows again.
if grow:
    root["grown"] = value("grown", grow)
    assert root["grown"] == value("grown", grow)
    store.check()
store.close()
print(json.dumps({"ok": True}))
"""
)

FSIZE_LIMIT = 16 << 20
SHAPES = ["small", "list", "huge", "txn", "excl", "die"]


def fill_and_verify(path: Path, shape: str, limit: int, grow: int) -> dict[str, Any]:
    proc = run_child(FILLER, str(path), shape, str(limit))
    rep = child_report(proc, expect_rc=-9 if shape == "die" else 0)
    assert rep["is_memory_error"], "StoreFullError must also be a MemoryError"
    if shape not in ("txn", "excl", "die"):
        assert rep["count"] > 0, "full before the first write"
    else:
        assert rep["section_writes"] > 0, "full before the section wrote anything"
    child_report(run_child(VERIFIER, str(path), shape, str(rep["count"]), str(grow)))
    print(
        f"\n[limits] {shape}: {rep['count']} writes before StoreFullError"
        f" (section writes {rep.get('section_writes', '-')}),"
        f" file {rep.get('file_size', '?')} bytes, {rep.get('fill_seconds', '?')} s;"
        f" message: {rep['message']!r}"
    )
    return rep


@pytest.mark.parametrize("shape", SHAPES)
def test_file_size_limit_raises_store_full_and_loses_nothing(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "s.db"
    rep = fill_and_verify(path, shape, FSIZE_LIMIT, grow=2 * FSIZE_LIMIT)
    if shape != "die":
        # The child filled the file close to the limit, not far below it.
        assert rep["file_size"] > FSIZE_LIMIT // 2, rep


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted under tmp_path (skips when mounting is not permitted)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", os.fspath(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", os.fspath(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", os.fspath(mnt)], check=False)


@pytest.mark.parametrize("shape", ["small", "list", "txn", "die"])
def test_full_tmpfs_raises_store_full_and_loses_nothing(small_tmpfs: Path, shape: str) -> None:
    path = small_tmpfs / "s.db"
    # grow=0: the tmpfs stays full; the verifier only reads and checks.
    rep = fill_and_verify(path, shape, 0, grow=0)
    if shape != "die":
        assert rep["file_size"] > 4 << 20, rep


FULL_MESSAGE_CHILD = r"""
import resource, signal, sys, json
import persist

path, shape, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
store = persist.open(path)
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
root = store.root
root["l"] = []
lst = root["l"]
try:
    for i in range(10_000_000):
        if shape == "list":
            lst.append(bytes([i % 256]) * 100)
        else:
            root[f"k{i}"] = bytes([i % 256]) * 100
except persist.StoreFullError as e:
    print(json.dumps({"message": str(e), "file_size": store.stats()["file_size"]}))
store.close()
"""


def test_store_full_message_names_the_cause(tmp_path: Path) -> None:
    """Every StoreFullError says why (the OS reason), and any size it names as the size the
    store could not grow to is larger than the file already is."""

    checked = []
    for shape in ("small", "list"):
        path = tmp_path / f"{shape}.db"
        rep = child_report(run_child(FULL_MESSAGE_CHILD, str(path), shape, str(FSIZE_LIMIT)))
        msg, size = rep["message"], rep["file_size"]
        checked.append(msg)
        assert os.strerror(27) in msg, f"{shape}: the OS reason (EFBIG) is missing: {msg!r}"
        m = re.search(r"grow to (\d+) bytes", msg)
        if m:
            assert int(m.group(1)) > size, f"{shape}: 'grow to {m.group(1)}' < file {size}: {msg!r}"
    print("\n[limits] messages:", checked)


# ---- participant slots ------------------------------------------------------------------------

# Holds N stores of one path open; on "close K" closes K of them; prints "ready"/"closed".
HOLDER = r"""
import sys
import persist

path, n = sys.argv[1], int(sys.argv[2])
stores = [persist.open(path) for _ in range(n)]
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "close":
        for _ in range(int(cmd[1])):
            stores.pop().close()
        print("closed", flush=True)
"""

# Tries to open the store `tries` times; reports how many opened and the first error.
OPENER = r"""
import json, os, sys, time
import persist

path, tries = sys.argv[1], int(sys.argv[2])
fds = len(os.listdir("/proc/self/fd"))
opened, err, kind, mro_ok, t = [], None, None, None, time.monotonic()
for _ in range(tries):
    try:
        opened.append(persist.open(path))
    except Exception as e:
        err, kind, mro_ok = str(e), type(e).__name__, isinstance(e, persist.Error)
        # Failed opens must give back what they took: descriptors, and the address space
        # of the mapping (200 leaked 1 TiB reservations would exhaust it).
        for _ in range(200):
            try:
                persist.open(path).close()
            except persist.Error:
                pass
        break
rep = {"opened": len(opened), "error": err, "kind": kind, "is_persist_error": mro_ok,
       "seconds": round(time.monotonic() - t, 3)}
for s in opened:
    s.root["ok"] = 1
    s.check()
    s.close()
rep["fd_leak"] = len(os.listdir("/proc/self/fd")) - fds
print(json.dumps(rep))
"""

HOLDERS, PER_HOLDER, SLOTS = 16, 64, 1024


def test_participant_slots_exhausted_is_a_clear_error_and_slots_come_back(
    tmp_path: Path, spawn_py: Any
) -> None:
    path = tmp_path / "s.db"
    persist.open(str(path)).close()
    t = time.monotonic()
    holders = [
        spawn_py(HOLDER, cwd=tmp_path, args=(str(path), str(PER_HOLDER))) for _ in range(HOLDERS)
    ]
    for h in holders:
        h.expect("ready", timeout=90)
    took = time.monotonic() - t
    assert HOLDERS * PER_HOLDER == SLOTS

    # Every slot is held: the next open fails at once, with a persist.Error that says so.
    rep = child_report(run_child(OPENER, str(path), "1", timeout=30))
    assert rep["opened"] == 0, rep
    assert rep["is_persist_error"], rep
    assert "slot" in rep["error"] and "close" in rep["error"], rep
    assert rep["seconds"] < 5, rep
    assert rep["fd_leak"] == 0, rep

    # Three slots given back by close: exactly three opens succeed.
    holders[0].send("close 3")
    holders[0].expect("closed")
    rep = child_report(run_child(OPENER, str(path), "10", timeout=30))
    assert rep["opened"] == 3, rep
    assert rep["is_persist_error"], rep

    # A holder killed: its 64 slots come back (recovered by the next openers).
    holders[1].kill()
    rep = child_report(run_child(OPENER, str(path), "10", timeout=30))
    assert rep["opened"] == 10 and rep["error"] is None, rep
    print(f"\n[limits] {SLOTS} slots taken by {HOLDERS} processes in {took:.1f} s; error: {rep}")
    for h in holders:
        h.kill()
    with persist.open(str(path)) as s:
        assert s.root["ok"] == 1
        s.check()


# One process opens stores until an error. The 1024 slots are never reached: each open maps a
# 1 TiB reservation (FORMAT.md §2), and x86-64 gives a process 128 TiB.
MANY_IN_ONE = r"""
import json, sys, threading, time
import persist

path = sys.argv[1]
stores, t = [], time.monotonic()
err = kind = None
is_persist = False
try:
    while len(stores) < 1100:
        stores.append(persist.open(path))
except Exception as e:
    err, kind, is_persist = str(e), type(e).__name__, isinstance(e, persist.Error)
rep = {"opened": len(stores), "error": err, "kind": kind, "is_persist_error": is_persist,
       "seconds": round(time.monotonic() - t, 3)}
# The process must stay healthy while its stores are open: ordinary allocations and threads.
try:
    b = bytearray(64 << 20)
    del b
    rep["alloc_64mib"] = True
except MemoryError:
    rep["alloc_64mib"] = False
try:
    th = threading.Thread(target=lambda: None)
    th.start()
    th.join()
    rep["thread"] = True
except RuntimeError:
    rep["thread"] = False
# Each open store can hold an 8 MiB value.
try:
    stores[-1].root["big"] = bytes(8 << 20)
    rep["last_store_8mib"] = True
except MemoryError as e:
    rep["last_store_8mib"] = type(e).__name__
for s in stores[:5]:
    s.close()
again = [persist.open(path) for _ in range(5)]
rep["reopened"] = len(again)
for s in stores[5:] + again:
    s.close()
print(json.dumps(rep))
"""


def test_many_stores_in_one_process_fail_clearly_and_leave_the_process_healthy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    rep = child_report(run_child(MANY_IN_ONE, str(path), timeout=60))
    print(f"\n[limits] one process: {rep}")
    assert rep["reopened"] == 5, rep  # closing some gives the room back (holds today)
    if rep["error"] is not None:
        assert rep["is_persist_error"], rep
        assert "slot" in rep["error"] or "address" in rep["error"], rep
    assert rep["alloc_64mib"] and rep["thread"], rep
    assert rep["last_store_8mib"] is True, rep


# ---- a store of gigabytes, read by a process that opened it small --------------------------

BIG = r"""
import random

VALUE = 32 << 20
_base = random.Random(20240601).randbytes(VALUE)

def big_value(i):
    k = (i * 1_000_003) % VALUE
    return i.to_bytes(8, "little") + _base[k + 8:] + _base[8:k + 8]
"""

BIG_READER = (
    BIG
    + r"""
import hashlib, json, sys, time
import persist

path = sys.argv[1]
store = persist.open(path)
root = store.root  # held while the store grows from a few KiB to gigabytes
root["ready"] = True
size0 = store.stats()["file_size"]
print("ready", size0, flush=True)
n = int(sys.stdin.readline())
digests = json.loads(sys.stdin.readline())
t = time.monotonic()
bad = []
for i in range(n):
    v = root[f"v{i}"]
    if len(v) != VALUE or hashlib.sha1(v).hexdigest() != digests[i] or v != big_value(i):
        bad.append(i)
read_s = time.monotonic() - t
t = time.monotonic()
store.check()
check_s = time.monotonic() - t
print(json.dumps({"bad": bad, "read_s": round(read_s, 2), "check_s": round(check_s, 2),
                  "size0": size0, "file_size": store.stats()["file_size"]}), flush=True)
store.close()
"""
)

BIG_WRITER = (
    BIG
    + r"""
import hashlib, json, sys, time
import persist

path, n = sys.argv[1], int(sys.argv[2])
store = persist.open(path)
root = store.root
digests, t, gen = [], time.monotonic(), 0.0
for i in range(n):
    g = time.monotonic()
    v = big_value(i)
    digests.append(hashlib.sha1(v).hexdigest())
    gen += time.monotonic() - g
    root[f"v{i}"] = v
total = time.monotonic() - t
st = store.stats()
store.close()
print(json.dumps({"digests": digests, "write_s": round(total - gen, 2), "total_s": round(total, 2),
                  "file_size": st["file_size"], "live_bytes": st["live_bytes"]}))
"""
)


def test_gigabytes_written_by_one_process_are_read_by_one_that_opened_it_small(
    tmp_path: Path, spawn_py: Any
) -> None:
    free = shutil.disk_usage(tmp_path).free
    if free < 4 << 30:
        pytest.skip(f"only {free >> 20} MiB free on {tmp_path}; the test needs about 4 GiB")
    # 2 GiB of data, scaled down to a quarter of what is free (the file holds more than the
    # data: huge runs live in one generation each).
    n = min(64, (free // 4) // (32 << 20))
    path = tmp_path / "big.db"
    try:
        reader = spawn_py(BIG_READER, cwd=tmp_path, args=(str(path),))
        ready = reader.expect("ready *", timeout=60)
        size0 = int(ready.split()[1])
        assert size0 < 8 << 20, ready

        writer = run_child(BIG_WRITER, str(path), str(n), timeout=150)
        w = child_report(writer)
        assert len(w["digests"]) == n
        assert w["live_bytes"] >= n * (32 << 20), w

        reader.send(str(n))
        reader.send(json.dumps(w["digests"]))
        line = reader.expect("{*", timeout=150)
        r = json.loads(line)
        rc, _, err = reader.wait(timeout=30)
        assert rc == 0, err
        assert r["bad"] == [], f"values read back wrong: {r['bad']}"
        assert r["file_size"] >= n * (32 << 20), r
        gib = n * (32 << 20) / (1 << 30)
        print(
            f"\n[limits] big store: {n} x 32 MiB = {gib:.2f} GiB; write {w['write_s']} s "
            f"(with value generation {w['total_s']} s); read+sha1+compare {r['read_s']} s; "
            f"check {r['check_s']} s; file {w['file_size'] / (1 << 30):.2f} GiB; reader "
            f"opened it at {r['size0']} bytes"
        )
    finally:
        for p in (path, Path(os.fspath(path) + ".lock")):
            p.unlink(missing_ok=True)
    assert not path.exists()


# A reader whose address space is limited (ulimit -v): its reservation is smaller than 1 TiB,
# and another process grows the store past it.
SMALL_AS_READER = r"""
import json, resource, sys
import persist

path = sys.argv[1]
vm = [int(ln.split()[1]) * 1024 for ln in open("/proc/self/status") if ln.startswith("VmSize")][0]
# Room for a 256 MiB reservation and the interpreter's own needs; soft limit only.
resource.setrlimit(resource.RLIMIT_AS, (vm + (384 << 20), resource.RLIM_INFINITY))
store = persist.open(path)
root = store.root
print("ready", flush=True)
n = int(sys.stdin.readline())
rep = {"read": 0, "error": None, "kind": None, "check_kind": None}
try:
    for i in range(n):
        assert root[f"v{i}"] == bytes([i]) * (20 << 20), f"v{i} read back wrong"
        rep["read"] = i + 1
except persist.Error as e:
    rep["error"], rep["kind"] = str(e), type(e).__name__
try:
    store.check()
except persist.Error as e:
    rep["check_kind"], rep["check_error"] = type(e).__name__, str(e)
print(json.dumps(rep), flush=True)
"""

SMALL_AS_WRITER = r"""
import sys
import persist

path, n = sys.argv[1], int(sys.argv[2])
with persist.open(path) as s:
    for i in range(n):
        s.root[f"v{i}"] = bytes([i]) * (20 << 20)
    s.check()
print("{}")
"""


def test_reader_with_small_address_space_never_reports_a_healthy_store_corrupt(
    tmp_path: Path, spawn_py: Any
) -> None:
    path = tmp_path / "s.db"
    persist.open(str(path)).close()
    try:
        reader = spawn_py(SMALL_AS_READER, cwd=tmp_path, args=(str(path),))
        reader.expect("ready", timeout=60)
        n = 16  # 320 MiB: past a 256 MiB reservation
        child_report(run_child(SMALL_AS_WRITER, str(path), str(n), timeout=60))
        reader.send(str(n))
        rep = json.loads(reader.expect("{*", timeout=60))
        reader.kill()
    finally:
        path.unlink(missing_ok=True)
    print(f"\n[limits] reader under RLIMIT_AS: {rep}")
    # Reading everything is best; a clear persist.Error about the address reservation is
    # acceptable; a CorruptionError about a healthy store is not.
    assert rep["kind"] != "CorruptionError", rep
    assert rep["check_kind"] != "CorruptionError", rep
    if rep["error"] is not None:
        assert "reservation" in rep["error"] or "address" in rep["error"], rep
