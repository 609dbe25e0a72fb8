"""CPython's own container tests, run against the proxies.

``test.list_tests.CommonTest`` (with the sequence tests it inherits) runs with ``type2test``
making a persist.List, and ``test.mapping_tests.TestHashMappingProtocol`` with ``type2test``
making a persist.Dict: each call stores a new container under a new key of the test's own
store and returns its proxy. A list is stored by assignment when given a list, else by
``extend`` (so the proxies' own ``extend`` meets the suite's odd iterables); a dict by
``update``, which takes what the dict constructor takes. ``test.test_set``'s ``TestSet`` runs
with ``thetype`` making a persist.Set (stored empty, then ``update``), and its classes that
build plain sets in ``setUp`` (basic operations, binary and update operators, mutation,
subsets, operators with non-sets, copying, identities) run with those sets replaced by stored
copies after their ``setUp``.

Excluded, by name, are only tests that store what a store cannot hold (objects of classes
defined in the test, such as ALWAYS_EQ or a class with a failing ``__hash__``), subclass the
type under test, or pickle it; each says why.

These modules are part of CPython's test package, which python.org builds and pyenv install;
Debian's python3.X leaves them out (``apt-get install libpython3.X-testsuite`` adds them).
Without them this module is skipped, saying so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import unittest
from typing import Any

import pytest

import persist


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package "test" itself is missing
        return False


_MISSING = [m for m in ("test.list_tests", "test.mapping_tests", "test.test_set") if not _find(m)]
if _MISSING:
    pytest.skip(
        f"CPython's test package is not installed for {sys.executable} (no "
        f"{', '.join(_MISSING)}); on Debian: apt-get install "
        f"libpython{sys.version_info[0]}.{sys.version_info[1]}-testsuite",
        allow_module_level=True,
    )

# Imported only once found: any other import error is a real error, not a skip.
list_tests: Any = importlib.import_module("test.list_tests")
mapping_tests: Any = importlib.import_module("test.mapping_tests")
set_tests: Any = importlib.import_module("test.test_set")


def excluded(reason: str) -> Any:
    @unittest.skip(reason)
    def test(self: Any) -> None:
        pass

    return test


class _FreshStore(unittest.TestCase):
    """One store per test; ``type2test`` stores under a new key of it."""

    def setUp(self) -> None:
        super().setUp()
        self._open()

    def _open(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="persist-cpython-")
        self.addCleanup(shutil.rmtree, self._dir, True)
        self._store = persist.open(os.path.join(self._dir, "s.db"))
        self.addCleanup(self._store.close)
        self._keys = 0
        self.type2test = self._make  # an instance attribute: not bound as a method

    def _key(self) -> int:
        self._keys += 1
        return self._keys

    def _make(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


UNSTORABLE = "stores objects of classes defined in the test (ALWAYS_EQ, NEVER_EQ, BadCmp, ...)"
SUBCLASSES = "subclasses the type under test"


class TestListAsCPythonTestsIt(_FreshStore, list_tests.CommonTest):
    def _make(self, iterable: Any = (), /) -> Any:
        root = self._store.root
        key = self._key()
        if type(iterable) is list:
            root[key] = iterable
        else:
            root[key] = []
            root[key].extend(iterable)
        made = root[key]
        assert type(made) is persist.List
        return made

    test_contains_fake = excluded(f"{UNSTORABLE}: ALWAYS_EQ and NEVER_EQ as items")
    test_contains_order = excluded(f"{UNSTORABLE}: a StopCompares item")
    test_count = excluded(f"{UNSTORABLE}: ALWAYS_EQ and NEVER_EQ as items")
    test_index = excluded(f"{UNSTORABLE}: ALWAYS_EQ, NEVER_EQ and EvilCmp items")
    test_remove = excluded(f"{UNSTORABLE}: ALWAYS_EQ, NEVER_EQ and BadCmp2 items")
    test_addmul = excluded(f"{SUBCLASSES} (class subclass(self.type2test))")
    test_getitemoverwriteiter = excluded(f"{SUBCLASSES} (class T(self.type2test))")
    test_free_after_iterating = excluded(
        f"{SUBCLASSES} (support.check_free_after_iterating makes class A(cls))"
    )
    test_pickle = excluded("pickles the container; a proxy is not picklable")


class TestDictAsCPythonTestsIt(_FreshStore, mapping_tests.TestHashMappingProtocol):
    def _make(self, *args: Any, **kwargs: Any) -> Any:
        root = self._store.root
        key = self._key()
        root[key] = {}
        made = root[key]
        made.update(*args, **kwargs)
        assert type(made) is persist.Dict
        return made

    test_fromkeys = excluded(f"{SUBCLASSES} (dictlike, mydict, baddict1, baddict2)")
    test_getitem = excluded(f"{UNSTORABLE}: BadEq and BadHash keys")
    test_pop = excluded(f"{UNSTORABLE}: a BadHash key")
    test_setdefault = excluded(f"{UNSTORABLE}: a BadHash key")
    test_eq = excluded(f"{UNSTORABLE}: a BadCmp key")
    test_repr = excluded(f"{UNSTORABLE}: a BadRepr value")


class TestSetAsCPythonTestsIt(_FreshStore, set_tests.TestSet):
    def setUp(self) -> None:
        # TestJointOps.setUp already makes a set with thetype: the store comes first.
        self._open()
        self.thetype = self._make
        set_tests.TestSet.setUp(self)

    def _make(self, iterable: Any = (), /) -> Any:
        root = self._store.root
        key = self._key()
        root[key] = set()
        made = root[key]
        made.update(iterable)
        assert type(made) is persist.Set
        return made

    test_badcmp = excluded(f"{UNSTORABLE}: BadCmp members")
    test_cyclical_repr = excluded(f"{UNSTORABLE}: a ReprWrapper member")
    test_deepcopy = excluded(f"{UNSTORABLE}: Tracer members")
    test_subclass_with_custom_hash = excluded(f"{SUBCLASSES} (class H(self.thetype))")
    test_free_after_iterating = excluded(
        f"{SUBCLASSES} (support.check_free_after_iterating makes class A(cls))"
    )
    test_pickling = excluded("pickles the container; a proxy is not picklable")
    test_iterator_pickling = excluded("pickles the iterator; a proxy is not picklable")


class _StoredSets(_FreshStore):
    """Replaces the plain sets that a suite's ``setUp`` made (its attributes ``_stored``) by
    stored copies."""

    _stored: tuple[str, ...] = ("set",)

    def setUp(self) -> None:
        super().setUp()
        root = self._store.root
        for name in self._stored:
            plain = getattr(self, name)
            assert type(plain) is set
            key = self._key()
            root[key] = plain
            setattr(self, name, root[key])
            assert type(getattr(self, name)) is persist.Set


def _stored_suite(base: Any, *attrs: str, **exclude: str) -> Any:
    """``base`` run with its sets ``attrs`` stored; ``exclude``: test name -> why."""
    body: dict[str, Any] = {"_stored": attrs or ("set",)}
    for name, why in exclude.items():
        body[name] = excluded(why)
    return type(f"{base.__name__}Stored", (_StoredSets, base), body)


PICKLES = "pickles the container; a proxy is not picklable"
NEW_OBJECTS = "members are read back as new objects: 'is' against the stored ones fails"
_SET_SUITES = [
    _stored_suite(set_tests.TestBasicOpsEmpty, test_pickling=PICKLES),
    _stored_suite(set_tests.TestBasicOpsSingleton, test_pickling=PICKLES),
    _stored_suite(set_tests.TestBasicOpsTuple, test_pickling=PICKLES),
    _stored_suite(set_tests.TestBasicOpsString, test_pickling=PICKLES),
    _stored_suite(set_tests.TestBasicOpsBytes, test_pickling=PICKLES),
    _stored_suite(set_tests.TestBasicOpsMixedStringBytes, test_pickling=PICKLES),
    _stored_suite(set_tests.TestBinaryOps),
    _stored_suite(set_tests.TestUpdateOps),
    _stored_suite(set_tests.TestMutate),
    _stored_suite(set_tests.TestSubsetEqualEmpty, "left", "right"),
    _stored_suite(set_tests.TestSubsetEqualNonEmpty, "left", "right"),
    _stored_suite(set_tests.TestSubsetEmptyNonEmpty, "left", "right"),
    _stored_suite(set_tests.TestSubsetPartial, "left", "right"),
    _stored_suite(set_tests.TestSubsetNonOverlap, "left", "right"),
    _stored_suite(set_tests.TestSubsetPartial, "left"),
    _stored_suite(set_tests.TestOnlySetsNumeric),
    _stored_suite(set_tests.TestOnlySetsDict),
    _stored_suite(set_tests.TestOnlySetsOperator),
    _stored_suite(set_tests.TestOnlySetsTuple),
    _stored_suite(set_tests.TestOnlySetsString),
    _stored_suite(set_tests.TestOnlySetsGenerator),
    _stored_suite(set_tests.TestCopyingEmpty),
    _stored_suite(set_tests.TestCopyingSingleton, test_copy=NEW_OBJECTS),
    _stored_suite(set_tests.TestCopyingTriple, test_copy=NEW_OBJECTS),
    _stored_suite(set_tests.TestCopyingTuple, test_copy=NEW_OBJECTS),
    _stored_suite(set_tests.TestCopyingNested, test_copy=NEW_OBJECTS),
    _stored_suite(set_tests.TestIdentities, "a", "b"),
]
for _suite in _SET_SUITES:
    globals()[_suite.__name__ + str(_SET_SUITES.index(_suite))] = _suite


def test_the_suites_ran_what_we_think() -> None:
    # Guard against a CPython whose suites renamed what we exclude: every excluded name must
    # exist in the suite, or the exclusion is stale.
    for ours, theirs in (
        (TestListAsCPythonTestsIt, list_tests.CommonTest),
        (TestDictAsCPythonTestsIt, mapping_tests.TestHashMappingProtocol),
        (TestSetAsCPythonTestsIt, set_tests.TestSet),
    ):
        mine = {n for n, v in vars(ours).items() if n.startswith("test_")}
        assert mine <= set(dir(theirs)), mine - set(dir(theirs))
        # And most of the suite still runs.
        assert len([n for n in dir(theirs) if n.startswith("test_")]) > 2 * len(mine)
