"""A disk that refuses to flush: persist raises ``OSError`` with the errno, and loses nothing.

The bug story: a failed ``msync``, ``fsync`` or trim used to become ``StoreFullError`` (a
``MemoryError``), so a program that caught ``OSError`` for I/O trouble missed it, and one that
caught ``MemoryError`` retried against a disk that was failing. Worse, in a durable store a
rollback whose persist barrier failed stopped half-way, and a commit whose barrier failed left
its change in place while reporting an error.

The refusal is real at the system-call boundary: a small library, built here with the C
compiler and preloaded into the child, makes ``msync``, ``fsync`` and ``fdatasync`` fail with
``EIO`` while a flag file exists. Everything else (the store, its file, its code paths) is the
real thing. The child checks what it sees while the disk refuses; the parent then opens the
file afresh and checks that every change that returned is there, and nothing else.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

import persist

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

/* Refuse while the file named by PERSIST_TEST_REFUSE_SYNC exists. */
static int refusing(void) {
    const char *flag = getenv("PERSIST_TEST_REFUSE_SYNC");
    return flag != NULL && access(flag, F_OK) == 0;
}

int msync(void *addr, size_t len, int flags) {
    static int (*real)(void *, size_t, int);
    if (refusing()) { errno = EIO; return -1; }
    if (real == NULL) real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
    return real(addr, len, flags);
}

int fsync(int fd) {
    static int (*real)(int);
    if (refusing()) { errno = EIO; return -1; }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (refusing()) { errno = EIO; return -1; }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
"""


@pytest.fixture(scope="module")
def refuse_sync_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The preloadable library (the C compiler that links persist's Rust code builds it)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "a C compiler (cc) is needed: Rust's linker is one"
    d = tmp_path_factory.mktemp("shim")
    src = d / "refuse_sync.c"
    src.write_text(SHIM)
    lib = d / "librefuse_sync.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
        check=True,
        capture_output=True,
    )
    return lib


CHILD = """
import errno, os, sys
import persist

path, flag, durable = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

def refused(what, fn):
    try:
        fn()
    except OSError as e:
        assert e.errno == errno.EIO, (what, e.errno, e)
        assert not isinstance(e, MemoryError), (what, type(e))
        assert not isinstance(e, persist.StoreFullError), (what, type(e))
        print(what, "refused:", type(e).__name__, e.errno, e)
        return e
    raise AssertionError(f"{what}: no OSError while the disk refuses")

st = persist.open(path, durable=durable)
root = st.root
root["kept"] = "stored before the disk failed"
root["n"] = 1
root["l"] = [1, 2, 3]
st.flush()

open(flag, "w").close()
assert refused("flush", st.flush).filename == path
if durable:
    # Every change of a durable store flushes: each is refused and rolled back whole.
    def set_n():
        root["n"] = 2
    def set_big():
        root["big"] = list(range(500))
    def append():
        root["l"].append(4)
    def section():
        with st.transaction():
            root["n"] = 3
            root["t"] = "x" * 100
    for what, fn in [("set", set_n), ("set big", set_big), ("append", append),
                     ("transaction", section)]:
        # The refusal comes from a persist barrier (an msync inside the change): it names the
        # store file too.
        assert refused(what, fn).filename == path, what
        assert root["n"] == 1 and "big" not in root and "t" not in root, what
        assert list(root["l"]) == [1, 2, 3], what
else:
    # Without durable=True only flush() asks the disk: changes go on.
    root["n"] = 2
os.unlink(flag)

# The disk works again: so does the store, and nothing is half done.
root["after"] = "stored after the disk recovered"
root["l"].append(5)
st.check()
st.flush()
st.close()
print("child done")
"""


@pytest.mark.parametrize("durable", [False, True], ids=["plain", "durable"])
def test_a_refused_flush_is_an_oserror_with_errno_and_nothing_is_lost(
    tmp_path: Path, run_py, refuse_sync_lib: Path, durable: bool
) -> None:
    path = tmp_path / "s.db"
    flag = tmp_path / "refuse"
    out = run_py(
        CHILD,
        cwd=tmp_path,
        env={"LD_PRELOAD": str(refuse_sync_lib), "PERSIST_TEST_REFUSE_SYNC": str(flag)},
        args=(str(path), str(flag), "1" if durable else "0"),
    )
    assert "flush refused: OSError 5" in out, out
    if durable:
        for what in ("set", "set big", "append", "transaction"):
            assert f"{what} refused: OSError 5" in out, out
    assert "child done" in out, out

    st = persist.open(str(path))
    try:
        root = st.root
        assert root["kept"] == "stored before the disk failed"
        assert root["n"] == (1 if durable else 2)
        assert list(root["l"]) == [1, 2, 3, 5]
        assert root["after"] == "stored after the disk recovered"
        assert "big" not in root and "t" not in root
        st.check()
    finally:
        st.close()


def test_an_oserror_from_the_store_names_the_file_and_its_errno(tmp_path: Path) -> None:
    """A system call that fails while opening is an OSError subclass picked by its errno."""
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    with pytest.raises(OSError) as info:
        persist.open(str(target / "s.db"))
    assert info.value.errno == errno.ENOTDIR
    assert isinstance(info.value, NotADirectoryError)
    assert not isinstance(info.value, MemoryError)
