"""The dump format: a store's live graph as JSON Lines, and the walk that produces it.

Problem: users who leave persist (or cross a format change) need their data in a form any
language can read, exactly, with no code run on the way back. Mechanism: every container
(dict, list, set, cache, user object) reachable from the root becomes one record, on one line,
naming the
containers it holds by number; scalars are written in place, tagged where JSON alone would
lose them. API: :func:`walk` (store -> records, under the caller's lockShared),
:func:`write_dump` / :func:`read_dump` (records <-> the file), and the ``dump`` command.

The format, version 4 (FORMAT.md §11 has the same text; version 3 lacked caches, version 2
sets as well, version 1 the everyday value types too; all are read):

* UTF-8 text, one JSON value per line (``\\n``-terminated; U+0085, U+2028 and U+2029 are
  written as ``\\u`` escapes, so no reader splits a record). Line 1 is the header
  ``{"format":"persist-dump","version":4,"persist":"0.1.0","store_format":10,"root":0}``;
  then one record per container; the last line is ``{"end":N}``, N the number of records (a
  dump without it was cut short and is refused).
* Records: ``{"id":I,"type":"dict","items":[[K,V],...]}``,
  ``{"id":I,"type":"list","items":[V,...]}``,
  ``{"id":I,"type":"set","members":[V,...]}`` (members in the order of their JSON text),
  ``{"id":I,"type":"cache","ttl":T,"max_entries":N,"max_bytes":N,"entries":[[K,V,E],...]}``
  (``ttl`` in seconds, a number, or null; the limits integers or null; the live entries at the
  dump, least recently used first, ``E`` the expiry time in nanoseconds since the Unix epoch
  on CLOCK_REALTIME, or null for never),
  ``{"id":I,"type":"object","class":"module:qualname","attrs":[[K,V],...]}``. Ids are unique
  non-negative integers; the record whose id is the header's ``root`` is the root dict.
  ``dump`` numbers containers 0, 1, 2... in breadth-first order from the root, items in their
  stored order, and writes the records in that order; a reader must accept any order and
  references to records further down (cycles need them).
* Values: ``null``, ``true``, ``false``; a JSON number without fraction or exponent is an int
  (written so for |n| <= 2**53); a number with ``.`` or an exponent is a float (the shortest
  text that reads back to the same double, ``-0.0`` included); a string is a str. Everything
  else is an object with exactly one key:
  ``{"int":"-1f"}`` (any int, hexadecimal), ``{"float":"nan"|"inf"|"-inf"}``,
  ``{"float_bits":"7ff0000000000001"}`` (a NaN other than 0x7ff8000000000000, as its 64 bits in
  hex), ``{"bytes":"<base64>"}``, ``{"wtf8":"<base64>"}`` (a str with lone surrogates, as its
  UTF-8 bytes with surrogates encoded like other code points), ``{"tuple":[V,...]}``,
  ``{"frozenset":[V,...]}`` (members in the order of their JSON text),
  ``{"decimal":"-1.20E+5"}`` (``str``), ``{"uuid":"<36 characters>"}``,
  ``{"timedelta":[days,seconds,microseconds]}``, ``{"date":"2024-02-29"}``,
  ``{"datetime":"2024-02-29T12:30:45.000001+01:00"}`` and ``{"time":"12:30:45.000001"}``
  (``isoformat`` with microseconds; these two may add ``"fold":1`` and, for a timezone made
  with a name, ``"tzname":"CET"``), ``{"ref":I}`` (the container of record I). Dict keys use
  the same encoding (never ``ref``), and so do set members.
* Identity: two references to one container carry one id, so shared containers and cycles
  come back as such. Tuples, strs and other values have no identity in a store and none in a
  dump.
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import json
import math
import re
import struct
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any, NamedTuple

import persist
from persist._cli_common import CliError, Progress
from persist._pbase import _core

FORMAT = "persist-dump"
VERSION = 4
# Dump versions this persist reads: 3 has no caches, 2 no sets either, 1 no everyday value
# types either; else the same.
READS = (1, 2, 3, 4)

# Exactly representable in a double: what other JSON readers keep as an integer.
_SAFE_INT = 2**53
_CANONICAL_NAN = 0x7FF8000000000000
_PLAIN = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        str,
        bytes,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
        uuid.UUID,
    }
)
_HEX_INT = re.compile("-?[0-9a-f]+")


class Ref:
    """A reference to the container of record ``id`` (the value of a ``{"ref": id}``)."""

    __slots__ = ("id",)

    def __init__(self, ident: int) -> None:
        self.id = ident

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Ref", self.id))

    def __repr__(self) -> str:
        return f"Ref({self.id})"


class Record(NamedTuple):
    """One container: ``items`` holds values (``Ref`` for containers) for a list, members for a
    set, (key, value) pairs for a dict or an object, and (key, value, expiry ns or None)
    triples for a cache; ``cls`` is an object's ``module:qualname``; ``opts`` a cache's
    options (``ttl``, ``max_entries``, ``max_bytes``)."""

    id: int
    type: str  # "dict", "list", "set", "cache" or "object"
    items: list[Any]
    cls: str | None = None
    opts: dict[str, Any] | None = None


# ---- store -> records -----------------------------------------------------------------------


def count_containers(store: persist.Store) -> int:
    """How many containers a walk will meet (for progress): the store's own count of dicts,
    lists, sets and objects that something reaches or holds. Call it before taking lockShared."""
    objects = store.stats()["objects"]
    return sum(objects.get(k, 0) for k in ("dict", "list", "set", "cache", "object"))


def walk(root: persist.Dict, progress: Progress | None = None) -> Iterator[Record]:
    """The records of every container reachable from ``root``, breadth first, root first (id
    0). Hold lockShared around the whole walk for a consistent snapshot."""
    ids: dict[tuple[int, int], int] = {root._ident: 0}
    pending: collections.deque[tuple[int, Any, str]] = collections.deque([(0, root, "dict")])

    def ref(target: Any, kind: str) -> Ref:
        key = target._ident
        n = ids.get(key)
        if n is None:
            n = len(ids)
            ids[key] = n
            pending.append((n, target, kind))
        return Ref(n)

    def value(v: Any) -> Any:
        t = type(v)
        if t in _PLAIN:
            return v
        if t is tuple:
            return tuple([value(x) for x in v])
        if t is frozenset:
            return v
        if t is persist.List:
            return ref(v, "list")
        if t is persist.Dict:
            return ref(v, "dict")
        if t is persist.Set:
            return ref(v, "set")
        if t is persist.Cache:
            return ref(v, "cache")
        if isinstance(v, persist.pbase):
            return ref(_core(v), "object")
        raise CliError(f"the store returned a value of unexpected type {t.__name__}")

    done = 0
    while pending:
        n, target, kind = pending.popleft()
        try:
            if kind in ("list", "set"):
                record = Record(n, kind, [value(v) for v in target._snapshot()[0]])
            elif kind == "cache":
                entries = [(value(k), value(v), e or None) for k, v, e in target._entries()]
                opts = {a: getattr(target, a) for a in ("ttl", "max_entries", "max_bytes")}
                record = Record(n, kind, entries, None, opts)
            else:
                keys, values, _ = target._snapshot()
                pairs = [(value(k), value(v)) for k, v in zip(keys, values, strict=True)]
                cls = target._class_name() if kind == "object" else None
                record = Record(n, kind, pairs, cls)
        except RecursionError:
            raise CliError(f"container {n} holds tuples nested too deeply for a dump") from None
        yield record
        done += 1
        if progress is not None:
            progress.update(done)


# ---- records <-> JSON -----------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def encode_value(v: Any) -> Any:
    """A value (scalars, tuples, ``Ref``) as the JSON value that stands for it."""
    t = type(v)
    if t is str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return {"wtf8": _b64(v.encode("utf-8", "surrogatepass"))}
        return v
    if t is int:
        if -_SAFE_INT <= v <= _SAFE_INT:
            return v
        return {"int": format(v, "x")}
    if v is None or t is bool:
        return v
    if t is float:
        if math.isfinite(v):
            return v
        if math.isinf(v):
            return {"float": "inf" if v > 0 else "-inf"}
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        if bits == _CANONICAL_NAN:
            return {"float": "nan"}
        return {"float_bits": format(bits, "016x")}
    if t is bytes:
        return {"bytes": _b64(v)}
    if t is tuple:
        return {"tuple": [encode_value(x) for x in v]}
    if t is frozenset:
        members = [encode_value(x) for x in v]
        members.sort(key=_encode)
        return {"frozenset": members}
    if t is decimal.Decimal:
        return {"decimal": str(v)}
    if t is uuid.UUID:
        return {"uuid": str(v)}
    if t is datetime.timedelta:
        return {"timedelta": [v.days, v.seconds, v.microseconds]}
    if t is datetime.date:
        return {"date": v.isoformat()}
    if t is datetime.datetime or t is datetime.time:
        out: dict[str, Any] = {t.__name__: v.isoformat(timespec="microseconds")}
        if v.fold:
            out["fold"] = 1
        if v.tzinfo is not None:
            args = v.tzinfo.__getinitargs__()  # type: ignore[attr-defined]
            if len(args) == 2:
                out["tzname"] = args[1]
        return out
    if t is Ref:
        return {"ref": v.id}
    raise CliError(f"cannot dump a value of type {t.__name__}")


def encode_record(r: Record) -> dict[str, Any]:
    if r.type == "list":
        return {"id": r.id, "type": "list", "items": [encode_value(v) for v in r.items]}
    if r.type == "set":
        # In the order of their JSON text, as frozenset members: equal sets dump alike.
        members = sorted((encode_value(v) for v in r.items), key=_encode)
        return {"id": r.id, "type": "set", "members": members}
    if r.type == "cache":
        assert r.opts is not None
        entries = [[encode_value(k), encode_value(v), e] for k, v, e in r.items]
        return {"id": r.id, "type": "cache", **r.opts, "entries": entries}
    pairs = [[encode_value(k), encode_value(v)] for k, v in r.items]
    if r.type == "dict":
        return {"id": r.id, "type": "dict", "items": pairs}
    return {"id": r.id, "type": "object", "class": r.cls, "attrs": pairs}


# Characters that some line splitters (Python's str.splitlines, for one) take for line ends.
# JSON allows them raw in strings; a dump escapes them so that every record is one line to any
# reader. They can only occur inside JSON strings, where the escape means the same.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


_BREAK_CHARS = re.compile("[\x85\u2028\u2029]")
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _dumps(x: Any) -> bytes:
    text = _encode(x)
    if _BREAK_CHARS.search(text):
        text = text.translate(_LINE_BREAKS)
    return (text + "\n").encode("utf-8")


def header() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "persist": persist.__version__,
        "store_format": persist.FORMAT_VERSION,
        "root": 0,
    }


def write_dump(records: Iterable[Record], out: IO[bytes]) -> int:
    """Writes a whole dump; returns the number of records."""
    out.write(_dumps(header()))
    n = 0
    for r in records:
        try:
            out.write(_dumps(encode_record(r)))
        except RecursionError:
            raise CliError(f"container {r.id} holds tuples nested too deeply for a dump") from None
        n += 1
    out.write(_dumps({"end": n}))
    return n


class DumpError(CliError):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def _unb64(s: Any) -> bytes:
    if type(s) is not str:
        raise ValueError("base64 text expected")
    return base64.b64decode(s.encode("ascii"), validate=True)


def _clock(x: dict[str, Any]) -> Any:
    """A datetime or time of the dump: ``isoformat`` text, then ``fold`` and ``tzname``."""
    ((tag, text),) = [(k, v) for k, v in x.items() if k in ("datetime", "time")]
    extra = x.keys() - {tag, "fold", "tzname"}
    if type(text) is not str or extra or x.get("fold", 1) != 1:
        raise ValueError(f"not a {tag} of the dump format: {json.dumps(x)[:80]}")
    cls = datetime.datetime if tag == "datetime" else datetime.time
    v = cls.fromisoformat(text)
    if "tzname" in x:
        name = x["tzname"]
        offset = v.utcoffset()
        if type(name) is not str or offset is None:
            raise ValueError(f"a tzname needs a str and an offset: {json.dumps(x)[:80]}")
        v = v.replace(tzinfo=datetime.timezone(offset, name))
    if "fold" in x:
        v = v.replace(fold=1)
    return v


def decode_value(x: Any, key: bool = False) -> Any:
    """The value a JSON value of a dump stands for (``Ref`` for a reference)."""
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is dict and ("datetime" in x or "time" in x):
        return _clock(x)
    if t is dict and len(x) == 1:
        ((tag, arg),) = x.items()
        if tag == "tuple" and type(arg) is list:
            return tuple([decode_value(y, key) for y in arg])
        if tag == "ref" and type(arg) is int and not key:
            return Ref(arg)
        if tag == "int" and type(arg) is str and _HEX_INT.fullmatch(arg):
            return int(arg, 16)
        if tag == "bytes":
            return _unb64(arg)
        if tag == "wtf8":
            return _unb64(arg).decode("utf-8", "surrogatepass")
        if tag == "float" and arg in ("nan", "inf", "-inf"):
            return float(arg)
        if tag == "float_bits" and type(arg) is str and len(arg) == 16:
            return struct.unpack("<d", struct.pack("<Q", int(arg, 16)))[0]
        if tag == "frozenset" and type(arg) is list:
            return frozenset([decode_value(y, True) for y in arg])
        if tag == "decimal" and type(arg) is str:
            try:
                return decimal.Decimal(arg)
            except decimal.InvalidOperation:
                raise ValueError(f"not a Decimal: {arg[:80]!r}") from None
        if tag == "uuid" and type(arg) is str:
            return uuid.UUID(arg)
        if tag == "date" and type(arg) is str:
            return datetime.date.fromisoformat(arg)
        if (
            tag == "timedelta"
            and type(arg) is list
            and len(arg) == 3
            and all(type(n) is int for n in arg)
        ):
            return datetime.timedelta(*arg)
    if key and t is dict and x.keys() == {"ref"}:
        raise ValueError("a dict key cannot be a reference to a container")
    raise ValueError(f"not a value of the dump format: {json.dumps(x)[:80]}")


def _pairs(x: Any) -> list[tuple[Any, Any]]:
    if type(x) is not list:
        raise ValueError("items must be a list of [key, value] pairs")
    out = []
    for p in x:
        if type(p) is not list or len(p) != 2:
            raise ValueError("items must be a list of [key, value] pairs")
        out.append((decode_value(p[0], key=True), decode_value(p[1])))
    return out


def _entries(x: Any) -> list[tuple[Any, Any, int | None]]:
    if type(x) is not list:
        raise ValueError("entries must be a list of [key, value, expiry] triples")
    out = []
    for p in x:
        if type(p) is not list or len(p) != 3:
            raise ValueError("entries must be a list of [key, value, expiry] triples")
        e = p[2]
        if e is not None and (type(e) is not int or not 0 < e < 2**62):
            raise ValueError("an entry's expiry must be null or a positive integer below 2**62")
        out.append((decode_value(p[0], key=True), decode_value(p[1]), e))
    return out


def _cache_opts(x: dict[str, Any]) -> dict[str, Any]:
    ttl = x["ttl"]
    if ttl is not None and (type(ttl) not in (int, float) or not ttl > 0):
        raise ValueError("a cache's ttl must be null or a positive number")
    for name in ("max_entries", "max_bytes"):
        n = x[name]
        if n is not None and (type(n) is not int or not 1 <= n < 2**63):
            raise ValueError(f"a cache's {name} must be null or a positive integer")
    return {"ttl": ttl, "max_entries": x["max_entries"], "max_bytes": x["max_bytes"]}


def decode_record(x: Any) -> Record:
    if type(x) is not dict or type(x.get("id")) is not int or x["id"] < 0:
        raise ValueError("a record needs a non-negative integer id")
    kind = x.get("type")
    if kind == "list" and x.keys() == {"id", "type", "items"} and type(x["items"]) is list:
        return Record(x["id"], kind, [decode_value(v) for v in x["items"]])
    if kind == "dict" and x.keys() == {"id", "type", "items"}:
        return Record(x["id"], kind, _pairs(x["items"]))
    if kind == "set" and x.keys() == {"id", "type", "members"} and type(x["members"]) is list:
        return Record(x["id"], kind, [decode_value(v, key=True) for v in x["members"]])
    if kind == "cache" and x.keys() == {
        "id",
        "type",
        "ttl",
        "max_entries",
        "max_bytes",
        "entries",
    }:
        return Record(x["id"], kind, _entries(x["entries"]), None, _cache_opts(x))
    if kind == "object" and x.keys() == {"id", "type", "class", "attrs"}:
        cls = x["class"]
        if type(cls) is not str or ":" not in cls:
            raise ValueError("an object's class must be a 'module:qualname' string")
        return Record(x["id"], kind, _pairs(x["attrs"]), cls)
    raise ValueError("not a record of the dump format (type dict, list, set, cache or object)")


def read_dump(
    stream: IO[bytes], name: str, progress: Progress | None = None, size: int | None = None
) -> tuple[int, list[Record]]:
    """Reads a whole dump: (the root's id, the records). Raises DumpError naming the line."""
    lineno = 0
    read = 0

    def load(line: bytes) -> Any:
        try:
            return _decode(line.decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise DumpError(f"{name}, line {lineno}: not valid JSON ({e})") from None

    first = stream.readline()
    lineno = 1
    if not first:
        raise DumpError(f"{name} is empty, not a persist dump")
    try:
        h = json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):
        h = None
    if type(h) is not dict or h.get("format") != FORMAT:
        raise DumpError(f"{name} is not a persist dump (its first line is not a dump header)")
    if h.get("version") not in READS:
        raise DumpError(
            f"{name} is a persist dump of version {h.get('version')!r}; this persist reads "
            f"versions {', '.join(map(str, READS))}"
        )
    root = h.get("root")
    if type(root) is not int:
        raise DumpError(f"{name}, line 1: the header has no root id")
    read += len(first)
    records: list[Record] = []
    end: int | None = None
    for line in stream:
        lineno += 1
        read += len(line)
        if end is not None:
            if line.strip():
                raise DumpError(f"{name}, line {lineno}: text after the end line")
            continue
        x = load(line)
        if type(x) is dict and "end" in x:
            end = x["end"]
            if x.keys() != {"end"} or end != len(records):
                raise DumpError(
                    f"{name}, line {lineno}: the end line counts {end!r} records, "
                    f"the dump has {len(records)}"
                )
            continue
        try:
            records.append(decode_record(x))
        except (ValueError, OverflowError, RecursionError) as e:
            raise DumpError(f"{name}, line {lineno}: {e}") from None
        if progress is not None:
            progress.update(read, size)
    if end is None:
        raise DumpError(
            f"{name} is cut short: no end line after line {lineno} (the dump was not finished)"
        )
    return root, records
