"""The command line, ``python -m persist COMMAND``, run as users run it: in a fresh process.

The bugs these tests keep out: a mistyped path given to ``info`` or ``check`` silently became a
new, empty store (``persist.open`` creates what is missing, and turns an empty file into a
store); a damaged store printed a traceback instead of one line; a dump that looked right but
came back different (a tuple as a list, ``b"x"`` as ``"x"``, ``True`` as ``1``, ``-0.0`` as
``0.0``, a big int rounded by a JSON reader, two names for one list turned into two lists, a
cycle unrolled, a user object's class lost); and a compaction that read a store mid-change or
gave a file larger than the one it replaced.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import persist
from conftest import child_env
from persist._pbase import _core

ODD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]
# A unique int: its bytes find its block in the file (see damaged_graph).
MARK = 0x0123456789ABCDEF_FEDCBA9876543210_55


class Person(persist.pbase):
    def __init__(self, name: str, age: int) -> None:
        persist.pbase.__init__(self)
        self.name = name
        self.age = age


def cli(*args: Any, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "persist", *map(str, args)],
        input=stdin,
        capture_output=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "backslashreplace"),
        proc.stderr.decode("utf-8", "backslashreplace"),
    )


def ok(*args: Any) -> subprocess.CompletedProcess[str]:
    r = cli(*args)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def assert_one_line_error(r: subprocess.CompletedProcess[str], command: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"persist {command}: "), r.stderr
    if command == "dump":
        # A dump streams: what it wrote before the failure has no end line, so no load takes
        # it for a whole dump.
        assert '{"end":' not in r.stdout
    else:
        assert r.stdout == ""


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def fill(root: persist.Dict) -> None:
    """Every kind of value, key and identity a dump must carry."""
    shared = [1, 2, 3]
    shared_dict = {"x": 1}
    shared_set = {1, "a", (1, (2, b"x")), 2.5, frozenset({3, "f"}), 2**70}
    cyc: list[Any] = ["cycle"]
    cyc.append(cyc)
    joe = Person("Joe", 27)
    joe.friend = joe
    joe.things = shared
    ghost_class = type(
        "Ghost", (persist.pbase,), {"__module__": "nowhere.mod", "__qualname__": "Outer.Ghost"}
    )
    ghost = ghost_class()
    ghost.x = 1
    ghost.back = cyc
    root.update(
        {
            "none": None,
            "true": True,
            "false": False,
            "one": 1,
            "zero": 0,
            "edge": 2**53,
            "edge1": 2**53 + 1,
            "big": 2**200 + 1,
            "neg_big": -(2**90),
            "huge": 7**6000,  # more digits than int() reads from decimal text by default
            "mark": [MARK],
            "float": 0.1,
            "one_float": 1.0,
            "negzero": -0.0,
            "inf": math.inf,
            "ninf": -math.inf,
            "nan": math.nan,
            "odd_nan": ODD_NAN,
            "neg_nan": NEG_NAN,
            "tiny": 5e-324,
            "str": "héllo ☃ 𝄞 \u2028 \x85 \x00",
            "surrogate": "a\udc80b\ud800",
            "empty": "",
            "bytes": b"\x00\xff",
            "bytes_text": b"text",
            "ebytes": b"",
            "tuple": (1, (2, "x"), (), (b"y",)),
            "list": [1, [2], []],
            "dict": {"k": {"n": 1}, "e": {}},
            1: "int key",
            2.5: "float key",
            -0.0: "negzero key",
            (1, "a", None, b"b", (2,)): "tuple key",
            b"raw": "bytes key",
            None: "none key",
            "a\udc80": "surrogate key",
            "shared_a": shared,
            "shared_b": shared,
            "shared_d1": shared_dict,
            "shared_d2": shared_dict,
            "shared_s1": shared_set,
            "shared_s2": [shared_set, set(), {None}],
            "in_tuple": (shared, cyc),
            "cyc": cyc,
            "joe": joe,
            "ghost": ghost,
        }
    )
    root["self"] = root


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    path = tmp_path / "rich.db"
    with persist.open(path) as s:
        fill(s.root)
    return path


def same_graph(a: Any, b: Any) -> None:
    """Asserts that two plain graphs are equal, floats by their bits, with the same sharing
    and cycles (a bijection between their containers)."""
    pairs: dict[int, int] = {}
    back: dict[int, int] = {}
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        assert type(x) is type(y), (x, y)
        if type(x) is float:
            assert bits(x) == bits(y), (x, y)
        elif type(x) is set:
            if id(x) in pairs:
                assert pairs[id(x)] == id(y)
                continue
            assert id(y) not in back
            pairs[id(x)], back[id(y)] = id(y), id(x)
            assert x == y, (x, y)
        elif type(x) in (list, dict, tuple):
            if type(x) is not tuple:
                if id(x) in pairs:
                    assert pairs[id(x)] == id(y)
                    continue
                assert id(y) not in back
                pairs[id(x)], back[id(y)] = id(y), id(x)
            assert len(x) == len(y)
            if type(x) is dict:
                xk, yk = list(x), list(y)
                stack.extend(zip(xk, yk, strict=True))
                stack.extend(zip(x.values(), y.values(), strict=True))
            else:
                stack.extend(zip(x, y, strict=True))
        else:
            assert x == y, (x, y)


# ---- every command on a good store ------------------------------------------------------


def test_info_prints_the_figures(rich: Path) -> None:
    out = ok("info", rich).stdout
    for word in ("file size", "pages", "live bytes", "objects", "processes"):
        assert word in out
    s = json.loads(ok("info", "--json", rich).stdout)
    assert s["file_size"] == os.path.getsize(rich)
    assert s["pages_used"] > 0 and s["pages_free"] >= 0 and s["live_bytes"] > 0
    assert s["objects"]["dict"] >= 3 and s["objects"]["list"] >= 3 and s["objects"]["object"] == 2
    assert s["other_processes"] == 0


def test_info_counts_other_attached_processes(rich: Path) -> None:
    with persist.open(rich):
        s = json.loads(ok("info", "--json", rich).stdout)
    assert s["other_processes"] == 1


def test_check_says_ok(rich: Path) -> None:
    out = ok("check", rich).stdout
    assert out.startswith(f"OK: {rich}: ")
    r = json.loads(ok("check", "--json", rich).stdout)
    assert r["ok"] is True and r["objects"] >= 8 and r["unreachable_blocks"] == 0


def test_gc_frees_an_unreachable_cycle(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with persist.open(path) as s:
        cyc: list[Any] = [b"x" * 100]
        cyc.append(cyc)
        s.root["c"] = cyc
        del s.root["c"]
    assert json.loads(ok("check", "--json", path).stdout)["unreachable_blocks"] > 0
    freed = json.loads(ok("gc", "--json", path).stdout)["freed"]
    assert freed["objects"] >= 1 and freed["bytes"] > 0
    assert json.loads(ok("check", "--json", path).stdout)["unreachable_blocks"] == 0
    assert "freed 0 unreachable objects" in ok("gc", path).stdout


def test_bench_runs_every_workload() -> None:
    out = json.loads(ok("bench", "--sizes", "smoke", "--json").stdout)
    rows = [r["workload"] for r in out["rows"]]
    assert len(rows) == 8
    for prefix in ("W1 counter P=1", "W1 counter P=2", "W2 kv put", "W2 kv get", "W2 kv update"):
        assert any(r.startswith(prefix) for r in rows), rows
    assert any(r.startswith("W4 list append") for r in rows)
    assert any(r.startswith("W5 blob get") for r in rows)
    assert all(r["rate"] > 0 for r in out["rows"])


# ---- dump and load ----------------------------------------------------------------------


def test_dump_is_json_lines_with_a_header_and_an_end(rich: Path) -> None:
    text = ok("dump", rich).stdout
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["format"] == "persist-dump" and lines[0]["version"] == 4
    assert lines[-1] == {"end": len(lines) - 2}
    records = {r["id"]: r for r in lines[1:-1]}
    root = dict((json.dumps(k), v) for k, v in records[lines[0]["root"]]["items"])
    assert root['"big"'] == {"int": format(2**200 + 1, "x")}
    assert root['"edge"'] == 2**53 and root['"edge1"'] == {"int": format(2**53 + 1, "x")}
    assert root['"negzero"'] == 0.0 and '["negzero",-0.0]' in text
    assert root['"one_float"'] == 1.0 and '["one_float",1.0]' in text
    assert root['"nan"'] == {"float": "nan"} and root['"inf"'] == {"float": "inf"}
    assert root['"odd_nan"'] == {"float_bits": "7ff8000000000001"}
    assert root['"bytes"'] == {"bytes": "AP8="}
    assert root['"surrogate"'] == {"wtf8": "Ye2ygGLtoIA="}
    assert root['"self"'] == {"ref": lines[0]["root"]}
    assert root['"shared_a"'] == root['"shared_b"']
    assert records[root['"joe"']["ref"]]["class"] == f"{Person.__module__}:Person"
    assert records[root['"ghost"']["ref"]]["class"] == "nowhere.mod:Outer.Ghost"


def test_dump_to_a_file_equals_dump_to_stdout(rich: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    ok("dump", rich, "-o", out)
    assert out.read_text(encoding="utf-8") == ok("dump", rich).stdout


def test_dump_load_round_trip_keeps_everything(rich: Path, tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    dst = tmp_path / "loaded.db"
    ok("dump", rich, "-o", dump)
    assert "loaded" in ok("load", dump, dst).stdout
    assert ok("dump", dst).stdout == dump.read_text(encoding="utf-8")
    ok("check", dst)
    with persist.open(rich) as a, persist.open(dst) as b:
        same_graph(a.root.to_python(), b.root.to_python())
        r = b.root
        assert r["true"] is True and r["false"] is False and type(r["one"]) is int
        assert r["big"] == 2**200 + 1 and r["neg_big"] == -(2**90) and r["huge"] == 7**6000
        assert type(r["one_float"]) is float and bits(r["negzero"]) == bits(-0.0)
        assert math.isnan(r["nan"]) and r["inf"] == math.inf and r["ninf"] == -math.inf
        assert bits(r["odd_nan"]) == bits(ODD_NAN) and bits(r["neg_nan"]) == bits(NEG_NAN)
        assert r["tiny"] == 5e-324
        assert r["str"] == "héllo ☃ 𝄞 \u2028 \x85 \x00" and r["surrogate"] == "a\udc80b\ud800"
        assert type(r["bytes_text"]) is bytes and type(r["empty"]) is str
        assert r["tuple"] == (1, (2, "x"), (), (b"y",)) and type(r["tuple"][1]) is tuple
        assert type(r["list"]) is persist.List and type(r["dict"]["k"]) is persist.Dict
        for key, want in [
            (1, "int key"),
            (2.5, "float key"),
            ((1, "a", None, b"b", (2,)), "tuple key"),
            (b"raw", "bytes key"),
            (None, "none key"),
            ("a\udc80", "surrogate key"),
        ]:
            assert r[key] == want
        assert [bits(k) for k in r if type(k) is float and k == 0] == [bits(-0.0)]
        # Identity: one container under several names, cycles, the root itself.
        ident = r["shared_a"]._ident
        assert r["shared_b"]._ident == ident and r["in_tuple"][0]._ident == ident
        assert r["shared_d1"]._ident == r["shared_d2"]._ident
        assert r["cyc"][1]._ident == r["cyc"]._ident == r["in_tuple"][1]._ident
        assert r["self"]._ident == r._ident
        # User objects: the class name is kept; this process imported Person, not Ghost.
        joe = r["joe"]
        assert type(joe) is Person and joe.name == "Joe" and joe.age == 27
        assert _core(joe.friend)._ident == _core(joe)._ident
        assert joe.things._ident == ident
        ghost = r["ghost"]
        assert type(ghost) is persist.Object and ghost.p_class == "nowhere.mod:Outer.Ghost"
        assert ghost.x == 1 and ghost.back._ident == r["cyc"]._ident


def test_load_reads_a_hand_written_dump(tmp_path: Path) -> None:
    # What another language would write: records in any order, references forward and back.
    text = "\n".join(
        [
            '{"format":"persist-dump","version":1,"root":7}',
            '{"id":3,"type":"list","items":[1,{"ref":3},{"ref":5}]}',
            '{"id":7,"type":"dict","items":[["l",{"ref":3}],[{"tuple":[1,2]},{"ref":5}]]}',
            '{"id":5,"type":"object","class":"os:system","attrs":[["cmd","echo hi"]]}',
            '{"end":3}',
        ]
    )
    dump = tmp_path / "hand.jsonl"
    dump.write_text(text + "\n", encoding="utf-8")
    ok("load", dump, tmp_path / "h.db")
    with persist.open(tmp_path / "h.db") as s:
        r = s.root
        assert r["l"][0] == 1 and r["l"][1]._ident == r["l"]._ident
        obj = r[(1, 2)]
        # os.system is not a pbase subclass: nothing is ever run, the object is a persist.Object.
        assert type(obj) is persist.Object and obj.p_class == "os:system"
        assert obj.cmd == "echo hi" and _core(r["l"][2])._ident == _core(obj)._ident


def test_load_from_stdin(rich: Path, tmp_path: Path) -> None:
    text = ok("dump", rich).stdout
    r = cli("load", "-", tmp_path / "in.db", stdin=text.encode("utf-8"))
    assert r.returncode == 0, r.stderr
    assert ok("dump", tmp_path / "in.db").stdout == text


def test_load_refuses_an_existing_destination(rich: Path, tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    ok("dump", rich, "-o", dump)
    before = rich.read_bytes()
    r = cli("load", dump, rich)
    assert_one_line_error(r, "load")
    assert "already exists" in r.stderr
    assert rich.read_bytes() == before


@pytest.mark.parametrize(
    "damage",
    ["no end line", "cut mid-line", "random bytes", "empty", "unknown tag", "dangling ref"],
)
def test_load_refuses_a_bad_dump_and_leaves_no_store(
    rich: Path, tmp_path: Path, damage: str
) -> None:
    text = ok("dump", rich).stdout
    lines = text.splitlines(keepends=True)
    bad = {
        "no end line": "".join(lines[:-1]),
        "cut mid-line": text[: len(text) // 2],
        "random bytes": random.Random(1).randbytes(5000).decode("latin-1"),
        "empty": "",
        "unknown tag": lines[0] + '{"id":0,"type":"list","items":[{"set":[1]}]}\n{"end":1}\n',
        "dangling ref": lines[0] + '{"id":0,"type":"dict","items":[["a",{"ref":9}]]}\n{"end":1}\n',
    }[damage]
    dump = tmp_path / "bad.jsonl"
    dump.write_text(bad, encoding="latin-1" if damage == "random bytes" else "utf-8")
    dst = tmp_path / "new.db"
    assert_one_line_error(cli("load", dump, dst), "load")
    assert not dst.exists() and not Path(str(dst) + ".lock").exists()


# ---- compact ----------------------------------------------------------------------------


def test_compact_preserves_content(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    content = {
        "users": {
            f"u{i}": {"name": f"user {i}", "tags": [i, str(i)], "t": (i, b"x")} for i in range(300)
        },
        "log": list(range(1000)),
        "big": 2**100,
        ("k", 1): [None, True, 1.5],
    }
    with persist.open(src) as s:
        s.root.update(content)
    ok("compact", src, dst)
    assert os.path.getsize(dst) <= os.path.getsize(src)
    with persist.open(src) as a, persist.open(dst) as b:
        assert a.root.to_python() == b.root.to_python() == content


def test_compact_keeps_identity_cycles_and_objects(rich: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c.db"
    ok("compact", rich, dst)
    assert os.path.getsize(dst) <= os.path.getsize(rich)
    assert ok("dump", dst).stdout == ok("dump", rich).stdout
    with persist.open(rich) as a, persist.open(dst) as b:
        same_graph(a.root.to_python(), b.root.to_python())
        assert b.root["shared_a"]._ident == b.root["joe"].things._ident


def test_a_large_graph_is_built_in_batches_with_identity_kept(
    rich: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Graphs beyond _AT_ONCE records are built in many small operations (a scratch list of
    # empty containers, filled later by reference); force that path on the rich store, with
    # batches of 3, and compare as compact's own test does.
    from persist import _cli_dump, _cli_load

    monkeypatch.setattr(_cli_load, "_AT_ONCE", 0)
    monkeypatch.setattr(_cli_load, "_BATCH", 3)
    with persist.open(rich) as a:
        records = list(_cli_dump.walk(a.root))
    dst = tmp_path / "batched.db"
    with persist.open(dst) as b:
        assert _cli_load.build(0, records, b) == len(records)
        assert list(b.root) == [k for k, _ in records[0].items]  # the scratch key is gone
    assert ok("dump", dst).stdout == ok("dump", rich).stdout
    with persist.open(rich) as a, persist.open(dst) as b:
        same_graph(a.root.to_python(), b.root.to_python())
        assert b.root["shared_a"]._ident == b.root["joe"].things._ident
        assert b.check()["unreachable_blocks"] == 0


def test_compact_after_many_deletes_gives_a_smaller_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    with persist.open(src) as s:
        s.root.update({f"k{i}": {"n": i, "pad": "x" * 200, "l": [i]} for i in range(20_000)})
        for i in range(20_000):
            if i % 10:
                del s.root[f"k{i}"]
        kept = s.root.to_python()
    ok("compact", src, dst)
    assert os.path.getsize(dst) < os.path.getsize(src) / 2
    ok("check", dst)
    with persist.open(dst) as b:
        assert b.root.to_python() == kept


def test_compact_refuses_an_existing_destination(rich: Path, tmp_path: Path) -> None:
    dst = tmp_path / "there.db"
    dst.write_bytes(b"mine")
    r = cli("compact", rich, dst)
    assert_one_line_error(r, "compact")
    assert dst.read_bytes() == b"mine"
    assert_one_line_error(cli("compact", rich, rich), "compact")


WRITER = """
import os, sys, persist
s = persist.open(sys.argv[1]); r = s.root
print("ready", flush=True)
n = 0
while not os.path.exists(sys.argv[2]):
    r.lockExcl()
    try:
        r["a"] -= 1
        r["log"].append(n)
        r["b"] += 1
    finally:
        r.unlock()
    n += 1
print("wrote", n, flush=True)
"""


def test_compact_of_a_store_in_use_is_a_consistent_snapshot(tmp_path: Path, spawn_py: Any) -> None:
    src, stop = tmp_path / "busy.db", tmp_path / "stop"
    with persist.open(src) as s:
        s.root.update({"a": 0, "b": 0, "log": []})
    writer = spawn_py(WRITER, cwd=tmp_path, args=(str(src), str(stop)))
    writer.expect("ready")
    copies = [tmp_path / f"copy{i}.db" for i in range(3)]
    for dst in copies:
        ok("compact", src, dst)
    stop.touch()
    writer.expect("wrote *")
    assert writer.wait()[0] == 0
    for dst in copies:
        with persist.open(dst) as c:
            r = c.root.to_python()
        assert r["a"] == -r["b"] and r["log"] == list(range(r["b"]))


# ---- errors -----------------------------------------------------------------------------


READERS = ["info", "check", "dump", "gc"]


@pytest.mark.parametrize("command", [*READERS, "compact"])
def test_a_missing_path_is_an_error_and_is_not_created(tmp_path: Path, command: str) -> None:
    path = tmp_path / "typo.db"
    args = [path, tmp_path / "dst.db"] if command == "compact" else [path]
    r = cli(command, *args)
    assert_one_line_error(r, command)
    assert "no such file" in r.stderr
    assert os.listdir(tmp_path) == []


def _damaged(kind: str, good: bytes) -> bytes:
    b = bytearray(good)
    if kind == "empty":
        return b""
    if kind == "random bytes":
        return random.Random(2).randbytes(64 * 1024)
    if kind == "truncated":
        return bytes(b[: 3 * 4096])
    if kind == "header version":
        b[8] ^= 0x10
    elif kind == "header checksum":
        b[16] ^= 0x10
    elif kind == "graph":
        # The kind byte of the head word of MARK's block: a value word names a block of an
        # unknown kind. Opening does not notice; every walk does.
        at = bytes(b).find(MARK.to_bytes(17, "little", signed=True))
        assert at > 0
        b[at - 8] ^= 0x40
    return bytes(b)


DAMAGE = ["empty", "random bytes", "truncated", "header version", "header checksum", "graph"]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.db"
    with persist.open(path) as s:
        s.root.update({"mark": [MARK], "l": [1, 2, 3], "s": "text"})
    return path.read_bytes()


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", [*READERS, "compact"])
def test_a_damaged_store_gives_one_line_and_exit_1(
    tmp_path: Path, good_store: bytes, damage: str, command: str
) -> None:
    path = tmp_path / "bad.db"
    data = _damaged(damage, good_store)
    path.write_bytes(data)
    dst = tmp_path / "dst.db"
    r = cli(command, path, dst) if command == "compact" else cli(command, path)
    assert_one_line_error(r, command)
    if damage in ("empty", "random bytes", "header version", "truncated"):
        assert path.read_bytes() == data  # not a store, or not a whole one: left as it was
    if damage == "empty":
        assert "empty" in r.stderr
    if damage == "graph":
        assert "CorruptionError" in r.stderr
    assert not dst.exists()


def test_a_timeout_on_the_lock_is_an_error(rich: Path, tmp_path: Path) -> None:
    with persist.open(rich) as s:
        s.root.lockExcl()
        try:
            r = cli("dump", "--timeout", "0.2", rich)
            c = cli("compact", "--timeout", "0.2", "--progress", rich, tmp_path / "c.db")
            others = {cmd: cli(cmd, "--timeout", "0.2", rich) for cmd in ("info", "check", "gc")}
        finally:
            s.root.unlock()
    assert_one_line_error(r, "dump")
    assert "LockTimeout" in r.stderr
    for cmd, o in others.items():
        assert_one_line_error(o, cmd)
        assert "LockTimeout" in o.stderr
    assert c.returncode == 1 and "LockTimeout" in c.stderr and "Traceback" not in c.stderr
    assert not (tmp_path / "c.db").exists()


def test_usage_errors_exit_2(rich: Path) -> None:
    for args in (["dump"], ["compact", rich], ["info", rich, "extra"], ["bench", "--sizes", "x"]):
        r = cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr and "usage:" in r.stderr


# ---- progress ---------------------------------------------------------------------------


def test_progress_only_when_asked_or_on_a_terminal(rich: Path, tmp_path: Path) -> None:
    quiet = cli("dump", rich, "-o", tmp_path / "q.jsonl")
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = ok("dump", "--progress", rich, "-o", tmp_path / "d.jsonl")
    lines = loud.stderr.splitlines()
    assert lines and all(line.startswith("persist dump: ") for line in lines)
    assert "containers dumped" in lines[-1]
    loaded = ok("load", "--progress", tmp_path / "d.jsonl", tmp_path / "l.db")
    assert "persist load: reading" in loaded.stderr and "containers loaded" in loaded.stderr
    compacted = ok("compact", "--progress", rich, tmp_path / "c.db")
    assert "persist compact: reading" in compacted.stderr
    assert "containers copied" in compacted.stderr
    checked = ok("check", "--progress", rich)
    assert "checking" in checked.stderr and checked.stdout.startswith("OK")


def test_a_queue_with_items_taken_from_the_front_dumps_loads_and_compacts(
    tmp_path: Path,
) -> None:
    # A list whose first item is not at word 0 of its items block (FORMAT.md §10.2 `start`),
    # one emptied back to word 0, and one grown after items were taken from its front.
    src = tmp_path / "q.db"
    with persist.open(src) as s:
        s.root["q"] = list(range(50))
        s.root["e"] = [1, 2]
        s.root["g"] = ["a", "b", "c", "d"]
        q, e, g = s.root["q"], s.root["e"], s.root["g"]
        for _ in range(20):
            q.popleft()
        q.insert(0, "front")
        e.popleft()
        e.pop(0)
        g.popleft()
        g.extend(range(10))
        want = {"q": list(q), "e": list(e), "g": list(g)}
    assert want["q"][:2] == ["front", 20] and want["e"] == []
    ok("check", src)
    dump = tmp_path / "q.jsonl"
    ok("dump", src, "-o", dump)
    dst = tmp_path / "loaded.db"
    ok("load", dump, dst)
    small = tmp_path / "compact.db"
    ok("compact", src, small)
    for path in (dst, small):
        ok("check", path)
        with persist.open(path) as s:
            assert {k: list(s.root[k]) for k in want} == want
