"""Store.wait: sleeping until a container changes, in another process or thread, with no
change lost between a read and the wait (the token), timeouts, Ctrl-C, a closed store, a
waiter SIGKILLed while asleep, the asyncio form, and 1,000 hand-offs between two processes.

Waiters sleep in slices of 500 ms (LIST_SLICE) and look again after each, so a change that
woke nobody would still be seen, late. The hand-off tests therefore bound the total time of
many rounds, each of which the changer starts only after the waiter has had time to fall
asleep: a lost wake-up costs a whole slice per round, far above the bound, while a working
one costs milliseconds. No other timing assertions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, kill_child, reap_child

# Longer than any wait of a healthy run on a loaded machine.
SLOW = 60.0

DEFAULT_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _lockexcl_change(root: Any, c: Any, i: int) -> None:
    with root.lockExcl():
        c["k"] = i
        c["j"] = i


# kind -> (the value stored, a change of the stored container)
KINDS: dict[str, tuple[Callable[[], Any], Callable[[Any, Any, int], None]]] = {
    "dict_set": (dict, lambda root, c, i: c.__setitem__("k", i)),
    "list_append": (list, lambda root, c, i: c.append(i)),
    "set_add": (set, lambda root, c, i: c.add(i)),
    "cache_set": (lambda: persist.Cache(max_entries=100), lambda root, c, i: c.set("k", i)),
    "lockexcl": (dict, _lockexcl_change),
}


def _read_exact(fd: int, n: int) -> bytes:
    got = b""
    while len(got) < n:
        b = os.read(fd, n - len(got))
        if not b:
            raise EOFError("the other process is gone")
        got += b
    return got


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_waiter_in_another_process_wakes_on_each_change(store_path: Path, kind: str) -> None:
    make, change = KINDS[kind]
    path = str(store_path)
    s = persist.open(path)
    s.root["c"] = make()
    rounds = 20
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()

    def waiter() -> None:
        st = persist.open(path)
        c = st.root["c"]
        for _ in range(rounds):
            tok = st.change_token(c)
            os.write(ready_w, b"r")
            got = st.wait(c, since=tok, timeout=SLOW)
            assert got is not None and got != tok
            os.write(done_w, b"d")

    pid = fork_child(waiter)
    try:
        root = s.root
        c = root["c"]
        started = time.monotonic()
        for i in range(rounds):
            _read_exact(ready_r, 1)
            time.sleep(0.005)  # let the waiter fall asleep (if it has not, the token tells it)
            change(root, c, i)
            _read_exact(done_r, 1)
        elapsed = time.monotonic() - started
        assert reap_child(pid) == 0
    finally:
        kill_child(pid) if _alive(pid) else None
        s.close()
    # A wake-up lost in every round would cost a 500 ms slice each (10 s in all).
    assert elapsed < rounds * 0.5 / 2, elapsed


def _alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def test_a_change_before_the_wait_ends_it_at_once(store: Any) -> None:
    store.root["d"] = {}
    d = store.root["d"]
    tok = store.change_token(d)
    assert isinstance(tok, tuple) and len(tok) == 1
    assert store.change_token(d) == tok  # reading changes nothing
    d["x"] = 1  # after the token, before the wait: the lost-wake window
    got = store.wait(d, since=tok, timeout=SLOW)
    assert got is not None and got != tok
    assert got == store.change_token(d)


def test_several_containers_one_changes(store: Any) -> None:
    root = store.root
    root["a"] = []
    root["b"] = {1}
    a, b = root["a"], root["b"]
    tok = store.change_token(a, b)
    assert len(tok) == 2
    t = threading.Timer(0.05, lambda: b.add(2))
    t.start()
    got = store.wait(a, b, since=tok, timeout=SLOW)
    t.join()
    assert got is not None
    assert got[0] == tok[0] and got[1] != tok[1]


def test_timeout_returns_none_and_unrelated_changes_do_not_end_the_wait(store: Any) -> None:
    root = store.root
    root["d"] = {}
    root["other"] = []
    d, other = root["d"], root["other"]
    tok = store.change_token(d)
    stop = threading.Event()

    def noise() -> None:
        i = 0
        while not stop.is_set():
            other.append(i)
            i += 1
            time.sleep(0.002)

    t = threading.Thread(target=noise)
    t.start()
    try:
        started = time.monotonic()
        assert store.wait(d, since=tok, timeout=0.2) is None
        assert time.monotonic() - started >= 0.2
    finally:
        stop.set()
        t.join()
    assert store.wait(d, since=tok, timeout=0) is None
    assert len(other) > 0


def test_since_none_waits_for_the_next_change(store: Any) -> None:
    store.root["d"] = {}
    d = store.root["d"]
    d["x"] = 1
    assert store.wait(d, timeout=0.05) is None
    t = threading.Timer(0.05, lambda: d.__setitem__("x", 2))
    t.start()
    assert store.wait(d, timeout=SLOW) is not None
    t.join()


def test_bad_arguments(store: Any, tmp_path: Path) -> None:
    root = store.root
    root["d"] = {}
    d = root["d"]
    with pytest.raises(TypeError):
        store.change_token()
    with pytest.raises(TypeError):
        store.change_token({})
    with pytest.raises(ValueError):
        store.change_token(persist.Cache(max_entries=3))
    with pytest.raises(ValueError):
        store.wait(d, since=(1, 2), timeout=0)
    with pytest.raises(ValueError):
        store.wait(d, since=store.change_token(d), timeout=-1)
    other = persist.open(str(tmp_path / "other.persist"))
    try:
        with pytest.raises(ValueError):
            store.change_token(other.root)
    finally:
        other.close()


def test_ctrl_c_ends_a_wait(store_path: Path, store: Any, spawn_py: Any) -> None:
    store.root["d"] = {}
    child = spawn_py(
        DEFAULT_SIGINT + "import sys, persist\n"
        "s = persist.open(sys.argv[1])\n"
        "d = s.root['d']\n"
        "tok = s.change_token(d)\n"
        "try:\n"
        "    print('waiting', flush=True)\n"
        "    s.wait(d, since=tok)\n"
        "    print('not interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "print('got', s.wait(d, since=tok, timeout=120) is not None, flush=True)\n",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    child.expect("waiting")
    time.sleep(0.1)  # let it fall asleep (if it has not, the signal still ends the wait)
    child.signal(signal.SIGINT)
    child.expect("interrupted")
    store.root["d"]["x"] = 1
    child.expect("got True")
    rc, _, err = child.wait(SLOW)
    assert rc == 0, err


def test_close_ends_a_wait_in_another_thread(store_path: Path) -> None:
    s = persist.open(str(store_path))
    s.root["d"] = {}
    d = s.root["d"]
    tok = s.change_token(d)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            s.wait(d, since=tok)
        except BaseException as e:  # noqa: BLE001 - what ended it is the point
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    s.close()
    t.join(SLOW)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], persist.ClosedError)
    with pytest.raises(persist.ClosedError):
        s.change_token(d)


def test_waiter_killed_while_asleep_breaks_no_later_wait(
    store_path: Path, store: Any, spawn_py: Any
) -> None:
    store.root["d"] = {}
    d = store.root["d"]
    sleepers = [
        spawn_py(
            "import sys, persist\n"
            "s = persist.open(sys.argv[1])\n"
            "d = s.root['d']\n"
            "tok = s.change_token(d)\n"
            "print('waiting', flush=True)\n"
            "s.wait(d, since=tok)\n"
            "print('woke', flush=True)\n",
            cwd=store_path.parent,
            args=(str(store_path),),
        )
        for _ in range(2)
    ]
    for c in sleepers:
        c.expect("waiting")
    time.sleep(0.1)
    for c in sleepers:
        c.kill()
    d["a"] = 1  # the dead waiters' bits only cost a wake-up call for nobody
    # A new waiter, in this process and in another, still waits and wakes.
    tok = store.change_token(d)
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(store.wait(d, since=tok, timeout=SLOW)))
    t.start()
    time.sleep(0.05)
    d["b"] = 2
    t.join(SLOW)
    assert got and got[0] is not None
    child = spawn_py(
        "import sys, persist\n"
        "s = persist.open(sys.argv[1])\n"
        "d = s.root['d']\n"
        "tok = s.change_token(d)\n"
        "print('waiting', flush=True)\n"
        "print('got', s.wait(d, since=tok, timeout=120) is not None, flush=True)\n",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    child.expect("waiting")
    time.sleep(0.05)
    d["c"] = 3
    child.expect("got True")
    assert child.wait(SLOW)[0] == 0
    assert store.check()["leaked_references"] == 0


def test_a_thousand_hand_offs_between_two_processes(store_path: Path) -> None:
    path = str(store_path)
    s = persist.open(path)
    s.root["ping"] = {"n": -1}
    s.root["pong"] = {"n": -1}
    rounds = 1000

    def echo() -> None:
        st = persist.open(path)
        ping, pong = st.root["ping"], st.root["pong"]
        for i in range(rounds):
            while True:
                tok = st.change_token(ping)
                if ping["n"] == i:
                    break
                assert st.wait(ping, since=tok, timeout=SLOW) is not None
            pong["n"] = i

    pid = fork_child(echo)
    try:
        ping, pong = s.root["ping"], s.root["pong"]
        started = time.monotonic()
        for i in range(rounds):
            ping["n"] = i
            while True:
                tok = s.change_token(pong)
                if pong["n"] == i:
                    break
                assert s.wait(pong, since=tok, timeout=SLOW) is not None, i
        elapsed = time.monotonic() - started
        assert reap_child(pid) == 0
    finally:
        kill_child(pid) if _alive(pid) else None
        s.close()
    # Every round is two wake-ups; a lost one costs a 500 ms slice.
    assert elapsed < 60, elapsed


# ---- asyncio ---------------------------------------------------------------------------------


def test_wait_async_wakes_without_blocking_the_loop(store: Any) -> None:
    store.root["d"] = {}
    d = store.root["d"]

    async def main() -> tuple[Any, Any, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tok = store.change_token(d)
        tick = asyncio.ensure_future(ticker())
        waiting = asyncio.ensure_future(store.wait_async(d, since=tok, timeout=SLOW))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await asyncio.to_thread(d.__setitem__, "x", 1)
        got = await waiting
        tick.cancel()
        timed_out = await store.wait_async(d, since=store.change_token(d), timeout=0.01)
        return tok, (got, timed_out), ticks

    tok, (got, timed_out), ticks = asyncio.run(main())
    assert got is not None and got != tok
    assert timed_out is None
    assert ticks > 5  # the loop ran while the wait slept


def test_cancelled_wait_async_ends_its_worker(store: Any) -> None:
    store.root["d"] = {}
    d = store.root["d"]

    async def main() -> float:
        task = asyncio.ensure_future(store.wait_async(d, since=store.change_token(d)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The worker left at once (woken), so a wait that follows finds a free worker and
        # the store closes without waiting for a sleeper.
        started = time.monotonic()
        await store.wait_async(d, since=store.change_token(d), timeout=0.01)
        return time.monotonic() - started

    assert asyncio.run(main()) < SLOW
