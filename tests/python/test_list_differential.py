"""persist.List against list: the same random operations on both, step by step.

A hypothesis state machine keeps a plain list (the model) beside ``root['l']`` of a fresh
store, applies each operation to both, and compares what they return (type-exact, see
``same``) or the type of the exception they raise. After every step the whole contents must
agree: ``to_python()``, iteration, ``len``, ``repr``, ``bool``, ``==`` both ways, and the list
as read again from the root (so ``root['l'] += ...`` must keep it one object).

nan is left out of the values: ``[x] == [x]`` holds for a nan ``x`` only because list compares
identity first, which a store that hands out fresh floats cannot mimic (test_values.py checks
that nan round-trips).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import persist
from procs import attach_another_process

# --- values ---------------------------------------------------------------------------------

TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=6),
    st.sampled_from(["", "a", "\ud800", "\udfff", "\U0001f600", "\ud83d\ude00", "a\x00b"]),
)
INTS = st.one_of(
    st.integers(-3, 3),
    st.integers(),
    st.sampled_from([2**62, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**40, -(10**40)]),
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
# Values that collide often, so that index/count/remove/in find something: equal values of
# different types included (1, 1.0, True).
POOL = [0, 1, True, False, 1.0, 0.0, -0.0, "a", b"a", "", (), (1,), (1.0,), None, [], [1], {}]
ELEMENTS = st.one_of(st.sampled_from(POOL), VALUES)

INDEX = st.one_of(st.integers(-8, 8), st.sampled_from([2**63, -(2**63) - 1, 10**20, True]))
BAD_INDEX = st.sampled_from([1.0, "0", None, (0,)])
BOUND = st.one_of(st.none(), st.integers(-9, 9), st.sampled_from([10**20, -(10**20)]))
STEP = st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2, -3, 0, 10**20, -(10**20)]))
SLICES = st.builds(slice, BOUND, BOUND, STEP)


def to_plain(x: Any) -> Any:
    """A result of persist as plain Python: proxies by their to_python(), deep."""
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
    """Equal, with the same types all the way down (1, 1.0 and True differ; so do 0.0 and
    -0.0), dicts in the same order."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return repr(a) == repr(b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return bool(a == b)


SORT_KEYS: dict[str, Callable[[Any], Any] | None] = {
    "none": None,
    "repr": lambda v: repr(to_plain(v)),
    "type": lambda v: type(to_plain(v)).__name__,  # many ties: stability shows
    "neg_len": lambda v: -len(repr(to_plain(v))),
}


class ListMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="persist-list-")
        self.store = persist.open(os.path.join(self.dir, "s.db"))
        self.root = self.store.root
        self.root["l"] = []
        self.pl = self.root["l"]
        self.model: list[Any] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(vs=st.lists(ELEMENTS, min_size=2, max_size=10))
    def start_with(self, vs: list[Any]) -> None:
        # A list assigned whole (converted deep), so that most steps meet a non-empty list.
        self.root["l"] = vs
        self.pl = self.root["l"]
        self.model = self.fresh(vs)

    def both(
        self,
        on_model: Callable[[list[Any]], Any],
        on_persist: Callable[[Any], Any],
        compare: bool = True,
    ) -> bool:
        """Run one operation on both; compare results or exception types.
        Returns True if both raised."""
        try:
            expected, expected_err = on_model(self.model), None
        except Exception as e:
            expected, expected_err = None, e
        try:
            got, got_err = on_persist(self.pl), None
        except Exception as e:
            got, got_err = None, e
        if expected_err is not None or got_err is not None:
            assert type(got_err) is type(expected_err), (
                f"list raised {expected_err!r}, persist.List raised {got_err!r}"
            )
            return True
        if compare:
            plain = to_plain(got)
            assert same(expected, plain), f"list gave {expected!r}, persist.List gave {plain!r}"
        return False

    @staticmethod
    def fresh(v: Any) -> Any:
        return copy.deepcopy(v)

    # --- adding ---

    @rule(v=ELEMENTS)
    def append(self, v: Any) -> None:
        self.both(lambda m: m.append(self.fresh(v)), lambda p: p.append(v))

    @rule(vs=st.lists(ELEMENTS, max_size=5), kind=st.sampled_from(["list", "tuple", "iter"]))
    def extend(self, vs: list[Any], kind: str) -> None:
        def arg(items: list[Any]) -> Any:
            return {"list": list, "tuple": tuple, "iter": iter}[kind](items)

        self.both(lambda m: m.extend(arg(self.fresh(vs))), lambda p: p.extend(arg(vs)))

    @rule(s=TEXT)
    def extend_with_a_str(self, s: str) -> None:
        self.both(lambda m: m.extend(s), lambda p: p.extend(s))

    # Each one doubles the list: unbounded, a run of them made lists of a million items whose
    # invariant checks (to_python, repr) ran for minutes.
    @precondition(lambda self: len(self.model) <= 64)
    @rule()
    def extend_with_itself(self) -> None:
        self.both(lambda m: m.extend(m), lambda p: p.extend(p))

    @rule(bad=st.sampled_from([None, 3, 1.5]))
    def extend_with_a_non_iterable(self, bad: Any) -> None:
        self.both(lambda m: m.extend(bad), lambda p: p.extend(bad))

    @rule(i=INDEX, v=ELEMENTS)
    def insert(self, i: int, v: Any) -> None:
        self.both(lambda m: m.insert(i, self.fresh(v)), lambda p: p.insert(i, v))

    # --- removing ---

    @precondition(lambda self: len(self.model) < 2 or len(self.model) > 5)
    @rule()
    def pop_last(self) -> None:
        self.both(lambda m: m.pop(), lambda p: p.pop())

    @rule(i=INDEX)
    def pop_at(self, i: int) -> None:
        self.both(lambda m: m.pop(i), lambda p: p.pop(i))

    # The queue forms: popleft and pop(0) step the list's start word on instead of moving
    # items, and an insert at the front steps it back; block=True with a timeout of 0 is a
    # plain pop on a list with items, IndexError on an empty one.

    @rule(first=st.booleans())
    def popleft(self, first: bool) -> None:
        self.both(lambda m: m.pop(0), lambda p: p.popleft() if first else p.pop(0))

    @rule(v=ELEMENTS)
    def insert_front(self, v: Any) -> None:
        self.both(lambda m: m.insert(0, self.fresh(v)), lambda p: p.insert(0, v))

    @rule(i=st.sampled_from([0, -1, 1]), left=st.booleans())
    def pop_blocking_without_wait(self, i: int, left: bool) -> None:
        if left:
            self.both(lambda m: m.pop(0), lambda p: p.popleft(block=True, timeout=0))
        else:
            self.both(lambda m: m.pop(i), lambda p: p.pop(i, block=True, timeout=0))

    @rule(left=st.booleans(), dest_left=st.booleans(), into_self=st.booleans())
    def move_to(self, left: bool, dest_left: bool, into_self: bool) -> None:
        # Into a second list (its model is the root's "other" read back as a plain list),
        # or into the list itself (a rotation).
        if "other" not in self.root:
            self.root["other"] = []
        other = self.root["other"]
        before = to_plain(other[:])

        def on_model(m: list[Any]) -> Any:
            v = m.pop(0 if left else -1)
            dest = m if into_self else before
            if dest_left:
                dest.insert(0, v)
            else:
                dest.append(v)
            return v

        def on_persist(p: Any) -> Any:
            return p.move_to(p if into_self else other, left=left, dest_left=dest_left)

        if not self.both(on_model, on_persist) and not into_self:
            assert same(before, to_plain(other[:]))

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        v = self.draw_element(data)
        self.both(lambda m: m.remove(v), lambda p: p.remove(v))

    @precondition(lambda self: len(self.model) > 6)  # else most steps would meet []
    @rule()
    def clear(self) -> None:
        self.both(lambda m: m.clear(), lambda p: p.clear())

    # --- searching ---

    def draw_element(self, data: st.DataObject) -> Any:
        """Mostly a value in the list (or an equal one of another type), else any value."""
        if self.model and data.draw(st.booleans()):
            v = self.fresh(data.draw(st.sampled_from(self.model)))
            if type(v) is int:
                v = data.draw(st.sampled_from([v, float(v) if abs(v) < 2**53 else v]))
            return v
        return data.draw(ELEMENTS)

    @rule(data=st.data())
    def index(self, data: st.DataObject) -> None:
        v = self.draw_element(data)
        self.both(lambda m: m.index(v), lambda p: p.index(v))

    @rule(data=st.data(), start=BOUND, stop=BOUND)
    def index_in_range(self, data: st.DataObject, start: Any, stop: Any) -> None:
        v = self.draw_element(data)
        if start is None:
            start = 0
        if stop is None:
            self.both(lambda m: m.index(v, start), lambda p: p.index(v, start))
        else:
            self.both(lambda m: m.index(v, start, stop), lambda p: p.index(v, start, stop))

    @rule(data=st.data())
    def count_and_contains(self, data: st.DataObject) -> None:
        v = self.draw_element(data)
        self.both(lambda m: m.count(v), lambda p: p.count(v))
        self.both(lambda m: v in m, lambda p: v in p)
        self.both(lambda m: v not in m, lambda p: v not in p)

    # --- indexing and slicing ---

    @rule(i=st.one_of(INDEX, BAD_INDEX))
    def getitem(self, i: Any) -> None:
        self.both(lambda m: m[i], lambda p: p[i])

    @rule(i=st.one_of(INDEX, BAD_INDEX), v=ELEMENTS)
    def setitem(self, i: Any, v: Any) -> None:
        def on_model(m: list[Any]) -> None:
            m[i] = self.fresh(v)

        def on_persist(p: Any) -> None:
            p[i] = v

        self.both(on_model, on_persist)

    @rule(i=st.one_of(INDEX, BAD_INDEX))
    def delitem(self, i: Any) -> None:
        def on_model(m: list[Any]) -> None:
            del m[i]

        def on_persist(p: Any) -> None:
            del p[i]

        self.both(on_model, on_persist)

    @rule(s=SLICES)
    def getslice(self, s: slice) -> None:
        self.both(lambda m: m[s], lambda p: p[s])

    @rule(s=SLICES, data=st.data())
    def setslice(self, s: slice, data: st.DataObject) -> None:
        # Half the time exactly as many values as the slice has (the only size an extended
        # slice accepts); otherwise any number (ValueError for a wrong-size extended slice).
        try:
            wanted = len(range(*s.indices(len(self.model))))
        except ValueError:  # step 0
            wanted = 2
        size = wanted if data.draw(st.booleans()) else data.draw(st.integers(0, 6))
        vs = data.draw(st.lists(ELEMENTS, min_size=size, max_size=size))
        kind = data.draw(st.sampled_from(["list", "tuple", "iter", "str", "int"]))

        def arg(items: list[Any]) -> Any:
            if kind == "str":
                return "xyz"[:size]
            if kind == "int":
                return size  # not iterable: TypeError
            return {"list": list, "tuple": tuple, "iter": iter}[kind](items)

        def on_model(m: list[Any]) -> None:
            m[s] = arg(self.fresh(vs))

        def on_persist(p: Any) -> None:
            p[s] = arg(vs)

        self.both(on_model, on_persist)

    @precondition(lambda self: len(self.model) <= 64)  # it may double the list too
    @rule(s=SLICES)
    def setslice_from_itself(self, s: slice) -> None:
        def on_model(m: list[Any]) -> None:
            m[s] = m

        def on_persist(p: Any) -> None:
            p[s] = p

        self.both(on_model, on_persist)

    @rule(s=SLICES)
    def delslice(self, s: slice) -> None:
        def on_model(m: list[Any]) -> None:
            del m[s]

        def on_persist(p: Any) -> None:
            del p[s]

        self.both(on_model, on_persist)

    # --- reordering ---

    @rule()
    def reverse(self) -> None:
        self.both(lambda m: m.reverse(), lambda p: p.reverse())

    @rule(key=st.sampled_from(sorted(SORT_KEYS)), reverse=st.booleans())
    def sort(self, key: str, reverse: bool) -> None:
        fn = SORT_KEYS[key]
        before = [repr(x) for x in self.model]
        raised = self.both(
            lambda m: m.sort(key=fn, reverse=reverse), lambda p: p.sort(key=fn, reverse=reverse)
        )
        if raised:
            # Unorderable values: both raised TypeError. What a failed sort leaves behind is
            # unspecified (list: "partially modified"), but nothing may be lost or added.
            assert sorted(repr(x) for x in self.pl) == sorted(before)
            self.model = self.pl.to_python()

    @rule(reverse=st.booleans())
    def sort_numbers(self, reverse: bool) -> None:
        # Keep only the orderable numbers, then sort without a key.
        def keep(x: Any) -> bool:
            return type(x) in (int, float, bool)

        self.both(
            lambda m: m.__setitem__(slice(None), [x for x in m if keep(x)]),
            lambda p: p.__setitem__(slice(None), [x for x in p if keep(x)]),
        )
        self.both(lambda m: m.sort(reverse=reverse), lambda p: p.sort(reverse=reverse))

    # --- operators ---

    @rule(vs=st.lists(ELEMENTS, max_size=4), via_root=st.booleans())
    def iadd(self, vs: list[Any], via_root: bool) -> None:
        self.model += self.fresh(vs)
        if via_root:
            self.root["l"] += vs
        else:
            p = self.pl
            p += vs
            assert isinstance(p, persist.List)

    @rule(s=TEXT)
    def iadd_str(self, s: str) -> None:
        self.model += s
        p = self.pl
        p += s
        assert isinstance(p, persist.List)

    @rule(n=st.integers(-2, 3), via_root=st.booleans())
    def imul(self, n: int, via_root: bool) -> None:
        if len(self.model) * n > 40:
            n = 1
        self.model *= n
        if via_root:
            self.root["l"] *= n
        else:
            p = self.pl
            p *= n
            assert isinstance(p, persist.List)

    @rule(vs=st.lists(ELEMENTS, max_size=4))
    def add(self, vs: list[Any]) -> None:
        self.both(lambda m: m + self.fresh(vs), lambda p: p + vs)
        self.both(lambda m: m + m, lambda p: p + p)

    @rule(bad=st.sampled_from([(1,), "ab", 1, None]))
    def add_a_non_list(self, bad: Any) -> None:
        self.both(lambda m: m + bad, lambda p: p + bad)

    @rule(n=st.integers(-2, 3))
    def mul(self, n: int) -> None:
        self.both(lambda m: m * n, lambda p: p * n)
        self.both(lambda m: n * m, lambda p: n * p)

    @rule(bad=st.sampled_from([1.0, "2", None]))
    def mul_by_a_non_int(self, bad: Any) -> None:
        self.both(lambda m: m * bad, lambda p: p * bad)

    @rule(data=st.data())
    def compare_with_a_plain_list(self, data: st.DataObject) -> None:
        # Either a near copy of the contents (a prefix, maybe with a different last element)
        # or any list.
        if data.draw(st.booleans()):
            other = self.fresh(self.model[: data.draw(st.integers(0, len(self.model)))])
            if data.draw(st.booleans()):
                other.append(data.draw(ELEMENTS))
        else:
            other = data.draw(st.lists(ELEMENTS, max_size=4))
        for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
            self.both(lambda m, op=op: _cmp(m, other, op), lambda p, op=op: _cmp(p, other, op))
            self.both(lambda m, op=op: _cmp(other, m, op), lambda p, op=op: _cmp(other, p, op))

    @rule()
    def compare_with_itself(self) -> None:
        p = self.pl
        assert p == p and p <= p and p >= p
        assert not (p != p) and not (p < p) and not (p > p)
        assert p == self.root["l"]
        assert (p == tuple(self.model)) is False
        assert (p == self.root) is False

    # --- copies and views ---

    @rule()
    def copy_is_shallow_and_apart(self) -> None:
        self.both(lambda m: m.copy(), lambda p: p.copy())
        # Changing the copy leaves the list alone (the invariant compares it with the model).
        c = self.pl.copy()
        c.append("only in the copy")
        c[:0] = ["only in the copy"]

    @rule()
    def reversed_iteration(self) -> None:
        self.both(lambda m: list(reversed(m)), lambda p: list(reversed(p)))

    @rule(data=st.data())
    def change_a_nested_container(self, data: st.DataObject) -> None:
        positions = [i for i, x in enumerate(self.model) if type(x) in (list, dict)]
        if not positions:
            return
        i = data.draw(st.sampled_from(positions))
        v = data.draw(HASHABLE)
        if type(self.model[i]) is list:
            self.model[i].append(self.fresh(v))
            self.pl[i].append(v)
        else:
            self.model[i][v] = "nested"
            self.pl[i][v] = "nested"

    # --- after every step ---

    @invariant()
    def contents_agree(self) -> None:
        m, p = self.model, self.pl
        assert same(m, p.to_python()), (m, p.to_python())
        assert same(m, self.root["l"].to_python())
        assert same(m, [to_plain(x) for x in p])
        assert len(p) == len(m)
        assert bool(p) is bool(m)
        assert repr(p) == repr(m)
        assert str(p) == str(m)
        assert p == m and m == p
        assert not (p != m) and not (m != p)

    @precondition(lambda self: len(self.model) > 0)
    @invariant()
    def items_by_index(self) -> None:
        assert same(to_plain(self.pl[0]), self.model[0])
        assert same(to_plain(self.pl[-1]), self.model[-1])


def _cmp(a: Any, b: Any, op: str) -> Any:
    return {
        "__eq__": lambda: a == b,
        "__ne__": lambda: a != b,
        "__lt__": lambda: a < b,
        "__le__": lambda: a <= b,
        "__gt__": lambda: a > b,
        "__ge__": lambda: a >= b,
    }[op]()


TestListAgainstList = ListMachine.TestCase
TestListAgainstList.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class ListOnPartsMachine(ListMachine):
    """The same steps in a store another process has attached to: every single change of the
    list runs on its part lock (or publishes) instead of the store-wide writer word."""

    def __init__(self) -> None:
        super().__init__()
        attach_another_process(os.path.join(self.dir, "s.db"))


TestListOnPartsAgainstList = ListOnPartsMachine.TestCase
TestListOnPartsAgainstList.settings = TestListAgainstList.settings
