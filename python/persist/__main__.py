"""The command line: ``python -m persist COMMAND``.

Every failure is a one-line message on stderr and a non-zero exit, never a traceback:
exit status 2 for a usage error (as argparse does), 1 for an error about a store, 130 for
Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from persist import FORMAT_VERSION, Error, __version__


def _demo(_args: argparse.Namespace) -> int:
    from persist._demo import main

    return main()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m persist",
        description="persist: a persistent object store for Python.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"persist {__version__} (store format {FORMAT_VERSION})",
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
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
    except Error as e:
        print(f"persist {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"persist {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
