"""Building a store's graph from dump records: ``load`` (from a dump file) and ``compact``
(straight from another store's walk).

Mechanism. A small graph is stored in one operation (plain Python containers, references
resolved to them, one ``root.update``: the converter keeps identity within one assignment).
A large one in many small operations, because one big operation keeps an undo entry for every
new block until its end, and the log's growth would leave the new file far larger than its
data (measured: 211 MiB for a 138 MiB store of 1.4 million objects, 120 MiB in batches):

1. every container but the root is made empty, a batch at a time, in a scratch list under a
   root key the dump does not use (each record's index in it is kept, not a proxy: a proxy
   held for every container would grow the process's held set, whose blocks stay in the new
   file);
2. each container is filled, a batch of items at a time, with its values; a reference becomes
   the proxy of its record, so storing it links the existing container (shared references and
   cycles come out as they went in);
3. (before step 2, see `build`) the root gets its pairs, in batches and in order; at the end
   the scratch key goes (records that the root does not reach go with it).

Nothing here imports or runs user code: a user object is made as an instance of a new subclass
of ``pbase`` whose ``__module__`` and ``__qualname__`` spell the stored class name, which is
all the store records about a class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import persist
from persist._cli_common import CliError
from persist._cli_dump import Record, Ref


def _class_maker() -> Callable[[str], type]:
    cache: dict[str, type] = {}

    def make(name: str) -> type:
        cls = cache.get(name)
        if cls is None:
            module, sep, qual = name.partition(":")
            if not sep:
                raise CliError(f"class name {name!r} is not 'module:qualname'")
            # The store takes an object's class name from __module__ and __qualname__ only.
            cls = type("Object", (persist.pbase,), {"__module__": module, "__qualname__": qual})
            cache[name] = cls
        return cls

    return make


_BATCH = 2000


def _batches(seq: Sequence[Any], n: int = _BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _scratch_key(taken: set[Any]) -> tuple[str, int]:
    n = 0
    while ("persist load scratch", n) in taken:
        n += 1
    return ("persist load scratch", n)


def _resolver(target: Callable[[int], Any]) -> Callable[[Any], Any]:
    """A record value with each reference replaced by ``target(id)`` (the container made for
    that record; KeyError when there is none)."""

    def resolve(v: Any) -> Any:
        t = type(v)
        if t is Ref:
            try:
                return target(v.id)
            except KeyError:
                raise CliError(
                    f"a reference names record {v.id}, which is not in the dump"
                ) from None
        if t is tuple:
            return tuple([resolve(x) for x in v])
        return v

    return resolve


# Up to this many records a graph is stored in one operation (`_build_at_once`); beyond, in
# batches (`_build_in_batches`), whose undo logs stay small.
_AT_ONCE = 20_000


def build(root_id: int, records: Sequence[Record], store: persist.Store) -> int:
    """Stores the graph of ``records`` under ``store``'s root; returns how many containers it
    holds. Records that the root does not reach are not kept."""
    # A cache is filled once stored (its entries keep their expiry times): the batched build
    # does that for every container.
    if len(records) <= _AT_ONCE and not any(r.type == "cache" for r in records):
        return _build_at_once(root_id, records, store)
    return _build_in_batches(root_id, records, store)


def _build_in_batches(root_id: int, records: Sequence[Record], store: persist.Store) -> int:
    root = store.root
    new_class = _class_maker()
    by_id: dict[int, Record] = {}
    for r in records:
        if r.id in by_id:
            raise CliError(f"two records have id {r.id}")
        by_id[r.id] = r
    root_record = by_id.get(root_id)
    if root_record is None:
        raise CliError(f"no record for the root (id {root_id})")
    if root_record.type != "dict":
        raise CliError(f"the root (record {root_id}) is a {root_record.type}, not a dict")

    def has_ref(v: Any) -> bool:
        t = type(v)
        return t is Ref or (t is tuple and any(has_ref(x) for x in v))

    def leaf(r: Record) -> bool:
        """A list or dict that refers to no container: made whole in step 1 (its blocks sized
        once, as the source's were), not filled later."""
        if r.type == "list":
            return not any(has_ref(v) for v in r.items)
        if r.type == "set":
            return True  # members are never containers
        if r.type == "cache":
            return False  # filled once stored
        return r.type == "dict" and not any(has_ref(k) or has_ref(v) for k, v in r.items)

    def empty(r: Record) -> Any:
        if r.type == "list":
            return list(r.items) if leaf(r) else []
        if r.type == "dict":
            return dict(r.items) if leaf(r) else {}
        if r.type == "set":
            return set(r.items)
        if r.type == "cache":
            assert r.opts is not None
            return persist.Cache(**r.opts)
        assert r.cls is not None
        return object.__new__(new_class(r.cls))

    # record id -> (batch, index): the scratch list holds one list per batch, so that no
    # items block grows by copying (each copy would leave a hole in the new file)
    at: dict[int, tuple[int, int]] = {}
    others = [r for r in records if r.id != root_id]
    try:
        root_keys = {k for k, _ in root_record.items}
    except TypeError:
        root_keys = set()
    scratch_key = _scratch_key(root_keys)
    root[scratch_key] = []
    scratch = root[scratch_key]
    for b, chunk in enumerate(_batches(others)):
        scratch.append([empty(r) for r in chunk])
        for i, r in enumerate(chunk):
            at[r.id] = (b, i)

    def container(ident: int) -> Any:
        b, i = at[ident]
        # Never called after `del scratch` below (which lets the scratch list go before its
        # key is deleted): ruff's F821 cannot see that.
        return scratch[b][i]  # noqa: F821

    def target(ident: int) -> Any:
        return root if ident == root_id else container(ident)

    resolve = _resolver(target)

    try:
        # The root's pairs before the other containers are filled: its table is the largest
        # block and grows by copying; the holes its growth leaves are then filled by what
        # comes after instead of staying behind a table placed at the end of the file.
        for chunk in _batches(root_record.items):
            root.update([(k, resolve(v)) for k, v in chunk])
        for r in others:
            if leaf(r):
                continue
            target = container(r.id)
            if r.type == "list":
                for chunk in _batches(r.items):
                    target.extend([resolve(v) for v in chunk])
            elif r.type == "dict":
                for chunk in _batches(r.items):
                    target.update([(k, resolve(v)) for k, v in chunk])
            elif r.type == "cache":
                for chunk in _batches(r.items):
                    target._load_entries([(k, resolve(v), e or 0) for k, v, e in chunk])
            else:
                for k, v in r.items:
                    setattr(target, k, resolve(v))
    except RecursionError:
        raise CliError("tuples nested too deeply to load") from None
    del scratch
    del root[scratch_key]
    return len(records)


def _build_at_once(root_id: int, records: Sequence[Record], store: persist.Store) -> int:
    """`build` in one operation: the tightest file for a small graph (its undo log, one
    entry per new block, stays small)."""
    root = store.root
    made: dict[int, Any] = {}
    new_class = _class_maker()
    for r in records:
        if r.id in made:
            raise CliError(f"two records have id {r.id}")
        if r.id == root_id:
            if r.type != "dict":
                raise CliError(f"the root (record {r.id}) is a {r.type}, not a dict")
            made[r.id] = root
        elif r.type == "list":
            made[r.id] = []
        elif r.type == "dict":
            made[r.id] = {}
        elif r.type == "set":
            # Members are never containers: the set is whole at once.
            made[r.id] = set(r.items)
        else:
            assert r.cls is not None
            made[r.id] = object.__new__(new_class(r.cls))
    if root_id not in made:
        raise CliError(f"no record for the root (id {root_id})")

    resolve = _resolver(made.__getitem__)

    root_pairs: list[tuple[Any, Any]] = []
    try:
        for r in records:
            target = made[r.id]
            if r.id == root_id:
                root_pairs = [(k, resolve(v)) for k, v in r.items]
            elif r.type == "list":
                target.extend([resolve(v) for v in r.items])
            elif r.type == "set":
                continue
            else:
                if r.type == "object":
                    target = object.__getattribute__(target, "__dict__")
                for k, v in r.items:
                    target[k] = resolve(v)
    except RecursionError:
        raise CliError("tuples nested too deeply to load") from None
    root.update(root_pairs)
    return len(records)
