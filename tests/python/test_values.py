"""Values: exact round trips through a second process, and what the store refuses.

A value is written in this process and read back in a fresh interpreter; both sides describe it
with the same function (``DESCRIBE``), which spells out every type and every bit (a float by
``float.hex``, so -0.0 and nan are told apart; a str by its code points, so a lone surrogate
survives), and the descriptions must be equal.

Refused values must raise TypeError naming their type and leave the store exactly as it was:
its contents (``to_python()``, described the same way) and every figure of ``stats()``.
"""

from __future__ import annotations

import collections
import datetime
import enum
import math
import sys
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

import persist

# Shared by this process and the reader: one canonical, type-exact description of a value.
DESCRIBE = r"""
import hashlib

def describe(v, _depth=0):
    t = type(v)
    if v is None:
        return "None"
    if t is bool:
        return f"bool:{v}"
    if t is int:
        return f"int:{v:#x}"
    if t is float:
        return f"float:{v.hex()}"
    if t is str:
        data = v.encode("utf-8", "surrogatepass")
        if len(v) > 64:
            return f"str[{len(v)}]:{hashlib.sha256(data).hexdigest()}"
        return "str:" + data.hex()
    if t is bytes:
        if len(v) > 64:
            return f"bytes[{len(v)}]:{hashlib.sha256(v).hexdigest()}"
        return "bytes:" + v.hex()
    if t is tuple:
        return "tuple(" + ",".join(describe(x, _depth + 1) for x in v) + ")"
    if t is list:
        return "list[" + ",".join(describe(x, _depth + 1) for x in v) + "]"
    if t is dict:
        return "dict{" + ",".join(
            describe(k, _depth + 1) + ":" + describe(x, _depth + 1) for k, x in v.items()
        ) + "}"
    if hasattr(v, "to_python"):
        return describe(v.to_python(), _depth)
    return f"UNEXPECTED TYPE {t.__module__}.{t.__qualname__}"
"""
namespace: dict[str, Any] = {}
exec(DESCRIBE, namespace)
describe = namespace["describe"]


class Colour(enum.IntEnum):
    RED = 7


class Name(str):
    pass


Point = collections.namedtuple("Point", "x y")

MB = 1 << 20
BIG_STR = ("abc\u00e9\u20ac\U0001f600\ud800\U0010ffff" * (MB // 8 + 1))[:MB]
BIG_BYTES = bytes(range(256)) * (MB // 256)


def nested_tuple(depth: int) -> tuple[Any, ...]:
    t: tuple[Any, ...] = ()
    for i in range(depth):
        t = (i, t, "x")
    return t


# name -> (value written, value expected back: same type and bits)
CASES: dict[str, tuple[Any, Any]] = {
    "none": (None, None),
    "true": (True, True),
    "false": (False, False),
    "zero": (0, 0),
    "nan": (math.nan, math.nan),
    "neg_zero": (-0.0, -0.0),
    "inf": (math.inf, math.inf),
    "neg_inf": (-math.inf, -math.inf),
    "tiny": (5e-324, 5e-324),
    "float_max": (sys.float_info.max, sys.float_info.max),
    "third": (1 / 3, 1 / 3),
    "googol_1000": (10**1000, 10**1000),
    "neg_googol_1000": (-(10**1000), -(10**1000)),
    "p62_minus": (2**62 - 1, 2**62 - 1),
    "p62": (2**62, 2**62),
    "p62_plus": (2**62 + 1, 2**62 + 1),
    "n62_minus": (-(2**62) - 1, -(2**62) - 1),
    "p63_minus": (2**63 - 1, 2**63 - 1),
    "p63": (2**63, 2**63),
    "p63_plus": (2**63 + 1, 2**63 + 1),
    "n63": (-(2**63), -(2**63)),
    "n63_minus": (-(2**63) - 1, -(2**63) - 1),
    "p64": (2**64, 2**64),
    "n64": (-(2**64), -(2**64)),
    "empty_str": ("", ""),
    "empty_bytes": (b"", b""),
    "astral": ("\U0001f600\U0010ffff\U00010000", "\U0001f600\U0010ffff\U00010000"),
    "lone_high": ("\ud800", "\ud800"),
    "lone_low": ("\udfff", "\udfff"),
    "lone_inside": ("a\udc80b\ud800", "a\udc80b\ud800"),
    # Two lone surrogates that would make a pair in UTF-16 stay two code points.
    "split_pair": ("\ud83d\ude00", "\ud83d\ude00"),
    "nul": ("a\x00b", "a\x00b"),
    "nul_bytes": (b"\x00\xff\x00", b"\x00\xff\x00"),
    "big_str": (BIG_STR, BIG_STR),
    "big_bytes": (BIG_BYTES, BIG_BYTES),
    "empty_tuple": ((), ()),
    "nested_tuple": (
        (1, (2.5, ("a", (b"b", (None, (True, (), (-0.0, math.nan))))))),
        (1, (2.5, ("a", (b"b", (None, (True, (), (-0.0, math.nan))))))),
    ),
    "deep_tuple": (nested_tuple(200), nested_tuple(200)),
    "bools_stay_bools": ((True, 1, 1.0, False, 0, 0.0), (True, 1, 1.0, False, 0, 0.0)),
    "bools_in_list": ([True, 1, 1.0, False, 0, 0.0, None], [True, 1, 1.0, False, 0, 0.0, None]),
    "int_enum": (Colour.RED, 7),
    "str_subclass": (Name("joe"), "joe"),
    "namedtuple": (Point(1, "y"), (1, "y")),
    "subclasses_inside": ([Colour.RED, (Name("a"), Point(2, 3))], [7, ("a", (2, 3))]),
    "keys_keep_types": (
        {
            True: 1,
            2: 2,
            2.5: 3,
            "a": 4,
            b"a": 5,
            (1, "x"): 6,
            None: 7,
            10**30: 8,
            -0.0: 9,
            "\ud800": 10,
            (): 11,
            Colour.RED: 12,
            Name("n"): 13,
        },
        {
            True: 1,
            2: 2,
            2.5: 3,
            "a": 4,
            b"a": 5,
            (1, "x"): 6,
            None: 7,
            10**30: 8,
            -0.0: 9,
            "\ud800": 10,
            (): 11,
            7: 12,
            "n": 13,
        },
    ),
    "nested_containers": (
        {"l": [1, [2, [3, {"d": (4, 5)}]], {}], "e": []},
        {"l": [1, [2, [3, {"d": (4, 5)}]], {}], "e": []},
    ),
}


READER = (
    DESCRIBE
    + r"""
import sys
import persist

store = persist.open(sys.argv[1])
root = store.root
for name in sys.argv[2:]:
    print(name, describe(root[name]))
store.close()
"""
)


def test_expected_values_are_what_we_think() -> None:
    # The descriptions tell apart exactly what these tests rely on them to tell apart.
    assert describe(-0.0) != describe(0.0)
    assert describe(True) != describe(1)
    assert describe(1) != describe(1.0)
    assert describe(math.nan) == describe(float("nan"))
    assert describe("\ud83d\ude00") != describe("\U0001f600")
    assert describe((1,)) != describe([1])
    assert describe(Colour.RED) == "UNEXPECTED TYPE " + f"{__name__}.Colour"


def test_round_trip_through_another_process(store: Any, store_path: Path, run_py: Any) -> None:
    root = store.root
    for name, (value, _) in CASES.items():
        root[name] = value
    # Read back in this process first: plain types, exact bits.
    for name, (_, expected) in CASES.items():
        assert describe(root[name]) == describe(expected), name
    store.flush()
    out = run_py(READER, cwd=store_path.parent, args=(str(store_path), *CASES))
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(got) == set(CASES)
    for name, (_, expected) in CASES.items():
        assert got[name] == describe(expected), name


def test_round_trip_after_close(store_path: Path, run_py: Any) -> None:
    with persist.open(str(store_path)) as store:
        for name, (value, _) in CASES.items():
            store.root[name] = value
    out = run_py(READER, cwd=store_path.parent, args=(str(store_path), *CASES))
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert got == {name: describe(expected) for name, (_, expected) in CASES.items()}


def test_reads_are_plain_python_objects(store: Any) -> None:
    root = store.root
    root["nan"] = math.nan
    root["neg_zero"] = -0.0
    root["t"] = True
    root["e"] = Colour.RED
    root["s"] = Name("x")
    root["p"] = Point(1, 2)
    assert math.isnan(root["nan"])
    assert math.copysign(1.0, root["neg_zero"]) == -1.0
    assert root["t"] is True
    assert type(root["e"]) is int and root["e"] == 7
    assert type(root["s"]) is str and root["s"] == "x"
    assert type(root["p"]) is tuple and root["p"] == (1, 2)
    root["big"] = -(10**1000)
    assert type(root["big"]) is int and root["big"] == -(10**1000)


def test_tuple_and_subclass_keys(store: Any) -> None:
    d = store.root
    d[Point(1, 2)] = "point"
    d[Name("k")] = "name"
    d[Colour.RED] = "red"
    assert d[(1, 2)] == "point"
    assert d["k"] == "name"
    assert d[7] == "red"
    assert d[7.0] == "red"
    keys = list(d.keys())
    assert [type(k) for k in keys] == [tuple, str, int]


# --- refused values -------------------------------------------------------------------------


def a_function() -> None:
    pass


class Opaque:
    pass


class Moment(datetime.datetime):
    pass


def unstorable(tmp_path: Path) -> list[tuple[str, Any, str]]:
    """(case name, value, the type name the message must contain)."""
    handle = open(tmp_path / "f.txt", "w")  # closed by run_rejections
    return [
        ("object", object(), "object"),
        ("set_of_object", {1, Opaque()}, "Opaque"),
        ("set_of_complex", {1, 2j}, "complex"),
        ("frozenset_of_object", frozenset({1, Opaque()}), "Opaque"),
        ("zoneinfo", datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")), "ZoneInfo"),
        ("datetime_subclass", Moment(2024, 1, 1), "Moment"),
        ("complex", 1 + 2j, "complex"),
        ("bytearray", bytearray(b"x"), "bytearray"),
        ("function", a_function, "function"),
        ("lambda", lambda: 1, "function"),
        ("class", Opaque, "type"),
        ("instance", Opaque(), "Opaque"),
        ("file", handle, type(handle).__name__),
        ("range", range(3), "range"),
        ("memoryview", memoryview(b"ab"), "memoryview"),
        ("bytearray_deep_in_list", [1, [2, [3, [4, bytearray(b"5")]]]], "bytearray"),
        ("set_member_deep_in_dict", {"a": {"b": [1, (2, 3), {"c": {6, 1j}}]}}, "complex"),
        ("object_in_tuple", (1, (2, object())), "object"),
        ("complex_in_tuple_in_list", [(1, 2j)], "complex"),
        ("frozenset_key", {"ok": 1, frozenset({1, Opaque()}): 2}, "Opaque"),
        ("object_key", {(1, Opaque()): 2}, "Opaque"),
        ("frozenset_key_deep", [{"x": {frozenset({(1, Opaque())}): 1}}], "Opaque"),
    ]


def snapshot(store: Any) -> tuple[str, dict[str, Any]]:
    return describe(store.root.to_python()), store.stats()


@pytest.fixture
def populated(store: Any) -> Any:
    root = store.root
    root["l"] = [1, "two", (3.0, b"4"), [5, {"six": 6}]]
    root["d"] = {"a": 1, "b": [2, 3], 4: (5,)}
    root["x"] = "kept"
    return store


def run_rejections(store: Any, tmp_path: Path, attempt: Any) -> None:
    cases = unstorable(tmp_path)
    try:
        for name, value, type_name in cases:
            before = snapshot(store)
            with pytest.raises(TypeError) as info:
                attempt(store.root, value)
            assert type_name in str(info.value), (name, str(info.value))
            assert snapshot(store) == before, name
    finally:
        for _, value, _ in cases:
            if hasattr(value, "close"):
                value.close()


@pytest.mark.parametrize(
    "how",
    [
        "assign_new_key",
        "assign_existing_key",
        "setdefault",
        "update_dict",
        "update_kwargs",
        "update_pairs",
        "ior",
        "nested_dict_setitem",
        "append",
        "insert",
        "extend",
        "extend_after_good_values",
        "iadd",
        "setitem_index",
        "setitem_slice",
        "setitem_extended_slice",
        "nested_append",
    ],
)
def test_unstorable_is_refused_and_changes_nothing(
    populated: Any, tmp_path: Path, how: str
) -> None:
    def attempt(root: Any, value: Any) -> None:
        if how == "assign_new_key":
            root["new"] = value
        elif how == "assign_existing_key":
            root["x"] = value
        elif how == "setdefault":
            root.setdefault("new", value)
        elif how == "update_dict":
            root.update({"new": 1, "x": "changed", "bad": value})
        elif how == "update_kwargs":
            root.update(new=1, x="changed", bad=value)
        elif how == "update_pairs":
            root.update([("new", 1), ("x", "changed"), ("bad", value)])
        elif how == "ior":
            d = root["d"]
            d |= {"new": 1, "a": "changed", "bad": value}
        elif how == "nested_dict_setitem":
            root["d"]["b"] = value
        elif how == "append":
            root["l"].append(value)
        elif how == "insert":
            root["l"].insert(1, value)
        elif how == "extend":
            root["l"].extend([value])
        elif how == "extend_after_good_values":
            root["l"].extend([*range(1000), [1, 2], value, 7])
        elif how == "iadd":
            lst = root["l"]
            lst += ["good", value]
        elif how == "setitem_index":
            root["l"][0] = value
        elif how == "setitem_slice":
            root["l"][1:3] = ["good", value, "good"]
        elif how == "setitem_extended_slice":
            root["l"][::2] = ["good", value]
        elif how == "nested_append":
            root["l"][3].append(value)
        else:
            raise AssertionError(how)

    run_rejections(populated, tmp_path, attempt)


def test_unstorable_attribute_of_a_pbase_object(populated: Any, tmp_path: Path) -> None:
    root = populated.root
    root["obj"] = persist.pbase()
    obj = root["obj"]
    obj.kept = 1

    def attempt(root: Any, value: Any) -> None:
        root["obj"].bad = value

    run_rejections(populated, tmp_path, attempt)
    assert root["obj"].kept == 1
    with pytest.raises(AttributeError):
        root["obj"].bad  # noqa: B018


def test_unstorable_inside_a_new_pbase_object(populated: Any, tmp_path: Path) -> None:
    def attempt(root: Any, value: Any) -> None:
        obj = persist.pbase()
        obj.good = [1, 2, 3]
        obj.bad = value
        root["obj"] = obj

    run_rejections(populated, tmp_path, attempt)
    assert "obj" not in populated.root


@pytest.mark.parametrize("key", [[1], {"a": 1}, {1}, bytearray(b"k")])
def test_unhashable_key_is_a_type_error(store: Any, key: Any) -> None:
    root = store.root
    root["d"] = {"a": 1}
    before = snapshot(store)
    with pytest.raises(TypeError):
        root["d"][key] = 1
    with pytest.raises(TypeError):
        root["d"][key]  # noqa: B018
    with pytest.raises(TypeError):
        key in root["d"]  # noqa: B015
    assert snapshot(store) == before


def test_a_proxy_is_not_a_key(store: Any) -> None:
    root = store.root
    root["l"] = [1]
    root["d"] = {}
    before = snapshot(store)
    with pytest.raises(TypeError):
        root["d"][root["l"]] = 1
    with pytest.raises(TypeError):
        root["d"][(1, root["l"])] = 1
    assert snapshot(store) == before


def test_big_rejected_extend_leaves_stats_unchanged(store: Any) -> None:
    root = store.root
    root["l"] = [0]
    before = snapshot(store)
    with pytest.raises(TypeError, match="complex"):
        root["l"].extend([*(list(range(100)) for _ in range(200)), [[{1, 2j}]]])
    with pytest.raises(TypeError, match="complex"):
        root["new"] = {str(i): list(range(100)) for i in range(200)} | {"z": [{1, 2j}]}
    assert snapshot(store) == before
    assert root["l"] == [0]
    assert "new" not in root
