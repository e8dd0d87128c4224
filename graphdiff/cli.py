"""The ``graphdiff`` command line.

Each area of graphdiff contributes its subcommands through a function
``add_commands(subparsers)`` in its own module (listed in ``COMMAND_MODULES``);
each subcommand sets ``func(args) -> int``. Errors on bad input print one line
and exit non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import re
import sys
import warnings
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import networkx as nx
import numpy as np

from .errors import GraphdiffError
from .io import load_model, loss_node
from .registry import ENGINE_OPS, get_op
from .schema import ModelFile

__all__ = ["main"]

# Modules providing add_commands(subparsers); imported when the CLI starts.
COMMAND_MODULES: tuple[str, ...] = ("graphdiff.cli", "graphdiff.demo")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ops", help="list every op with where it came from")
    p.set_defaults(func=_cmd_ops)
    _add_file_commands(sub)


def _cmd_ops(args: argparse.Namespace) -> int:
    from .registry import list_ops

    rows = list_ops()
    width = max(len(r.name) for r in rows)
    kwidth = max(len(r.kind) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.kind:<{kwidth}}  {r.source}")
    return 0


def _add_file_commands(sub: Any) -> None:
    """``graphdiff info``, ``graphdiff gradcheck`` and ``graphdiff schema``."""
    p = sub.add_parser("info", help="show a model file's nodes, parameters and plugins")
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.add_argument("--all", action="store_true",
                   help=f"list every node and parameter (default: a summary past {SHOWN} rows)")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("gradcheck", help="check a model file's gradients numerically")
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.add_argument("--data", required=True,
                   help="a built-in data set (moons, xor, ...) or a .csv/.npz file")
    p.add_argument("--loss", help="the loss node (default: the one saved in the file)")
    p.add_argument("--n", type=int, default=200, help="size of a built-in data set")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of a built-in data set and of parameters the file lacks")
    p.add_argument("--directions", type=int, default=None,
                   help="check this many random directions instead of every entry")
    p.add_argument("--all", action="store_true",
                   help=f"list every row (default: past {SHOWN} rows, the failing rows and "
                   "the largest errors)")
    p.set_defaults(func=_cmd_gradcheck)
    p = sub.add_parser("schema", help="print the JSON Schema of model files")
    p.set_defaults(func=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(ModelFile.model_json_schema(), indent=2, sort_keys=True))
    return 0


SHOWN = 20  # rows of a table shown before info and gradcheck summarise it


def natural_key(name: object) -> tuple[Any, ...]:
    """Sort key that orders the numbers inside names by value: h1_2 before h1_10.

    >>> sorted(["h1_10", "h1_2", "b", "h1_1"], key=natural_key)
    ['b', 'h1_1', 'h1_2', 'h1_10']
    """
    parts = re.split(r"(\d+)", str(name))
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _node_label(n: Hashable) -> str:
    return repr(n) if isinstance(n, str) else str(n)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()] + [
        fmt.format(*r).rstrip() for r in rows
    ]


def _compiled(G: nx.DiGraph[Any], loss: Hashable | None) -> tuple[Any, str]:
    """Compile for ``info``: the saved loss, else the only sink; (None, why) if not."""
    from .compile import compile as compile_graph

    if loss is None:
        sinks = [n for n in G if G.out_degree(n) == 0]
        if len(sinks) != 1:
            return None, "no loss node saved and no single sink to compile"
        loss = sinks[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile_graph(G, loss=loss), ""
    except GraphdiffError as e:
        return None, f"does not compile: {e}"


def _read_model(path: str) -> tuple[nx.DiGraph[Any], dict[str, Any], Hashable | None]:
    """A model file, or an ONNX model (``*.onnx``, through graphdiff.onnx, no loss)."""
    if str(path).lower().endswith(".onnx"):
        from .onnx import load as load_onnx

        G, params = load_onnx(path)
        return G, dict(params), None
    return tuple(load_model(path))  # type: ignore[return-value]


def _cmd_info(args: argparse.Namespace) -> int:
    G, params, loss = _read_model(args.file)
    kind = "MultiDiGraph" if G.is_multigraph() else "DiGraph"
    out = [f"{args.file}: {kind}, {G.number_of_nodes()} nodes, {G.number_of_edges()} edges, "
           f"loss {_node_label(loss) if loss is not None else '(not saved)'}", ""]
    rows = [
        [_node_label(n), str(d.get("op", "-")),
         str(d.get("activation", "-")) if d.get("op") == "neuron" else "",
         str(G.in_degree(n)), str(G.out_degree(n))]
        for n, d in G.nodes(data=True)
    ]
    if len(rows) <= SHOWN or args.all:
        out += [*_table(["node", "op", "activation", "in", "out"], rows), ""]
    else:  # hundreds of neurons: how many of each kind
        kinds: dict[tuple[str, str], int] = {}
        for r in rows:
            kinds[r[1], r[2]] = kinds.get((r[1], r[2]), 0) + 1
        counts = [[op, act, str(k)] for (op, act), k in kinds.items()]
        out += [*_table(["op", "activation", "nodes"], counts),
                f"({len(rows)} nodes; --all lists every node)", ""]
    net, why = _compiled(G, loss)
    prows = []
    names = sorted(set(params) | set(net.params if net else ()), key=natural_key)
    for name in names:
        spec = net.params.get(name) if net else None
        value = params.get(name)
        shape = spec.shape if spec is not None else np.shape(value)  # type: ignore[arg-type]
        uses = len(spec.uses) if spec is not None else 0
        stored = str(np.asarray(value).dtype) if value is not None else "(not saved)"
        prows.append([name, str(shape), str(math.prod(shape)), stored,
                      str(uses) if spec is not None else "(unused)",
                      "yes" if uses > 1 else ""])
    if prows:
        shown = prows if len(prows) <= SHOWN or args.all else prows[: SHOWN // 2]
        out += _table(["parameter", "shape", "size", "stored", "uses", "shared"], shown)
        if len(shown) < len(prows):
            out.append(f"... {len(prows) - len(shown)} more parameters "
                       "(--all lists every parameter)")
    total = sum(int(r[2]) for r in prows)
    shared = sum(1 for r in prows if r[5])
    out.append(f"total: {len(prows)} parameters ({shared} shared), {total} numbers"
               + (f"; {why}" if why else ""))
    used = {d[a] for _, d in G.nodes(data=True) for a in ("op", "activation") if a in d}
    ops = [get_op(name) for name in sorted(used - set(ENGINE_OPS))]
    extra = [f"{op.name} ({op.source})" for op in ops if not op.builtin]
    out.append("plugins: " + (", ".join(extra) if extra else "none"))
    print("\n".join(out))
    return 0



def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from .compile import compile as compile_graph
    from .data import feed, load_data
    from .numgrad import gradcheck

    model = load_model(args.file)
    G, stored = model.graph, model.params
    net = compile_graph(G, loss=loss_node(model, args.loss, args.file))
    params = {**net.init_params(seed=args.seed),
              **{k: v for k, v in stored.items() if k in net.params}}
    inputs = feed(net, load_data(args.data, n=args.n, seed=args.seed))
    report = gradcheck(net, params, inputs, directions=args.directions, seed=args.seed)
    rows = sorted(report.rows, key=lambda r: natural_key(r.name))
    if len(rows) <= SHOWN or args.all:
        print(replace(report, rows=rows))
    else:  # every failing row, then the largest relative errors among the rest
        failing = [r for r in rows if not r.ok]
        worst = sorted((r for r in rows if r.ok), key=lambda r: -r.max_rel_err)
        picked = {id(r) for r in [*failing, *worst[: max(SHOWN // 4, SHOWN - len(failing))]]}
        shown = [r for r in rows if id(r) in picked]
        print(replace(report, rows=shown))
        print(f"... {len(rows) - len(shown)} more rows pass with smaller errors "
              "(--all lists every row)")
    bad = [r.name for r in rows if not r.ok]
    print(f"{len(report.rows) - len(bad)} of {len(report.rows)} checks pass"
          + (f"; mismatch: {', '.join(bad)}" if bad else ""))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphdiff", description="Backpropagation on any graph you can draw."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress (a line per epoch), checkpoints written and plugins "
                        "loaded on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


class _Stderr(logging.Handler):
    """graphdiff's log records as ``graphdiff: warning: ...`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"graphdiff: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def _log_to_stderr(level: int) -> None:
    logger = logging.getLogger("graphdiff")
    handler = next((h for h in logger.handlers if isinstance(h, _Stderr)), None)
    if handler is None:
        handler = _Stderr()
        logger.addHandler(handler)
    handler.setLevel(level)
    logger.setLevel(min(level, logger.getEffectiveLevel()))


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """A GraphWarning is news for the user: shown as one line, without Python's source line."""
    from .compile import GraphWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("default", category=GraphWarning)
        warnings.showwarning = _show_warning
        yield


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: Any = None, line: str | None = None,
) -> None:
    """Warnings as ``graphdiff: warning: ...`` on stderr; others as Python shows them."""
    from .compile import GraphWarning

    if issubclass(category, GraphWarning):
        print(f"graphdiff: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _log_to_stderr(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    try:
        with _one_line_warnings():
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
