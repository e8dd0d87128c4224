"""The ``graphdiff`` command line.

Each area of graphdiff contributes its subcommands through a function
``add_commands(subparsers)`` in its own module (listed in ``COMMAND_MODULES``);
each subcommand sets ``func(args) -> int``. Every subcommand takes ``--debug``
(before or after its name) and is described by its one-line ``help``.

Exit status: 0 done; 1 an error (bad input: one line on stderr, no traceback
unless ``--debug``); 2 a usage error (argparse); 3 a check that ran and failed
(``gradcheck``); 130 interrupted. A closed pipe (``graphdiff ops | head -1``)
ends quietly with 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import GraphdiffError

__all__ = ["main"]

# Modules providing add_commands(subparsers); imported when the CLI starts.
COMMAND_MODULES: tuple[str, ...] = ("graphdiff.cli", "graphdiff.io", "graphdiff.demo")

DEBUG_HELP = "show the Python traceback on errors"


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


class _Subcommands:
    """What ``add_commands`` gets: argparse's subparsers, where every subcommand
    also takes ``--debug`` and is described by its help line unless it has a
    longer description."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    def add_parser(self, name: str, *, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", help)
        p: argparse.ArgumentParser = self._sub.add_parser(name, help=help, **kwargs)
        # SUPPRESS: when not given after the subcommand, the top-level value stands
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=DEBUG_HELP)
        return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphdiff", description="Backpropagation on any graph you can draw.",
    )
    parser.add_argument("--version", action="version", version=f"graphdiff {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = _Subcommands(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(commands)
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("graphdiff: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except (GraphdiffError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"graphdiff: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug, in graphdiff or a plugin: still no traceback
        if args.debug:
            raise
        print(f"graphdiff: internal error: {type(e).__name__}: {e} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        try:
            return _run(argv)
        finally:  # also after --help or --version (SystemExit)
            sys.stdout.flush()
    except BrokenPipeError:
        # the reader of our output went away (graphdiff ops | head -1): stop quietly;
        # stdout goes to devnull so that Python's own flush at exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
