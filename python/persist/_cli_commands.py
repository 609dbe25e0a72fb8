"""The store commands of ``python -m persist``: info, check, gc, dump, load, compact.

Each takes the parsed arguments, prints its result on stdout and returns the exit status;
failures are raised (``CliError``, ``persist.Error``, ``OSError``) for ``__main__`` to report.
None of them creates a store it was asked to read: a missing or empty PATH is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from typing import IO, Any

import persist
from persist._cli_common import (
    CliError,
    Progress,
    create_new,
    open_existing,
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
    with open_existing(args.path) as store:
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
    progress.phase("opening (recovering what killed processes left)")
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
    with open_existing(args.path) as store:
        total = _estimate(store, args.timeout, progress)
        if args.output is None:
            n = _dump_locked(store, sys.stdout.buffer, args.timeout, progress, total)
            sys.stdout.buffer.flush()
        else:
            n = _dump_to_file(store, args.output, args.timeout, progress, total)
    progress.done(f"{n:,} containers dumped")
    return 0


def _estimate(store: persist.Store, timeout: float | None, progress: Progress) -> int | None:
    """How many containers the walk will meet, for the progress bar (None without one: the
    count costs a walk of its own)."""
    if not progress.enabled:
        return None
    if timeout is not None:
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
) -> int:
    """The dump, written under lockShared: a consistent snapshot; writers wait meanwhile."""
    root = store.root
    progress.phase("waiting for lockShared")
    root.lockShared(timeout)
    try:
        progress.phase("dumping", total, "containers")
        return write_dump(walk(root, progress), out)
    finally:
        root.unlock()


def _dump_to_file(
    store: persist.Store, path: str, timeout: float | None, progress: Progress, total: int | None
) -> int:
    """Writes a temporary file beside ``path`` and renames it: ``path`` is either the whole
    dump or untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".persist-dump-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            n = _dump_locked(store, out, timeout, progress, total)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return n


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_store(root_id: int, records: list[Any], dst: str, progress: Progress) -> None:
    """Builds ``dst`` (which must not exist) from records.

    The store is built under a private name beside ``dst``, closed, trimmed to its last used
    page (nobody else can have it open, so its free tail can go), and then linked to ``dst``
    (which fails rather than overwrite a file that appeared meanwhile). On any failure nothing
    is left behind.
    """
    directory, base = os.path.split(os.path.abspath(dst))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    store = create_new(tmp)
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
    if args.dump == "-":
        name, stream, total = "<stdin>", sys.stdin.buffer, None
        progress.phase("reading", None, "bytes")
        root_id, records = read_dump(stream, name, progress)
    else:
        name = args.dump
        with open(args.dump, "rb") as stream:
            total = os.fstat(stream.fileno()).st_size
            progress.phase("reading", total, "bytes")
            root_id, records = read_dump(stream, name, progress, total)
    _write_store(root_id, records, args.dst, progress)
    progress.done(f"{len(records):,} containers loaded")
    written = size(os.path.getsize(args.dst))
    print(f"loaded {len(records):,} containers from {name} into {args.dst} ({written})")
    return 0


def compact(args: argparse.Namespace) -> int:
    progress = _progress(args)
    _refuse_existing(args.dst)
    progress.phase("opening")
    with open_existing(args.src) as src:
        total = _estimate(src, args.timeout, progress)
        root = src.root
        progress.phase("waiting for lockShared")
        root.lockShared(args.timeout)
        try:
            progress.phase("reading", total, "containers")
            records = list(walk(root, progress))
        finally:
            root.unlock()
        del root
    _write_store(0, records, args.dst, progress)
    before, after = os.path.getsize(args.src), os.path.getsize(args.dst)
    progress.done(f"{len(records):,} containers copied")
    print(
        f"compacted {args.src} ({size(before)}) into {args.dst} ({size(after)}): "
        f"{len(records):,} containers"
    )
    return 0
