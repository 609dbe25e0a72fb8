"""persist: a persistent object store for Python.

A memory-mapped file holds an object graph whose root is a persistent dict; any number of
processes and threads use one store at once. The native core is ``persist._persist``; only
what this package exports is part of the API.
"""

from __future__ import annotations

# The exception classes first: the native module looks them up in persist._errors.
from persist._errors import (
    ClosedError,
    CorruptionError,
    Error,
    FormatError,
    LockTimeout,
    ReadOnlyError,
    StoreFullError,
)
from persist._persist import FORMAT_VERSION, __version__

__all__ = [
    "FORMAT_VERSION",
    "ClosedError",
    "CorruptionError",
    "Error",
    "FormatError",
    "LockTimeout",
    "ReadOnlyError",
    "StoreFullError",
    "__version__",
]
