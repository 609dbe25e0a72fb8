"""What every command of ``python -m persist`` shares: its error, opening stores without
creating them (read-only where the command only reads), creating new ones without
overwriting, giving copies their source's mode, number formats, and the progress line.

A command raises :class:`CliError` (or a ``persist.Error``, or an ``OSError``) and
``persist.__main__`` turns it into one line on stderr and exit status 1.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import TextIO

import persist


class CliError(Exception):
    """A failure the command explains in one line (exit status 1)."""


# ---- opening --------------------------------------------------------------------------------


def open_existing(path: str, *, readonly: bool = False) -> persist.Store:
    """Opens the store at ``path``, which must exist and be non-empty.

    ``persist.open`` makes a new store of a missing or empty file; a command that only looks at
    a store (info, check, dump, gc, the source of compact) must not.
    """
    if not os.path.lexists(path):
        raise CliError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory, not a persist store")
    if os.path.getsize(path) == 0:
        raise CliError(
            f"{path}: the file is empty, not a persist store (left as it is; opening it as a "
            "store would make it a new one)"
        )
    return persist.open(path, create=False, readonly=readonly)


def may_write(path: str) -> bool:
    """Whether this user may write the file at ``path`` (its permissions; root may)."""
    return os.access(path, os.W_OK)


def open_read_only(path: str) -> persist.Store:
    """Opens an existing store for a command that only reads it (info, check): read-only, so
    that a user who may only read the store can run it and nothing writes the file.

    Where a read-only opener cannot go on (a durable change cut short by a crash waits to be
    rolled back), and this user may write the store, it is opened writable instead: the
    rollback any writable open does.
    """
    try:
        return open_existing(path, readonly=True)
    except persist.ReadOnlyError:
        if not may_write(path):
            raise
        return open_existing(path)


def open_for_snapshot(path: str) -> tuple[persist.Store, bool]:
    """Opens an existing store for a command that reads all of it (dump, the source of
    compact); returns it and whether it is read-only.

    Writable where this user may write the store, for ``lockShared`` (a consistent snapshot:
    writers wait while it is read; a read-only store cannot take it); read-only otherwise,
    when each read is atomic but the whole is consistent only if no process changes the store
    meanwhile.
    """
    if may_write(path):
        return open_existing(path), False
    return open_existing(path, readonly=True), True


def copy_mode(src: os.stat_result | None, path: str) -> None:
    """Gives ``path`` (a file this command made) the permission bits of ``src``, and its group
    (and, for root, its owner) where this user may set them: a copy of a private store stays
    private and a copy of a group's store stays the group's. Where the group cannot be set the
    copy grants its own group no more than every user. Without ``src``: ``0666 & ~umask``, as
    ``open(2)``."""
    if src is None:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(path, 0o666 & ~mask)
        return
    try:
        os.chown(path, src.st_uid if os.geteuid() == 0 else -1, src.st_gid)
    except PermissionError:
        pass
    mode = stat.S_IMODE(src.st_mode) & 0o777
    if os.stat(path).st_gid != src.st_gid:
        mode = (mode & ~0o070) | ((mode & 0o007) << 3)
    os.chmod(path, mode)


def create_new(path: str, mode: int = 0o666) -> persist.Store:
    """Creates a new store at ``path``, which must not exist (never overwritten), with ``mode``
    (less the umask) until its maker gives it another.

    The file is made with O_EXCL first, so two commands given the same destination cannot both
    write it; ``persist.open`` then turns the empty file into a store.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CliError(
            f"{path} already exists: give a path that does not (it is never overwritten)"
        ) from None
    os.close(fd)
    try:
        return persist.open(path)
    except BaseException:
        remove_store(path)
        raise


def remove_store(path: str) -> None:
    """Removes a store this command created and gave up on: the file and its lock file."""
    for p in (path, path + ".lock"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# ---- formats --------------------------------------------------------------------------------


def size(n: int, exact: bool = True) -> str:
    """1536 -> '1.5 KiB (1,536 bytes)', or '1.5 KiB' when not ``exact``."""
    x = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if x < 1024 or unit == "TiB":
            break
        x /= 1024
    if unit == "bytes":
        return f"{n:,} bytes"
    return f"{x:.1f} {unit} ({n:,} bytes)" if exact else f"{x:.1f} {unit}"


def rate(x: float) -> str:
    """Operations per second, short: 1.04M, 98.6k, 512."""
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


# ---- progress -------------------------------------------------------------------------------


def progress_wanted(flag: bool | None) -> bool:
    """--progress forces it, --no-progress silences it; by default only on a terminal."""
    if flag is not None:
        return flag
    return sys.stderr.isatty()


class Progress:
    """A progress line on stderr for one long piece of work.

    On a terminal it is one line redrawn in place (a bar when the total is known); elsewhere
    (``--progress`` into a pipe or file) it writes a line every second, so a log shows the work
    moving without being flooded. Disabled, every method does nothing.
    """

    def __init__(self, command: str, enabled: bool, stream: TextIO | None = None) -> None:
        self.command = command
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and self.stream.isatty()
        self.start = time.monotonic()
        self._what = ""
        self._total: int | None = None
        self._unit = ""
        self._shown = 0.0
        self._open_line = False

    def phase(self, what: str, total: int | None = None, unit: str = "") -> None:
        """Starts a phase: a line saying what is being done now."""
        if not self.enabled:
            return
        self._end_line()
        self._what, self._total, self._unit = what, total, unit
        self._shown = 0.0
        self._write(f"persist {self.command}: {what}...", final=True)

    def note(self, text: str) -> None:
        """A line of its own: a result along the way."""
        if not self.enabled:
            return
        self._end_line()
        self._write(f"persist {self.command}: {text}", final=True)

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` units of the current phase are done (cheap enough to call often)."""
        if not self.enabled:
            return
        if total is not None:
            self._total = total
        now = time.monotonic()
        if now - self._shown < (0.1 if self.tty else 1.0):
            return
        self._shown = now
        self._write(self._line(done), final=not self.tty)

    def done(self, summary: str) -> None:
        """The closing line: what was done, and how long it took."""
        if not self.enabled:
            return
        self._end_line()
        secs = time.monotonic() - self.start
        self._write(f"persist {self.command}: {summary} ({secs:.2f} s)", final=True)

    def _line(self, done: int) -> str:
        head = f"persist {self.command}: {self._what}"
        total = self._total
        if total:
            frac = min(done / total, 1.0)
            if self.tty:
                filled = int(frac * 30)
                bar = "#" * filled + "-" * (30 - filled)
                return f"{head} [{bar}] {frac:4.0%} {done:,}/{total:,} {self._unit}"
            return f"{head}: {done:,}/{total:,} {self._unit} ({frac:.0%})"
        return f"{head}: {done:,} {self._unit}"

    def _write(self, text: str, final: bool) -> None:
        if self.tty and not final:
            self.stream.write("\r\x1b[K" + text)
            self._open_line = True
        else:
            self._end_line()
            self.stream.write(text + "\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
