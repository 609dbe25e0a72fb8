"""persist.Set against set: the same random operations on both, step by step.

A hypothesis state machine keeps a plain set (the model) beside ``root['s']`` of a fresh store,
applies each operation to both, and compares results (type-exact: a member's type included,
so the member an equal one of another type meets is the one kept, as in set) or the type of
the exception raised. After every step the whole contents must agree: the members with their
types, ``len``, ``bool``, ``in`` for each member and an equal one of another type, ``==`` both
ways, and the set as read again from the root.

Members are the keys of test_dict_differential.py, drawn to collide across types (1, 1.0,
True and Decimal(1) are one member). A set has no order: iteration and ``repr`` are compared
as sorted member lists, and ``pop`` may return any member (it must be one of the model's).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import persist
from procs import attach_another_process
from test_dict_differential import KEYS, UNHASHABLE, variant

MEMBERS = st.sets(KEYS, max_size=6)
# How another operand is handed over: as a set, a frozenset, a list, a tuple, a dict's keys,
# an iterator, or a stored set (another persist.Set).
KINDS = ["set", "frozenset", "list", "tuple", "dict", "iter", "stored"]


def canon(x: Any) -> str:
    """``repr``, with frozenset members sorted (equal frozensets may iterate differently)."""
    if type(x) is frozenset:
        return f"frozenset({members(x)})"
    if type(x) is tuple:
        return f"({', '.join(map(canon, x))},)"
    return repr(x)


def members(x: Any) -> list[str]:
    """A set's members as sorted canonical reprs: equal members of other types differ."""
    return sorted(map(canon, x))


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types, members' types included."""
    if isinstance(b, persist.Set):
        return False  # the operations that return sets return plain ones
    if type(a) is not type(b):
        return False
    if type(a) in (set, frozenset):
        return members(a) == members(b)
    return bool(a == b)


class SetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="persist-set-")
        self.store = persist.open(os.path.join(self.dir, "s.db"))
        self.root = self.store.root
        self.root["s"] = set()
        self.ps = self.root["s"]
        self.model: set[Any] = set()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(items=st.sets(KEYS, min_size=3, max_size=10))
    def start_with(self, items: set[Any]) -> None:
        # A set assigned whole, so that most steps meet a non-empty set.
        self.root["s"] = items
        self.ps = self.root["s"]
        self.model = set(items)

    def both(self, on_model: Callable[[set[Any]], Any], on_persist: Callable[[Any], Any]) -> None:
        try:
            expected, expected_err = on_model(self.model), None
        except Exception as e:
            expected, expected_err = None, e
        try:
            got, got_err = on_persist(self.ps), None
        except Exception as e:
            got, got_err = None, e
        if expected_err is not None or got_err is not None:
            assert type(got_err) is type(expected_err), (
                f"set raised {expected_err!r}, persist.Set raised {got_err!r}"
            )
            return
        assert same(expected, got), f"set gave {expected!r}, persist.Set gave {got!r}"

    def member(self, data: st.DataObject) -> Any:
        """A member (as is, or an equal one of another type), or any hashable value."""
        if self.model and data.draw(st.booleans()):
            k = data.draw(st.sampled_from(sorted(self.model, key=repr)))
            return variant(k) if data.draw(st.booleans()) else k
        return data.draw(KEYS)

    def operand(self, values: set[Any], kind: str) -> tuple[Any, Any]:
        """``values`` as the model's operand and as persist's (the same kind of object)."""
        if kind == "set":
            return set(values), set(values)
        if kind == "frozenset":
            return frozenset(values), frozenset(values)
        if kind == "list":
            return list(values), list(values)
        if kind == "tuple":
            return tuple(values), tuple(values)
        if kind == "dict":
            return dict.fromkeys(values), dict.fromkeys(values)
        if kind == "iter":
            return iter(list(values)), iter(list(values))
        self.root["other"] = set(values)
        return set(values), self.root["other"]

    # --- single members ---

    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        k = self.member(data)
        self.both(lambda m: m.add(k), lambda p: p.add(k))

    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        k = self.member(data)
        self.both(lambda m: m.discard(k), lambda p: p.discard(k))

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        k = self.member(data)
        self.both(lambda m: m.remove(k), lambda p: p.remove(k))

    @rule(data=st.data())
    def contains(self, data: st.DataObject) -> None:
        k = self.member(data)
        self.both(lambda m: k in m, lambda p: k in p)
        self.both(lambda m: k not in m, lambda p: k not in p)

    @rule(data=st.data())
    def a_set_as_a_member(self, data: st.DataObject) -> None:
        # `in`, remove and discard take a set for the frozenset of its members, as set does.
        fs = data.draw(st.sampled_from([f for f in self.model if type(f) is frozenset] or [()]))
        s = set(fs)
        self.both(lambda m: s in m, lambda p: s in p)
        self.both(lambda m: m.discard(s), lambda p: p.discard(s))
        self.both(lambda m: m.remove(s), lambda p: p.remove(s))

    @rule()
    def pop(self) -> None:
        if not self.model:
            self.both(lambda m: m.pop(), lambda p: p.pop())
            return
        got = self.ps.pop()
        # Any member: it must be the model's one, of the same type.
        kept = [x for x in self.model if x == got]
        assert len(kept) == 1 and canon(kept[0]) == canon(got), (got, self.model)
        self.model.remove(got)

    @rule(key=UNHASHABLE)
    def unhashable_members(self, key: Any) -> None:
        self.both(lambda m: key in m, lambda p: key in p)
        self.both(lambda m: m.add(key), lambda p: p.add(key))
        self.both(lambda m: m.discard(key), lambda p: p.discard(key))
        self.both(lambda m: m.remove(key), lambda p: p.remove(key))
        # One change: a member that cannot be stored leaves the set as it was (set.update
        # would have added 1 before it met `key`), as persist.Dict.update does.
        self.both(lambda m: set(m).update([1, key]), lambda p: p.update([1, key]))

    # --- many members ---

    @rule(
        others=st.lists(st.tuples(MEMBERS, st.sampled_from(KINDS)), max_size=3),
        method=st.sampled_from(
            ["update", "intersection_update", "difference_update", "union", "intersection",
             "difference"]
        ),
    )  # fmt: skip
    def method_of_many(self, others: list[tuple[set[Any], str]], method: str) -> None:
        pairs = [self.operand(v, kind) for v, kind in others]
        self.both(
            lambda m: getattr(m, method)(*[a for a, _ in pairs]),
            lambda p: getattr(p, method)(*[b for _, b in pairs]),
        )

    @rule(
        other=MEMBERS,
        kind=st.sampled_from(KINDS),
        method=st.sampled_from(
            ["symmetric_difference_update", "symmetric_difference", "issubset", "issuperset",
             "isdisjoint"]
        ),
    )  # fmt: skip
    def method_of_one(self, other: set[Any], kind: str, method: str) -> None:
        a, b = self.operand(other, kind)
        self.both(lambda m: getattr(m, method)(a), lambda p: getattr(p, method)(b))

    @rule(method=st.sampled_from(["update", "intersection_update", "difference_update",
                                  "symmetric_difference_update", "union", "intersection",
                                  "difference", "symmetric_difference", "issubset",
                                  "issuperset", "isdisjoint"]))  # fmt: skip
    def method_with_itself(self, method: str) -> None:
        self.both(lambda m: getattr(m, method)(m), lambda p: getattr(p, method)(p))

    @rule(bad=st.sampled_from([42, None, [[1]], [{1}], [1, {2}]]))
    def method_with_a_bad_argument(self, bad: Any) -> None:
        # The updates on a copy of the model: set's may change part of the set before they meet
        # the bad member, persist.Set's change nothing (one change, as persist.Dict.update).
        self.both(lambda m: set(m).update(bad), lambda p: p.update(bad))
        self.both(lambda m: m.union(bad), lambda p: p.union(bad))
        self.both(lambda m: m.issubset(bad), lambda p: p.issubset(bad))
        # set's intersection_update builds the result first and may not meet the bad member at
        # all ({Decimal(1)} & [1, {2}] stops once it has found every member): on the model.
        self.both(lambda m: m.intersection_update(bad), lambda p: p.intersection_update(bad))
        # Members are hashed as they are (a set as a member raises).
        self.both(lambda m: set(m).difference_update(bad), lambda p: p.difference_update(bad))

    @rule(
        other=MEMBERS,
        kind=st.sampled_from(["set", "frozenset", "stored"]),
        op=st.sampled_from(["|", "&", "-", "^"]),
        reflected=st.booleans(),
    )
    def operator(self, other: set[Any], kind: str, op: str, reflected: bool) -> None:
        a, b = self.operand(other, kind)
        f = {
            "|": lambda x, y: x | y,
            "&": lambda x, y: x & y,
            "-": lambda x, y: x - y,
            "^": lambda x, y: x ^ y,
        }[op]
        if reflected:
            self.both(lambda m: f(a, m), lambda p: f(b, p))
        else:
            self.both(lambda m: f(m, a), lambda p: f(p, b))

    @rule(
        other=MEMBERS,
        kind=st.sampled_from(["set", "frozenset", "stored", "list"]),
        op=st.sampled_from(["|=", "&=", "-=", "^="]),
        via_root=st.booleans(),
    )
    def inplace_operator(self, other: set[Any], kind: str, op: str, via_root: bool) -> None:
        a, b = self.operand(other, kind)

        def apply(x: Any, y: Any) -> Any:
            if op == "|=":
                x |= y
            elif op == "&=":
                x &= y
            elif op == "-=":
                x -= y
            else:
                x ^= y
            return x

        def on_persist(p: Any) -> None:
            if via_root:
                apply_root(b)
            else:
                assert apply(p, b) is p

        def apply_root(y: Any) -> None:
            root = self.root
            if op == "|=":
                root["s"] |= y
            elif op == "&=":
                root["s"] &= y
            elif op == "-=":
                root["s"] -= y
            else:
                root["s"] ^= y

        def on_model(m: set[Any]) -> None:
            apply(m, a)

        self.both(on_model, on_persist)
        assert type(self.root["s"]) is persist.Set

    @rule(other=MEMBERS, kind=st.sampled_from(["set", "frozenset", "stored"]))
    def compare(self, other: set[Any], kind: str) -> None:
        for o in (other, set(self.model), set(self.model) | other, set(self.model) - other):
            a, b = self.operand(o, kind)
            for f in (
                lambda x, y: x == y,
                lambda x, y: x != y,
                lambda x, y: x < y,
                lambda x, y: x <= y,
                lambda x, y: x > y,
                lambda x, y: x >= y,
            ):
                self.both(lambda m, f=f, a=a: f(m, a), lambda p, f=f, b=b: f(p, b))
                self.both(lambda m, f=f, a=a: f(a, m), lambda p, f=f, b=b: f(b, p))

    @rule(bad=st.sampled_from([[1], (1,), {1: 2}, 1]))
    def compare_with_a_non_set(self, bad: Any) -> None:
        self.both(lambda m: m == bad, lambda p: p == bad)
        self.both(lambda m: m != bad, lambda p: p != bad)
        self.both(lambda m: m < bad, lambda p: p < bad)
        self.both(lambda m: m | bad, lambda p: p | bad)
        self.both(lambda m: bad - m, lambda p: bad - p)

    @precondition(lambda self: len(self.model) > 6)  # else most steps would meet set()
    @rule()
    def clear(self) -> None:
        self.both(lambda m: m.clear(), lambda p: p.clear())

    @rule(items=MEMBERS)
    def init_again(self, items: set[Any]) -> None:
        self.both(lambda m: m.__init__(list(items)), lambda p: p.__init__(list(items)))

    @rule()
    def copies(self) -> None:
        self.both(lambda m: m.copy(), lambda p: p.copy())
        self.both(copy.copy, copy.copy)
        self.both(copy.deepcopy, copy.deepcopy)
        self.both(lambda m: set(m), lambda p: p.to_python())

    # --- after every step ---

    @invariant()
    def contents_agree(self) -> None:
        m, p = self.model, self.ps
        assert members(m) == members(p)
        assert members(m) == members(self.root["s"])
        assert len(p) == len(m)
        assert bool(p) is bool(m)
        for k in m:
            assert k in p and variant(k) in p
        text = repr(p)
        assert text == "set()" if not m else (text[0], text[-1]) == ("{", "}")
        assert p == m and m == p
        assert not (p != m)


TestSetAgainstSet = SetMachine.TestCase
TestSetAgainstSet.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SetOnPartsMachine(SetMachine):
    """The same steps in a store another process has attached to: every single change of the
    set runs on its part lock (or publishes) instead of the store-wide writer word."""

    def __init__(self) -> None:
        super().__init__()
        attach_another_process(os.path.join(self.dir, "s.db"))


TestSetOnPartsAgainstSet = SetOnPartsMachine.TestCase
TestSetOnPartsAgainstSet.settings = TestSetAgainstSet.settings


def test_intersection_keeps_the_smaller_operands_member(store: Any) -> None:
    """A case this machine found: set's intersection keeps the member of the smaller operand
    (of ``other`` at equal sizes), so ``s &= {0}`` turns ``Decimal('-0')`` or ``False`` into
    ``0``, as set's does; the stored set kept its own member."""
    for start, other in (({Decimal("-0"), 1, 2}, {0}), ({False}, {0}), ({1, 2}, [1.0, 3])):
        store.root["s"] = start
        s = store.root["s"]
        model = set(start)
        model.intersection_update(other)
        s.intersection_update(other)
        assert members(s) == members(model)
        store.root["s"] = start
        s = store.root["s"]
        model = set(start)
        model &= set(other)
        s &= set(other)
        assert members(s) == members(model)
    store.check()
