"""The exceptions persist raises, defined once, here.

The native module (src/py/errors.rs) imports these classes rather than defining its own,
because ``StoreFullError`` has two bases and PyO3's ``create_exception!`` allows one.
So Rust raises exactly the classes that users catch.

Each class sets ``__module__ = "persist"``: that is where users find it, how ``repr`` and
tracebacks name it, and where ``pickle`` looks it up (an error raised in a
``multiprocessing`` worker reaches the parent as the same class).
"""

from __future__ import annotations

__all__ = [
    "ClosedError",
    "CorruptionError",
    "Error",
    "FormatError",
    "LockTimeout",
    "ReadOnlyError",
    "StoreFullError",
]


class Error(Exception):
    """Base class of every error that persist raises about a store."""

    __module__ = "persist"


class FormatError(Error):
    """The file is not a persist store, or is one of another format version.

    Checked first, before anything else in the file is read; the file is left byte for byte
    as it was.
    """

    __module__ = "persist"


class CorruptionError(Error):
    """The store's contents are damaged: the message says what is wrong and where."""

    __module__ = "persist"


class StoreFullError(Error, MemoryError):
    """The store cannot grow: the disk or the address space is exhausted.

    Also a ``MemoryError``. The change that needed the space is not made; nothing stored
    before is lost.
    """

    __module__ = "persist"


class LockTimeout(Error):
    """``lockExcl`` or ``lockShared`` did not get the lock within its ``timeout``."""

    __module__ = "persist"


class ClosedError(Error):
    """The store was closed: its proxies can no longer be read, changed or locked."""

    __module__ = "persist"


class ReadOnlyError(Error):
    """A change was attempted on a store opened with ``readonly=True``."""

    __module__ = "persist"
