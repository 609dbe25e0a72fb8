"""The command line: ``python -m persist COMMAND``.

The parser lives here; the commands live in ``_cli_commands`` (info, check, gc, dump, load,
compact), ``_cli_bench`` (bench) and ``_demo`` (demo), over ``_cli_common`` (errors, opening,
progress), ``_cli_dump`` (the dump format) and ``_cli_load`` (building a store from records).

Every failure is a one-line message on stderr and a non-zero exit, never a traceback:
exit status 2 for a usage error (as argparse does), 1 for an error about a store, 130 for
Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from persist import FORMAT_VERSION, Error, __version__
from persist._cli_common import CliError


def _demo(_args: argparse.Namespace) -> int:
    from persist._demo import main

    return main()


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function of a command, imported when it runs (``--help`` stays fast)."""

    def run(args: argparse.Namespace) -> int:
        if name == "bench":
            from persist import _cli_bench as module
        else:
            from persist import _cli_commands as module  # type: ignore[no-redef]
        status: int = getattr(module, name)(args)
        return status

    return run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m persist",
        description="persist: a persistent object store for Python.",
        epilog="Exit status: 0 success, 1 an error about a store or file (one line on stderr), "
        "2 a usage error, 130 interrupted.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"persist {__version__} (store format {FORMAT_VERSION})",
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )

    # Options every long-running command takes.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )
    locking = argparse.ArgumentParser(add_help=False)
    locking.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up (exit 1) if the store lock is not granted within SECONDS (default: wait)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the figures as JSON")

    def add(
        name: str, helptext: str, description: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(
            name, help=helptext, description=description, parents=[common, *parents]
        )
        p.set_defaults(run=_command(name))
        return p

    p = add(
        "info",
        "size, pages used and free, objects by type, attached processes",
        "Print what a store holds: file size, pages used and free, live bytes, objects by "
        "type and how many other processes are attached. Never creates PATH.",
        as_json,
        locking,
    )
    p.add_argument("path", metavar="PATH")
    p = add(
        "check",
        "full integrity check; exit 1 on damage",
        "Check the allocator and the whole graph. Prints OK with figures, or the damage "
        "(exit 1). What killed processes left is recovered first and is not damage.",
        as_json,
        locking,
    )
    p.add_argument("path", metavar="PATH")
    p = add(
        "gc",
        "free unreachable objects (cycles, leftovers of killed processes)",
        "Free what nothing reaches or holds, and print what was freed. The file does not "
        "shrink; its free pages are reused (use compact for a smaller file).",
        as_json,
        locking,
    )
    p.add_argument("path", metavar="PATH")
    p = add(
        "dump",
        "write the live graph as portable JSON Lines",
        "Write every container reachable from the root as JSON Lines (the format is in "
        "FORMAT.md §11 and persist/_cli_dump.py), under lockShared: a consistent snapshot "
        "while other processes keep reading (writers wait until the dump is written).",
        locking,
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE (replaced whole at the end) instead of stdout",
    )
    p = add(
        "load",
        "build a new store from a dump (the inverse of dump)",
        "Build the new store DST from DUMP ('-' for stdin). DST must not exist. Loading a "
        "dump never runs code: user objects come back with their stored class name.",
    )
    p.add_argument("dump", metavar="DUMP")
    p.add_argument("dst", metavar="DST")
    p = add(
        "compact",
        "copy the live graph into a fresh, defragmented store",
        "Copy everything reachable from SRC's root into the new store DST (which must not "
        "exist), under lockShared on SRC: safe on a store in use (readers go on, writers wait "
        "while SRC is read). DST holds only live data, so it is not larger than SRC.",
        locking,
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p = add(
        "bench",
        "a short run of the peer benchmark workloads, on persist alone",
        "Run the workloads of the peer benchmark (counter under lockExcl with 1 and 2 "
        "processes, kv put/get/update, list append, 4 KiB blobs) on persist alone, in a "
        "temporary directory, and print operations per second.",
        as_json,
    )
    p.add_argument(
        "--sizes",
        choices=("short", "quick", "full", "smoke"),
        default="short",
        help="short (the default: a few seconds, every phase long enough to time), quick and "
        "full (the peer harness's --quick and default sizes), smoke (tiny, for tests)",
    )

    demo = commands.add_parser(
        "demo",
        help="a short demo: the 2004 seed programs, then processes sharing a store",
        description="Run the seed programs, then several processes sharing a counter and a "
        "list in one store, and check that nothing was lost.",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line and returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
        sys.stdout.flush()
    except Error as e:
        print(f"persist {args.command}: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1
    except CliError as e:
        print(f"persist {args.command}: {_one_line(e)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our stdout went away (`dump PATH | head`): say so once, quietly exit.
        _silence_stdout()
        print(f"persist {args.command}: output closed early", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"persist {args.command}: {_os_error(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"persist {args.command}: out of memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"persist {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: still one line, unless asked for more
        if os.environ.get("PERSIST_DEBUG"):
            raise
        print(
            f"persist {args.command}: internal error: {type(e).__name__}: {_one_line(e)} "
            "(set PERSIST_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1
    return status


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _os_error(e: OSError) -> str:
    what = e.strerror or str(e)
    if e.filename is not None:
        return f"{e.filename}: {what}"
    return what


def _silence_stdout() -> None:
    # Python flushes stdout at exit; a closed pipe would raise again there.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
