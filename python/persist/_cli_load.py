"""Building a store's graph from dump records: ``load`` (from a dump file) and ``compact``
(straight from another store's walk).

Mechanism: every record becomes a plain Python container first (a list, a dict, or an
unbound ``pbase`` instance of a class made on the spot), references are resolved to those
containers (the record of the root to the new store's root proxy), and then the whole graph
is stored with one ``root.update(pairs)``. The converter keeps the identity of plain
containers within one assignment, so shared references and cycles come out as they went in,
and the new store gets one compact, freshly allocated copy.

Nothing here imports or runs user code: a user object is re-created as an instance of a new
subclass of ``pbase`` whose ``__module__`` and ``__qualname__`` spell the stored class name,
which is all the store records about a class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def build(root_id: int, records: Sequence[Record], store: persist.Store) -> int:
    """Stores the graph of ``records`` under ``store``'s root, in one operation; returns how
    many containers it holds. Records that the root does not reach are not stored."""
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
        else:
            assert r.cls is not None
            made[r.id] = object.__new__(new_class(r.cls))
    if root_id not in made:
        raise CliError(f"no record for the root (id {root_id})")

    def resolve(v: Any) -> Any:
        t = type(v)
        if t is Ref:
            try:
                return made[v.id]
            except KeyError:
                raise CliError(
                    f"a reference names record {v.id}, which is not in the dump"
                ) from None
        if t is tuple:
            return tuple([resolve(x) for x in v])
        return v

    root_pairs: list[tuple[Any, Any]] = []
    try:
        for r in records:
            target = made[r.id]
            if r.id == root_id:
                root_pairs = [(k, resolve(v)) for k, v in r.items]
            elif r.type == "list":
                target.extend([resolve(v) for v in r.items])
            else:
                if r.type == "object":
                    target = object.__getattribute__(target, "__dict__")
                for k, v in r.items:
                    target[k] = resolve(v)
    except RecursionError:
        raise CliError("tuples nested too deeply to load") from None
    root.update(root_pairs)
    return len(records)
