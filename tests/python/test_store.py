"""The Store API and the object graph: open/close, stats, check, gc, reclamation, deep and
cyclic graphs, shared references, copies between stores, views, iteration, and pbase objects.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import persist
from procs import fork_child, kill_child

# A module-level pbase subclass, so that this process can find it by module and qualified name.
# (getattr: the module must still import, and the other tests run, before pbase exists.)
_pbase: Any = getattr(persist, "pbase", object)


class Person(_pbase):
    inits = 0

    def __init__(self, name: str = "", age: int = 0) -> None:
        type(self).inits += 1
        _pbase.__init__(self)
        self.name = name
        self.age = age

    def greeting(self) -> str:
        return f"{self.name} is {self.age}"


def freed_amount(result: Any) -> float:
    """gc()'s result as one number: an int as is, a dict as the sum of its numbers."""
    if isinstance(result, dict):
        return sum(v for v in result.values() if isinstance(v, (int, float)))
    assert isinstance(result, (int, float)), f"gc() returned {result!r}"
    return result


def drop_proxies() -> None:
    gc.collect()


# --- opening and closing --------------------------------------------------------------------


def test_open_is_a_context_manager(store_path: Path) -> None:
    with persist.open(str(store_path)) as store:
        root = store.root
        assert isinstance(root, persist.Dict)
        root["a"] = [1, 2]
        kept = root["a"]
    with pytest.raises(persist.ClosedError):
        kept.append(3)
    with persist.open(str(store_path)) as store:
        assert store.root["a"] == [1, 2]


def test_open_accepts_a_path_object(store_path: Path) -> None:
    with persist.open(store_path) as store:
        store.root["k"] = "v"
    with persist.open(str(store_path)) as store:
        assert store.root["k"] == "v"


def test_path(store: Any, store_path: Path) -> None:
    assert Path(os.fspath(store.path)).resolve() == store_path.resolve()


def test_open_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.db"
    path.parent.mkdir()
    assert not path.exists()
    with persist.open(str(path)) as store:
        assert len(store.root) == 0
    assert path.is_file() and path.stat().st_size > 0


def test_every_proxy_use_after_close_raises_closed_error(store_path: Path) -> None:
    store = persist.open(str(store_path))
    root = store.root
    root["l"] = [1, 2, 3]
    root["d"] = {"a": 1}
    root["o"] = _pbase()
    lst, dct, obj = root["l"], root["d"], root["o"]
    obj.x = 1
    keys = dct.keys()
    it = iter(lst)
    store.close()
    uses = {
        "root getitem": lambda: root["l"],
        "root setitem": lambda: root.__setitem__("n", 1),
        "root len": lambda: len(root),
        "root contains": lambda: "l" in root,
        "root iter": lambda: list(root),
        "root has_key": lambda: root.has_key("l"),
        "root to_python": lambda: root.to_python(),
        "list getitem": lambda: lst[0],
        "list slice": lambda: lst[0:2],
        "list len": lambda: len(lst),
        "list iter": lambda: list(lst),
        "list old iterator": lambda: next(it),
        "list append": lambda: lst.append(4),
        "list setitem": lambda: lst.__setitem__(0, 9),
        "list delitem": lambda: lst.__delitem__(0),
        "list eq": lambda: lst == [1, 2, 3],
        "dict getitem": lambda: dct["a"],
        "dict get": lambda: dct.get("a"),
        "dict update": lambda: dct.update(b=2),
        "dict pop": lambda: dct.pop("a"),
        "dict view len": lambda: len(keys),
        "dict view iter": lambda: list(keys),
        "object getattr": lambda: obj.x,
        "object setattr": lambda: setattr(obj, "x", 2),
        "object delattr": lambda: delattr(obj, "x"),
        "root lockExcl": lambda: root.lockExcl(),
        "root lockShared": lambda: root.lockShared(),
        "list lockExcl": lambda: lst.lockExcl(timeout=1),
        "dict lockShared": lambda: dct.lockShared(timeout=1),
    }
    for name, use in uses.items():
        with pytest.raises(persist.ClosedError):
            use()
            pytest.fail(f"{name} did not raise")
    store.close()  # closing twice is harmless
    store.close()
    # The data was committed before the close.
    with persist.open(str(store_path)) as again:
        assert again.root["l"] == [1, 2, 3]
        assert again.root["o"].x == 1


def test_many_stores_at_once(tmp_path: Path) -> None:
    stores = [persist.open(str(tmp_path / f"s{i}.db")) for i in range(5)]
    try:
        for i, s in enumerate(stores):
            s.root["who"] = i
            s.root["l"] = [i] * (i + 1)
        for i, s in enumerate(stores):
            assert s.root["who"] == i
            assert s.root["l"] == [i] * (i + 1)
            assert list(s.root) == ["who", "l"]
        stores[2].close()
        stores[0].root["l"].append("more")
        assert stores[1].root["l"] == [1, 1]
        assert stores[4].root["who"] == 4
        with pytest.raises(persist.ClosedError):
            stores[2].root  # noqa: B018
    finally:
        for s in stores:
            s.close()
    with persist.open(str(tmp_path / "s0.db")) as s0:
        assert s0.root["l"] == [0, "more"]


# --- stats, check, gc -----------------------------------------------------------------------

STATS_KEYS = {"file_size", "pages_used", "pages_free", "live_bytes", "objects", "processes"}


def test_stats_keys_and_types(store: Any, store_path: Path) -> None:
    stats = store.stats()
    assert STATS_KEYS <= set(stats)
    for key in STATS_KEYS - {"objects"}:
        assert type(stats[key]) is int and stats[key] >= 0, key
    assert isinstance(stats["objects"], dict)
    assert all(type(k) is str and type(v) is int for k, v in stats["objects"].items())
    assert stats["processes"] == 1
    assert stats["file_size"] == store_path.stat().st_size


def test_stats_follow_the_contents(store: Any) -> None:
    before = store.stats()
    store.root["blob"] = b"x" * (1 << 20)
    with_blob = store.stats()
    assert with_blob["live_bytes"] - before["live_bytes"] >= 1 << 20
    assert with_blob["file_size"] >= 1 << 20
    store.root["l"] = [[], [], {}]
    with_containers = store.stats()
    # Four containers more (whatever the names the store gives their types).
    counts = with_containers["objects"]
    assert sum(counts.values()) - sum(with_blob["objects"].values()) == 4
    assert with_containers["live_bytes"] > with_blob["live_bytes"]
    del store.root["blob"], store.root["l"]
    drop_proxies()
    store.gc()
    final = store.stats()
    assert final["live_bytes"] < with_blob["live_bytes"] - (1 << 20) + 4096
    assert final["objects"] == before["objects"]


def test_stats_count_attached_processes(store: Any, store_path: Path, spawn_py: Any) -> None:
    assert store.stats()["processes"] == 1
    child = spawn_py(
        """
        import sys, persist
        s = persist.open(sys.argv[1])
        print("attached")
        sys.stdin.readline()
        s.close()
        print("detached")
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    child.expect("attached")
    assert store.stats()["processes"] == 2
    child.send("go")
    child.expect("detached")
    assert child.wait()[0] == 0
    assert store.stats()["processes"] == 1


def test_rejected_operation_leaves_stats_unchanged(store: Any) -> None:
    store.root["l"] = list(range(100))
    before = store.stats()
    with pytest.raises(TypeError):
        store.root["l"].extend([[1, 2, 3]] * 50 + [{1, 2, 1j}])
    with pytest.raises(TypeError):
        store.root["x"] = {"a": [1] * 1000, "b": object()}
    assert store.stats() == before
    assert store.root["l"] == list(range(100))
    assert "x" not in store.root


def test_check_on_a_quiet_store(store: Any) -> None:
    store.root["l"] = [1, [2, {"three": (3,)}]]
    store.check()


def test_check_passes_on_a_busy_store(store: Any, store_path: Path, spawn_py: Any) -> None:
    root = store.root
    root["l"] = []
    root["d"] = {}
    stop = store_path.parent / "stop"
    # The writer keeps changing the store until told to stop (bounded all the same).
    writer = spawn_py(
        """
        import os, sys, persist
        s = persist.open(sys.argv[1])
        root = s.root
        lst, d = root["l"], root["d"]
        i = 0
        while i < 1_000_000 and not os.path.exists(sys.argv[2]):
            if i == 100:
                # Busy for real before the checks begin (on a loaded machine the parent's
                # checks could otherwise all run before the first change).
                print("started")
            lst.append([i, {"i": i}])
            d[i % 50] = "x" * (i % 300)
            if i % 7 == 0:
                del lst[0]
            if len(lst) > 500:
                del lst[:250]
            if i % 100 == 0:
                root["blob"] = bytes(i % 5000)
            i += 1
        s.close()
        print("done", i)
        """,
        cwd=store_path.parent,
        args=(str(store_path), str(stop)),
    )
    writer.expect("started")
    for _ in range(5):
        store.check()
    stop.touch()
    done = writer.expect("done *")
    assert writer.wait()[0] == 0
    assert int(done.split()[1]) > 0
    store.check()
    assert 0 < len(root["l"]) <= 501


def test_gc_frees_an_unreachable_cycle(store: Any) -> None:
    root = store.root
    root["keep"] = [1, 2, 3]
    initial = store.stats()
    root["cycle"] = []
    cycle = root["cycle"]
    cycle.append(cycle)  # a list that contains itself
    assert repr(cycle) == "[[...]]"
    cycle.append(b"x" * 100_000)
    root["a"] = {}
    root["b"] = {"a": root["a"]}
    root["a"]["b"] = root["b"]  # and a cycle of two dicts
    with_cycles = store.stats()
    del root["cycle"], root["a"], root["b"]
    # The proxy still holds the list: gc() must not free it.
    store.gc()
    assert cycle[1] == b"x" * 100_000
    cycle.append("still alive")
    assert len(cycle) == 3 and repr(cycle[0])[:2] == "[["
    del cycle
    drop_proxies()
    freed = store.gc()
    assert freed_amount(freed) > 0, freed
    # Nothing is left to free.
    assert freed_amount(store.gc()) == 0
    after = store.stats()
    assert after["live_bytes"] < with_cycles["live_bytes"] - 100_000
    assert after["objects"] == initial["objects"]
    assert root.to_python() == {"keep": [1, 2, 3]}
    store.check()


# A 1 MB value (131,072 ints, or 1 MiB of bytes) assigned to one key again and again: without
# reclamation the file would grow by at least 1 MB a time (2 GB for the bytes; the list, whose
# every assignment converts 131,072 ints, is assigned 500 times to keep the run short: 500 MB).
@pytest.mark.parametrize(("kind", "times"), [("list", 500), ("bytes", 2000)])
def test_reassigning_a_big_value_reuses_space(
    store: Any, store_path: Path, kind: str, times: int
) -> None:
    # Two different values in turn, so that no store could skip an assignment as a no-op.
    if kind == "list":
        values: list[Any] = [list(range(131072)), list(range(1, 131073))]
    else:
        values = [bytes(range(256)) * 4096, bytes(range(255, -1, -1)) * 4096]
    root = store.root
    for i in range(10):
        root["big"] = values[i % 2]
    base_size = os.path.getsize(store_path)
    base_objects = store.stats()["objects"]
    for i in range(times):
        root["big"] = values[i % 2]
    grown = os.path.getsize(store_path) - base_size
    assert grown < 64 << 20, f"file grew by {grown} bytes"
    assert store.stats()["file_size"] - base_size < 64 << 20
    assert store.stats()["objects"] == base_objects
    assert root["big"] == values[(times - 1) % 2]


# --- deep and cyclic graphs -----------------------------------------------------------------

DEPTH = 100_000


def test_very_deep_nesting(store: Any) -> None:
    deep: list[Any] = []
    for _ in range(DEPTH):
        deep = [deep]
    root = store.root
    root["deep"] = deep
    # to_python() of a 100,000-deep list does not crash, and keeps the depth.
    copy = root["deep"].to_python()
    depth = 0
    while copy:
        assert type(copy) is list and len(copy) == 1
        copy = copy[0]
        depth += 1
    assert depth == DEPTH
    # repr raises RecursionError, as list's does.
    with pytest.raises(RecursionError):
        repr(deep)
    with pytest.raises(RecursionError):
        repr(root["deep"])
    # Walk it through proxies.
    p = root["deep"]
    for _ in range(DEPTH):
        p = p[0]
    assert len(p) == 0
    # It can be freed and the store stays sound.
    del root["deep"], p
    drop_proxies()
    store.gc()
    store.check()
    root["after"] = 1
    assert root.to_python() == {"after": 1}


def test_recursive_repr(store: Any) -> None:
    root = store.root
    root["l"] = []
    root["l"].append(root["l"])
    assert repr(root["l"]) == "[[...]]"
    root["d"] = {}
    root["d"][1] = root["d"]
    assert repr(root["d"]) == "{1: {...}}"
    root["m"] = [1]
    root["m"].append({"x": root["m"]})
    assert repr(root["m"]) == "[1, {'x': [...]}]"
    assert str(root["m"]) == "[1, {'x': [...]}]"


def test_to_python_keeps_cycles_and_sharing(store: Any) -> None:
    root = store.root
    root["l"] = [1]
    root["l"].append(root["l"])
    plain = root["l"].to_python()
    assert type(plain) is list
    assert plain[0] == 1 and plain[1] is plain
    root["shared"] = [1, 2]
    root["s"] = {"x": root["shared"], "y": [root["shared"]]}
    s = root["s"].to_python()
    assert type(s) is dict and type(s["x"]) is list
    assert s["x"] is s["y"][0]
    assert s == {"x": [1, 2], "y": [[1, 2]]}
    # The copy is plain: changing it leaves the store alone.
    s["x"].append(3)
    assert root["shared"] == [1, 2]


def test_shared_references(store: Any, store_path: Path, run_py: Any) -> None:
    root = store.root
    root["a"] = [1]
    root["b"] = root["a"]
    root["b"].append(2)
    assert root["a"] == [1, 2]
    root["a"].append(3)
    assert root["b"] == [1, 2, 3]
    root["da"] = {"k": 1}
    root["db"] = root["da"]
    root["db"]["k"] = 2
    assert root["da"] == {"k": 2}
    store.flush()
    # Another process sees one object under two names.
    run_py(
        """
        import sys, persist
        with persist.open(sys.argv[1]) as s:
            s.root["b"].append("from child")
            assert s.root["a"][-1] == "from child", s.root["a"]
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert root["a"] == [1, 2, 3, "from child"]
    del root["a"]
    assert root["b"] == [1, 2, 3, "from child"]


def test_a_proxy_inside_a_plain_container_is_a_reference(store: Any) -> None:
    root = store.root
    root["a"] = [1]
    root["c"] = [root["a"], {"k": root["a"], "t": (1, 2)}, [[root["a"]]]]
    root["a"].append("z")
    assert root["c"][0] == [1, "z"]
    assert root["c"][1]["k"] == [1, "z"]
    assert root["c"][2][0][0] == [1, "z"]
    root["c"][1]["k"].append("via c")
    assert root["a"] == [1, "z", "via c"]
    plain = root["c"].to_python()
    assert plain[0] is plain[1]["k"] is plain[2][0][0]
    # A plain container is copied in: changing the original afterwards changes nothing.
    outside = [1, 2]
    root["copy"] = outside
    outside.append(3)
    assert root["copy"] == [1, 2]


def test_a_container_of_another_store_is_copied(store: Any, tmp_path: Path) -> None:
    store.root["a"] = [1, {"k": [2]}]
    with persist.open(str(tmp_path / "other.db")) as other:
        other.root["x"] = store.root["a"]
        other.root["y"] = [store.root["a"]]
        store.root["a"].append("only in the first")
        store.root["a"][1]["k"].append("only in the first")
        assert other.root["x"] == [1, {"k": [2]}]
        assert other.root["y"] == [[1, {"k": [2]}]]
        other.root["x"].append("only in the other")
        assert store.root["a"] == [1, {"k": [2, "only in the first"]}, "only in the first"]
        store.close()
        assert other.root["x"] == [1, {"k": [2]}, "only in the other"]


def test_proxies_are_unhashable(store: Any) -> None:
    root = store.root
    root["l"] = [1]
    root["d"] = {}
    for proxy in (root, root["l"], root["d"]):
        with pytest.raises(TypeError):
            hash(proxy)
        with pytest.raises(TypeError):
            {proxy: 1}  # noqa: B018
        with pytest.raises(TypeError):
            {proxy}  # noqa: B018


def test_dict_views_are_live(store: Any, store_path: Path, run_py: Any) -> None:
    root = store.root
    root["d"] = {"a": 1}
    d = root["d"]
    keys, values, items = d.keys(), d.values(), d.items()
    d["b"] = 2
    assert "b" in keys and len(keys) == 2
    assert list(keys) == ["a", "b"]
    assert list(values) == [1, 2]
    assert ("b", 2) in items and list(items) == [("a", 1), ("b", 2)]
    del d["a"]
    assert "a" not in keys and len(values) == 1
    store.flush()
    run_py(
        """
        import sys, persist
        with persist.open(sys.argv[1]) as s:
            s.root["d"]["c"] = 3
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert list(items) == [("b", 2), ("c", 3)]
    assert keys == {"b", "c"}


def test_dict_iteration_fails_if_the_size_changes(store: Any) -> None:
    root = store.root
    root["d"] = {1: 1, 2: 2}
    d = root["d"]
    with pytest.raises(RuntimeError):
        for k in d:
            d[k + 100] = 0
    with pytest.raises(RuntimeError):
        for k in d.keys():
            del d[k]
    with pytest.raises(RuntimeError):
        for _ in d.items():
            d.popitem()
    # Changing values only is allowed, as for dict.
    root["e"] = {1: 1, 2: 2}
    e = root["e"]
    for k in e:
        e[k] = -k
    assert e == {1: -1, 2: -2}


def test_dict_iteration_fails_if_another_process_changes_the_size(
    store: Any, store_path: Path, run_py: Any
) -> None:
    store.root["d"] = {i: i for i in range(10)}
    d = store.root["d"]
    it = iter(d)
    assert next(it) == 0
    store.flush()
    run_py(
        """
        import sys, persist
        with persist.open(sys.argv[1]) as s:
            s.root["d"]["new"] = 1
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    with pytest.raises(RuntimeError):
        next(it)


def test_list_iterator_walks_by_index(store: Any) -> None:
    store.root["l"] = [0, 1, 2, 3, 4, 5]
    plain = [0, 1, 2, 3, 4, 5]
    lst = store.root["l"]
    pit, lit = iter(plain), iter(lst)
    steps = []
    for change in [
        lambda s: s.insert(0, "x"),  # the iterator sees 0 again
        lambda s: s.__delitem__(slice(0, 3)),  # and skips what moved below its index
        lambda s: s.append("late"),
        lambda s: None,
    ]:
        a, b = next(pit), next(lit)
        assert a == b
        steps.append(a)
        change(plain)
        change(lst)
    assert steps == [0, 0, 4, 5]
    assert list(pit) == list(lit) == ["late"]
    # Once exhausted, it stays exhausted, as list's does.
    plain.append("later")
    lst.append("later")
    assert list(pit) == list(lit) == []


# --- pbase objects --------------------------------------------------------------------------


def test_pbase_attributes(store: Any) -> None:
    root = store.root
    root["p"] = Person("Ann", 30)
    p = root["p"]
    assert type(p) is Person
    assert p.name == "Ann" and p.age == 30
    assert p.greeting() == "Ann is 30"
    p.city = "Oslo"
    assert root["p"].city == "Oslo"
    del p.city
    with pytest.raises(AttributeError):
        p.city  # noqa: B018
    with pytest.raises(AttributeError):
        root["p"].city  # noqa: B018
    with pytest.raises(AttributeError):
        del p.city
    assert not hasattr(p, "missing")
    p.tags = ["a"]
    p.tags.append("b")  # a stored list: changed in place
    assert root["p"].tags == ["a", "b"]


def test_reading_an_object_does_not_call_init(store: Any) -> None:
    root = store.root
    root["p"] = Person("Bob", 40)
    count = Person.inits
    for _ in range(3):
        assert root["p"].greeting() == "Bob is 40"
    assert Person.inits == count


def test_augmented_assignment_on_an_attribute_persists(
    store: Any, store_path: Path, run_py: Any
) -> None:
    store.root["Joe"] = Person("Joe", 27)
    store.root["Joe"].age += 1
    assert store.root["Joe"].age == 28
    store.flush()
    out = run_py(
        """
        import sys, persist
        with persist.open(sys.argv[1]) as s:
            s.root["Joe"].age += 1
            print(s.root["Joe"].age)
        """,
        cwd=store_path.parent,
        args=(str(store_path),),
    )
    assert out == "29\n"
    assert store.root["Joe"].age == 29


SECRET_MODULE = """\
import persist

import os

# A witness beside this file: one line per import of this module.
with open(os.path.join(os.path.dirname(__file__), "imported.log"), "a") as f:
    f.write("imported\\n")

class Thing(persist.pbase):
    def __init__(self, name, n):
        persist.pbase.__init__(self)
        self.name = name
        self.n = n
        self.items = [1, {"two": 2}]
"""


def test_unknown_class_gives_a_persist_object(
    store_path: Path, tmp_path: Path, run_py: Any
) -> None:
    writer_dir = tmp_path / "writer"
    writer_dir.mkdir()
    (writer_dir / "secretmod.py").write_text(SECRET_MODULE)
    run_py(
        """
        import sys, persist, secretmod
        with persist.open(sys.argv[1]) as s:
            s.root["obj"] = secretmod.Thing("thing", 3)
        """,
        cwd=writer_dir,
        args=(str(store_path),),
    )
    log = writer_dir / "imported.log"
    assert log.read_text() == "imported\n"

    # A reader that could import the module (it is on its path) but has not.
    reader_dir = tmp_path / "reader"
    reader_dir.mkdir()
    out = run_py(
        """
        import sys, persist
        sys.path.insert(0, sys.argv[2])
        with persist.open(sys.argv[1]) as s:
            obj = s.root["obj"]
            print(type(obj) is persist.Object, obj.name, obj.n, obj.items.to_python())
            obj.n = 4
            obj.extra = "added by a reader"
        print("secretmod" in sys.modules)
        """,
        cwd=reader_dir,
        args=(str(store_path), str(writer_dir)),
    )
    assert out == "True thing 3 [1, {'two': 2}]\nFalse\n"
    assert log.read_text() == "imported\n"

    # This process has not imported it either.
    assert "secretmod" not in sys.modules
    with persist.open(str(store_path)) as s:
        obj = s.root["obj"]
        assert type(obj) is persist.Object
        assert obj.name == "thing" and obj.n == 4 and obj.extra == "added by a reader"
        with pytest.raises(AttributeError):
            obj.missing  # noqa: B018
    assert "secretmod" not in sys.modules

    # The writer, which imports the module, gets its class back, with the reader's changes.
    out = run_py(
        """
        import sys, persist, secretmod
        with persist.open(sys.argv[1]) as s:
            obj = s.root["obj"]
            print(type(obj) is secretmod.Thing, obj.n, obj.extra)
        """,
        cwd=writer_dir,
        args=(str(store_path),),
    )
    assert out == "True 4 added by a reader\n"
    assert log.read_text() == "imported\nimported\n"


def test_only_a_pbase_subclass_is_ever_used(store_path: Path, tmp_path: Path, run_py: Any) -> None:
    writer_dir = tmp_path / "writer"
    writer_dir.mkdir()
    (writer_dir / "shapes.py").write_text(
        "import persist\n"
        "class Thing(persist.pbase):\n"
        "    pass\n"
        "class Other(persist.pbase):\n"
        "    pass\n"
    )
    run_py(
        """
        import sys, persist, shapes
        with persist.open(sys.argv[1]) as s:
            t = shapes.Thing(); t.v = 1
            o = shapes.Other(); o.v = 2
            s.root["t"] = t
            s.root["o"] = o
        """,
        cwd=writer_dir,
        args=(str(store_path),),
    )
    # A reader whose module of the same name has a plain class Thing, and a module
    # __getattr__ that would hand out a pbase subclass for any other name.
    reader_dir = tmp_path / "reader"
    reader_dir.mkdir()
    (reader_dir / "shapes.py").write_text(
        "import persist\n"
        "class Thing:\n"
        "    def __init__(self):\n"
        "        print('Thing.__init__ ran')\n"
        "class Impostor(persist.pbase):\n"
        "    pass\n"
        "def __getattr__(name):\n"
        "    print('module __getattr__ ran for', name)\n"
        "    return Impostor\n"
    )
    out = run_py(
        """
        import sys, persist, shapes
        with persist.open(sys.argv[1]) as s:
            t, o = s.root["t"], s.root["o"]
            print(type(t).__name__, type(t) is persist.Object, t.v)
            print(type(o).__name__, type(o) is persist.Object, o.v)
        """,
        cwd=reader_dir,
        args=(str(store_path),),
    )
    assert out == "Object True 1\nObject True 2\n"


def test_processes_that_wrote_and_closed_leave_nothing_unreachable(tmp_path: Path) -> None:
    """Each writer's undo log goes back at close (it used to stay allocated, unreachable)."""
    path = tmp_path / "s.db"
    for i in range(5):
        with persist.open(path, durable=(i % 2 == 1)) as store:
            store.root[f"k{i}"] = list(range(100))
            try:
                with store.transaction():
                    store.root["x"] = i
                    raise ValueError("rolled back")
            except ValueError:
                pass
    with persist.open(path) as store:
        report = store.check()
    assert report["unreachable_blocks"] == 0, report


def test_a_container_that_holds_itself_equals_itself(tmp_path):
    # Two proxies of one stored container are two Python objects; comparing them must not
    # walk a self-reference without end (plain dicts and lists compare items by identity).
    with persist.open(str(tmp_path / "selfref.db")) as s:
        s.root["d"] = {}
        d = s.root["d"]
        d["self"] = d
        s.root["l"] = [1]
        lst = s.root["l"]
        lst.append(lst)
        assert d["self"]["self"] == d
        assert not (d["self"] != d)
        assert lst[1] == lst and lst[1] <= lst and not (lst[1] < lst)
        assert s.root["d"] == d["self"]


def test_create_false_never_makes_a_store(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(FileNotFoundError):
        persist.open(str(missing), create=False)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(persist.FormatError):
        persist.open(str(empty), create=False)
    assert empty.read_bytes() == b""
    with persist.open(str(empty)) as s:  # the default makes an empty file a store
        s.root["x"] = 1
    with persist.open(str(empty), create=False) as s:
        assert s.root["x"] == 1


def test_check_gc_and_stats_give_up_after_their_timeout(tmp_path):
    path = str(tmp_path / "busy.db")
    with persist.open(path) as s:
        s.root["x"] = 1
    r_fd, w_fd = os.pipe()

    def holder() -> None:
        os.close(r_fd)
        h = persist.open(path)
        h.root.lockExcl()
        os.write(w_fd, b"L")
        time.sleep(30)

    pid = fork_child(holder)
    os.close(w_fd)
    try:
        assert os.read(r_fd, 1) == b"L"
        with persist.open(path) as s:
            for call in (s.check, s.gc, s.stats):
                t = time.perf_counter()
                with pytest.raises(persist.LockTimeout):
                    call(timeout=0.2)
                assert time.perf_counter() - t < 5
    finally:
        os.close(r_fd)
        kill_child(pid)
