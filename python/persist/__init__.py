"""persist: a persistent object store for Python.

A memory-mapped file holds an object graph whose root is a persistent dict; any number of
processes and threads use one store at once, in place, and a process killed at any instant
leaves it intact.

    import persist
    root = persist.root()           # opens (or creates) ./persist.db; its root dict
    with root.lockExcl():           # compound steps under the store-wide lock
        root['visits'] = root.get('visits', 0) + 1

The API, in brief:

- ``root(path=None)`` gives the root dict of a store opened once per process;
  ``open(path, *, create=True, readonly=False, durable=False)`` gives a ``Store`` (root,
  transaction(), flush(), check(), gc(), stats(), close(); also a context manager).
- ``Dict``, ``List`` and ``Set`` are the stored dicts, lists and sets: they behave like dict,
  list and set (and are registered as MutableMapping, MutableSequence and MutableSet), every
  single operation is atomic, and ``lockExcl()``, ``lockShared()`` and ``unlock()`` (plain
  calls or ``with`` blocks) or ``Store.transaction()`` make several operations one.
- ``Cache(ttl=..., max_entries=..., max_bytes=...)``, stored, is a dict whose entries expire
  (per key: ``c.set(k, v, ttl=5)``) and that evicts least recently used entries at its limits.
- Values: None, bool, int, float, str, bytes and tuples are stored by value; lists, dicts and
  sets are copied in and read back as ``List``, ``Dict`` and ``Set``; instances of ``pbase``
  subclasses are stored objects whose attributes live in the store (``Object`` when the
  reader does not have the class). ``copy.deepcopy``, ``to_python()`` and ``json_default``
  give plain values.
- Errors derive from ``Error``: ``FormatError``, ``CorruptionError``, ``StoreFullError``,
  ``LockTimeout``, ``ClosedError``, ``ReadOnlyError``.
- ``python -m persist --help``: the command line (info, check, gc, dump, load, compact,
  bench, demo).

The documentation (a tutorial, the guarantees and the full reference) is the source tree's
docs/ folder, built with Sphinx as the project's README says; it is made from the docstrings,
so ``help(persist.Dict)`` and the others are the reference too. The native core is
``persist._persist``; only what this package exports (``__all__``) is part of the API.
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

from persist import _ops

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
    Cache,
    Dict,
    List,
    Set,
    StoreCore,
    __version__,
    _after_fork_in_child,
)

__all__ = [
    "FORMAT_VERSION",
    "Cache",
    "ClosedError",
    "CorruptionError",
    "Dict",
    "Error",
    "FormatError",
    "List",
    "LockTimeout",
    "Object",
    "ReadOnlyError",
    "Set",
    "Store",
    "StoreFullError",
    "__version__",
    "json_default",
    "open",
    "pbase",
    "root",
]

# The proxies are the built-in protocols' containers: every mixin method of MutableMapping and
# MutableSequence (and MutableSet) is implemented natively, as dict's, list's and set's.
collections.abc.MutableMapping.register(Dict)
collections.abc.MutableMapping.register(Cache)
collections.abc.MutableSequence.register(List)
collections.abc.MutableSet.register(Set)


class Store:
    """An open store, from :func:`persist.open`.

    Also a context manager: ``with persist.open(path) as store: ...`` closes the store at the
    block's end. Its :attr:`root` and every proxy read from it stay valid until :meth:`close`.
    """

    __slots__ = ("_core", "__weakref__")

    def __init__(self, core: StoreCore) -> None:
        self._core = core

    @property
    def root(self) -> Dict:
        """The root dict (a :class:`persist.Dict`): every stored value is reached from it.

        :raises persist.ClosedError: the store is closed.
        """
        return self._core.root()

    @property
    def path(self) -> str:
        """The store file's path, as it was opened (a relative path stays relative)."""
        return os.fspath(self._core.path)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._core.closed

    def close(self) -> None:
        """Closes the store in this process.

        A lockExcl section the process still has open is rolled back, and every later use of
        the store's proxies (reads, changes, locks) raises :exc:`persist.ClosedError`. Closing
        twice is harmless; every store still open is closed when the interpreter exits.
        """
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
        """A block under the store's exclusive lock that is rolled back if it raises.

        ``with store.transaction(): ...`` takes lockExcl for the calling thread (waiting as long
        as it takes) and gives the store as its ``as`` target. If the block raises, every
        change made in it is rolled back and the exception goes on; otherwise its changes are
        committed at the block's end. Inside another transaction or lockExcl section of the
        thread it is a savepoint: raising undoes only the inner block. A KeyboardInterrupt
        cannot leave the lock held: when control leaves the block, its changes are committed
        or rolled back and the lock is released. If the process dies inside it, its changes
        are rolled back.

        :returns: a context manager for one ``with`` block (call ``transaction()`` for each).
        :raises RuntimeError: the thread holds only lockShared.
        :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
        """
        return self._core.transaction(self)

    def flush(self) -> None:
        """Writes what is committed to the disk (``msync``) before it returns.

        Needed only without ``durable=True``, at the points that must survive an OS crash or
        a power cut; a killed process loses nothing committed either way.

        :raises OSError: the system call failed (with its errno and the file name).
        """
        self._core.flush()

    def change_token(self, *containers: Dict | List | Set | Cache) -> tuple[int, ...]:
        """A token for the present state of ``containers``, for :meth:`wait`.

        Take it before reading what a wait is about, then wait with ``since=token``: a change
        made after the token was taken, in any process, ends the wait at once, so none is lost
        between the read and the wait. The token is a tuple of the containers' versions (every
        committed change moves a container's version); compare tokens only for equality.

        :param containers: one or more stored ``persist.Dict``, ``List``, ``Set`` or ``Cache``
            objects of this store.
        :raises TypeError: no container, or an object of another kind.
        :raises ValueError: a container of another store, or a Cache not stored yet.
        :raises persist.ClosedError: the store is closed.
        """
        return tuple(self._core._versions(list(containers)))

    def wait(
        self,
        *containers: Dict | List | Set | Cache,
        since: tuple[int, ...] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, ...] | None:
        """Sleeps until one of ``containers`` has changed since ``since``, in any process.

        ``since`` is what :meth:`change_token` gave for the same containers; if one of them has
        changed since, it returns at once. ``since=None`` waits for the next change from now
        (a change made between an earlier read and this call is then missed: pass a token to
        rule that out). The thread sleeps on a futex with the GIL released; every committed
        change of a container wakes it (a change inside a lockExcl section or transaction is
        seen once the section ends), and so may changes of other containers, after which it
        checks and sleeps again. It never polls.

        Every committed change moves the token, including a change that leaves the contents
        equal (setting a key to its value) and a read of a limited Cache that moves an entry
        in its recency order; an entry that expires moves nothing.

        :returns: the new token (a non-empty tuple, true), or ``None`` when ``timeout`` passed
            first (false, as :meth:`threading.Condition.wait` returns ``False``).
        :raises KeyboardInterrupt: Ctrl-C (a signal handler's exception) while it sleeps.
        :raises ValueError: ``since`` is not a token of the same number of containers, or a
            negative ``timeout``.
        :raises persist.ClosedError: the store is closed (or closes while it waits).
        """
        core = self._core
        cs = list(containers)
        if since is None:
            since = tuple(core._versions(cs))
        got = core._wait(cs, list(since), timeout)
        return None if got is None else tuple(got)

    async def wait_async(
        self,
        *containers: Dict | List | Set | Cache,
        since: tuple[int, ...] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, ...] | None:
        """Awaitable :meth:`wait`: ``await store.wait_async(d, since=token)``.

        The wait runs in a worker thread (as ``List.pop_async`` does), so the event loop never
        blocks; cancelling the awaiting task ends the wait and its thread at once.

        :returns: as :meth:`wait`: the new token, or ``None`` after ``timeout``.
        """
        core = self._core
        cs = list(containers)
        if since is None:
            since = tuple(core._versions(cs))
        return await _ops.store_wait_async(core, cs, since, timeout)

    def check(self, timeout: float | None = None) -> dict:
        """Checks the allocator and the whole graph, under the writer lock.

        What killed processes left in flight is recovered first and is not damage; blocks
        that nothing reaches (cycles, leftovers that :meth:`gc` would free) are counted, not
        errors.

        :param timeout: seconds to wait for the lock at most; ``None`` waits as long as it
            takes.
        :returns: a dict of counts: ``objects``, ``live_blocks``, ``live_bytes``,
            ``unreachable_blocks``, ``unreachable_bytes``, ``leaked_references`` (references
            that live containers still count from values nothing reaches: :meth:`gc` drops
            them), ``orphans`` (containers kept only by proxies) and ``held`` (containers that
            open proxies hold).
        :raises persist.CorruptionError: the store is damaged; the message says what and where.
        :raises persist.LockTimeout: the lock was not granted within ``timeout``.
        """
        return self._core.check(timeout)

    def gc(self, timeout: float | None = None) -> dict:
        """Frees what nothing reaches and no proxy holds, under the writer lock.

        That is unreachable cycles and what killed processes left behind. Nothing runs it by
        itself; other processes' changes wait while it runs. The file keeps its size and
        reuses the freed pages (``python -m persist compact`` makes a smaller copy).

        It takes the writer lock itself, so it is called outside a lockExcl section or
        ``transaction()``: inside one of the calling thread it raises ``RuntimeError`` and
        changes nothing (what the section removed is freed by its commit, and a rollback
        brings it back, so gc must not free it first). Another thread's or process's
        section makes it wait, as any writer does.

        :param timeout: seconds to wait for the lock at most; ``None`` waits as long as it
            takes.
        :returns: what it freed: ``{"objects": ..., "blocks": ..., "bytes": ...}``.
        :raises RuntimeError: the calling thread holds lockExcl (or lockShared).
        :raises persist.LockTimeout: the lock was not granted within ``timeout``.
        :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
        """
        return self._core.gc(timeout)

    def stats(self, timeout: float | None = None) -> dict:
        """Figures about the store, under the writer lock.

        :param timeout: seconds to wait for the lock at most; ``None`` waits as long as it
            takes.
        :returns: a dict: ``file_size`` (bytes), ``pages_used`` and ``pages_free`` (4 KiB
            pages), ``live_bytes`` and ``objects`` (a dict from type name to count) for what is
            reachable from the root or held by a proxy, and ``processes`` (attached now).
        :raises persist.LockTimeout: the lock was not granted within ``timeout``.
        """
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
    it returns, even through a power cut (each undo record reaches the disk before the write it
    covers; the docs' "Crash safety and durability"). Slower: several msyncs per change.

    ``readonly=True``: the store file is opened and mapped read-only and never written (an
    existing store only: nothing is created). Reads work and see other processes' changes;
    every change, ``lockExcl``, ``lockShared`` and ``gc`` raise ``ReadOnlyError``. The lock
    file beside the store must exist and be writable (it is where every process takes part;
    README: read-only users).

    :raises persist.FormatError: the file is not a store, or one of another format version
        (the file is left as it was).
    :raises FileNotFoundError: there is no store at ``path`` and ``create=False`` or
        ``readonly=True``.
    :raises PermissionError: the store or its lock file may not be used (see below).
    :raises persist.StoreFullError: the process has no address space left for another store.

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
    store = Store(StoreCore(p, durable=bool(durable), readonly=bool(readonly), create=bool(create)))
    _open_stores.add(store)
    return store


# Every open store is closed when the interpreter exits, so a lock held at exit is released
# (its lockExcl section rolled back) instead of outliving the process.
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


# A forked child becomes a participant of its own in every store it inherited.
os.register_at_fork(after_in_child=_after_fork_in_child)
os.register_at_fork(after_in_child=_ops._after_fork)


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
    the working directory; opened once per process and created if missing.

    Every call for one file (by its real path) gives the root of the same open store, until
    that store is closed; use :func:`open` for the options (``readonly``, ``durable``).

    :returns: the root :class:`persist.Dict`.
    :raises persist.FormatError: the file exists and is not a store.
    :raises OSError: the file cannot be opened or created (with the file name).
    """
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
    """For ``json.dumps(value, default=persist.json_default)``: a persist.Dict, persist.List
    or persist.Cache becomes its plain deep copy (``to_python()``), which json then encodes;
    anything else is refused with TypeError, as json's own default does.

    Stored tuples become JSON arrays and bytes are refused, as json treats the plain values;
    so is a persist.Set, as json refuses a set.
    """
    if isinstance(obj, (Dict, List, Cache)):
        return obj.to_python()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'persist' has no attribute {name!r}")
