"""Fixtures shared by the store's Python tests.

- ``store``: a fresh store at ``tmp_path / "s.db"``, closed at teardown.
- ``run_py``: run a Python snippet in a fresh interpreter (``sys.executable -c``) and return
  what it printed; a non-zero exit fails the test with the child's output.
- ``run_script``: run a program file in a fresh interpreter; returns the CompletedProcess.
- ``spawn_py``: start a snippet in the background, talk to it line by line over its stdin and
  stdout, and have it killed at teardown if the test did not finish it.
- ``group_dir``: a fresh directory in /tmp that every user may enter (``tmp_path`` is root's
  alone), for stores shared with a second user (users.py).

Children get the parent's environment without ``PERSIST_PATH`` (unless a test sets it), so a
developer's own setting never leaks into a test, and unbuffered output, so handshakes over a
pipe are never stuck in a buffer.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import persist

# Generous: only a wedged child ever gets near it (pytest-timeout stops the test at 300 s).
CHILD_TIMEOUT = 120.0


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PERSIST_PATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    # Lone surrogates and astral characters must reach a pipe without an encoding error.
    env["PYTHONIOENCODING"] = "utf-8:backslashreplace"
    if extra:
        env.update(extra)
    return env


def run_python(
    code: str,
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = CHILD_TIMEOUT,
    check: bool = True,
) -> str:
    """Run ``code`` (dedented) in a fresh interpreter; return its stdout.

    With ``check`` a non-zero exit fails the test, showing the child's stdout and stderr.
    """
    proc = run_python_proc(code, cwd=cwd, env=env, args=args, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"child exited with {proc.returncode}\n--- code ---\n{textwrap.dedent(code)}"
            f"\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def run_python_proc(
    code: str,
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = CHILD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=os.fspath(cwd),
        env=child_env(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def run_script(
    script: str | os.PathLike[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a program file in a fresh interpreter (``sys.executable SCRIPT``)."""
    return subprocess.run(
        [sys.executable, os.fspath(script)],
        cwd=os.fspath(cwd),
        env=child_env(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


class Child:
    """A Python child in the background, driven line by line over stdin/stdout."""

    def __init__(
        self,
        code: str,
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.code = textwrap.dedent(code)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.code, *args],
            cwd=os.fspath(cwd),
            env=child_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.lines: list[str] = []
        self._buf = b""

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def _readline(self, deadline: float) -> str | None:
        """The next line of stdout; None at end of file or when the deadline passes."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    if time.monotonic() >= deadline:
                        return None
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode("utf-8", "backslashreplace")
        self.lines.append(text)
        return text

    def expect(self, wanted: str, timeout: float = CHILD_TIMEOUT) -> str:
        """Read lines until one equals ``wanted`` (or starts with it, if it ends in '*')."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                self.fail(f"no line {wanted!r} (child ended or timed out)")
                raise AssertionError  # unreachable: fail() raises
            if line == wanted or (wanted.endswith("*") and line.startswith(wanted[:-1])):
                return line

    def wait(self, timeout: float = CHILD_TIMEOUT) -> tuple[int, str, str]:
        """Close stdin, wait for the exit; return (returncode, rest of stdout, stderr)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail("did not exit in time")
            raise AssertionError from None  # unreachable: fail() raises
        rest = (self._buf + out).decode("utf-8", "backslashreplace")
        self._buf = b""
        return self.proc.returncode, rest, err.decode("utf-8", "backslashreplace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def fail(self, why: str) -> None:
        self.kill()
        out, err = self.proc.communicate()
        seen = "\n".join(self.lines)
        rest = (self._buf + out).decode("utf-8", "backslashreplace")
        pytest.fail(
            f"child: {why}\n--- code ---\n{self.code}\n--- stdout ---\n{seen}\n{rest}"
            f"\n--- stderr ---\n{err.decode('utf-8', 'backslashreplace')}"
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[Any]:
    s = persist.open(str(store_path))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def run_py() -> Any:
    """``run_py(code, cwd=..., env=None, args=(), timeout=..., check=True) -> stdout``."""
    return run_python


@pytest.fixture(name="run_script")
def run_script_fixture() -> Any:
    """``run_script(path, cwd=..., env=None, timeout=...) -> CompletedProcess``."""
    return run_script


@pytest.fixture
def spawn_py() -> Iterator[Any]:
    """``spawn_py(code, cwd=..., env=None, args=()) -> Child``; leftovers are killed at
    teardown."""
    children: list[Child] = []

    def spawn(
        code: str,
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> Child:
        child = Child(code, cwd=cwd, env=env, args=args)
        children.append(child)
        return child

    yield spawn
    for child in children:
        child.kill()
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def group_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="persist-group-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)
