"""Many processes and threads on one store: atomic single operations, the store lock
(lockExcl/lockShared/unlock), isolation, transactions, and interrupting a lock wait.

Nothing here asserts on speed. Where a test needs another party to be waiting, it makes sure
that party has started (a line on a pipe, an event) and then gives it time to go wrong: a
short sleep before the next step. A correct store passes however the steps interleave; a store
that lets the waiter through fails with the sleep in place. Every wait has a generous timeout,
and a timeout is a failure, never a pass.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import persist

PER_WORKER = 2000
WORKERS = 4
JOIN_TIMEOUT = 240.0
# Time for a party that should be blocked to go wrong, if it would (not an assertion).
SETTLE = 0.5

# (multiprocessing start method, how the worker gets its store)
MODES = [
    pytest.param("spawn", "path", id="spawn"),
    pytest.param("fork", "path", id="fork-open"),
    pytest.param("fork", "inherited", id="fork-inherited"),
]

# Python 3.12+ warns when forking a process that has threads; the store may have some.
fork_ok = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


# --- workers (module level, so that spawn can import them) ----------------------------------


def _attach(target: Any) -> tuple[Any, bool]:
    """A worker's store: a path to open, or the parent's store inherited through fork."""
    if isinstance(target, str):
        return persist.open(target), True
    return target, False


def append_worker(target: Any, wid: int, n: int) -> None:
    store, own = _attach(target)
    lst = store.root["l"]
    for i in range(n):
        lst.append((wid, i))
    if own:
        store.close()


def new_keys_worker(target: Any, wid: int, n: int) -> None:
    store, own = _attach(target)
    d = store.root["d"]
    for i in range(n):
        d[f"{wid}:{i}"] = [wid, i]
    if own:
        store.close()


def increment_worker(target: Any, wid: int, n: int) -> None:
    store, own = _attach(target)
    root = store.root
    for _ in range(n):
        root.lockExcl()
        try:
            root["n"] += 1
        finally:
            root.unlock()
    if own:
        store.close()


def lockExcl_looper(path: str, started: Any, stop: Any) -> None:
    """Takes lockExcl again as soon as it frees it, until `stop` is set."""
    store = persist.open(path)
    root = store.root
    started.set()
    while not stop.is_set():
        for _ in range(200):
            root.lockExcl()
            try:
                root["n"] += 1
            finally:
                root.unlock()
    store.close()


def shared_reader(path: str, barrier: Any) -> None:
    store = persist.open(path)
    root = store.root
    root.lockShared()
    try:
        # Every party must be inside lockShared at once for the barrier to open.
        barrier.wait(timeout=60)
        assert root["x"] == "shared"
    finally:
        root.unlock()
    store.close()


def run_workers(method: str, target_fn: Any, args: list[tuple[Any, ...]]) -> None:
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=target_fn, args=a) for a in args]
    for p in procs:
        p.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    stuck = [p for p in procs if p.is_alive()]
    for p in stuck:
        p.kill()
        p.join()
    assert not stuck, f"{len(stuck)} workers did not finish"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def worker_target(store: Any, store_path: Path, how: str) -> Any:
    return str(store_path) if how == "path" else store


# --- atomic single operations without a lock ------------------------------------------------


@fork_ok
@pytest.mark.parametrize(("method", "how"), MODES)
def test_appends_from_many_processes(store: Any, store_path: Path, method: str, how: str) -> None:
    store.root["l"] = []
    target = worker_target(store, store_path, how)
    run_workers(method, append_worker, [(target, w, PER_WORKER) for w in range(WORKERS)])
    items = list(store.root["l"])
    assert len(items) == WORKERS * PER_WORKER
    assert sorted(items) == [(w, i) for w in range(WORKERS) for i in range(PER_WORKER)]
    # Each worker's appends are in its own order.
    for w in range(WORKERS):
        assert [i for (v, i) in items if v == w] == list(range(PER_WORKER))
    store.check()


@fork_ok
@pytest.mark.parametrize(("method", "how"), MODES)
def test_new_keys_from_many_processes(store: Any, store_path: Path, method: str, how: str) -> None:
    store.root["d"] = {}
    target = worker_target(store, store_path, how)
    run_workers(method, new_keys_worker, [(target, w, PER_WORKER) for w in range(WORKERS)])
    d = store.root["d"]
    assert len(d) == WORKERS * PER_WORKER
    for w in range(WORKERS):
        for i in range(PER_WORKER):
            assert d[f"{w}:{i}"] == [w, i]
    every_key = [f"{w}:{i}" for w in range(WORKERS) for i in range(PER_WORKER)]
    assert sorted(d.keys()) == sorted(every_key)
    store.check()


@fork_ok
@pytest.mark.parametrize(("method", "how"), MODES)
def test_increments_under_lockExcl(store: Any, store_path: Path, method: str, how: str) -> None:
    store.root["n"] = 0
    target = worker_target(store, store_path, how)
    run_workers(method, increment_worker, [(target, w, 1000) for w in range(WORKERS)])
    assert store.root["n"] == WORKERS * 1000


@fork_ok
def test_lockExcl_taken_back_in_a_loop_does_not_shut_a_waiter_out(
    store: Any, store_path: Path
) -> None:
    """Processes that free lockExcl and take it back at once, in a loop, leave gaps of a
    fraction of a microsecond. A waiter that lost to such a releaser lets it have the word for
    a short grace before it tries (fewer hand-offs between cores), but still tries then: every
    take here must come well within its timeout."""
    store.root["n"] = 0
    store.root["mine"] = 0
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    starts = [ctx.Event() for _ in range(2)]
    loopers = [ctx.Process(target=lockExcl_looper, args=(str(store_path), e, stop)) for e in starts]
    for p in loopers:
        p.start()
    try:
        for e in starts:
            assert e.wait(60)
        root = store.root
        before = root["n"]
        takes = 0
        deadline = time.monotonic() + 60
        # At least 200 takes, and on until the loopers have run meanwhile (on a loaded machine
        # this process may make its 200 while they are descheduled): this process got the
        # word between their sections.
        while takes < 200 or root["n"] == before:
            assert time.monotonic() < deadline, "the loopers never ran beside the takes"
            # LockTimeout (a failure) if the loopers keep the word from this process.
            root.lockExcl(timeout=10)
            try:
                root["mine"] += 1
            finally:
                root.unlock()
            takes += 1
    finally:
        stop.set()
        for p in loopers:
            p.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in loopers] == [0, 0]
    assert store.root["mine"] == takes


# --- lockShared -----------------------------------------------------------------------------


def test_shared_readers_proceed_together(store: Any, store_path: Path) -> None:
    store.root["x"] = "shared"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=shared_reader, args=(str(store_path), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    root = store.root
    root.lockShared()
    try:
        # This process holds lockShared too: three readers inside at once.
        barrier.wait(timeout=120)
    finally:
        root.unlock()
    for p in procs:
        p.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in procs] == [0, 0]


HOLD_SHARED = """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
root.lockShared()
print("shared")
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "read":
        print("value", root["k"])
    elif cmd == "release":
        root.unlock()
        print("released")
        break
s.close()
"""

WRITER = """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
how = sys.argv[2]
print("writing")
if how == "setitem":
    root["k"] = "written"
elif how == "lockExcl":
    root.lockExcl()
    root["k"] = "written"
    root.unlock()
elif how == "append":
    root["l"].append("written")
    root["k"] = "written"
print("written")
s.close()
"""


@pytest.mark.parametrize("how", ["setitem", "lockExcl", "append"])
def test_a_writer_waits_while_another_process_holds_lockShared(
    store: Any, store_path: Path, spawn_py: Any, how: str
) -> None:
    store.root["k"] = "before"
    store.root["l"] = []
    reader = spawn_py(HOLD_SHARED, cwd=store_path.parent, args=(str(store_path),))
    reader.expect("shared")
    writer = spawn_py(WRITER, cwd=store_path.parent, args=(str(store_path), how))
    writer.expect("writing")
    time.sleep(SETTLE)
    # Under lockShared nothing changes.
    reader.send("read")
    assert reader.expect("value *") == "value before"
    reader.send("release")
    reader.expect("released")
    writer.expect("written")
    assert writer.wait()[0] == 0
    assert reader.wait()[0] == 0
    assert store.root["k"] == "written"
    assert store.root["l"] == (["written"] if how == "append" else [])


# --- lockExcl -------------------------------------------------------------------------------

HOLD_EXCL = """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
root.lockExcl()
print("locked")
for line in sys.stdin:
    if line.strip() == "release":
        root.unlock()
        print("released")
        break
s.close()
"""

TRY_LOCK = """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
for line in sys.stdin:
    cmd = line.strip()
    try:
        if cmd == "excl":
            root.lockExcl(timeout=0.2)
        elif cmd == "shared":
            root.lockShared(timeout=0.2)
        else:
            break
    except persist.LockTimeout:
        print("timeout")
    else:
        print("acquired")
        root.unlock()
s.close()
"""


def test_lock_timeout_while_another_process_holds_lockExcl(
    store: Any, store_path: Path, spawn_py: Any
) -> None:
    root = store.root  # before the other process locks: getting the root is a read too
    holder = spawn_py(HOLD_EXCL, cwd=store_path.parent, args=(str(store_path),))
    holder.expect("locked")
    with pytest.raises(persist.LockTimeout):
        root.lockExcl(timeout=0.2)
    with pytest.raises(persist.LockTimeout):
        root.lockShared(timeout=0.2)
    assert issubclass(persist.LockTimeout, persist.Error)
    holder.send("release")
    holder.expect("released")
    root.lockExcl(timeout=60)
    root.unlock()
    assert holder.wait()[0] == 0


def test_lockExcl_is_reentrant(store: Any, store_path: Path, spawn_py: Any) -> None:
    other = spawn_py(TRY_LOCK, cwd=store_path.parent, args=(str(store_path),))
    root = store.root
    root.lockExcl()
    root.lockExcl()  # the same thread again: no deadlock
    root["x"] = 1
    root.unlock()
    # Still held once: another process cannot have it.
    other.send("excl")
    assert other.expect("*") == "timeout"
    other.send("shared")
    assert other.expect("*") == "timeout"
    assert root["x"] == 1
    root.unlock()
    other.send("excl")
    assert other.expect("*") == "acquired"
    other.send("quit")
    assert other.wait()[0] == 0
    with pytest.raises(RuntimeError):
        root.unlock()


def test_lockShared_is_reentrant(store: Any) -> None:
    root = store.root
    root["x"] = 1
    root.lockShared()
    root.lockShared()
    assert root["x"] == 1
    root.unlock()
    root.unlock()
    with pytest.raises(RuntimeError):
        root.unlock()


def test_unlock_without_a_lock_raises_RuntimeError(store: Any) -> None:
    root = store.root
    root["l"] = []
    with pytest.raises(RuntimeError):
        root.unlock()
    with pytest.raises(RuntimeError):
        root["l"].unlock()
    root.lockExcl()
    root.unlock()
    with pytest.raises(RuntimeError):
        root.unlock()
    # The failed unlocks did not break the lock.
    root.lockExcl(timeout=10)
    root.unlock()


def test_the_lock_is_store_wide(store: Any, store_path: Path, spawn_py: Any) -> None:
    root = store.root
    root["l"] = []
    root["d"] = {}
    other = spawn_py(TRY_LOCK, cwd=store_path.parent, args=(str(store_path),))
    # Locked through a container, unlocked through the root.
    root["l"].lockExcl()
    other.send("excl")
    assert other.expect("*") == "timeout"
    root["d"].unlock()
    other.send("excl")
    assert other.expect("*") == "acquired"
    other.send("quit")
    assert other.wait()[0] == 0


def test_lockExcl_while_holding_lockShared_raises_RuntimeError(store: Any) -> None:
    root = store.root
    root["x"] = 1
    root.lockShared()
    try:
        with pytest.raises(RuntimeError):
            root.lockExcl()
        with pytest.raises(RuntimeError):
            root.lockExcl(timeout=0.2)
        assert root["x"] == 1  # still readable: the shared lock is still held
    finally:
        root.unlock()
    root.lockExcl(timeout=10)
    root["x"] = 2
    root.unlock()
    assert root["x"] == 2


# --- isolation ------------------------------------------------------------------------------

CHANGER = """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
how = sys.argv[2]

class Abort(Exception):
    pass

def wait_for(word):
    for line in sys.stdin:
        if line.strip() == word:
            return
    raise SystemExit("stdin closed")

if how == "lockExcl":
    root.lockExcl()
    root["k"] = "uncommitted"
    print("changed")
    wait_for("finish")
    root["k"] = "committed"
    root.unlock()
else:
    try:
        with s.transaction():
            root["k"] = "uncommitted"
            root["extra"] = [1, 2, 3]
            print("changed")
            wait_for("finish")
            raise Abort
    except Abort:
        pass
print("finished")
s.close()
"""

READER = """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
sys.stdin.readline()
print("reading")
print("got", root["k"], "extra" in root)
s.close()
"""


@pytest.mark.parametrize(
    ("how", "seen"),
    [("lockExcl", "committed True"), ("transaction", "before False")],
)
def test_a_plain_read_waits_for_lockExcl_and_sees_the_outcome(
    store: Any, store_path: Path, spawn_py: Any, how: str, seen: str
) -> None:
    store.root["k"] = "before"
    if how == "lockExcl":
        store.root["extra"] = "there"
    changer = spawn_py(CHANGER, cwd=store_path.parent, args=(str(store_path), how))
    changer.expect("changed")
    reader = spawn_py(READER, cwd=store_path.parent, args=(str(store_path),))
    reader.send("go")
    reader.expect("reading")
    time.sleep(SETTLE)
    changer.send("finish")
    changer.expect("finished")
    # The read never saw "uncommitted": it waited for the unlock (or the rollback).
    assert reader.expect("got *") == f"got {seen}"
    assert reader.wait()[0] == 0
    assert changer.wait()[0] == 0
    assert store.root["k"] == seen.split()[0]


def test_another_thread_waits_while_one_holds_lockExcl(store: Any) -> None:
    root = store.root
    root["k"] = "before"
    tried = threading.Event()
    result: dict[str, Any] = {}

    def other_thread() -> None:
        try:
            try:
                root.lockExcl(timeout=0.2)
            except persist.LockTimeout:
                result["lockExcl"] = "LockTimeout"
            else:
                result["lockExcl"] = "acquired"
                root.unlock()
            try:
                root.unlock()  # the lock is held, but not by this thread
            except RuntimeError:
                result["unlock"] = "RuntimeError"
            tried.set()
            result["value"] = root["k"]
        except BaseException as e:  # reported to the main thread
            result["error"] = repr(e)
        finally:
            tried.set()

    root.lockExcl()
    try:
        root["k"] = "uncommitted"
        thread = threading.Thread(target=other_thread, daemon=True)
        thread.start()
        assert tried.wait(60)
        time.sleep(SETTLE)
        # The other thread is still waiting to read.
        assert "value" not in result, result
        root["k"] = "committed"
    finally:
        root.unlock()
    thread.join(60)
    assert not thread.is_alive()
    assert result == {"lockExcl": "LockTimeout", "unlock": "RuntimeError", "value": "committed"}


# --- transactions ---------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_transaction_rolls_back_on_exception(store: Any, store_path: Path, run_py: Any) -> None:
    root = store.root
    root["l"] = [1, 2]
    root["d"] = {"a": 1}
    root["gone"] = "still here"
    before = root.to_python()
    boom = Boom("inside")
    with pytest.raises(Boom) as info:
        with store.transaction():
            root["l"].append(3)
            root["l"][0] = "changed"
            root["d"]["b"] = [2]
            root["d"].pop("a")
            root["new"] = {"x": [1, 2, 3]}
            del root["gone"]
            root["l"].sort(key=str)
            raise boom
    assert info.value is boom
    assert root.to_python() == before
    store.check()
    # The lock was released: another process can take it.
    out = run_py(
        """
        import sys, persist
        with persist.open(sys.argv[1]) as s:
            s.root.lockExcl(timeout=30)
            print(s.root.to_python())
            s.root.unlock()
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert out == repr(before) + "\n"


def test_transaction_commits_on_success(store: Any, store_path: Path, run_py: Any) -> None:
    root = store.root
    with store.transaction():
        root["a"] = [1]
        root["a"].append(2)
    out = run_py(
        """
        import sys, persist
        with persist.open(sys.argv[1]) as s:
            print(s.root["a"])
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert out == "[1, 2]\n"


def test_transaction_rolls_back_on_keyboard_interrupt(store: Any) -> None:
    root = store.root
    root["x"] = 1
    with pytest.raises(KeyboardInterrupt):
        with store.transaction():
            root["x"] = 2
            raise KeyboardInterrupt
    assert root["x"] == 1


def test_nested_transactions_are_savepoints(store: Any) -> None:
    root = store.root
    root["x"] = 0
    with store.transaction():
        root["x"] = 1
        root["l"] = [1]
        with pytest.raises(Boom):
            with store.transaction():
                root["x"] = 2
                root["l"].append(2)
                root["y"] = "inner"
                raise Boom
        # Only the inner block was undone.
        assert root["x"] == 1 and root["l"] == [1] and "y" not in root
        with store.transaction():
            root["z"] = "inner, kept"
        root["x"] = 3
    assert root.to_python() == {"x": 3, "l": [1], "z": "inner, kept"}

    with pytest.raises(Boom):
        with store.transaction():
            root["x"] = 4
            with store.transaction():
                root["w"] = "inner, committed to the outer"
            raise Boom
    # The outer rollback undoes the inner block too.
    assert root.to_python() == {"x": 3, "l": [1], "z": "inner, kept"}


def test_transaction_excludes_other_processes(store: Any, store_path: Path, spawn_py: Any) -> None:
    other = spawn_py(TRY_LOCK, cwd=store_path.parent, args=(str(store_path),))
    with store.transaction():
        store.root["x"] = 1
        other.send("shared")
        assert other.expect("*") == "timeout"
        other.send("excl")
        assert other.expect("*") == "timeout"
    other.send("shared")
    assert other.expect("*") == "acquired"
    other.send("quit")
    assert other.wait()[0] == 0


# --- interrupting a wait --------------------------------------------------------------------

# A child started from a shell's background job inherits SIGINT ignored (POSIX, without job
# control), and Python then installs no KeyboardInterrupt handler: give the waiters Python's
# own handler, as an interactive process has, whatever they inherited.
DEFAULT_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

WAIT_THEN_CTRL_C = (
    DEFAULT_SIGINT
    + """
import sys, persist
s = persist.open(sys.argv[1])
root = s.root
how = sys.argv[2]
try:
    print("waiting")
    if how == "lockExcl":
        root.lockExcl()
    elif how == "lockShared":
        root.lockShared()
    else:
        root["k"]
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
    # The store is still usable, and the lock is still the other process's.
    try:
        root.lockExcl(timeout=0.2)
        print("acquired")
    except persist.LockTimeout:
        print("still held")
    s.close()
    sys.exit(3)
"""
)


@pytest.mark.parametrize("how", ["lockExcl", "lockShared", "read"])
def test_ctrl_c_interrupts_a_lock_wait(
    store: Any, store_path: Path, spawn_py: Any, how: str
) -> None:
    store.root["k"] = "v"
    holder = spawn_py(HOLD_EXCL, cwd=store_path.parent, args=(str(store_path),))
    holder.expect("locked")
    waiter = spawn_py(WAIT_THEN_CTRL_C, cwd=store_path.parent, args=(str(store_path), how))
    waiter.expect("waiting")
    time.sleep(SETTLE)  # let it reach the wait
    waiter.signal(signal.SIGINT)
    # The holder still holds the lock: only the interrupt can end the waiter.
    code, out, err = waiter.wait(timeout=60)
    assert (code, out) == (3, "interrupted\nstill held\n"), err
    holder.send("release")
    holder.expect("released")
    assert holder.wait()[0] == 0
    store.root.lockExcl(timeout=60)
    store.root.unlock()


def test_ctrl_c_without_a_handler_ends_the_process_with_keyboard_interrupt(
    store_path: Path, spawn_py: Any
) -> None:
    holder = spawn_py(HOLD_EXCL, cwd=store_path.parent, args=(str(store_path),))
    holder.expect("locked")
    waiter = spawn_py(
        DEFAULT_SIGINT
        + """
import sys, persist
root = persist.open(sys.argv[1]).root
print("waiting")
root.lockExcl()
print("not interrupted")
""",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    waiter.expect("waiting")
    time.sleep(SETTLE)
    waiter.signal(signal.SIGINT)
    code, out, err = waiter.wait(timeout=60)
    assert code != 0 and out == ""
    assert "KeyboardInterrupt" in err
    holder.send("release")
    holder.expect("released")
    assert holder.wait()[0] == 0


@fork_ok
def test_fork_child_uses_the_inherited_store(store: Any) -> None:
    store.root["l"] = []
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            store.root["l"].append("from the child")
            store.root["child"] = os.getpid()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.root["l"] == ["from the child"]
    assert store.root["child"] == pid
    store.root["l"].append("from the parent")
    assert store.root["l"] == ["from the child", "from the parent"]


def test_a_long_read_ends_while_another_process_changes_the_container_without_pause(
    store: Any,
) -> None:
    # An unlocked read that a change keeps invalidating runs again; one that keeps losing
    # (here: a copy of a set another process adds to all the time, so that every try is
    # longer than the last, and often finds a change under way) ends under the writer lock,
    # with a whole state of the set.
    store.root["s"] = set(range(20_000))
    store.root["stop"] = False
    s = store.root["s"]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mine = store.root["s"]
            os.write(w, b"r")
            i = 20_000
            while not store.root["stop"]:
                mine.add(i)
                i += 1
                store.root["added"] = i
            code = 0
        finally:
            os._exit(code)
    try:
        assert os.read(r, 1) == b"r"
        for _ in range(10):
            members = s.copy()
            assert members == set(range(len(members)))  # what the child had added by then
    finally:
        store.root["stop"] = True
        _, status = os.waitpid(pid, 0)
        os.close(r)
        os.close(w)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(s) > 20_000
