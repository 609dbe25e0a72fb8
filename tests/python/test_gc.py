"""gc() frees what killed processes left behind, while other processes keep working.

Writers SIGKILLed in the middle of their work leave blocks that nothing reaches (their block
caches, allocations not yet linked, releases cut short after a commit). gc() finds them with a
mark of the live graph and frees them, while two other processes go on appending to a shared
list; afterwards every append is there exactly once, and check() finds nothing unreachable.
"""

from __future__ import annotations

import os
import random
import time

import persist
from procs import fork_child, kill_child, reap_child


def _killable_writer(path: str, seed: int) -> None:
    s = persist.open(path)
    root = s.root
    rnd = random.Random(seed)
    scratch = root["scratch"]
    while True:
        if rnd.random() < 0.5:
            with s.transaction():
                scratch.append("v" * rnd.randrange(8, 600))
                if len(scratch) > 40:
                    del scratch[:20]
        else:
            root.lockExcl()
            try:
                root["note"] = "n" * rnd.randrange(8, 3000)
                scratch.append((rnd.random(), b"b" * rnd.randrange(1, 300)))
            finally:
                root.unlock()


def _appender(path: str, wid: int, report_fd: int) -> None:
    s = persist.open(path)
    root = s.root
    log = root["log"]
    n = 0
    while not root["stop"]:
        log.append(f"{wid}:{n}:" + "x" * 24)
        n += 1
    os.write(report_fd, f"{wid} {n}\n".encode())
    s.close()


def test_gc_frees_killed_writers_leftovers_while_others_append(tmp_path):
    path = str(tmp_path / "gc.db")
    with persist.open(path) as s:
        s.root.update(scratch=[], note="", log=[], stop=False)

    rnd = random.Random(7)
    for k in range(40):
        pid = fork_child(lambda k=k: _killable_writer(path, k))
        time.sleep(rnd.uniform(0.01, 0.04))
        kill_child(pid)

    with persist.open(path) as s:
        leaked = s.check()["unreachable_blocks"]
        assert leaked > 0, "the kills left nothing to collect: the test would prove nothing"

        r_fd, w_fd = os.pipe()
        workers = [fork_child(lambda w=w: _appender(path, w, w_fd)) for w in range(2)]
        os.close(w_fd)
        try:
            time.sleep(0.05)
            freed = [s.gc() for _ in range(5)]
            before_stop = len(s.root["log"])
        finally:
            s.root["stop"] = True
            for pid in workers:
                assert reap_child(pid) == 0
        reports = os.read(r_fd, 4096).decode().split()
        os.close(r_fd)

        counts = {int(reports[i]): int(reports[i + 1]) for i in range(0, len(reports), 2)}
        assert sorted(counts) == [0, 1]
        log = s.root["log"].to_python()
        assert len(log) == sum(counts.values()) and len(set(log)) == len(log)
        for wid, n in counts.items():
            mine = [e for e in log if e.startswith(f"{wid}:")]
            assert [int(e.split(":")[1]) for e in mine] == list(range(n))
        assert before_stop > 0, "the appenders never ran during the collections"
        assert sum(f["blocks"] for f in freed) >= leaked
        after = s.check()
        assert after["unreachable_blocks"] == 0, after
    print(
        f"\ngc: {leaked} blocks left by 40 killed writers; freed {freed} while "
        f"{sum(counts.values())} appends went on"
    )
