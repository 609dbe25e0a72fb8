"""Forked worker processes for the crash tests: started in about a millisecond (so kills land
inside the work, not inside interpreter start-up), never returning into pytest."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def fork_child(body: Callable[[], None]) -> int:
    """Runs ``body`` in a forked child; the child leaves with os._exit (1 if body raised)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException:  # noqa: BLE001 - report anything, then leave at once
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def reap_child(pid: int) -> int:
    """Waits for ``pid``; returns its exit status (negative: killed by that signal)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def kill_child(pid: int) -> None:
    """SIGKILLs ``pid`` (if it still runs) and reaps it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    reap_child(pid)
