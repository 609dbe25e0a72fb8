"""Large values cost what they weigh in the file.

The bug story: a huge run (a value of more than 2 MiB) had to lie in one *generation* of 2^g
chunks, and the file held every generation before it. One 100 MiB bytes value made a 229 MiB
file and one of 200 MiB a 458 MiB file, and ``python -m persist compact`` could not shrink
them: its copy needed the same generation. Now the file is cut into areas sized when they are
created (FORMAT.md §2, §7.4, §7.6): a huge value takes its size rounded up to whole chunks.

Sizes are ``os.path.getsize`` of the store file; ``pytest -s`` prints them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import persist

MiB = 1 << 20
# FORMAT.md §2: whole 2 MiB chunks plus an 8 KiB meta block each, and the file grows in steps of
# an eighth rounded to 1 MiB (§7.3): about 1.05x for 100 MiB. The issue asks for at most 1.15x.
MAX_OVERHEAD = 1.15


def pattern(n: int, seed: int) -> bytes:
    """``n`` bytes that differ from every other seed's at every 256-byte period."""
    block = bytes((i * 7 + seed) % 256 for i in range(256))
    return block * (n // 256)


def file_mib(p: Path) -> float:
    return os.path.getsize(p) / MiB


def compact(src: Path, dst: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "persist", "compact", str(src), str(dst)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_huge_values_cost_what_they_weigh_and_reuse_freed_space(tmp_path: Path) -> None:
    p = tmp_path / "h.db"
    a = pattern(100 * MiB, 1)
    b = pattern(200 * MiB, 2)
    with persist.open(p) as st:
        st.root["a"] = a
        st.root["b"] = b
    live = len(a) + len(b)
    size = os.path.getsize(p)
    print(f"100 + 200 MiB values: file {size / MiB:.1f} MiB ({size / live:.3f}x)")
    assert size <= MAX_OVERHEAD * live, f"{size / MiB:.1f} MiB for {live / MiB:.0f} MiB"
    with persist.open(p) as st:
        assert st.root["a"] == a
        assert st.root["b"] == b
        # The 200 MiB value's chunks are free again; a 100 MiB value of other bytes fits in
        # them, and the file does not grow.
        del st.root["b"]
        del b
        c = pattern(100 * MiB, 3)
        st.root["c"] = c
        assert os.path.getsize(p) == size, "a value that fits in freed space grew the file"
        assert st.root["a"] == a
        assert st.root["c"] == c
        # Both freed: a 150 MiB value fits in the 200 MiB value's space as well.
        del st.root["a"]
        del st.root["c"]
        d = pattern(150 * MiB, 4)
        st.root["d"] = d
        assert os.path.getsize(p) == size
        assert st.root["d"] == d
    with persist.open(p) as st:
        assert st.root["d"] == d
        st.check()  # raises CorruptionError if the allocator or the graph is inconsistent


def test_one_huge_value_and_its_compact_copy(tmp_path: Path) -> None:
    for mib in (100, 200):
        p = tmp_path / f"one{mib}.db"
        v = pattern(mib * MiB, mib)
        with persist.open(p) as st:
            st.root["v"] = v
        print(f"one {mib} MiB value: file {file_mib(p):.1f} MiB")
        assert os.path.getsize(p) <= MAX_OVERHEAD * len(v)
        q = tmp_path / f"one{mib}.copy.db"
        compact(p, q)
        print(f"  its compact copy: {file_mib(q):.1f} MiB")
        assert os.path.getsize(q) <= MAX_OVERHEAD * len(v)
        with persist.open(q) as st:
            assert st.root["v"] == v


def test_compact_shrinks_a_store_whose_huge_value_was_deleted(tmp_path: Path) -> None:
    p = tmp_path / "gone.db"
    with persist.open(p) as st:
        st.root["small"] = list(range(100))
        st.root["v"] = pattern(100 * MiB, 9)
        del st.root["v"]
    before = os.path.getsize(p)
    q = tmp_path / "gone.copy.db"
    compact(p, q)
    print(f"deleted 100 MiB value: file {before / MiB:.1f} MiB, compact copy {file_mib(q):.1f} MiB")
    assert before >= 100 * MiB
    assert os.path.getsize(q) < 4 * MiB
    with persist.open(q) as st:
        assert list(st.root["small"]) == list(range(100))
        assert "v" not in st.root
