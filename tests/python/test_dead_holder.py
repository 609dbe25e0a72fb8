"""A process SIGKILLed while it holds the store lock: the others roll its changes back and go
on (the basic case; the torture tests come with the crash-safety work)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import persist

KILLED_IN_SECTION = """
import os, signal, sys, persist
s = persist.open(sys.argv[1])
root = s.root
root.lockExcl()
root['x'] = 'changed'
root['new'] = list(range(1000))
root['l'].append('appended')
del root['gone']
print('inside', flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

KILLED_HOLDING_SHARED = """
import os, signal, sys, persist
s = persist.open(sys.argv[1])
s.root.lockShared()
print('inside', flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _run_and_get_killed(code: str, path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert p.stdout.strip() == "inside", p.stderr
    assert p.returncode == -9


def test_changes_of_a_holder_killed_inside_lockExcl_are_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path) as store:
        root = store.root
        root["x"] = "before"
        root["l"] = [1, 2]
        root["gone"] = {"still": "here"}
        before = store.stats()
        _run_and_get_killed(KILLED_IN_SECTION, path)
        t0 = time.monotonic()
        root.lockExcl(timeout=30)
        waited = time.monotonic() - t0
        try:
            assert root["x"] == "before"
            assert "new" not in root
            assert root["l"] == [1, 2]
            assert root["gone"] == {"still": "here"}
        finally:
            root.unlock()
        assert waited < 5, f"took {waited:.2f} s to take over the dead holder's lock"
        store.check()
        after = store.stats()
        assert after["objects"] == before["objects"]
        assert after["live_bytes"] == before["live_bytes"]


def test_a_reader_is_not_blocked_by_a_dead_holder(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path) as store:
        store.root["x"] = 1
        store.root["l"] = []
        store.root["gone"] = 0
        _run_and_get_killed(KILLED_IN_SECTION, path)
        assert store.root["x"] == 1  # waits for the section, finds it dead, reads the old value


def test_a_writer_is_not_blocked_by_a_dead_shared_holder(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(path) as store:
        _run_and_get_killed(KILLED_HOLDING_SHARED, path)
        store.root.lockExcl(timeout=30)
        store.root["y"] = 2
        store.root.unlock()
        assert store.root["y"] == 2
        store.check()
