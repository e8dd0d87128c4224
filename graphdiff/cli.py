"""The ``graphdiff`` command line.

Each area of graphdiff contributes its subcommands through a function
``add_commands(subparsers)`` in its own module (listed in ``COMMAND_MODULES``);
each subcommand sets ``func(args) -> int``. Errors on bad input print one line
and exit non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from .errors import GraphdiffError

__all__ = ["main"]

# Modules providing add_commands(subparsers); imported when the CLI starts.
COMMAND_MODULES: tuple[str, ...] = ("graphdiff.cli", "graphdiff.io", "graphdiff.demo")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ops", help="list every op with where it came from")
    p.set_defaults(func=_cmd_ops)


def _cmd_ops(args: argparse.Namespace) -> int:
    from .registry import list_ops

    rows = list_ops()
    width = max(len(r.name) for r in rows)
    kwidth = max(len(r.kind) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.kind:<{kwidth}}  {r.source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphdiff", description="Backpropagation on any graph you can draw."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (GraphdiffError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"graphdiff: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("graphdiff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
