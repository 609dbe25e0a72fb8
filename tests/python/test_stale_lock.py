"""Lock-file words that no live process left (a damaged or forged lock file) never hang a
store: every wait on them is bounded (issue 16, item 3).

The bug story. An unlocked read waited forever when the lock file's sequence word was odd and
no live process was writing, although `check()` names exactly that fault; a writer word naming
a participant that is not attached, or a shared count that no participant holds, kept every
writer waiting as long. Here each state is forged by writing the lock file from outside (as a
damaged file or a hostile neighbour would), while a store has it open, and the next operation
must finish: a writable process repairs the word within tens of milliseconds, and a read-only
one raises `CorruptionError` for the odd sequence instead of waiting.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

import persist

# Lock file header words (FORMAT.md §6.1): each on its own cache line.
WRITER = 64
SEQ = 128
SHARED = 192
# The store header's root word (FORMAT.md §3: the first of the object words).
ROOT = 88

# Far more than a repair takes (about 30 ms of waiting first), far less than a hang.
BOUND = 20.0


def _word(path: Path, offset: int) -> int:
    with open(f"{path}.lock", "rb") as f:
        f.seek(offset)
        return int(struct.unpack("<Q", f.read(8))[0])


def _forge(path: Path, offset: int, value: int) -> None:
    fd = os.open(f"{path}.lock", os.O_WRONLY)
    try:
        os.pwrite(fd, struct.pack("<Q", value), offset)
    finally:
        os.close(fd)


def _finishes(f: Any) -> Any:
    """Runs ``f`` in a thread; fails the test if it has not finished within BOUND seconds."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", f()))
        except BaseException as e:  # reported to the test below
            out.append(("err", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(BOUND)
    assert not t.is_alive(), f"still waiting after {BOUND} s: the wait is not bounded"
    kind, value = out[0]
    if kind == "err":
        raise value
    return value


def test_an_odd_sequence_nobody_owns_is_repaired_by_a_reader(store: Any, store_path: Path) -> None:
    store.root["x"] = 1
    seq = _word(store_path, SEQ)
    assert seq % 2 == 0 and _word(store_path, WRITER) == 0
    _forge(store_path, SEQ, seq + 1)
    assert _finishes(lambda: store.root["x"]) == 1
    assert _word(store_path, SEQ) % 2 == 0
    store.root["x"] = 2
    assert store.root["x"] == 2
    store.check()  # raises CorruptionError if the repair left anything wrong


def test_a_writer_on_an_odd_sequence_steps_over_it(store: Any, store_path: Path) -> None:
    """A change that takes the writer word and finds the sequence odd keeps it odd while it
    runs (never even under a change) and leaves it even."""
    store.root["x"] = 1
    _forge(store_path, SEQ, _word(store_path, SEQ) + 1)
    _finishes(lambda: store.root.__setitem__("x", 2))
    assert _word(store_path, SEQ) % 2 == 0
    assert store.root["x"] == 2


def test_a_readonly_reader_reports_an_odd_sequence(store: Any, store_path: Path) -> None:
    store.root["x"] = 1
    ro = persist.open(store_path, readonly=True)
    try:
        assert ro.root["x"] == 1
        seq = _word(store_path, SEQ)
        _forge(store_path, SEQ, seq + 1)
        with pytest.raises(persist.CorruptionError, match="odd while no process holds"):
            _finishes(lambda: ro.root["x"])
        # Nothing was written: the writable store repairs it.
        assert _word(store_path, SEQ) == seq + 1
        assert _finishes(lambda: store.root["x"]) == 1
        assert _finishes(lambda: ro.root["x"]) == 1
    finally:
        ro.close()


def test_a_writer_word_naming_nobody_is_freed(store: Any, store_path: Path) -> None:
    store.root["x"] = 1
    # Slot 200, generation 7: no such participant is attached.
    _forge(store_path, WRITER, (7 << 16) | 201)
    _finishes(lambda: store.root.__setitem__("x", 2))
    assert store.root["x"] == 2
    store._core.lock_excl(timeout=BOUND)
    store._core.unlock()
    assert _word(store_path, WRITER) == 0


def test_a_shared_count_nobody_holds_is_recounted(store: Any, store_path: Path) -> None:
    store.root["x"] = 1
    _forge(store_path, SHARED, 5)
    _finishes(lambda: store.root.__setitem__("x", 2))
    assert store.root["x"] == 2
    assert _word(store_path, SHARED) == 0
    # A real lockShared hold is counted and kept.
    store.root.lockShared()
    try:
        assert _word(store_path, SHARED) == 1
    finally:
        store.root.unlock()
    assert _word(store_path, SHARED) == 0


def test_a_live_holders_words_are_left_alone(store: Any, store_path: Path) -> None:
    """A lockExcl section held for longer than the repair's patience keeps its lock: readers
    and writers of another thread wait for it, and none of them repairs anything."""
    store.root["x"] = 1
    store.root.lockExcl()
    got: list[Any] = []

    def other() -> None:
        got.append(store.root["x"])

    t = threading.Thread(target=other)
    t.start()
    t.join(0.5)  # many times the repair's patience
    assert t.is_alive() and got == []
    assert _word(store_path, SEQ) % 2 == 1 and _word(store_path, WRITER) != 0
    store.root["x"] = 2
    store.root.unlock()
    t.join(BOUND)
    assert got == [2]


def test_an_open_that_must_create_the_root_is_bounded_too(store_path: Path) -> None:
    """The root is made by the first opener under the writer word: a forged writer word naming
    nobody must not keep the open waiting forever (the object layer's own waits repair too)."""
    s = persist.open(store_path)
    s.close()
    # A store whose root word is 0 (as a new one), and a lock file whose writer word names a
    # participant that does not exist.
    fd = os.open(store_path, os.O_WRONLY)
    try:
        os.pwrite(fd, struct.pack("<Q", 0), ROOT)
    finally:
        os.close(fd)
    _forge(store_path, WRITER, (7 << 16) | 201)
    s = _finishes(lambda: persist.open(store_path))
    try:
        s.root["x"] = 1
        assert s.root["x"] == 1
    finally:
        s.close()
