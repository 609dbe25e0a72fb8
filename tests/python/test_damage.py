"""Damage inside the graph that only a size check can see: a value block whose head claims
more bytes than its block holds. check() must report it (reads would otherwise return bytes of
the neighbouring blocks)."""

from __future__ import annotations

import pytest

import persist

MARK = 0x0123456789ABCDEF_FEDCBA9876543210_55  # 17 bytes, two's complement little-endian


@pytest.mark.parametrize("value", [MARK, b"\x55" * 17 + b"MARKER-BYTES", "marker-" * 5])
@pytest.mark.parametrize("bit", [0, 3, 8, 17])
def test_check_reports_a_value_longer_than_its_block(tmp_path, value, bit):
    path = tmp_path / "s.db"
    with persist.open(str(path)) as s:
        s.root["v"] = [value]
        assert s.check()["objects"] > 0
    data = bytearray(path.read_bytes())
    if isinstance(value, int):
        payload = value.to_bytes(17, "little", signed=True)
    elif isinstance(value, bytes):
        payload = value
    else:
        payload = value.encode()
    at = data.index(payload)
    head = at - 8  # the block's head word: kind | length << 8
    length = int.from_bytes(data[head + 1 : head + 8], "little")
    assert length == len(payload)
    grown = length | (1 << (bit + 6))  # always larger than the block's class
    data[head + 1 : head + 8] = grown.to_bytes(7, "little")
    path.write_bytes(bytes(data))
    with persist.open(str(path)) as s:
        with pytest.raises(persist.CorruptionError, match="says it holds|outside the store"):
            s.check()
