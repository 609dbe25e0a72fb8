"""persist: a persistent object store for Python.

A memory-mapped file holds an object graph whose root is a persistent dict; any number of
processes and threads use one store at once. The native core is ``persist._persist``; only
what this package exports (``__all__``) is part of the API.
"""

from __future__ import annotations

import atexit
import collections.abc
import errno
import os
import threading
import weakref
from contextlib import AbstractContextManager
from typing import Any

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
from persist._pbase import Object, pbase
from persist._persist import (
    FORMAT_VERSION,
    Dict,
    List,
    StoreCore,
    __version__,
    _after_fork_in_child,
)

__all__ = [
    "FORMAT_VERSION",
    "ClosedError",
    "CorruptionError",
    "Dict",
    "Error",
    "FormatError",
    "List",
    "LockTimeout",
    "Object",
    "ReadOnlyError",
    "Store",
    "StoreFullError",
    "__version__",
    "json_default",
    "open",
    "pbase",
    "root",
]

# The proxies are the built-in protocols' containers: every mixin method of MutableMapping and
# MutableSequence is implemented natively, as dict's and list's.
collections.abc.MutableMapping.register(Dict)
collections.abc.MutableSequence.register(List)


class Store:
    """An open store. Use :func:`persist.open` to get one; also a context manager."""

    __slots__ = ("_core", "__weakref__")

    def __init__(self, core: StoreCore) -> None:
        self._core = core

    @property
    def root(self) -> Dict:
        """The root dict."""
        return self._core.root()

    @property
    def path(self) -> str:
        return os.fspath(self._core.path)

    @property
    def closed(self) -> bool:
        return self._core.closed

    def close(self) -> None:
        """Closes the store: an open lockExcl section is rolled back; later use of its proxies
        raises ClosedError. Closing twice is harmless."""
        self._core.close()
        with _roots_lock:
            for k, v in list(_roots.items()):
                if v is self:
                    del _roots[k]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[Store]:
        """Exclusive lock for the block; if the block raises, every change made in it is
        rolled back (and the exception re-raised), else committed on exit. Nested blocks are
        savepoints. A KeyboardInterrupt cannot leave the lock held: when control leaves the
        block, its changes are committed or rolled back and the lock is released."""
        return self._core.transaction(self)

    def flush(self) -> None:
        """What is committed reaches the disk before this returns."""
        self._core.flush()

    def check(self, timeout: float | None = None) -> dict:
        """Full integrity check of allocator and graph; raises CorruptionError saying what is
        wrong and where. Returns counts (unreachable blocks are facts, not errors). Waits for
        the writer lock at most ``timeout`` seconds (LockTimeout), forever by default."""
        return self._core.check(timeout)

    def gc(self, timeout: float | None = None) -> dict:
        """Frees what nothing reaches or holds (cycles, what killed processes left); returns
        what it freed. Waits for the writer lock at most ``timeout`` seconds."""
        return self._core.gc(timeout)

    def stats(self, timeout: float | None = None) -> dict:
        """file_size, pages_used, pages_free, live_bytes, objects (type -> count), processes.
        Waits for the writer lock at most ``timeout`` seconds."""
        return self._core.stats(timeout)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<persist.Store {self.path!r} ({state})>"


def open(  # noqa: A001 - the API's name
    path: str | os.PathLike[str],
    *,
    create: bool = True,
    readonly: bool = False,
    durable: bool = False,
) -> Store:
    """Opens the store at ``path`` (creating it if missing, unless ``create=False``).

    ``durable=True``: every change this process commits is on disk when the call that made
    it returns (each undo record reaches the disk before the write it covers; see the README's
    "What survives what"). Slower: several msyncs per change.

    ``readonly=True``: the store file is opened and mapped read-only and never written (an
    existing store only: nothing is created). Reads work and see other processes' changes;
    every change, ``lockExcl``, ``lockShared`` and ``gc`` raise ``ReadOnlyError``. The lock
    file beside the store must exist and be writable (it is where every process takes part;
    README: read-only users).

    A new store file is created ``0666 & ~umask`` and its lock file ``PATH.lock`` follows its
    mode. Neither is opened through a symbolic link, and a lock file that another user could
    use against the store (owned by someone who may not write the store, writable by every
    user...) raises ``PermissionError`` naming it (FORMAT.md §6.6).
    """
    p = os.fspath(path)
    if "\0" in p:
        # As Python's own file functions refuse such a path.
        raise ValueError(f"embedded null byte in the store path {p!r}")
    if p == "":
        raise FileNotFoundError(errno.ENOENT, "No such persist store (the path is empty)", p)
    if (readonly or not create) and not os.path.exists(p):
        raise FileNotFoundError(errno.ENOENT, "No such persist store", p)
    store = Store(
        StoreCore(p, durable=bool(durable), readonly=bool(readonly), create=bool(create))
    )
    _open_stores.add(store)
    return store


# Every open store is closed when the interpreter exits, so a lock held at exit is released
# (its lockExcl section rolled back) instead of outliving the process.
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


# A forked child becomes a participant of its own in every store it inherited.
os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all() -> None:
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:  # noqa: BLE001 - exiting: nothing left to report to
            pass


_roots: dict[str, Store] = {}
_roots_lock = threading.Lock()


def root(path: str | os.PathLike[str] | None = None) -> Dict:
    """The root dict of the store at ``path``, else ``$PERSIST_PATH``, else ``persist.db`` in
    the working directory; opened once per process and created if missing."""
    if path is None:
        path = os.environ.get("PERSIST_PATH") or "persist.db"
    key = os.path.realpath(os.fspath(path))
    with _roots_lock:
        store = _roots.get(key)
        if store is None or store.closed:
            try:
                store = open(key)
            except OSError as e:
                renamed = _named_as_given(e, key, os.fspath(path))
                if renamed is e:
                    raise
                raise renamed from None
            _roots[key] = store
    return store.root


def _named_as_given(e: OSError, opened: str, given: str) -> OSError:
    """``e`` naming the path the caller gave instead of the resolved one that root() opened
    (the store's, or its lock file's: the same path with ``.lock``)."""
    name = e.filename
    if isinstance(name, str) and name in (opened, opened + ".lock"):
        return type(e)(e.errno, e.strerror, given + name[len(opened) :])
    return e


def json_default(obj: Any) -> Any:
    """For ``json.dumps(value, default=persist.json_default)``: a persist.Dict or persist.List
    becomes its plain deep copy (``to_python()``), which json then encodes; anything else is
    refused with TypeError, as json's own default does."""
    if isinstance(obj, (Dict, List)):
        return obj.to_python()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'persist' has no attribute {name!r}")
