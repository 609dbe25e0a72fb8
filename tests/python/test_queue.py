"""A list as a queue: popleft and pop(0) without moving items, blocking pops across threads
and processes (timeouts, Ctrl-C, a waiter killed while asleep), the reliable hand-off
move_to, the asyncio forms, and consumers SIGKILLed at random while items flow.

No timing assertions: waits for children are generous, and a test that checks that a thread
is blocked only checks that it has not returned yet.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, kill_child, reap_child

# Longer than any wait of a healthy run on a loaded machine.
SLOW = 60.0

DEFAULT_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def fresh(store: Any, name: str = "q", items: list[Any] | None = None) -> Any:
    store.root[name] = items or []
    return store.root[name]


# ---- plain queue operations -----------------------------------------------------------------


def test_popleft_and_pop_take_the_ends(store: Any) -> None:
    q = fresh(store, items=list(range(6)))
    assert q.popleft() == 0
    assert q.pop(0) == 1
    assert q.pop() == 5
    assert q.pop(-1) == 4
    assert list(q) == [2, 3]
    assert q.popleft() == 2 and q.popleft() == 3
    with pytest.raises(IndexError, match="pop from empty list"):
        q.popleft()
    with pytest.raises(IndexError, match="pop from empty list"):
        q.pop()
    with pytest.raises(IndexError, match="pop from empty list"):
        q.pop(block=False, timeout=5)  # timeout without block is ignored, as queue.Queue's
    with pytest.raises(TypeError):
        q.popleft(0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        q.pop(None)  # type: ignore[arg-type]
    assert store.check()["leaked_references"] == 0


def test_popleft_through_growth_matches_a_deque(store: Any) -> None:
    # Items taken from the front leave room before the first item; appends, inserts at the
    # front, slices and sorts must all see the live items only, through every growth.
    rng = random.Random(7)
    q = fresh(store)
    model: collections.deque[Any] = collections.deque()
    n = 0
    for step in range(3000):
        r = rng.random()
        if r < 0.45:
            q.append(n)
            model.append(n)
            n += 1
        elif r < 0.5:
            q.extend([n, n + 1, n + 2])
            model.extend([n, n + 1, n + 2])
            n += 3
        elif r < 0.8:
            if model:
                assert q.popleft() == model.popleft()
            else:
                with pytest.raises(IndexError):
                    q.popleft()
        elif r < 0.85 and model:
            assert q.pop(0) == model.popleft()
        elif r < 0.9:
            q.insert(0, -n)
            model.appendleft(-n)
            n += 1
        elif r < 0.93 and model:
            assert q.pop() == model.pop()
        elif r < 0.95 and len(model) > 2:
            i = rng.randrange(len(model))
            assert q.pop(i) == model[i]
            del model[i]
        elif r < 0.96 and len(model) > 2:
            q[1:2] = ["s", "t"]
            m = list(model)
            m[1:2] = ["s", "t"]
            model = collections.deque(m)
        elif r < 0.97:
            q.reverse()
            model.reverse()
        if step % 97 == 0 or len(model) < 3:
            assert list(q) == list(model)
            assert len(q) == len(model)
            if model:
                assert q[0] == model[0] and q[-1] == model[-1]
    assert list(q) == list(model)
    rep = store.check()
    assert rep["leaked_references"] == 0 and rep["unreachable_blocks"] == 0


def test_values_popped_from_the_front_are_released(store: Any) -> None:
    q = fresh(store)
    for i in range(200):
        q.append("x" * (100 + i))
        q.append([i, "inner"])
    for i in range(200):
        assert q.popleft() == "x" * (100 + i)
        inner = q.popleft()
        assert list(inner) == [i, "inner"]
        del inner
    assert len(q) == 0
    rep = store.check()
    assert rep["leaked_references"] == 0
    store.gc()
    assert store.check()["unreachable_blocks"] == 0


def test_queue_seen_by_another_process(store_path: Path, store: Any, run_py: Any) -> None:
    q = fresh(store, items=list(range(10)))
    for _ in range(4):
        q.popleft()
    q.insert(0, "front")
    out = run_py(
        "import sys, persist\n"
        "q = persist.open(sys.argv[1]).root['q']\n"
        "print(list(q)); q.popleft(); q.append('child')\n",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert out.strip() == str(["front", 4, 5, 6, 7, 8, 9])
    assert list(q) == [4, 5, 6, 7, 8, 9, "child"]


# ---- blocking pops ---------------------------------------------------------------------------


def test_blocking_pop_times_out_with_index_error(store: Any) -> None:
    q = fresh(store)
    with pytest.raises(IndexError, match="pop from empty list"):
        q.pop(block=True, timeout=0.05)
    with pytest.raises(IndexError):
        q.popleft(block=True, timeout=0)
    with pytest.raises(ValueError):
        q.popleft(block=True, timeout=-1)
    with pytest.raises(ValueError):
        q.pop(block=True, timeout=float("nan"))
    q.append(1)
    assert q.popleft(block=True, timeout=0) == 1
    # An index out of range of a list with items is an IndexError at once, wait or not.
    q.append(1)
    with pytest.raises(IndexError, match="pop index out of range"):
        q.pop(5, block=True)


def test_blocking_pop_is_woken_by_another_thread(store: Any) -> None:
    q = fresh(store)
    got: list[Any] = []

    def consumer() -> None:
        got.append(q.popleft(block=True, timeout=SLOW))
        got.append(q.pop(block=True, timeout=SLOW))

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(0.05)
    assert got == []  # still waiting: the list is empty
    q.append("a")
    deadline = time.monotonic() + SLOW
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    q.append({"b": [1]})  # a container: its pop runs store-wide
    t.join(SLOW)
    assert not t.is_alive()
    assert got[0] == "a" and got[1] == {"b": [1]}
    assert len(q) == 0


def test_blocking_pop_is_woken_by_another_process(
    store_path: Path, store: Any, spawn_py: Any
) -> None:
    fresh(store)
    child = spawn_py(
        "import sys, persist\n"
        "q = persist.open(sys.argv[1]).root['q']\n"
        "print('waiting', flush=True)\n"
        "for _ in range(3):\n"
        "    print('got', q.popleft(block=True, timeout=120), flush=True)\n",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    child.expect("waiting")
    q = store.root["q"]
    for i in range(3):
        time.sleep(0.02)
        q.append(i)
    rc, out, err = child.wait(SLOW)
    assert rc == 0, err
    got = [ln for ln in (child.lines + out.splitlines()) if ln.startswith("got")]
    assert got == ["got 0", "got 1", "got 2"]
    assert len(q) == 0


def test_ctrl_c_ends_a_blocking_pop(store_path: Path, store: Any, spawn_py: Any) -> None:
    fresh(store)
    child = spawn_py(
        DEFAULT_SIGINT + "import sys, persist\n"
        "q = persist.open(sys.argv[1]).root['q']\n"
        "try:\n"
        "    print('waiting', flush=True)\n"
        "    q.popleft(block=True)\n"
        "    print('not interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "print('len', len(q), flush=True)\n"
        "print('got', q.popleft(block=True, timeout=120), flush=True)\n",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    child.expect("waiting")
    time.sleep(0.1)  # let it fall asleep (if it has not, the signal still ends the wait)
    child.signal(signal.SIGINT)
    child.expect("interrupted")
    child.expect("len 0")
    store.root["q"].append("after")
    child.expect("got after")
    rc, _, err = child.wait(SLOW)
    assert rc == 0, err


def test_waiter_killed_while_asleep_breaks_no_later_wait(
    store_path: Path, store: Any, spawn_py: Any
) -> None:
    q = fresh(store)
    sleepers = [
        spawn_py(
            "import sys, persist\n"
            "q = persist.open(sys.argv[1]).root['q']\n"
            "print('waiting', flush=True)\n"
            "q.popleft(block=True)\n"
            "print('took one', flush=True)\n",
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
    # Nobody took anything; the dead waiters' bits only cost wake-ups.
    q.append("kept")
    assert list(q) == ["kept"]
    # A new waiter, in this process and in another, still waits and wakes.
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(q.pop(block=True, timeout=SLOW)))
    q.clear()
    t.start()
    time.sleep(0.05)
    q.append("next")
    t.join(SLOW)
    assert got == ["next"]
    child = spawn_py(
        "import sys, persist\n"
        "q = persist.open(sys.argv[1]).root['q']\n"
        "print('waiting', flush=True)\n"
        "print('got', q.popleft(block=True, timeout=120), flush=True)\n",
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    child.expect("waiting")
    q.append("last")
    child.expect("got last")
    assert child.wait(SLOW)[0] == 0
    assert store.check()["leaked_references"] == 0


def test_close_ends_a_wait_in_another_thread(store_path: Path) -> None:
    s = persist.open(str(store_path))
    s.root["q"] = []
    q = s.root["q"]
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            q.popleft(block=True)
        except BaseException as e:  # noqa: BLE001 - what ended it is the point
            errors.append(e)

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(0.05)
    s.close()
    t.join(SLOW)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], persist.ClosedError), errors


# ---- move_to ---------------------------------------------------------------------------------


def test_move_to_moves_one_item_atomically(store: Any) -> None:
    q = fresh(store, "q", [1, [2, "two"], 3, "four"])
    wip = fresh(store, "wip", ["old"])
    assert q.move_to(wip) == 1
    assert list(q) == [[2, "two"], 3, "four"] and list(wip) == ["old", 1]
    moved = q.move_to(wip, dest_left=True)
    assert moved == [2, "two"]
    assert list(wip) == [[2, "two"], "old", 1]
    # The moved container is the same stored list, not a copy: a change through one is seen
    # through the other.
    moved.append("more")
    assert wip[0] == [2, "two", "more"]
    assert q.move_to(wip, left=False) == "four"
    assert list(q) == [3] and list(wip) == [[2, "two", "more"], "old", 1, "four"]
    # A list moved into itself rotates.
    assert wip.move_to(wip) == [2, "two", "more"]
    assert list(wip) == ["old", 1, "four", [2, "two", "more"]]
    q.move_to(wip)
    with pytest.raises(IndexError, match="move from empty list"):
        q.move_to(wip)
    with pytest.raises(IndexError, match="move from empty list"):
        q.move_to(wip, block=True, timeout=0.02)
    with pytest.raises(TypeError, match="persist.List"):
        wip.move_to([])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wip.move_to(store.root)  # type: ignore[arg-type]
    rep = store.check()
    assert rep["leaked_references"] == 0 and rep["unreachable_blocks"] == 0


def test_move_to_another_store_is_refused(store: Any, tmp_path: Path) -> None:
    other = persist.open(str(tmp_path / "other.db"))
    try:
        other.root["l"] = []
        q = fresh(store, items=[1])
        with pytest.raises(ValueError, match="same store"):
            q.move_to(other.root["l"])
        assert list(q) == [1]
    finally:
        other.close()


def test_blocking_move_to_wakes_and_chains(store: Any) -> None:
    # a -> b -> c through two blocked movers: the move into b wakes the second.
    a, b, c = fresh(store, "a"), fresh(store, "b"), fresh(store, "c")
    threads = [
        threading.Thread(target=lambda: a.move_to(b, block=True, timeout=SLOW)),
        threading.Thread(target=lambda: b.move_to(c, block=True, timeout=SLOW)),
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    a.append("job")
    for t in threads:
        t.join(SLOW)
    assert (list(a), list(b), list(c)) == ([], [], ["job"])


# ---- consumers killed at random --------------------------------------------------------------

ITEMS = 1500
CONSUMERS = 4


def _consumer(path: str, k: int) -> None:
    s = persist.open(path)
    root = s.root
    q, wip, done = root["q"], root[f"wip{k}"], root["done"]
    while True:
        job = q.move_to(wip, block=True)
        if job is None:
            return
        # The work, then the hand-off to done: the job is in exactly one list at every instant.
        wip.move_to(done)


def test_killed_consumers_lose_nothing_and_take_nothing_twice(store_path: Path) -> None:
    path = str(store_path)
    s = persist.open(path)
    root = s.root
    root["q"] = []
    root["done"] = []
    q = root["q"]
    rng = random.Random(11)
    consumers: dict[int, int] = {}  # wip index -> pid
    next_k = 0

    def start() -> None:
        nonlocal next_k
        k = next_k
        next_k += 1
        root[f"wip{k}"] = []
        consumers[k] = fork_child(lambda: _consumer(path, k))

    def recover(k: int) -> None:
        # A dead consumer's jobs go back to the front of the queue.
        wip = root[f"wip{k}"]
        while len(wip):
            wip.move_to(q, left=False, dest_left=True)

    for _ in range(CONSUMERS):
        start()
    kills = 0
    produced = 0
    try:
        while produced < ITEMS:
            burst = rng.randrange(1, 60)
            q.extend(range(produced, min(ITEMS, produced + burst)))
            produced = min(ITEMS, produced + burst)
            time.sleep(rng.random() * 0.004)
            if rng.random() < 0.3:
                k = rng.choice(list(consumers))
                kill_child(consumers.pop(k))
                kills += 1
                recover(k)
                start()
        # Let them drain the queue, then stop them (one None each).
        deadline = time.monotonic() + SLOW
        while len(root["done"]) < ITEMS and time.monotonic() < deadline:
            time.sleep(0.01)
        q.extend([None] * len(consumers))
        for k in list(consumers):
            assert reap_child(consumers.pop(k)) == 0
            recover(k)
    finally:
        for pid in consumers.values():
            kill_child(pid)
    everything = list(q) + list(root["done"])
    for k in range(next_k):
        everything += list(root[f"wip{k}"])
    everything = [x for x in everything if x is not None]
    assert sorted(everything) == list(range(ITEMS)), "a job was lost or taken twice"
    assert len(root["done"]) == ITEMS
    assert kills > 0
    rep = s.check()
    assert rep["leaked_references"] == 0
    s.close()


def test_forked_waiters_share_items_exactly_once(store_path: Path) -> None:
    # Four processes blocked on one queue; every item goes to exactly one of them.
    path = str(store_path)
    s = persist.open(path)
    s.root["q"] = []
    s.root["got"] = []
    q = s.root["q"]
    n = 400

    def waiter() -> None:
        st = persist.open(path)
        qq, got = st.root["q"], st.root["got"]
        while (x := qq.popleft(block=True, timeout=SLOW)) is not None:
            got.append(x)

    pids = [fork_child(waiter) for _ in range(4)]
    for i in range(n):
        q.append(i)
        if i % 50 == 0:
            time.sleep(0.01)  # let them fall asleep now and then
    q.extend([None] * 4)
    for pid in pids:
        assert reap_child(pid) == 0
    assert sorted(s.root["got"]) == list(range(n))
    s.close()


# ---- asyncio ---------------------------------------------------------------------------------


def test_async_pop_waits_without_blocking_the_loop(store: Any) -> None:
    q = fresh(store)

    async def main() -> tuple[Any, Any, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick = asyncio.ensure_future(ticker())
        waiting = asyncio.ensure_future(q.popleft_async(block=True, timeout=SLOW))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        before = ticks
        await asyncio.get_running_loop().run_in_executor(None, q.append, "a")
        first = await waiting
        q.append("b")
        second = await q.pop_async(block=True)
        tick.cancel()
        return first, second, before

    first, second, ticks = asyncio.run(main())
    assert (first, second) == ("a", "b")
    assert ticks > 0  # the loop ran while the wait was blocked


def test_async_forms_match_the_plain_ones(store: Any) -> None:
    q = fresh(store, items=[1, 2, 3])
    wip = fresh(store, "wip")

    async def main() -> None:
        assert await q.pop_async(0) == 1
        assert await q.move_to_async(wip) == 2
        assert await q.popleft_async() == 3
        with pytest.raises(IndexError):
            await q.popleft_async()
        with pytest.raises(IndexError):
            await q.pop_async(block=True, timeout=0.02)
        with pytest.raises(IndexError, match="move from empty list"):
            await q.move_to_async(wip, block=True, timeout=0.02)
        with pytest.raises(ValueError):
            await q.popleft_async(block=True, timeout=-1)

    asyncio.run(main())
    assert list(wip) == [2]


def test_cancelled_async_pop_loses_nothing(store: Any) -> None:
    q = fresh(store)

    async def main() -> None:
        for i in range(20):
            task = asyncio.ensure_future(q.popleft_async(block=True))
            await asyncio.sleep(0.002 * (i % 4))
            if i % 2:
                q.append(i)  # the cancel may race with the worker taking it
            task.cancel()
            try:
                got = await task
            except asyncio.CancelledError:
                continue
            # Not cancelled in time: it took an item (this one, or one a cancelled wait took
            # and put back), which is then not in the queue; it goes back for the count.
            assert got % 2 == 1
            q.append(got)

    asyncio.run(main())
    deadline = time.monotonic() + SLOW
    # A value a cancelled worker took comes back by itself (put back in a worker thread).
    while sorted(q) != list(range(1, 20, 2)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(q) == list(range(1, 20, 2))


def test_async_pop_in_a_forked_child(store_path: Path, store: Any) -> None:
    q = fresh(store, items=["x"])

    async def first() -> Any:
        return await q.popleft_async()

    assert asyncio.run(first()) == "x"  # the parent's worker pool exists now
    q.append("y")

    def child() -> None:
        assert asyncio.run(first()) == "y"

    pid = fork_child(child)
    assert reap_child(pid) == 0
    assert len(q) == 0


@pytest.mark.parametrize("how", ["pop", "popleft", "move_to"])
def test_blocked_in_the_store_lock_too(store: Any, how: str) -> None:
    # A waiter that finds the store locked waits for the lock, then for an item.
    q = fresh(store)
    wip = fresh(store, "wip")
    got: list[Any] = []

    def consumer() -> None:
        if how == "pop":
            got.append(q.pop(block=True, timeout=SLOW))
        elif how == "popleft":
            got.append(q.popleft(block=True, timeout=SLOW))
        else:
            got.append(q.move_to(wip, block=True, timeout=SLOW))

    with store.transaction():
        t = threading.Thread(target=consumer)
        t.start()
        q.append("in section")
        time.sleep(0.05)
        assert got == []
    t.join(SLOW)
    assert got == ["in section"]


def test_os_fork_child_waits_on_the_parents_store(store: Any) -> None:
    q = fresh(store)
    r, w = os.pipe()

    def child() -> None:
        os.write(w, b"r")
        assert q.popleft(block=True, timeout=SLOW) == "from parent"

    pid = fork_child(child)
    assert os.read(r, 1) == b"r"
    time.sleep(0.02)
    q.append("from parent")
    assert reap_child(pid) == 0
    os.close(r)
    os.close(w)


# ---- asyncio: the store lock -----------------------------------------------------------------


def _times_out(take: Any) -> bool:
    """Whether ``take(timeout=...)`` in another thread times out (the lock is held here)."""
    out: list[bool] = []

    def run() -> None:
        try:
            take(timeout=0.05)
        except persist.LockTimeout:
            out.append(True)
            return
        out.append(False)
        store_unlock()

    store_unlock = take.__self__.unlock
    t = threading.Thread(target=run)
    t.start()
    t.join(SLOW)
    return out == [True]


def test_async_lock_excl_is_the_loops_and_commits(store: Any) -> None:
    root = store.root
    root["n"] = 0

    async def main() -> None:
        async with root.lockExcl_async() as guard:
            assert guard is not None
            root["n"] = 1  # the loop's thread holds the lock: a change of its section
            assert _times_out(root.lockExcl)  # another thread waits
            # Reentrant in the loop's thread, as lockExcl is in a thread.
            inner = await root.lockExcl_async()
            root["n"] += 1
            inner.__exit__(None, None, None)
        assert not _times_out(root.lockExcl)  # given back
        guard = await root.lockShared_async(timeout=5)
        assert _times_out(root.lockExcl)  # a writer waits for a shared hold
        root.unlock()
        assert guard is not None

    asyncio.run(main())
    assert root["n"] == 2


def test_async_lock_wait_does_not_block_the_loop(store: Any) -> None:
    root = store.root
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with root.lockExcl():
            root["by"] = "thread"
            held.set()
            release.wait(SLOW)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(SLOW)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick = asyncio.ensure_future(ticker())
        waiting = asyncio.ensure_future(root.lockExcl_async())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        seen = ticks
        # A short wait with a timeout ends in LockTimeout.
        with pytest.raises(persist.LockTimeout):
            await root.lockExcl_async(timeout=0.01)
        release.set()
        guard = await waiting
        with guard:
            root["by"] = "loop"
        tick.cancel()
        return seen

    assert asyncio.run(main()) > 0
    t.join(SLOW)
    assert root["by"] == "loop"


def test_cancelled_async_lock_wait_leaves_the_lock_free(store: Any) -> None:
    root = store.root
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with root.lockExcl():
            held.set()
            release.wait(SLOW)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(SLOW)

    async def main() -> None:
        tasks = [asyncio.ensure_future(root.lockExcl_async()) for _ in range(3)]
        await asyncio.sleep(0.02)
        tasks[0].cancel()
        release.set()  # the others race for it with the cancel
        await asyncio.sleep(0.01)
        for task in tasks[1:]:
            task.cancel()
        for task in tasks:
            try:
                guard = await task
            except asyncio.CancelledError:
                continue
            guard.__exit__(None, None, None)

    asyncio.run(main())
    t.join(SLOW)
    # Every lock a cancelled wait took was given back: another thread takes it at once.
    deadline = time.monotonic() + SLOW
    while _times_out(root.lockExcl) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _times_out(root.lockExcl)
