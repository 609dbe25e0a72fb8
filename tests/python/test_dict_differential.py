"""persist.Dict against dict: the same random operations on both, step by step.

A hypothesis state machine keeps a plain dict (the model) beside ``root['d']`` of a fresh
store, applies each operation to both, and compares results (type-exact, keys included, in
order) or the type of the exception raised. After every step the whole contents must agree:
``to_python()``, ``items()`` in order with the key objects' types, ``keys()``, ``values()``,
``len``, ``repr``, ``bool``, ``==`` both ways, and the dict as read again from the root.

Keys are drawn to collide across types: 1, 1.0 and True are one key (the first one inserted
stays, as in dict); so are 0, 0.0, -0.0 and False, 2**53 and float(2**53), 2**64 and
float(2**64), (1,) and (1.0,); Decimal(1) and 1; Decimal('0.5') and 0.5 (not Decimal('0.1') and
0.1); two offsets of one instant; frozenset({1}) and frozenset({1.0}). nan is never a key or
value (see test_list_differential.py).
"""

from __future__ import annotations

import copy
import datetime
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import persist
from procs import attach_another_process

TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=6),
    st.sampled_from(["", "a", "\ud800", "\udfff", "\U0001f600", "\ud83d\ude00"]),
)
INTS = st.one_of(
    st.integers(-3, 3),
    st.integers(),
    st.sampled_from([2**62, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**40]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=False),
    st.sampled_from([0.0, -0.0, 1.0, float("inf"), float("-inf"), 2.0**63, 5e-324]),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT, st.binary(max_size=6))
HASHABLE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)
VALUES = st.recursive(
    HASHABLE,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(HASHABLE, inner, max_size=4)
    ),
    max_leaves=10,
)
KEY_POOL = [
    0, 1, True, False, 1.0, 0.0, -0.0, 2, 2.0,
    2**53, float(2**53), 2**53 + 1, 2**64, float(2**64), -(2**63), float(-(2**63)),
    "a", "b", "", "\ud800", b"a", b"", (), (1,), (1.0,), (True,), (1, "a"), (1.0, "a"), None,
    # The everyday value types: Decimals equal to ints and floats, one instant in two
    # offsets, a naive datetime beside them, frozensets equal across member types.
    Decimal(1), Decimal("1.00"), Decimal("0.5"), 0.5, Decimal("0.1"), 0.1, Decimal(2**64),
    Decimal("-0"), Decimal("Infinity"), float("inf"),
    datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.timezone.utc),
    datetime.datetime(2020, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
    datetime.datetime(2020, 1, 1, 12), datetime.date(2020, 1, 1), datetime.timedelta(1),
    uuid.UUID(int=1), frozenset(), frozenset({1}), frozenset({1.0}), frozenset({(1, "a"), 2}),
    (frozenset({2.0, (1.0, "a")}), Decimal(1)),
]  # fmt: skip
KEYS = st.one_of(st.sampled_from(KEY_POOL), HASHABLE)
UNHASHABLE = st.sampled_from([[1], {}, {"a": 1}])


# Counter operands: small and big ints across the 2**62 boundary of the inline word, bools,
# finite floats, Decimals (inf - inf would store a nan, which no dict compares equal).
NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.sampled_from([2**62 - 1, 2**62, -(2**62), -(2**62) - 1, 2**63, -(2**64), 10**30]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("0.5"), Decimal(3), Decimal("-1e30")]),
)
NUMBER_TYPES = (int, float, Decimal)  # bool is an int


def model_incr(m: dict[Any, Any], k: Any, by: Any, default: Any, sub: bool) -> Any:
    """What Dict.incr (``sub``: decr) is: ``m[k] = m.get(k, default) + by`` on numbers only."""
    if not isinstance(by, NUMBER_TYPES):
        raise TypeError(f"not a number: {by!r}")
    base = m[k] if k in m else default
    if not isinstance(base, NUMBER_TYPES):
        raise TypeError(f"not a number: {base!r}")
    new = base - by if sub else base + by
    m[k] = new
    return new


def to_plain(x: Any) -> Any:
    if isinstance(x, (persist.List, persist.Dict)):
        return x.to_python()
    if type(x) is list:
        return [to_plain(e) for e in x]
    if type(x) is tuple:
        return tuple(to_plain(e) for e in x)
    if type(x) is dict:
        return {k: to_plain(v) for k, v in x.items()}
    return x


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down, dicts in the same order."""
    if type(a) is not type(b):
        return False
    if type(a) in (float, Decimal, datetime.datetime, datetime.time):
        return repr(a) == repr(b)
    if type(a) is frozenset:
        return sorted(map(repr, a)) == sorted(map(repr, b))
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return bool(a == b)


def holds_frozenset(x: Any) -> bool:
    """Whether a frozenset is anywhere in x (keys included)."""
    if type(x) is frozenset:
        return True
    if type(x) in (list, tuple):
        return any(holds_frozenset(e) for e in x)
    if type(x) is dict:
        return any(holds_frozenset(k) or holds_frozenset(v) for k, v in x.items())
    return False


def variant(k: Any) -> Any:
    """An equal key of another type where there is one (1 -> 1.0, 1.0 -> 1, True -> 1)."""
    if type(k) is bool:
        return int(k)
    if type(k) is int and float(k) == k:
        return float(k)
    if type(k) is float and k.is_integer():
        return int(k)
    if type(k) is tuple:
        return tuple(variant(x) for x in k)
    return k


class DictMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="persist-dict-")
        self.store = persist.open(os.path.join(self.dir, "s.db"))
        self.root = self.store.root
        self.root["d"] = {}
        self.pd = self.root["d"]
        self.model: dict[Any, Any] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(items=st.dictionaries(KEYS, VALUES, min_size=3, max_size=10))
    def start_with(self, items: dict[Any, Any]) -> None:
        # A dict assigned whole (converted deep), so that most steps meet a non-empty dict.
        self.root["d"] = items
        self.pd = self.root["d"]
        self.model = self.fresh(items)

    def both(
        self, on_model: Callable[[dict[Any, Any]], Any], on_persist: Callable[[Any], Any]
    ) -> None:
        try:
            expected, expected_err = on_model(self.model), None
        except Exception as e:
            expected, expected_err = None, e
        try:
            got, got_err = on_persist(self.pd), None
        except Exception as e:
            got, got_err = None, e
        if expected_err is not None or got_err is not None:
            assert type(got_err) is type(expected_err), (
                f"dict raised {expected_err!r}, persist.Dict raised {got_err!r}"
            )
            return
        plain = to_plain(got)
        assert same(expected, plain), f"dict gave {expected!r}, persist.Dict gave {plain!r}"

    @staticmethod
    def fresh(v: Any) -> Any:
        return copy.deepcopy(v)

    def key(self, data: st.DataObject) -> Any:
        """A key in the dict (as is, or an equal key of another type), or any key."""
        if self.model and data.draw(st.booleans()):
            k = data.draw(st.sampled_from(list(self.model)))
            return variant(k) if data.draw(st.booleans()) else k
        return data.draw(KEYS)

    # --- single keys ---

    @rule(data=st.data(), v=VALUES)
    def setitem(self, data: st.DataObject, v: Any) -> None:
        k = self.key(data)

        def on_model(m: dict[Any, Any]) -> None:
            m[k] = self.fresh(v)

        def on_persist(p: Any) -> None:
            p[k] = v

        self.both(on_model, on_persist)

    @rule(data=st.data())
    def getitem(self, data: st.DataObject) -> None:
        k = self.key(data)
        self.both(lambda m: m[k], lambda p: p[k])

    @rule(data=st.data())
    def delitem(self, data: st.DataObject) -> None:
        k = self.key(data)

        def on_model(m: dict[Any, Any]) -> None:
            del m[k]

        def on_persist(p: Any) -> None:
            del p[k]

        self.both(on_model, on_persist)

    @rule(data=st.data(), v=VALUES)
    def delete_and_insert_again(self, data: st.DataObject, v: Any) -> None:
        # The key goes to the end; with an equal key of another type, that key is kept.
        if not self.model:
            return
        k = data.draw(st.sampled_from(list(self.model)))
        k2 = variant(k) if data.draw(st.booleans()) else k
        del self.model[k]
        del self.pd[k2]
        self.model[k2] = self.fresh(v)
        self.pd[k2] = v

    @rule(key=UNHASHABLE)
    def unhashable_keys(self, key: Any) -> None:
        def set_it(d: Any) -> None:
            d[key] = 1

        def del_it(d: Any) -> None:
            del d[key]

        self.both(lambda m: m[key], lambda p: p[key])
        self.both(set_it, set_it)
        self.both(del_it, del_it)
        self.both(lambda m: key in m, lambda p: key in p)
        self.both(lambda m: m.get(key), lambda p: p.get(key))
        self.both(lambda m: m.pop(key, None), lambda p: p.pop(key, None))

    @rule(data=st.data(), default=st.one_of(st.none(), VALUES))
    def get(self, data: st.DataObject, default: Any) -> None:
        k = self.key(data)
        self.both(lambda m: m.get(k), lambda p: p.get(k))
        self.both(lambda m: m.get(k, default), lambda p: p.get(k, default))

    @rule(data=st.data())
    def contains(self, data: st.DataObject) -> None:
        k = self.key(data)
        self.both(lambda m: k in m, lambda p: k in p)
        self.both(lambda m: k not in m, lambda p: k not in p)
        self.both(lambda m: k in m.keys(), lambda p: k in p.keys())
        self.both(lambda m: k in m, lambda p: p.has_key(k))

    @rule(data=st.data())
    def item_membership(self, data: st.DataObject) -> None:
        k = self.key(data)
        v = self.fresh(self.model[k]) if k in self.model else data.draw(VALUES)
        self.both(lambda m: (k, v) in m.items(), lambda p: (k, v) in p.items())
        self.both(lambda m: v in m.values(), lambda p: v in p.values())

    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        k = self.key(data)
        self.both(lambda m: m.pop(k), lambda p: p.pop(k))

    @rule(data=st.data(), default=VALUES)
    def pop_with_default(self, data: st.DataObject, default: Any) -> None:
        k = self.key(data)
        self.both(lambda m: m.pop(k, default), lambda p: p.pop(k, default))

    @rule()
    def popitem(self) -> None:
        self.both(lambda m: m.popitem(), lambda p: p.popitem())

    @rule(data=st.data(), v=VALUES, with_default=st.booleans())
    def setdefault(self, data: st.DataObject, v: Any, with_default: bool) -> None:
        k = self.key(data)
        if with_default:
            self.both(lambda m: m.setdefault(k, self.fresh(v)), lambda p: p.setdefault(k, v))
        else:
            self.both(lambda m: m.setdefault(k), lambda p: p.setdefault(k))

    # --- counters ---

    @rule(
        start=st.sampled_from([True, False, 2**62 - 1, 2**62, -(2**62), -(2**62) - 1, 0.5]),
        by=st.sampled_from([1, -1, 2, -2, True]),
        sub=st.booleans(),
    )
    def counter_at_an_edge(self, start: Any, by: Any, sub: bool) -> None:
        # A bool, or a counter that this step takes across the inline int range (or not).
        def on_model(m: dict[Any, Any]) -> Any:
            m["counter"] = start
            return model_incr(m, "counter", by, 0, sub)

        def on_persist(p: Any) -> Any:
            p["counter"] = start
            return p.decr("counter", by) if sub else p.incr("counter", by)

        self.both(on_model, on_persist)

    @rule(
        data=st.data(),
        by=st.one_of(NUMBERS, st.sampled_from(["x", None, (1,), b"1"])),
        default=st.one_of(NUMBERS, st.sampled_from(["", None])),
        op=st.sampled_from(["incr", "decr", "incr()", "decr()"]),
    )
    def incr(self, data: st.DataObject, by: Any, default: Any, op: str) -> None:
        # Mostly a key that holds a number (or the counters' key), so the sums are tried too.
        numeric = [k for k, v in self.model.items() if isinstance(v, NUMBER_TYPES)]
        if numeric and data.draw(st.booleans()):
            k = data.draw(st.sampled_from(numeric))
        elif data.draw(st.booleans()):
            k = "counter"
        else:
            k = self.key(data)
        sub = op.startswith("decr")
        defaults = op.endswith("()")  # by and default left out: 1 and 0

        def on_model(m: dict[Any, Any]) -> Any:
            return model_incr(m, k, 1 if defaults else by, 0 if defaults else default, sub)

        def on_persist(p: Any) -> Any:
            f = p.decr if sub else p.incr
            return f(k) if defaults else f(k, by, default)

        self.both(on_model, on_persist)

    # --- many keys ---

    @rule(
        other=st.dictionaries(KEYS, VALUES, max_size=5),
        kind=st.sampled_from(["dict", "pairs", "iter", "kwargs", "dict+kwargs", "none"]),
        kwargs=st.dictionaries(TEXT, VALUES, max_size=3),
    )
    def update(self, other: dict[Any, Any], kind: str, kwargs: dict[str, Any]) -> None:
        def call(d: Any, o: dict[Any, Any], kw: dict[str, Any]) -> Any:
            if kind == "dict":
                return d.update(o)
            if kind == "pairs":
                return d.update(list(o.items()))
            if kind == "iter":
                return d.update(iter(o.items()))
            if kind == "kwargs":
                return d.update(**kw)
            if kind == "dict+kwargs":
                return d.update(o, **kw)
            return d.update()

        self.both(
            lambda m: call(m, self.fresh(other), self.fresh(kwargs)),
            lambda p: call(p, other, kwargs),
        )

    @rule(bad=st.sampled_from([42, [(1, 2, 3)], [1], None]))
    def update_with_a_bad_argument(self, bad: Any) -> None:
        self.both(lambda m: m.update(bad), lambda p: p.update(bad))

    @rule()
    def update_with_itself(self) -> None:
        self.both(lambda m: m.update(m), lambda p: p.update(p))

    @rule(other=st.dictionaries(KEYS, VALUES, max_size=4))
    def union(self, other: dict[Any, Any]) -> None:
        self.both(lambda m: m | self.fresh(other), lambda p: p | other)

    @rule(bad=st.sampled_from([[("a", 1)], 1, None]))
    def union_with_a_non_dict(self, bad: Any) -> None:
        self.both(lambda m: m | bad, lambda p: p | bad)

    @rule(other=st.dictionaries(KEYS, VALUES, max_size=4), pairs=st.booleans())
    def inplace_union(self, other: dict[Any, Any], pairs: bool) -> None:
        m_arg = list(self.fresh(other).items()) if pairs else self.fresh(other)
        p_arg = list(other.items()) if pairs else other
        self.model |= m_arg
        p = self.pd
        p |= p_arg
        assert isinstance(p, persist.Dict)

    @rule(other=st.dictionaries(KEYS, VALUES, max_size=3))
    def inplace_union_via_root(self, other: dict[Any, Any]) -> None:
        self.model |= self.fresh(other)
        self.root["d"] |= other

    @precondition(lambda self: len(self.model) > 6)  # else most steps would meet {}
    @rule()
    def clear(self) -> None:
        self.both(lambda m: m.clear(), lambda p: p.clear())

    # --- comparisons, copies, views ---

    @rule(data=st.data())
    def compare(self, data: st.DataObject) -> None:
        # The same items in another order are equal; one value changed is not.
        items = list(self.fresh(self.model).items())
        other = dict(data.draw(st.permutations(items))) if items else {}
        if items and data.draw(st.booleans()):
            k = data.draw(st.sampled_from([k for k, _ in items]))
            other[k] = data.draw(VALUES)
        self.both(lambda m: m == other, lambda p: p == other)
        self.both(lambda m: other == m, lambda p: other == p)
        self.both(lambda m: m != other, lambda p: p != other)
        self.both(lambda m: m < other, lambda p: p < other)  # TypeError for both
        self.both(lambda m: m == list(m), lambda p: p == list(p))

    @rule()
    def compare_with_itself(self) -> None:
        p = self.pd
        assert p == p and not (p != p)
        assert p == self.root["d"]
        assert (p == self.root) is (self.model == self.root.to_python())

    @rule()
    def copy_is_shallow_and_apart(self) -> None:
        self.both(lambda m: m.copy(), lambda p: p.copy())
        c = self.pd.copy()
        c["only in the copy"] = 1
        c.clear()
        self.both(lambda m: dict(m), lambda p: dict(p))

    @rule()
    def views(self) -> None:
        self.both(lambda m: list(m.keys()), lambda p: list(p.keys()))
        self.both(lambda m: list(m.values()), lambda p: list(p.values()))
        self.both(lambda m: list(m.items()), lambda p: list(p.items()))
        self.both(lambda m: len(m.keys()), lambda p: len(p.keys()))
        self.both(lambda m: len(m.items()), lambda p: len(p.items()))
        self.both(lambda m: list(reversed(m)), lambda p: list(reversed(p)))
        self.both(lambda m: list(iter(m)), lambda p: list(iter(p)))

    @rule(data=st.data())
    def change_a_nested_container(self, data: st.DataObject) -> None:
        keys = [k for k, v in self.model.items() if type(v) in (list, dict)]
        if not keys:
            return
        k = data.draw(st.sampled_from(keys))
        v = data.draw(HASHABLE)
        if type(self.model[k]) is list:
            self.model[k].append(self.fresh(v))
            self.pd[k].append(v)
        else:
            self.model[k][v] = "nested"
            self.pd[k][v] = "nested"

    # --- after every step ---

    @invariant()
    def contents_agree(self) -> None:
        m, p = self.model, self.pd
        assert same(m, p.to_python()), (m, p.to_python())
        assert same(m, self.root["d"].to_python())
        assert same(list(m.items()), [(k, to_plain(v)) for k, v in p.items()])
        assert same(list(m), list(p))
        assert same(list(m.keys()), list(p.keys()))
        assert same(list(m.values()), [to_plain(v) for v in p.values()])
        assert len(p) == len(m)
        assert bool(p) is bool(m)
        if holds_frozenset(m):
            # A frozenset's repr lists its members in its own table's order, which depends on
            # the order they were added in: the same members, maybe in another order.
            assert sorted(repr(p)) == sorted(repr(m))
        else:
            assert repr(p) == repr(m)
        assert p == m and m == p
        assert not (p != m)


TestDictAgainstDict = DictMachine.TestCase
TestDictAgainstDict.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class DictOnPartsMachine(DictMachine):
    """The same steps in a store another process has attached to: every single change of the
    dict runs on its part lock (or publishes) instead of the store-wide writer word."""

    def __init__(self) -> None:
        super().__init__()
        attach_another_process(os.path.join(self.dir, "s.db"))


TestDictOnPartsAgainstDict = DictOnPartsMachine.TestCase
TestDictOnPartsAgainstDict.settings = TestDictAgainstDict.settings


def test_a_key_inserted_past_nbuckets_probes_is_found(store: Any) -> None:
    """A case this machine found: in a table of 8 buckets, the last key's probe sequence
    (its hash's high bits mixed in at every step) passes the buckets of the other four keys
    and more than 8 probes before it reaches a free one. Lookups used to stop after 8 probes:
    the key was missing from ``in`` and ``[]``, and setting it again added a second entry."""
    key = (None, -6852959447)
    items = {0: [], 1: None, (): None, ((None,),): None, key: []}
    store.root["d"] = items
    d = store.root["d"]
    assert key in d
    assert d[key] == []
    d[key] = "again"
    assert len(d) == 5
    assert list(d.keys()) == list(items)
    assert d.popitem() == (key, "again")
    assert key not in d
    store.check()
