"""The store commands of ``python -m persist``: info, check, gc, dump, load, compact.

Each takes the parsed arguments, prints its result on stdout and returns the exit status;
failures are raised (``CliError``, ``persist.Error``, ``OSError``) for ``__main__`` to report.
None of them creates a store it was asked to read: a missing or empty PATH is an error.
``info`` and ``check`` open the store read-only; ``dump`` and the source of ``compact`` do
where this user may not write it (``_cli_common``). What ``dump -o``, ``compact`` and ``load``
make takes its source's mode: the store's, or for ``load`` the dump file's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import stat
import sys
import tempfile
from typing import IO, Any

import persist
from persist._cli_common import (
    CliError,
    Progress,
    copy_mode,
    create_new,
    may_write,
    open_existing,
    open_for_snapshot,
    open_read_only,
    progress_wanted,
    remove_store,
    size,
)
from persist._cli_dump import count_containers, read_dump, walk, write_dump
from persist._cli_load import build
from persist._persist import _trim_unshared


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(args.command, progress_wanted(args.progress))


def _print_json(x: Any) -> None:
    print(json.dumps(x, indent=2, sort_keys=True))


def _refuse_existing(path: str) -> None:
    if os.path.lexists(path):
        raise CliError(
            f"{path} already exists: give a path that does not (it is never overwritten)"
        )


# ---- info, check, gc ------------------------------------------------------------------------


def info(args: argparse.Namespace) -> int:
    progress = _progress(args)
    progress.phase("opening")
    with open_read_only(args.path) as store:
        progress.phase("counting")
        s = store.stats(args.timeout)
    s["path"] = os.path.abspath(args.path)
    s["store_format"] = persist.FORMAT_VERSION
    # stats() counts this command's own attachment too.
    s["other_processes"] = max(s["processes"] - 1, 0)
    progress.done("done")
    if args.json:
        _print_json(s)
        return 0
    objects = ", ".join(f"{k} {v:,}" for k, v in sorted(s["objects"].items())) or "none"
    print(f"store        {s['path']} (format {s['store_format']})")
    print(f"file size    {size(s['file_size'])}")
    print(f"pages        {s['pages_used']:,} used, {s['pages_free']:,} free (4 KiB each)")
    print(f"live bytes   {size(s['live_bytes'])}")
    print(f"objects      {objects}")
    print(f"processes    {s['other_processes']} attached besides this command")
    return 0


def check(args: argparse.Namespace) -> int:
    progress = _progress(args)
    progress.phase("opening")
    with open_read_only(args.path) as store:
        progress.phase("checking the allocator and the graph")
        try:
            r = store.check(args.timeout)
        except persist.ReadOnlyError:
            # Killed processes left work that only a writable opener recovers.
            if not may_write(args.path):
                raise
            r = None
    if r is None:
        progress.phase("recovering what killed processes left")
        with open_existing(args.path) as store:
            progress.phase("checking the allocator and the graph")
            r = store.check(args.timeout)
    progress.done("no damage found")
    if args.json:
        _print_json({"ok": True, **r})
        return 0
    print(
        f"OK: {args.path}: {r['objects']:,} objects, {r['live_blocks']:,} live blocks "
        f"({size(r['live_bytes'], False)}); {r['unreachable_blocks']:,} unreachable blocks "
        f"({size(r['unreachable_bytes'], False)}) that gc would free; {r['orphans']:,} containers "
        f"kept only by proxies; {r['held']:,} held"
        + (
            f"; {r['leaked_references']:,} references from dead values that gc would drop"
            if r.get("leaked_references")
            else ""
        )
    )
    return 0


def gc(args: argparse.Namespace) -> int:
    progress = _progress(args)
    progress.phase("opening")
    with open_existing(args.path) as store:
        progress.phase("marking and sweeping")
        r = store.gc(args.timeout)
        after = store.stats(args.timeout)
    progress.done("done")
    if args.json:
        _print_json(
            {"freed": r, "pages_used": after["pages_used"], "pages_free": after["pages_free"]}
        )
        return 0
    print(
        f"freed {r['objects']:,} unreachable objects: {r['blocks']:,} blocks, "
        f"{size(r['bytes'], False)}; now {after['pages_used']:,} pages used, "
        f"{after['pages_free']:,} free"
    )
    return 0


# ---- dump, load, compact --------------------------------------------------------------------


def dump(args: argparse.Namespace) -> int:
    progress = _progress(args)
    progress.phase("opening")
    store, readonly = open_for_snapshot(args.path)
    with store:
        total = _estimate(store, args.timeout, progress, readonly)
        if args.output is None:
            n = _dump_locked(store, sys.stdout.buffer, args.timeout, progress, total, readonly)
            sys.stdout.buffer.flush()
        else:
            n = _dump_to_file(
                store, args.output, args.timeout, progress, total, readonly, os.stat(args.path)
            )
    progress.done(f"{n:,} containers dumped")
    return 0


def _estimate(
    store: persist.Store, timeout: float | None, progress: Progress, readonly: bool
) -> int | None:
    """How many containers the walk will meet, for the progress bar (None without one: the
    count costs a walk of its own)."""
    if not progress.enabled:
        return None
    if timeout is not None and not readonly:
        # stats() waits for a lockExcl holder without a timeout: first see, within the
        # timeout, that none is in the way.
        root = store.root
        root.lockShared(timeout)
        root.unlock()
    return count_containers(store)


def _dump_locked(
    store: persist.Store,
    out: IO[bytes],
    timeout: float | None,
    progress: Progress,
    total: int | None,
    readonly: bool,
) -> int:
    """The dump, written under lockShared: a consistent snapshot; writers wait meanwhile. A
    read-only store cannot take lockShared: its dump is read without it."""
    root = store.root
    if readonly:
        progress.note("read-only (this user may not write the store): read without lockShared")
        progress.phase("dumping", total, "containers")
        return write_dump(walk(root, progress), out)
    progress.phase("waiting for lockShared")
    root.lockShared(timeout)
    try:
        progress.phase("dumping", total, "containers")
        return write_dump(walk(root, progress), out)
    finally:
        root.unlock()


def _dump_to_file(
    store: persist.Store,
    path: str,
    timeout: float | None,
    progress: Progress,
    total: int | None,
    readonly: bool,
    like: os.stat_result,
) -> int:
    """Writes a temporary file beside ``path`` (private until it is whole) and renames it:
    ``path`` is either the whole dump, with the store's mode, or untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".persist-dump-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            n = _dump_locked(store, out, timeout, progress, total, readonly)
            out.flush()
            os.fsync(out.fileno())
        copy_mode(like, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return n


def _write_store(
    root_id: int,
    records: list[Any],
    dst: str,
    progress: Progress,
    like: os.stat_result | None,
) -> None:
    """Builds ``dst`` (which must not exist) from records, with the mode (and group) of
    ``like`` (``0666 & ~umask`` without one).

    The store is built under a private name (mode 0600) beside ``dst``, closed, trimmed to its
    last used page (nobody else can have it open, so its free tail can go), given its mode,
    and then linked to ``dst`` (which fails rather than overwrite a file that appeared
    meanwhile). On any failure nothing is left behind.
    """
    directory, base = os.path.split(os.path.abspath(dst))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    store = create_new(tmp, 0o600)
    try:
        try:
            progress.phase(f"writing {len(records):,} containers to {dst}")
            build(root_id, records, store)
            progress.phase("flushing")
            store.flush()
        finally:
            store.close()
        progress.phase("trimming the free tail")
        _trim_unshared(tmp)
        copy_mode(like, tmp)
        try:
            os.link(tmp, dst)
        except FileExistsError:
            raise CliError(
                f"{dst} appeared while it was being written: left as it is"
            ) from None
    finally:
        remove_store(tmp)


def load(args: argparse.Namespace) -> int:
    progress = _progress(args)
    _refuse_existing(args.dst)
    # The new store takes the dump file's mode (a dump of a private store is private, and so is
    # what is loaded from it); from a pipe, 0666 & ~umask.
    like: os.stat_result | None
    if args.dump == "-":
        name, stream, total = "<stdin>", sys.stdin.buffer, None
        st = os.fstat(stream.fileno())
        like = st if stat.S_ISREG(st.st_mode) else None
        progress.phase("reading", None, "bytes")
        root_id, records = read_dump(stream, name, progress)
    else:
        name = args.dump
        with open(args.dump, "rb") as stream:
            like = os.fstat(stream.fileno())
            total = like.st_size
            progress.phase("reading", total, "bytes")
            root_id, records = read_dump(stream, name, progress, total)
    _write_store(root_id, records, args.dst, progress, like)
    progress.done(f"{len(records):,} containers loaded")
    written = size(os.path.getsize(args.dst))
    print(f"loaded {len(records):,} containers from {name} into {args.dst} ({written})")
    return 0


def compact(args: argparse.Namespace) -> int:
    progress = _progress(args)
    _refuse_existing(args.dst)
    progress.phase("opening")
    src, readonly = open_for_snapshot(args.src)
    like = os.stat(args.src)
    with src:
        total = _estimate(src, args.timeout, progress, readonly)
        root = src.root
        if readonly:
            progress.note("read-only (this user may not write SRC): read without lockShared")
            progress.phase("reading", total, "containers")
            records = list(walk(root, progress))
        else:
            progress.phase("waiting for lockShared")
            root.lockShared(args.timeout)
            try:
                progress.phase("reading", total, "containers")
                records = list(walk(root, progress))
            finally:
                root.unlock()
        del root
    _write_store(0, records, args.dst, progress, like)
    before, after = os.path.getsize(args.src), os.path.getsize(args.dst)
    progress.done(f"{len(records):,} containers copied")
    print(
        f"compacted {args.src} ({size(before)}) into {args.dst} ({size(after)}): "
        f"{len(records):,} containers"
    )
    return 0
