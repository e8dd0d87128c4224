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
import contextlib
import importlib
import json
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import networkx as nx
import numpy as np

from . import __version__
from .errors import GraphdiffError
from .io import load_model, loss_node
from .registry import ENGINE_OPS, get_op
from .schema import ModelFile

__all__ = ["main"]

# Modules providing add_commands(subparsers); imported when the CLI starts.
COMMAND_MODULES: tuple[str, ...] = ("graphdiff.cli", "graphdiff.demo")

DEBUG_HELP = "show the Python traceback on errors"
CHECK_FAILED = 3  # the exit status of a check that ran and failed (gradcheck)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ops", help="list every op with where it came from")
    p.add_argument("--json", action="store_true", help="print JSON only, every row (for scripts)")
    p.set_defaults(func=_cmd_ops)
    _add_file_commands(sub)


def _cmd_ops(args: argparse.Namespace) -> int:
    from .registry import list_ops

    rows = list_ops()
    if args.json:
        _print_json([{"name": r.name, "kind": r.kind, "source": r.source} for r in rows])
        return 0
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


def _add_file_commands(sub: Any) -> None:
    """``graphdiff info``, ``graphdiff gradcheck`` and ``graphdiff schema``."""
    p = sub.add_parser("info", help="show a model file's nodes, parameters and plugins")
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.add_argument("--all", action="store_true",
                   help=f"list every node and parameter (default: a summary past {SHOWN} rows)")
    p.add_argument("--json", action="store_true", help="print JSON only, every row (for scripts)")
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
    p.add_argument("--json", action="store_true", help="print JSON only, every row (for scripts)")
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


def _print_json(value: Any) -> None:
    """``value`` as JSON on stdout; NaN or infinity would not be JSON (pass them as text)."""
    print(json.dumps(value, indent=2, allow_nan=False))


def _number(x: float) -> float | str:
    """A float for JSON: itself when finite, else ``"nan"``, ``"inf"`` or ``"-inf"``."""
    return float(x) if math.isfinite(x) else str(float(x))


def _node_label(n: Hashable) -> str:
    return repr(n) if isinstance(n, str) else str(n)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()] + [
        fmt.format(*r).rstrip() for r in rows
    ]


def _compiled(G: nx.DiGraph[Any], loss: Hashable | None, dtype: str) -> tuple[Any, str]:
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
            return compile_graph(G, loss=loss, dtype=dtype), ""
    except GraphdiffError as e:
        return None, f"does not compile: {e}"


def _read_model(path: str) -> tuple[nx.DiGraph[Any], dict[str, Any], Hashable | None, str]:
    """A model file, or an ONNX model (``*.onnx``, through graphdiff.onnx, no loss):
    the graph, the parameters, the loss node and the dtype to compile it with."""
    if str(path).lower().endswith(".onnx"):
        from .onnx import load as load_onnx

        G, params = load_onnx(path)
        return G, dict(params), None, str(G.graph["dtype"])
    model = load_model(path)
    return model.graph, model.params, model.loss, model.dtype


def _info(file: str) -> dict[str, Any]:
    """What ``graphdiff info`` tells about a model (or ONNX) file: every node (ids as
    in the file, in its order) and every parameter (in natural order)."""
    G, params, loss, dtype = _read_model(file)
    net, why = _compiled(G, loss, dtype)
    nodes = [{"node": n, "op": d.get("op"),
              "activation": d.get("activation") if d.get("op") == "neuron" else None,
              "in": G.in_degree(n), "out": G.out_degree(n)}
             for n, d in G.nodes(data=True)]
    parameters = []
    for name in sorted(set(params) | set(net.params if net else ()), key=natural_key):
        spec = net.params.get(name) if net else None
        value = params.get(name)
        shape = spec.shape if spec is not None else np.shape(value)  # type: ignore[arg-type]
        uses = len(spec.uses) if spec is not None else None
        parameters.append({
            "name": name, "shape": list(shape), "size": math.prod(shape),
            "stored": str(np.asarray(value).dtype) if value is not None else None,
            "uses": uses, "shared": uses is not None and uses > 1,
        })
    used = {d[a] for _, d in G.nodes(data=True) for a in ("op", "activation") if a in d}
    ops = [get_op(name) for name in sorted(used - set(ENGINE_OPS))]
    return {
        "file": file, "graph": "MultiDiGraph" if G.is_multigraph() else "DiGraph",
        "loss": loss, "dtype": dtype, "nodes": nodes, "edges": G.number_of_edges(),
        "parameters": parameters, "compiled": net is not None, "note": why or None,
        "plugins": [{"op": op.name, "source": op.source}
                    for op in ops if not op.builtin],
    }


def _cmd_info(args: argparse.Namespace) -> int:
    info = _info(args.file)
    if args.json:
        _print_json(info)
        return 0
    loss = info["loss"]
    out = [f"{args.file}: {info['graph']}, {len(info['nodes'])} nodes, {info['edges']} edges, "
           f"loss {_node_label(loss) if loss is not None else '(not saved)'}", ""]
    rows = [
        [_node_label(d["node"]), str(d["op"] or "-"),
         str(d["activation"] or "-") if d["op"] == "neuron" else "",
         str(d["in"]), str(d["out"])]
        for d in info["nodes"]
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
    params = info["parameters"]
    prows = [[p["name"], str(tuple(p["shape"])), str(p["size"]), p["stored"] or "(not saved)",
              "(unused)" if p["uses"] is None else str(p["uses"]), "yes" if p["shared"] else ""]
             for p in params]
    if prows:
        shown = prows if len(prows) <= SHOWN or args.all else prows[: SHOWN // 2]
        out += _table(["parameter", "shape", "size", "stored", "uses", "shared"], shown)
        if len(shown) < len(prows):
            out.append(f"... {len(prows) - len(shown)} more parameters "
                       "(--all lists every parameter)")
    total = sum(p["size"] for p in params)
    shared = sum(1 for p in params if p["shared"])
    out.append(f"total: {len(params)} parameters ({shared} shared), {total} numbers; "
               f"dtype {info['dtype']}" + (f"; {info['note']}" if info["note"] else ""))
    extra = [f"{p['op']} ({p['source']})" for p in info["plugins"]]
    out.append("plugins: " + (", ".join(extra) if extra else "none"))
    print("\n".join(out))
    return 0


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from .compile import compile as compile_graph
    from .data import feed, load_data
    from .numgrad import gradcheck

    model = load_model(args.file)
    G, stored = model.graph, model.params
    loss = loss_node(model, args.loss, args.file)
    net = compile_graph(G, loss=loss, dtype=model.dtype)
    params = {**net.init_params(seed=args.seed),
              **{k: v for k, v in stored.items() if k in net.params}}
    inputs = feed(net, load_data(args.data, n=args.n, seed=args.seed))
    report = gradcheck(net, params, inputs, directions=args.directions, seed=args.seed)
    rows = sorted(report.rows, key=lambda r: natural_key(r.name))
    bad = [r.name for r in rows if not r.ok]
    if args.json:
        _print_json({
            "file": args.file, "loss": loss, "data": args.data, "mode": report.mode,
            "eps": report.eps, "atol": report.atol, "rtol": report.rtol,
            "dtype": report.dtype, "numeric_dtype": report.numeric_dtype,
            "evaluations": report.evaluations, "ok": report.ok,
            "rows": [{"name": r.name, "size": r.size, "max_abs_err": _number(r.max_abs_err),
                      "max_rel_err": _number(r.max_rel_err), "ok": r.ok} for r in rows],
            "mismatch": bad,
        })
        return 0 if report.ok else CHECK_FAILED
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
    print(f"{len(report.rows) - len(bad)} of {len(report.rows)} checks pass"
          + (f"; mismatch: {', '.join(bad)}" if bad else ""))
    return 0 if report.ok else CHECK_FAILED

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphdiff", description="Backpropagation on any graph you can draw.",
    )
    parser.add_argument("--version", action="version", version=f"graphdiff {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress (a line per epoch), checkpoints written and plugins "
                        "loaded on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = _Subcommands(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(commands)
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


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    try:
        with _one_line_warnings():
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
