"""The List, Dict and Set methods that run Python code (comparisons, sort keys, repr, views,
set algebra).

They work on snapshots taken by the native layer and change the store only through its
check-then-act primitives (``_permute_if``, ``_delete_if``, ``_change_if``): no lock is ever
held while Python code runs, and an operation that raced with a change is retried.
"""

from __future__ import annotations

import threading
from collections.abc import ItemsView as _ItemsView
from collections.abc import KeysView as _KeysView
from collections.abc import ValuesView as _ValuesView
from typing import TYPE_CHECKING, Any

from persist._persist import Cache, Dict, List, Set, _CancelFlag

if TYPE_CHECKING:
    import concurrent.futures

# asyncio and concurrent.futures are imported where the asyncio forms run, not here: asyncio
# alone would triple the time `import persist` takes.

_repr_state = threading.local()

_OPS = {
    0: lambda a, b: a < b,
    1: lambda a, b: a <= b,
    2: lambda a, b: a == b,
    3: lambda a, b: a != b,
    4: lambda a, b: a > b,
    5: lambda a, b: a >= b,
}


def _plain(x: Any) -> Any:
    """A shallow plain view of a proxy (lists and dicts compare by contents)."""
    if isinstance(x, List):
        return x._snapshot()[0]
    if isinstance(x, (Dict, Cache)):
        k, v, _ = x._snapshot()
        return dict(zip(k, v, strict=True))
    if isinstance(x, Set):
        return set(x._snapshot()[0])
    return x


# ---- List -----------------------------------------------------------------------------------


def list_contains(lst: List, v: Any) -> bool:
    return any(x is v or x == v for x in lst._snapshot()[0])


def list_index(lst: List, args: tuple) -> int:
    if not 1 <= len(args) <= 3:
        raise TypeError(f"index expected at least 1 argument, got {len(args)}")
    items = lst._snapshot()[0]
    return items.index(*args)


def list_count(lst: List, v: Any) -> int:
    return lst._snapshot()[0].count(v)


def list_remove(lst: List, v: Any) -> None:
    while True:
        items, version = lst._snapshot()
        at = next((i for i, x in enumerate(items) if x is v or x == v), None)
        if at is None:
            raise ValueError("list.remove(x): x not in list")
        if lst._delete_if(version, at):
            return


def list_sort(lst: List, key: Any, reverse: bool) -> None:
    # Sorts a snapshot (key functions and comparisons run with no lock held), then reorders
    # the stored list in one change if nothing changed it meanwhile. A list changed by the
    # sort's own key or comparisons raises ValueError, as list.sort does; a change by another
    # process or thread only makes the sort start again.
    for _ in range(_SORT_ATTEMPTS):
        items, version = lst._snapshot()
        keys = items if key is None else [key(x) for x in items]
        # sorted() with reverse=True keeps equal items in their original order, as list.sort.
        order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
        if lst._permute_if(version, order):
            return
    raise ValueError("list modified during sort")


_SORT_ATTEMPTS = 3


def list_repr(lst: List) -> str:
    active = _repr_state.__dict__.setdefault("active", set())
    ident = lst._ident
    if ident in active:
        return "[...]"
    active.add(ident)
    try:
        return "[" + ", ".join(repr(x) for x in lst._snapshot()[0]) + "]"
    finally:
        active.discard(ident)


# Comparing a container with itself: the answer of a container that is equal to itself, found
# without reading it. Python compares items by identity first, but two proxies of one stored
# container are two Python objects; without this, a container that holds itself would be
# compared item by item without end.
_SELF = {0: False, 1: True, 2: True, 3: False, 4: False, 5: True}


def list_richcmp(lst: List, other: Any, op: int) -> Any:
    if not isinstance(other, (list, List)):
        return NotImplemented
    if isinstance(other, List) and other._ident == lst._ident:
        return _SELF[op]
    return _OPS[op](lst._snapshot()[0], _plain(other))


def list_add(lst: List, other: Any) -> Any:
    if not isinstance(other, (list, List)):
        return NotImplemented
    return lst._snapshot()[0] + _plain(other)


def list_radd(lst: List, other: Any) -> Any:
    if not isinstance(other, list):
        return NotImplemented
    return other + lst._snapshot()[0]


def list_mul(lst: List, n: Any) -> Any:
    try:
        n = n.__index__()
    except AttributeError:
        return NotImplemented
    return lst._snapshot()[0] * n


def list_imul(lst: List, n: Any) -> None:
    try:
        n = n.__index__()
    except AttributeError:
        raise TypeError(
            f"can't multiply sequence by non-int of type '{type(n).__name__}'"
        ) from None
    if n <= 0:
        lst.clear()
        return
    items = lst._snapshot()[0]
    if n > 1:
        lst.extend(items * (n - 1))


# ---- Dict -----------------------------------------------------------------------------------


class DictIter:
    """Iterates a Dict's keys (want 0), values (1) or items (2) in insertion order; raises
    RuntimeError if the dict's size changes meanwhile (in any process), as dict's does."""

    __slots__ = ("_d", "_pos", "_len", "_want")

    def __init__(self, d: Dict, want: int = 0) -> None:
        self._d = d
        self._pos = 0
        self._len = len(d)
        self._want = want

    def __iter__(self) -> DictIter:
        return self

    def __next__(self) -> Any:
        if self._pos < 0:
            raise StopIteration
        r = self._d._next(self._pos, self._want)
        if r is None:
            if len(self._d) != self._len:
                self._pos = -1
                raise RuntimeError("dictionary changed size during iteration")
            self._pos = -1
            raise StopIteration
        pos, obj, n = r
        if n != self._len:
            self._pos = -1
            raise RuntimeError("dictionary changed size during iteration")
        self._pos = pos
        return obj

    def __length_hint__(self) -> int:
        return 0 if self._pos < 0 else len(self._d)


def dict_reversed(d: Dict) -> Any:
    return reversed(d._snapshot()[0])


class KeysView(_KeysView):
    __slots__ = ()

    def __iter__(self) -> Any:
        return DictIter(self._mapping, 0)

    def __reversed__(self) -> Any:
        return reversed(self._mapping._snapshot()[0])

    def __repr__(self) -> str:
        return f"persist.Dict_keys({list(self)!r})"


class ValuesView(_ValuesView):
    __slots__ = ()

    def __iter__(self) -> Any:
        return DictIter(self._mapping, 1)

    def __reversed__(self) -> Any:
        return reversed(self._mapping._snapshot()[1])

    def __repr__(self) -> str:
        return f"persist.Dict_values({list(self)!r})"


class ItemsView(_ItemsView):
    __slots__ = ()

    def __iter__(self) -> Any:
        return DictIter(self._mapping, 2)

    def __reversed__(self) -> Any:
        k, v, _ = self._mapping._snapshot()
        return reversed(list(zip(k, v, strict=True)))

    def __repr__(self) -> str:
        return f"persist.Dict_items({list(self)!r})"


def _pairs(args: tuple, kwargs: dict | None) -> list:
    if len(args) > 1:
        raise TypeError(f"update expected at most 1 argument, got {len(args)}")
    pairs: list = []
    if args:
        src = args[0]
        if isinstance(src, (Dict, Cache)):
            k, v, _ = src._snapshot()
            pairs.extend(zip(k, v, strict=True))
        elif hasattr(src, "keys"):
            pairs.extend((k, src[k]) for k in src.keys())
        else:
            for i, item in enumerate(src):
                try:
                    k, v = item
                except (TypeError, ValueError):
                    try:
                        n = len(item)
                    except TypeError:
                        raise TypeError(
                            f"cannot convert dictionary update sequence element #{i} to a sequence"
                        ) from None
                    raise ValueError(
                        f"dictionary update sequence element #{i} has length {n}; 2 is required"
                    ) from None
                pairs.append((k, v))
    if kwargs:
        pairs.extend(kwargs.items())
    return pairs


def dict_update(d: Dict, args: tuple, kwargs: dict | None) -> None:
    pairs = _pairs(args, kwargs)
    if pairs:
        d._update_pairs(pairs)


def dict_copy(d: Dict) -> dict:
    k, v, _ = d._snapshot()
    return dict(zip(k, v, strict=True))


def dict_repr(d: Dict) -> str:
    active = _repr_state.__dict__.setdefault("active", set())
    ident = d._ident
    if ident in active:
        return "{...}"
    active.add(ident)
    try:
        k, v, _ = d._snapshot()
        return "{" + ", ".join(f"{a!r}: {b!r}" for a, b in zip(k, v, strict=True)) + "}"
    finally:
        active.discard(ident)


def _unstored(x: Any) -> bool:
    """An unstored persist.Cache(...) description (it has no entries to compare)."""
    if not isinstance(x, Cache):
        return False
    try:
        _ = x._ident
    except TypeError:
        return True
    return False


def dict_richcmp(d: Dict, other: Any, op: int) -> Any:
    if op not in (2, 3) or not isinstance(other, (dict, Dict, Cache)):
        return NotImplemented
    if _unstored(d) or _unstored(other):
        return NotImplemented
    if isinstance(other, (Dict, Cache)) and other._ident == d._ident:
        return _SELF[op]
    return _OPS[op](dict_copy(d), _plain(other))


def dict_or(d: Dict, other: Any) -> Any:
    if not isinstance(other, (dict, Dict, Cache)):
        return NotImplemented
    r = dict_copy(d)
    r.update(_plain(other))
    return r


def dict_ror(d: Dict, other: Any) -> Any:
    if not isinstance(other, dict):
        return NotImplemented
    r = dict(other)
    r.update(dict_copy(d))
    return r


def dict_ior(d: Dict, other: Any) -> None:
    dict_update(d, (other,), None)


# ---- Cache ----------------------------------------------------------------------------------


def cache_iter(c: Cache, want: int = 0) -> Any:
    """Iterates a snapshot of a Cache's live keys (want 0), values (1) or items (2), least
    recently used first: entries that expire meanwhile do not make it raise."""
    k, v, _ = c._snapshot()
    if want == 0:
        return iter(k)
    if want == 1:
        return iter(v)
    return iter(list(zip(k, v, strict=True)))


class CacheKeysView(KeysView):
    __slots__ = ()

    def __iter__(self) -> Any:
        return cache_iter(self._mapping, 0)

    def __repr__(self) -> str:
        return f"persist.Cache_keys({list(self)!r})"


class CacheValuesView(ValuesView):
    __slots__ = ()

    def __iter__(self) -> Any:
        return cache_iter(self._mapping, 1)

    def __repr__(self) -> str:
        return f"persist.Cache_values({list(self)!r})"


class CacheItemsView(ItemsView):
    __slots__ = ()

    def __iter__(self) -> Any:
        return cache_iter(self._mapping, 2)

    def __repr__(self) -> str:
        return f"persist.Cache_items({list(self)!r})"


def cache_repr(c: Cache) -> str:
    """A stored cache shows its live entries as a dict does; an unstored description shows
    its options."""
    if _unstored(c):
        opts = ", ".join(
            f"{name}={getattr(c, name)!r}"
            for name in ("ttl", "max_entries", "max_bytes")
            if getattr(c, name) is not None
        )
        return f"persist.Cache({opts})"
    return dict_repr(c)


# ---- Set ------------------------------------------------------------------------------------


class SetIter:
    """Iterates a Set's members in table order; raises RuntimeError if the set's size changes
    meanwhile (in any process), and again at every later step, as set's does."""

    __slots__ = ("_s", "_pos", "_len")

    def __init__(self, s: Set) -> None:
        self._s = s
        self._pos = 0
        self._len = len(s)

    def __iter__(self) -> SetIter:
        return self

    def __next__(self) -> Any:
        # _pos: -1 when done, -2 once the size changed (sticky).
        if self._pos == -2:
            raise RuntimeError("Set changed size during iteration")
        if self._pos < 0:
            raise StopIteration
        r = self._s._next(self._pos)
        if r is None:
            changed = len(self._s) != self._len
            self._pos = -2 if changed else -1
            return self.__next__()
        pos, obj, n = r
        if n != self._len:
            self._pos = -2
            return self.__next__()
        self._pos = pos
        return obj

    def __length_hint__(self) -> int:
        return 0 if self._pos < 0 else len(self._s)


_SETS = (set, frozenset, Set)


def _members(s: Set) -> set:
    return set(s._snapshot()[0])


def _iterable(x: Any) -> Any:
    """An argument of the named methods (any iterable): a Set as its members."""
    return _members(x) if isinstance(x, Set) else x


def set_repr(s: Set) -> str:
    # Members are hashable values: a set never holds itself, so no recursion guard.
    items = s._snapshot()[0]
    if not items:
        return "set()"
    return "{" + ", ".join(repr(x) for x in items) + "}"


def set_copy(s: Set) -> set:
    return _members(s)


def set_richcmp(s: Set, other: Any, op: int) -> Any:
    if not isinstance(other, _SETS):
        return NotImplemented
    if isinstance(other, Set) and other._ident == s._ident:
        return _SELF[op]
    return _OPS[op](_members(s), _plain(other))


def set_or(s: Set, other: Any) -> Any:
    return _members(s) | _plain(other) if isinstance(other, _SETS) else NotImplemented


def set_ror(s: Set, other: Any) -> Any:
    # `other` on the left keeps its type, as frozenset | set gives a frozenset.
    return other | _members(s) if isinstance(other, (set, frozenset)) else NotImplemented


def set_and(s: Set, other: Any) -> Any:
    return _members(s) & _plain(other) if isinstance(other, _SETS) else NotImplemented


def set_rand(s: Set, other: Any) -> Any:
    return other & _members(s) if isinstance(other, (set, frozenset)) else NotImplemented


def set_sub(s: Set, other: Any) -> Any:
    return _members(s) - _plain(other) if isinstance(other, _SETS) else NotImplemented


def set_rsub(s: Set, other: Any) -> Any:
    return other - _members(s) if isinstance(other, (set, frozenset)) else NotImplemented


def set_xor(s: Set, other: Any) -> Any:
    return _members(s) ^ _plain(other) if isinstance(other, _SETS) else NotImplemented


def set_rxor(s: Set, other: Any) -> Any:
    return other ^ _members(s) if isinstance(other, (set, frozenset)) else NotImplemented


def _inplace(op: str, other: Any) -> None:
    if not isinstance(other, _SETS):
        raise TypeError(
            f"unsupported operand type(s) for {op}: 'persist.Set' and '{type(other).__name__}'"
        )


def set_ior(s: Set, other: Any) -> None:
    _inplace("|=", other)
    set_update(s, (other,))


def set_iand(s: Set, other: Any) -> None:
    _inplace("&=", other)
    set_intersection_update(s, (other,))


def set_isub(s: Set, other: Any) -> None:
    _inplace("-=", other)
    set_difference_update(s, (other,))


def set_ixor(s: Set, other: Any) -> None:
    _inplace("^=", other)
    set_symmetric_difference_update(s, other)


def set_union(s: Set, others: tuple) -> set:
    return _members(s).union(*map(_iterable, others))


def set_intersection(s: Set, others: tuple) -> set:
    return _members(s).intersection(*map(_iterable, others))


def set_difference(s: Set, others: tuple) -> set:
    return _members(s).difference(*map(_iterable, others))


def set_symmetric_difference(s: Set, other: Any) -> set:
    return _members(s).symmetric_difference(_iterable(other))


def set_issubset(s: Set, other: Any) -> bool:
    return _members(s).issubset(_iterable(other))


def set_issuperset(s: Set, other: Any) -> bool:
    return _members(s).issuperset(_iterable(other))


def set_isdisjoint(s: Set, other: Any) -> bool:
    return _members(s).isdisjoint(_iterable(other))


def set_update(s: Set, others: tuple) -> None:
    # The iterables are read first, with no lock held; the adds are one change.
    add: list = []
    for it in others:
        add.extend(_iterable(it))
    s._change_if(None, add, [])


def set_difference_update(s: Set, others: tuple) -> None:
    remove: list = []
    for it in others:
        remove.extend(_iterable(it))
    s._change_if(None, [], remove)


def _same(a: Any, b: Any) -> bool:
    """Whether two equal members are stored alike (1 and 1.0 are equal but not alike)."""
    return type(a) is type(b) and repr(a) == repr(b)


def _check_then_act(s: Set, plan: Any) -> None:
    """Changes ``s`` by ``plan(members) -> (add, remove)``, which depends on the members:
    check-then-act on the set's version, with no lock held while ``plan`` runs; after
    _CHANGE_ATTEMPTS changes by others in between, under lockExcl (so it ends)."""
    for _ in range(_CHANGE_ATTEMPTS):
        items, version = s._snapshot()
        add, remove = plan(items)
        if (not add and not remove) or s._change_if(version, add, remove):
            return
    with s.lockExcl():
        add, remove = plan(s._snapshot()[0])
        s._change_if(None, add, remove)


_CHANGE_ATTEMPTS = 3


def set_intersection_update(s: Set, others: tuple) -> None:
    # Iterables read once (lists keep their own member objects), sets as they are.
    args = [a if isinstance(a, (set, frozenset)) else list(a) for a in map(_iterable, others)]

    def plan(items: list) -> tuple[list, list]:
        # set's own intersection, which keeps the member of the smaller operand (so `s &= t`
        # may replace 1 by 1.0, as set's does).
        new = {x: x for x in set(items).intersection(*args)}
        remove = [x for x in items if x not in new or not _same(x, new[x])]
        return [new[x] for x in remove if x in new], remove

    _check_then_act(s, plan)


def set_symmetric_difference_update(s: Set, other: Any) -> None:
    flip = set(_iterable(other))

    def plan(items: list) -> tuple[list, list]:
        # Set operations, which reuse the members' hashes, as set's own method does.
        have = set(items)
        return list(flip - have), list(flip & have)

    _check_then_act(s, plan)


# ---- deep copies ----------------------------------------------------------------------------


def to_python(obj: Any) -> Any:
    """A plain deep copy; shared references and cycles are kept (as copy.deepcopy keeps them).
    Iterative: a 100,000-deep nesting does not overflow any stack."""
    from persist._pbase import pbase

    memo: dict = {}

    def shell(x: Any) -> tuple[Any, bool]:
        if isinstance(x, List):
            key = x._ident
            if key in memo:
                return memo[key], False
            memo[key] = out = []
            work.append((x, out))
            return out, True
        if isinstance(x, (Dict, Cache)):
            key = x._ident
            if key in memo:
                return memo[key], False
            memo[key] = out = {}
            work.append((x, out))
            return out, True
        if isinstance(x, Set):
            # Members are immutable values: the plain set is already deep.
            key = x._ident
            if key not in memo:
                memo[key] = set(x._snapshot()[0])
            return memo[key], False
        if isinstance(x, pbase):
            core = object.__getattribute__(x, "__dict__").get("_p_core")
            if core is None:
                return x, False
            return shell(core)[0], False
        if isinstance(x, tuple) and any(
            isinstance(i, (List, Dict, Set, Cache, pbase, tuple)) for i in x
        ):
            return tuple_shell(x), False
        return x, False

    def tuple_shell(t: tuple) -> tuple:
        # Nested tuples bottom-up with a stack of their own (a 5,000-deep tuple is valid).
        stack: list = [(iter(t), [])]
        while True:
            items, acc = stack[-1]
            for i in items:
                if isinstance(i, tuple):
                    stack.append((iter(i), []))
                    break
                acc.append(shell(i)[0])
            else:
                stack.pop()
                done = tuple(acc)
                if not stack:
                    return done
                stack[-1][1].append(done)

    work: list = []
    top, _ = shell(obj)
    while work:
        src, out = work.pop()
        if isinstance(src, List):
            out.extend(shell(x)[0] for x in src._snapshot()[0])
        else:
            k, v, _ = src._snapshot()
            for a, b in zip(k, v, strict=True):
                key = shell(a)[0]
                try:
                    out[key] = shell(b)[0]
                except TypeError:
                    # The store never makes a container (or a tuple holding one) a key: only a
                    # damaged or hostile file has one.
                    from persist._errors import CorruptionError

                    raise CorruptionError(
                        f"a stored dict has an unhashable key ({type(key).__name__})"
                    ) from None
    return top


# ---- asyncio: the awaitable forms of the blocking waits ------------------------------------

#: Worker threads that run the waits of ``pop_async``, ``popleft_async`` and ``move_to_async``
#: (and ``lockExcl_async``): more waits at once queue for a free thread.
ASYNC_WAITERS = 32

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _waiters() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    import concurrent.futures

    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=ASYNC_WAITERS, thread_name_prefix="persist-wait"
            )
        return _pool


def _after_fork() -> None:
    # The parent's worker threads do not exist in a child: it starts a pool of its own.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


def _put_back(lst: List, i: int, value: Any) -> None:
    # A value a cancelled wait took goes back where it came from (the front for popleft).
    if i == 0:
        lst.insert(0, value)
    else:
        lst.append(value)


def _settle(lst: List, i: int, moved: bool, f: concurrent.futures.Future[Any]) -> None:
    # The worker of a cancelled wait finished: what it took (if anything) goes back, in a
    # worker thread (this callback runs in the event loop, which must not wait for the store).
    if f.cancelled() or f.exception() is not None:
        return
    got = f.result()
    if got is not None and not moved:
        _waiters().submit(_put_back, lst, i, got[0])


async def list_take_async(
    lst: List,
    i: int,
    dest: List | None,
    dest_left: bool,
    block: bool,
    timeout: float | None,
) -> Any:
    """pop_async, popleft_async and move_to_async: the wait runs in a worker thread."""
    import asyncio

    flag = _CancelFlag()
    worker = _waiters().submit(lst._take_wait, i, dest, dest_left, block, timeout, flag)
    fut = asyncio.wrap_future(worker)
    try:
        got = await asyncio.shield(fut)
    except asyncio.CancelledError:
        # The worker is told to stop and woken; whatever it took meanwhile is put back (a
        # moved item stays in dest, the consumer's in-progress list).
        flag.set()
        lst._wake_waiters()
        worker.add_done_callback(lambda f: _settle(lst, i, dest is not None, f))
        raise
    if got is None:
        raise IndexError("move from empty list" if dest is not None else "pop from empty list")
    return got[0]


async def store_wait_async(
    core: Any, containers: list[Any], since: tuple[int, ...], timeout: float | None
) -> tuple[int, ...] | None:
    """Store.wait_async: the wait runs in a worker thread; a cancel stops and wakes it."""
    import asyncio

    flag = _CancelFlag()
    worker = _waiters().submit(core._wait, containers, list(since), timeout, flag)
    try:
        got = await asyncio.shield(asyncio.wrap_future(worker))
    except asyncio.CancelledError:
        flag.set()
        core._wake_waiters()
        raise
    return None if got is None else tuple(got)


def _give_back(core: Any, f: concurrent.futures.Future[Any]) -> None:
    # The worker of a cancelled lock wait took the lock after all: it is given back (by
    # whichever thread runs this, once the lock is handed to it).
    if f.cancelled() or f.exception() is not None:
        return
    taken, tid = f.result()
    if taken:
        core._adopt_lock(tid)
        core.unlock()


def _lock_in_worker(core: Any, excl: bool, timeout: float | None, flag: Any) -> Any:
    return core._lock_wait(excl, timeout, flag), threading.get_ident()


class AsyncLock:
    """What ``lockExcl_async()`` and ``lockShared_async()`` return: awaiting it takes the lock
    (a LockGuard); ``async with`` takes it and gives it back at the block's end."""

    def __init__(self, proxy: Any, excl: bool, timeout: float | None) -> None:
        self._proxy = proxy
        self._excl = excl
        self._timeout = timeout
        self._guard: Any = None

    def __await__(self) -> Any:
        return self._take().__await__()

    async def _take(self) -> Any:
        import asyncio

        p = self._proxy
        core = p._store
        if core.held() is not None:
            # Reentrant in the loop's thread, as lockExcl is in a thread (a wait in a worker
            # would wait for this very thread).
            return p.lockExcl() if self._excl else p.lockShared()
        flag = _CancelFlag()
        worker = _waiters().submit(_lock_in_worker, core, self._excl, self._timeout, flag)
        try:
            taken, tid = await asyncio.shield(asyncio.wrap_future(worker))
        except asyncio.CancelledError:
            flag.set()
            worker.add_done_callback(lambda f: _give_back(core, f))
            raise
        if not taken:  # only a cancel ends the wait without the lock
            raise asyncio.CancelledError
        return core._adopt_lock(tid)

    async def __aenter__(self) -> Any:
        self._guard = await self._take()
        return self._guard

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        guard, self._guard = self._guard, None
        return bool(guard.__exit__(exc_type, exc, tb))
