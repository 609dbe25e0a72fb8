"""The Python protocols a dict and a list take part in: lock blocks as context managers, the
collections.abc ABCs, copy and deepcopy, json.

- ``lockExcl()`` and ``lockShared()`` take the lock at the call (as plain calls always have)
  and return a guard; ``with`` gives one level back at the block's end, whatever ends it.
  Nested blocks and plain calls mix.
- ``persist.Dict`` is a ``MutableMapping`` and ``persist.List`` a ``MutableSequence``, and every
  mixin method of those ABCs behaves as dict's and list's.
- ``copy.copy`` gives a plain shallow ``dict`` or ``list`` (nested containers stay proxies);
  ``copy.deepcopy`` a plain deep copy with shared references and cycles kept; neither copies
  the store.
- ``json.dumps(v, default=persist.json_default)`` encodes proxies as their plain copies.
"""

from __future__ import annotations

import collections.abc
import copy
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import persist


def _start_reading(store: Any) -> tuple[list[Any], threading.Thread]:
    """Another thread reading root['x'] into the list returned."""
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(store.root["x"]), daemon=True)
    t.start()
    return got, t


def _other_thread_reads(store: Any, timeout: float) -> list[Any]:
    """What another thread reads of root['x'] within ``timeout`` seconds; the read must end
    by then (a thread still reading when the test closes the store fails in a later test)."""
    got, t = _start_reading(store)
    t.join(timeout)
    assert not t.is_alive(), f"the other thread's read did not end within {timeout} s"
    return got


def test_lock_excl_as_a_context_manager(store: Any) -> None:
    root = store.root
    root["x"] = 0
    with root.lockExcl() as guard:
        assert store._core.held() == "excl"
        assert "excl" in repr(guard)
        root["x"] = 1
        got, waiting = _start_reading(store)
        waiting.join(0.2)
        assert got == []  # readers wait for the section
    assert store._core.held() is None
    # The waiting reader ends once the section does (joined before the store closes).
    waiting.join(10)
    assert got == [1]
    assert _other_thread_reads(store, 10) == [1]


def test_a_block_that_raises_still_unlocks_and_keeps_its_changes(store: Any) -> None:
    """A lock block is not a transaction: what it changed stays (use transaction() to roll
    back); the lock is given back."""
    root = store.root
    with pytest.raises(ValueError):
        with root.lockExcl():
            root["x"] = 5
            raise ValueError
    assert store._core.held() is None
    assert root["x"] == 5


def test_lock_shared_as_a_context_manager(store: Any) -> None:
    root = store.root
    root["x"] = 1
    with root.lockShared():
        assert store._core.held() == "shared"
        with pytest.raises(RuntimeError):
            root["x"] = 2  # a change needs the writer lock
        assert _other_thread_reads(store, 10) == [1]  # readers are not kept out
    assert store._core.held() is None


def test_blocks_nest_and_mix_with_plain_calls(store: Any) -> None:
    root = store.root
    lst = root.setdefault("l", [])
    root.lockExcl()  # a plain call, as the 2004 programs make it
    with lst.lockExcl():
        with root.lockShared():  # nests inside the thread's own lockExcl
            lst.append(1)
        assert store._core.held() == "excl"
    assert store._core.held() == "excl"  # the plain call's level is still held
    root.unlock()
    assert store._core.held() is None
    # The guard of a plain call, dropped unused, gives nothing back.
    g = root.lockShared()
    del g
    assert store._core.held() == "shared"
    root.unlock()
    assert store._core.held() is None
    assert list(lst) == [1]


def test_a_block_must_end_in_its_own_thread(store: Any) -> None:
    guard = store.root.lockExcl()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            guard.__exit__(None, None, None)
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and "thread" in str(errors[0])
    assert store._core.held() == "excl"
    guard.__exit__(None, None, None)
    assert store._core.held() is None


def test_dict_and_list_are_the_abcs(store: Any) -> None:
    root = store.root
    root["l"] = [1]
    assert isinstance(root, collections.abc.MutableMapping)
    assert isinstance(root, collections.abc.Mapping)
    assert isinstance(root["l"], collections.abc.MutableSequence)
    assert isinstance(root["l"], collections.abc.Sequence)
    assert not isinstance(root["l"], collections.abc.Mapping)
    assert issubclass(persist.Dict, collections.abc.MutableMapping)
    assert issubclass(persist.List, collections.abc.MutableSequence)


def _run_both(proxy: Any, plain: Any, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Calls each method on the proxy and on a plain twin: same results, same exceptions,
    same contents after each."""
    for name, args in calls:
        try:
            want: Any = ("ok", getattr(plain, name)(*args))
        except Exception as e:  # compared below
            want = ("err", type(e))
        try:
            got: Any = ("ok", getattr(proxy, name)(*args))
        except Exception as e:  # compared below
            got = ("err", type(e))
        if want[0] == "ok" and isinstance(want[1], collections.abc.KeysView | list | tuple):
            want = ("ok", list(want[1]))
            got = ("ok", list(got[1]))
        assert got == want, f"{name}{args}"
        assert proxy == plain, f"after {name}{args}"


def test_every_mutable_mapping_mixin_behaves_as_dicts(store: Any) -> None:
    root = store.root
    root["d"] = {"a": 1, "b": 2}
    proxy, plain = root["d"], {"a": 1, "b": 2}
    mixins = sorted(collections.abc.MutableMapping.__abstractmethods__) + [
        "__contains__",
        "keys",
        "items",
        "values",
        "get",
        "__eq__",
        "__ne__",
        "pop",
        "popitem",
        "clear",
        "update",
        "setdefault",
    ]
    for m in mixins:
        assert callable(getattr(proxy, m)), m
    _run_both(
        proxy,
        plain,
        [
            ("__contains__", ("a",)),
            ("get", ("a",)),
            ("get", ("z", 9)),
            ("keys", ()),
            ("__eq__", ({"a": 1, "b": 2},)),
            ("__ne__", ({},)),
            ("setdefault", ("c", 3)),
            ("setdefault", ("a", 7)),
            ("pop", ("b",)),
            ("pop", ("b",)),
            ("pop", ("b", None)),
            ("update", ({"e": 5},)),
            ("update", ([("f", 6)],)),
            ("popitem", ()),
            ("__len__", ()),
            ("clear", ()),
            ("popitem", ()),
        ],
    )


def test_every_mutable_sequence_mixin_behaves_as_lists(store: Any) -> None:
    root = store.root
    root["l"] = [3, 1, 2, 1]
    proxy, plain = root["l"], [3, 1, 2, 1]
    mixins = sorted(collections.abc.MutableSequence.__abstractmethods__) + [
        "__contains__",
        "__iter__",
        "__reversed__",
        "index",
        "count",
        "append",
        "reverse",
        "extend",
        "pop",
        "remove",
        "__iadd__",
    ]
    for m in mixins:
        assert callable(getattr(proxy, m)), m
    _run_both(
        proxy,
        plain,
        [
            ("__contains__", (2,)),
            ("index", (1,)),
            ("index", (1, 2)),
            ("index", (9,)),
            ("count", (1,)),
            ("append", (4,)),
            ("insert", (0, 0)),
            ("reverse", ()),
            ("extend", ([5, 6],)),
            ("pop", ()),
            ("pop", (0,)),
            ("remove", (1,)),
            ("remove", (9,)),
            ("__len__", ()),
            ("__getitem__", (1,)),
            ("__setitem__", (1, 8)),
            ("__delitem__", (0,)),
        ],
    )
    assert list(reversed(proxy)) == list(reversed(plain))
    proxy += [7]
    plain += [7]
    assert proxy == plain


def test_copy_gives_plain_shallow_values(store: Any) -> None:
    root = store.root
    root["d"] = {"n": [1, 2], "s": "x"}
    root["l"] = [{"k": 1}, 2]
    d = copy.copy(root["d"])
    assert type(d) is dict and d == {"n": [1, 2], "s": "x"}
    assert isinstance(d["n"], persist.List)  # shallow: nested containers stay proxies
    lst = copy.copy(root["l"])
    assert type(lst) is list and isinstance(lst[0], persist.Dict)
    d["s"] = "changed"
    lst.append(3)
    assert root["d"]["s"] == "x" and len(root["l"]) == 2  # the store is untouched


def test_deepcopy_gives_plain_values_with_sharing_and_cycles_kept(store: Any) -> None:
    root = store.root
    root["shared"] = [1]
    root["a"] = {"x": root["shared"], "y": root["shared"]}
    root["cyc"] = [0]
    root["cyc"].append(root["cyc"])
    a = copy.deepcopy(root["a"])
    assert type(a) is dict and type(a["x"]) is list
    assert a["x"] is a["y"]  # one shared list, as in the store
    c = copy.deepcopy(root["cyc"])
    assert type(c) is list and c[1] is c
    whole = copy.deepcopy(root)
    assert type(whole) is dict and whole["a"]["x"] is whole["shared"]
    a["x"].append(2)
    assert root["shared"] == [1]


def test_json_dumps_with_the_default_hook(store: Any) -> None:
    root = store.root
    root["d"] = {"n": [1, 2.5, None, True], "s": "é"}
    plain = {"d": {"n": [1, 2.5, None, True], "s": "é"}}
    assert json.dumps(root, default=persist.json_default, sort_keys=True) == json.dumps(
        plain, sort_keys=True
    )
    assert json.loads(json.dumps(root["d"]["n"], default=persist.json_default)) == [
        1,
        2.5,
        None,
        True,
    ]
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps({"o": object()}, default=persist.json_default)


# ---- where the proxies differed from the built-ins ------------------------------------------


def test_keyerror_carries_a_tuple_key_as_its_one_argument(tmp_path: Path) -> None:
    """``KeyError(('t', 1))`` has ``args == (('t', 1),)``, as a dict's does."""
    root = persist.open(str(tmp_path / "s.db")).root
    root[("t", 2)] = 1
    for miss in (lambda: root[("t", 1)], lambda: root.pop(("t", 1))):
        with pytest.raises(KeyError) as e:
            miss()
        assert e.value.args == (("t", 1),)
    with pytest.raises(KeyError) as e:
        del root[("t", 1)]
    assert e.value.args == (("t", 1),)
    with pytest.raises(KeyError) as e:
        root["plain"]
    assert e.value.args == ("plain",)


def test_an_unstorable_item_of_a_tuple_key_is_named(tmp_path: Path) -> None:
    root = persist.open(str(tmp_path / "s.db")).root
    for op in (
        lambda: root.__setitem__((1, object()), 1),
        lambda: root.setdefault((1, (2, object())), 1),
        lambda: root.update([((1, object()), 1)]),
    ):
        with pytest.raises(TypeError, match="'object'"):
            op()
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        root[(1, [2])] = 1
    assert dict(root) == {}


def test_fromkeys_gives_a_plain_dict_to_store(tmp_path: Path) -> None:
    root = persist.open(str(tmp_path / "s.db")).root
    assert persist.Dict.fromkeys("ab") == dict.fromkeys("ab")
    assert persist.Dict.fromkeys(["x", "y"], 0) == {"x": 0, "y": 0}
    assert type(root.fromkeys([1])) is dict
    root["seen"] = persist.Dict.fromkeys(("a", "b"), False)
    assert root["seen"].to_python() == {"a": False, "b": False}
