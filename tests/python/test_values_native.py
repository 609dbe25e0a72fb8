"""The everyday value types stored natively: datetime, date, time, timedelta, Decimal, UUID
and frozenset.

Each is written in this process and read back in a fresh interpreter, described type-exactly on
both sides (``repr`` of the value, ``fold``, the tzinfo's ``repr``, a Decimal's
``as_tuple``), for hand-picked edge cases (leap days, year 1 and 9999, microseconds, ``fold``,
offsets with seconds and microseconds, named timezones, every kind of Decimal NaN, -0, huge
exponents, long coefficients) and for values hypothesis draws. As dict keys they are equal
exactly when a dict says so (a dict beside the store is the model). What Python cannot store
(a tzinfo that is not a fixed offset, a signaling NaN as a key, frozensets nested too deep) is
refused with the error Python's own dict would give or one naming the type, leaving the store
unchanged. A file whose packed payload is damaged gives CorruptionError on read and on check,
never a crash.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import persist

DESCRIBE = r"""
import datetime as dt, decimal, uuid

def describe(v):
    t = type(v)
    if t is tuple:
        return "tuple(" + ",".join(describe(x) for x in v) + ")"
    if t is frozenset:
        return "frozenset{" + ",".join(sorted(describe(x) for x in v)) + "}"
    if hasattr(v, "to_python"):
        return describe(v.to_python())
    if t is list:
        return "list[" + ",".join(describe(x) for x in v) + "]"
    if t is decimal.Decimal:
        return f"Decimal:{v.as_tuple()!r}"
    if t in (dt.datetime, dt.time):
        return f"{t.__name__}:{v!r}:fold={v.fold}:tz={v.tzinfo!r}"
    if t is float:
        return f"float:{v.hex()}"
    return f"{t.__module__}.{t.__qualname__}:{v!r}"
"""
namespace: dict[str, Any] = {}
exec(DESCRIBE, namespace)
describe = namespace["describe"]

READER = (
    DESCRIBE
    + r"""
import sys
import persist

with persist.open(sys.argv[1], readonly=True) as store:
    for name in sys.argv[2:]:
        print(name, describe(store.root[name]))
"""
)

UTC = dt.timezone.utc
CET = dt.timezone(dt.timedelta(hours=1), "CET")
ODD = dt.timezone(dt.timedelta(hours=-23, minutes=-59, seconds=-59, microseconds=-999999))
UNNAMED = dt.timezone(dt.timedelta(hours=5, minutes=30))

EDGES: dict[str, Any] = {
    "leap_day": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
    "year_one": dt.datetime(1, 1, 1),
    "year_max": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "fold": dt.datetime(2021, 11, 7, 1, 30, fold=1),
    "fold_aware": dt.datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=CET),
    "named_tz": dt.datetime(2020, 6, 1, 12, tzinfo=CET),
    "named_like_default": dt.datetime(
        2020, 6, 1, tzinfo=dt.timezone(dt.timedelta(hours=1), "UTC+01:00")
    ),
    "odd_offset": dt.datetime(2000, 1, 1, tzinfo=ODD),
    "unnamed_tz": dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UNNAMED),
    "date_leap": dt.date(2000, 2, 29),
    "date_min": dt.date.min,
    "date_max": dt.date.max,
    "time_naive": dt.time(0, 0, 0, 1),
    "time_fold": dt.time(23, 59, 59, 999999, fold=1),
    "time_aware": dt.time(12, tzinfo=ODD),
    "time_named": dt.time(1, 2, 3, tzinfo=CET),
    "delta_min": dt.timedelta.min,
    "delta_max": dt.timedelta.max,
    "delta_neg": dt.timedelta(microseconds=-1),
    "delta_zero": dt.timedelta(0),
    "nan": Decimal("NaN"),
    "neg_nan_payload": Decimal("-NaN123"),
    "snan": Decimal("sNaN"),
    "neg_snan_payload": Decimal("-sNaN99"),
    "inf": Decimal("Infinity"),
    "neg_inf": Decimal("-Infinity"),
    "neg_zero": Decimal("-0"),
    "zero_exp": Decimal("0E-7"),
    "neg_zero_exp": Decimal("-0E+12"),
    "trailing_zeros": Decimal("1.000"),
    "huge_exp": Decimal("1E+999999999999999999"),
    "tiny_exp": Decimal("-9.99E-999999999999999999"),
    "min_exp": Decimal("123E-1999999999999999997"),
    "max_adjusted_exp": Decimal("99999E+999999999999999995"),
    "long_coefficient": Decimal("3." + "1415926535" * 2000),
    "uuid_zero": uuid.UUID(int=0),
    "uuid_max": uuid.UUID(int=2**128 - 1),
    "uuid4": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "frozenset_empty": frozenset(),
    "frozenset_mixed": frozenset(
        {1, "a", b"b", (2, (3.5, None)), Decimal("2.5"), dt.date(2020, 1, 1)}
    ),
    "frozenset_nested": frozenset({frozenset({frozenset({1}), 2}), (frozenset({"x"}),)}),
    "tuple_of_all": (dt.datetime(2020, 1, 1, tzinfo=UTC), Decimal("-0.00"), uuid.UUID(int=7)),
    "in_a_list": [dt.timedelta(days=-3), frozenset({Decimal("NaN")})],
}


def read_back(path: Path, names: list[str], run_py: Any) -> dict[str, str]:
    out = run_py(READER, cwd=path.parent, args=(str(path), *names))
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_edge_cases_round_trip_through_another_process(
    store: Any, store_path: Path, run_py: Any
) -> None:
    for name, v in EDGES.items():
        store.root[name] = v
    for name, v in EDGES.items():
        assert describe(store.root[name]) == describe(v), name
    store.flush()
    got = read_back(store_path, list(EDGES), run_py)
    assert got == {name: describe(v) for name, v in EDGES.items()}
    store.check()


# ---- hypothesis: values drawn at random, read back by another process ------------------------

OFFSETS = st.one_of(
    st.just(UTC),
    st.builds(
        dt.timezone,
        st.timedeltas(
            min_value=dt.timedelta(hours=-23, minutes=-59, seconds=-59, microseconds=-999999),
            max_value=dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
        ),
    ),
    st.builds(
        dt.timezone,
        st.sampled_from([dt.timedelta(hours=h) for h in (-12, -1, 1, 9)]),
        st.text(min_size=1, max_size=5),
    ),
)
TZ = st.one_of(st.none(), OFFSETS)


def _with_fold(v: Any, fold: int) -> Any:
    return v.replace(fold=fold)


DATETIMES = st.builds(_with_fold, st.datetimes(timezones=TZ), st.integers(0, 1))
TIMES = st.builds(_with_fold, st.times(timezones=TZ), st.integers(0, 1))
# Finite and infinite Decimals (no filter: a filtered strategy inside a recursive one makes
# hypothesis build its whole repr).
NUMBER_DECIMALS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=True, places=None),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.builds(
        lambda sign, digits, exp: Decimal((sign, tuple(digits), exp)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=60),
        st.integers(-(10**18), 10**18 - 100),  # Python refuses an adjusted exponent > 10**18 - 1
    ),
)
QUIET_NANS = st.sampled_from([Decimal("NaN"), Decimal("-NaN"), Decimal("NaN123"), Decimal("-NaN9")])
SIGNALING_NANS = st.sampled_from([Decimal("sNaN"), Decimal("-sNaN4")])
DECIMALS = st.one_of(NUMBER_DECIMALS, QUIET_NANS, SIGNALING_NANS)


def scalars(decimals: Any) -> Any:
    return st.one_of(
        DATETIMES,
        TIMES,
        st.dates(),
        st.timedeltas(),
        decimals,
        st.uuids(),
        st.integers(),
        st.text(max_size=4),
    )


def hashables(decimals: Any) -> Any:
    """Hashable values: scalars, frozensets and tuples, two levels written out (a recursive
    strategy's repr is too long for hypothesis when a frozenset's draw is retried: a warning,
    which the test settings make an error)."""
    flat = scalars(decimals)
    sets = st.frozensets(flat, max_size=4)
    return st.one_of(
        flat,
        sets,
        st.tuples(flat, sets),
        st.frozensets(st.one_of(sets, st.tuples(flat, flat)), max_size=3),
    )


SCALARS = scalars(DECIMALS)
# A signaling NaN cannot be hashed, so it is in no frozenset; no NaN is found as a dict key.
HASHABLE = hashables(st.one_of(NUMBER_DECIMALS, QUIET_NANS))
KEYS = hashables(NUMBER_DECIMALS)
VALUES = st.one_of(SCALARS, HASHABLE)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(VALUES, min_size=1, max_size=12))
def test_drawn_values_round_trip_through_another_process(
    tmp_path: Path, run_py: Any, values: list[Any]
) -> None:
    path = tmp_path / f"h{len(list(tmp_path.iterdir()))}.db"
    with persist.open(str(path)) as store:
        for i, v in enumerate(values):
            store.root[f"v{i}"] = v
    got = read_back(path, [f"v{i}" for i in range(len(values))], run_py)
    assert got == {f"v{i}": describe(v) for i, v in enumerate(values)}


# ---- as dict keys: equal exactly when a dict says so ------------------------------------------

GROUPS = [
    # Each group: keys Python's dict takes for one key.
    [1, 1.0, True, Decimal(1), Decimal("1.000"), Decimal("0.1E+1")],
    [0, 0.0, -0.0, False, Decimal("-0"), Decimal("0E-99")],
    [0.5, Decimal("0.5"), Decimal("0.50000")],
    [0.1, Decimal(0.1)],
    [Decimal("0.1")],
    [2**80, float(2**80), Decimal(2**80), Decimal("1.208925819614629174706176E+24")],
    [10**30, Decimal("1E+30")],
    [Decimal("1E+999999999999999999")],
    [float("inf"), Decimal("Infinity")],
    [float("-inf"), Decimal("-Infinity")],
    [dt.datetime(2020, 1, 1, 12, tzinfo=UTC), dt.datetime(2020, 1, 1, 13, tzinfo=CET)],
    [dt.datetime(2020, 1, 1, 12), dt.datetime(2020, 1, 1, 12, fold=1)],
    [dt.date(2020, 1, 1)],
    [dt.datetime(2020, 1, 1)],
    [dt.time(12, tzinfo=UTC), dt.time(13, tzinfo=CET)],
    [dt.time(12)],
    [dt.timedelta(days=1), dt.timedelta(hours=24), dt.timedelta(seconds=86400)],
    [uuid.UUID(int=1)],
    [frozenset({1, 2}), frozenset({2.0, Decimal(1)}), frozenset({True, 2})],
    [frozenset()],
    [frozenset({frozenset({1})}), frozenset({frozenset({1.0})})],
    [(1, frozenset({"a"})), (1.0, frozenset({"a"}))],
    ["1"],
    [b"1"],
]


GROUP_KEYS = [k for g in GROUPS for k in g]


def test_groups_are_what_a_dict_makes_them() -> None:
    model: dict[Any, int] = {}
    for g, keys in enumerate(GROUPS):
        for k in keys:
            model[k] = g
    assert list(model.values()) == list(range(len(GROUPS)))


def test_keys_equal_as_in_a_dict(store: Any, store_path: Path, run_py: Any) -> None:
    d = store.root
    for g, keys in enumerate(GROUPS):
        for k in keys:
            d[k] = g
    assert len(d) == len(GROUPS)
    # The first key stays, as dict keeps it.
    assert [describe(k) for k in d.keys()] == [describe(keys[0]) for keys in GROUPS]
    for g, keys in enumerate(GROUPS):
        for k in keys:
            assert d[k] == g, (g, k)
            assert k in d
    # Aware and naive never equal; date and datetime never equal.
    assert dt.datetime(2020, 1, 1, tzinfo=UTC) not in d
    assert dt.time(12, tzinfo=dt.timezone(dt.timedelta(hours=2))) not in d
    store.check()
    store.flush()
    # Another process finds them by equal keys of other types.
    out = run_py(
        """
        import sys, datetime as dt
        from decimal import Decimal
        import persist
        with persist.open(sys.argv[1], readonly=True) as s:
            r = s.root
            print(r[True], r[Decimal("5E-1")], r[float(2**80)],
                  r[dt.datetime(2020, 1, 1, 11, tzinfo=dt.timezone(dt.timedelta(hours=-1)))],
                  r[frozenset({Decimal("2.0"), 1.0})])
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert out.split() == ["0", "2", "5", "10", "18"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(
        st.one_of(
            KEYS,
            # By index: a sampled_from of these would give the strategy a repr too long for
            # hypothesis (a warning, which the test settings make an error).
            st.integers(0, len(GROUP_KEYS) - 1).map(GROUP_KEYS.__getitem__),
            st.floats(allow_nan=False),
            st.integers(-3, 3),
        ),
        max_size=20,
    )
)
def test_drawn_keys_differ_from_a_dict_in_nothing(store: Any, keys: list[Any]) -> None:
    d = store.root
    d.clear()
    model: dict[Any, int] = {}
    for i, k in enumerate(keys):
        model[k] = i
        d[k] = i
    assert [(describe(k), v) for k, v in d.items()] == [(describe(k), v) for k, v in model.items()]
    for k in keys:
        assert d[k] == model[k]


# ---- refusals ------------------------------------------------------------------------------


def test_refusals_name_the_problem_and_change_nothing(store: Any) -> None:
    root = store.root
    root["x"] = 1
    before = store.stats()
    with pytest.raises(TypeError, match="ZoneInfo"):
        root["z"] = dt.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC"))
    with pytest.raises(TypeError, match="ZoneInfo"):
        root["t"] = [dt.time(1, tzinfo=zoneinfo.ZoneInfo("UTC"))]
    with pytest.raises(TypeError, match="signaling NaN"):
        root[Decimal("sNaN")] = 1
    with pytest.raises(TypeError, match="signaling NaN"):
        root[(1, Decimal("-sNaN2"))] = 1
    with pytest.raises(TypeError, match="signaling NaN"):
        root["d"] = {Decimal("sNaN"): 1}
    with pytest.raises(TypeError, match="signaling NaN"):
        root["s"] = {1, Decimal("sNaN")}
    deep: Any = frozenset()
    for _ in range(33):
        deep = frozenset({deep})
    with pytest.raises(ValueError, match="32"):
        root["deep"] = deep
    with pytest.raises(ValueError, match="32"):
        root[deep] = 1
    assert store.stats() == before
    assert list(root.keys()) == ["x"]
    # 32 deep is stored.
    ok: Any = frozenset()
    for _ in range(31):
        ok = frozenset({ok})
    root["ok"] = ok
    root[ok] = "k"
    assert root["ok"] == ok and root[ok] == "k"
    store.check()


def test_proxy_defects_of_the_issue(store: Any) -> None:
    root = store.root
    with pytest.raises(KeyError) as info:
        root[("t", 1)]
    assert info.value.args == (("t", 1),)
    with pytest.raises(TypeError) as te:
        root[(1, object())] = 1
    assert "'object'" in str(te.value) and "'tuple'" not in str(te.value)
    root["d"] = {}
    assert persist.Dict.fromkeys("ab", 0) == {"a": 0, "b": 0}
    assert root["d"].fromkeys([1, 2]) == dict.fromkeys([1, 2])


# ---- damaged payloads ------------------------------------------------------------------------

DAMAGE_CHILD = r"""
import sys
import persist
path, what = sys.argv[1], sys.argv[2]
with persist.open(path) as s:
    try:
        v = s.root[what]
        print("read", type(v).__name__)
    except persist.CorruptionError as e:
        print("read CorruptionError")
    try:
        s.check()
        print("check ok")
    except persist.CorruptionError as e:
        print("check CorruptionError")
"""

PI = "31415926535897932384626433"


def _damage(path: Path, find: bytes, replace: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(find)
    assert at >= 0 and data.find(find, at + 1) < 0, "the payload is in the file once"
    data[at : at + len(replace)] = replace
    path.write_bytes(bytes(data))


# (value stored, the bytes of its payload to find, what to write over them)
DAMAGES = {
    # 2024-02-29 -> 2024-02-30 (a datetime payload: year u16, month, day, ...).
    "datetime_bad_day": (
        dt.datetime(2024, 2, 29, 1, 2, 3, 456789),
        (2024).to_bytes(2, "little") + bytes([2, 29, 1, 2, 3, 0]),
        (2024).to_bytes(2, "little") + bytes([2, 30]),
    ),
    "time_bad_flag": (
        dt.time(7, 8, 9, 123457),
        bytes([7, 8, 9, 0]) + (123457).to_bytes(4, "little"),
        bytes([7, 8, 9, 0x80]),
    ),
    "time_bad_offset": (
        dt.time(7, 8, 9, 123458, tzinfo=dt.timezone(dt.timedelta(hours=3))),
        (3 * 3600 * 10**6).to_bytes(8, "little", signed=True),
        (86400 * 10**6).to_bytes(8, "little", signed=True),
    ),
    "decimal_bad_digit": (Decimal(PI), PI.encode(), b"31x"),
    "decimal_leading_zero": (Decimal(PI[::-1]), PI[::-1].encode(), b"0"),
    "timedelta_bad_seconds": (
        dt.timedelta(days=777, seconds=12345, microseconds=6789),
        (777).to_bytes(4, "little", signed=True) + (12345).to_bytes(4, "little"),
        (777).to_bytes(4, "little", signed=True) + (86400).to_bytes(4, "little"),
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damaged_payload_is_corruption_never_a_crash(tmp_path: Path, case: str) -> None:
    value, find, replace = DAMAGES[case]
    path = tmp_path / "s.db"
    with persist.open(str(path)) as s:
        s.root[case] = value
        s.root["fine"] = dt.date(2020, 1, 1)
    _damage(path, find, replace)
    proc = subprocess.run(
        [sys.executable, "-c", DAMAGE_CHILD, str(path), case],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["read CorruptionError", "check CorruptionError"]


def test_frozenset_members_out_of_order_are_corruption(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with persist.open(str(path)) as s:
        s.root["fs"] = frozenset({"member-one-long", "member-two-long"})
        s.check()
    data = bytearray(path.read_bytes())
    # The frozenset block: head (kind 12, 2 members), then (hash, word) twice: swap the hashes.
    head = (12 | 2 << 8).to_bytes(8, "little")
    at = data.find(head)
    assert at >= 0
    h1, h2 = data[at + 8 : at + 16], data[at + 24 : at + 32]
    data[at + 8 : at + 16], data[at + 24 : at + 32] = h2, h1
    path.write_bytes(bytes(data))
    with persist.open(str(path)) as s:
        with pytest.raises(persist.CorruptionError):
            s.check()
        # Read, a member is still found by equality (its hash is wrong, not its value).
        assert s.root["fs"] == frozenset({"member-one-long", "member-two-long"})


# ---- dump and load -------------------------------------------------------------------------


def test_dump_and_load_keep_every_kind(tmp_path: Path) -> None:
    src, dump, dst = tmp_path / "a.db", tmp_path / "a.jsonl", tmp_path / "b.db"
    with persist.open(str(src)) as s:
        for name, v in EDGES.items():
            s.root[name] = v
        s.root[frozenset({dt.date(2020, 1, 1), Decimal("1.5")})] = "fs key"
    py = [sys.executable, "-m", "persist"]
    subprocess.run([*py, "dump", "-o", str(dump), str(src)], check=True, timeout=120)
    subprocess.run([*py, "load", str(dump), str(dst)], check=True, timeout=120)
    with persist.open(str(dst)) as s:
        for name, v in EDGES.items():
            assert describe(s.root[name]) == describe(v), name
        assert s.root[frozenset({1.5, dt.date(2020, 1, 1)})] == "fs key"
    again = subprocess.run(
        [*py, "dump", str(dst)], check=True, timeout=120, capture_output=True
    ).stdout
    assert again == dump.read_bytes()
    assert b'"version":4' in again.split(b"\n")[0]


def test_version_1_dumps_still_load(tmp_path: Path) -> None:
    dump, dst = tmp_path / "old.jsonl", tmp_path / "b.db"
    dump.write_text(
        '{"format":"persist-dump","version":1,"persist":"0.1.0","store_format":2,"root":0}\n'
        '{"id":0,"type":"dict","items":[["x",{"tuple":[1,{"int":"10000000000000000"}]}]]}\n'
        '{"end":1}\n'
    )
    subprocess.run(
        [sys.executable, "-m", "persist", "load", str(dump), str(dst)], check=True, timeout=120
    )
    with persist.open(str(dst)) as s:
        assert s.root["x"] == (1, 2**64)


# ---- release: nothing leaks ------------------------------------------------------------------


def test_replaced_deleted_and_rolled_back_values_free_their_blocks(store: Any) -> None:
    root = store.root
    root["keep"] = 1
    before = store.check()
    for round_ in range(3):
        for name, v in EDGES.items():
            root[name] = v
            root[(name, frozenset({round_}))] = v
        for name, v in EDGES.items():
            root[name] = v  # replaced: the old value is released
    with pytest.raises(RuntimeError):
        with store.transaction():
            root["rolled"] = EDGES["frozenset_nested"]
            root[frozenset({dt.date(2020, 1, 1)})] = Decimal("1.5")
            raise RuntimeError("roll back")
    assert "rolled" not in root
    for k in list(root.keys()):
        if k != "keep":
            del root[k]
    after = store.check()
    assert after["unreachable_blocks"] == 0
    # The same blocks as before: the root dict, its table (grown, so not the same bytes), and
    # what "keep" needs; every packed value and frozenset was freed.
    assert after["live_blocks"] == before["live_blocks"]
