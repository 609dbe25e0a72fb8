"""pbase objects once stored: the instance that was assigned is bound to the stored object."""

from __future__ import annotations

from pathlib import Path

import pytest

import persist
from persist import pbase


class Point(pbase):
    def __init__(self, x: int, y: int) -> None:
        pbase.__init__(self)
        self.x = x
        self.y = y

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


def test_the_assigned_instance_is_bound_to_the_stored_object(tmp_path: Path) -> None:
    with persist.open(tmp_path / "s.db") as store:
        p = Point(1, 2)
        store.root["p"] = p
        p.x = 10  # goes to the store
        assert store.root["p"].x == 10
        store.root["p"].y = 20
        assert p.y == 20
        assert p.norm1() == 30
        del p.x
        with pytest.raises(AttributeError):
            _ = store.root["p"].x
        assert "x" not in vars(p)  # attributes live in the store, not in the instance


def test_an_object_inside_a_list_is_bound_too(tmp_path: Path) -> None:
    with persist.open(tmp_path / "s.db") as store:
        a, b = Point(1, 1), Point(2, 2)
        store.root["l"] = [a, b, a]  # a stored once, referred to twice
        a.x = 5
        lst = store.root["l"]
        assert lst[0].x == 5 and lst[2].x == 5 and lst[1].x == 2
        store.check()


def test_a_bound_instance_assigned_again_is_a_reference(tmp_path: Path) -> None:
    with persist.open(tmp_path / "s.db") as store:
        p = Point(3, 4)
        store.root["a"] = p
        store.root["b"] = p  # the same stored object under two names
        store.root["b"].x = 7
        assert store.root["a"].x == 7
        assert store.stats()["objects"].get("object") == 1
