"""The ``graphdiff demo``, ``graphdiff train`` and ``graphdiff draw`` commands.

``graphdiff demo`` is the lecture's "neural network at work" in one command.
It builds a network in neuron notation with :func:`graphdiff.mlp` (default
2-16-16-1, tanh, logistic loss), trains it on a built-in 2-D data set (default
two moons, 200 points) with :func:`graphdiff.fit` and Adam over full batches,
prints the final loss and accuracy (on the training points and on 200 new
points of the same kind) and writes into an output folder:

=========================  ===========================================================
``decision_boundary.png``  the trained network's regions, its boundary and the points
``loss.png``               loss and accuracy per epoch, training and new points
``network.png``            the network, each node coloured by its mean |δ| from a
                           ``backward(deltas=True)`` pass with the trained parameters
``model.json``             the graph and trained parameters (:func:`graphdiff.save`,
                           loss ``"E"``), for ``graphdiff train``, ``draw``, ``info``
=========================  ===========================================================

``graphdiff train FILE --data SPEC --out FILE`` trains a saved model further
on a built-in data set or a ``.csv``/``.npz`` file and saves it atomically;
``graphdiff draw FILE -o graph.png`` draws a saved model.

>>> from graphdiff.cli import build_parser
>>> args = build_parser().parse_args(["demo", "--hidden", "8,8", "--epochs", "50"])
>>> args.dataset, _sizes(args.hidden), args.epochs, args.out
('moons', [8, 8], 50, 'graphdiff-demo')
"""

from __future__ import annotations

import argparse
import difflib
import time
from pathlib import Path
from typing import Any

from .errors import GraphdiffError

__all__ = ["CommandError", "add_commands"]

COLORS = ("delta", "delta_rms", "dead", "saturated")  # what network.png's colours show
DEMO_POINTS = 200  # training points; as many new points are drawn to test on
MAX_HIDDEN = 1000  # neurons per hidden layer; a toy data set needs far fewer


class CommandError(GraphdiffError, ValueError):
    """A command-line argument that cannot be used; the message names the option."""


def add_commands(sub: Any) -> None:
    """``graphdiff demo``, ``graphdiff train`` and ``graphdiff draw``."""
    from .data import BUILTIN_DATA

    builtin = ", ".join(BUILTIN_DATA)
    p = sub.add_parser(
        "demo",
        help="train a network on a 2-D data set and write its pictures and model file",
        description="Build a neuron-notation network, train it with a progress bar, print "
        "its loss and accuracy, and write decision_boundary.png, loss.png, network.png "
        "and model.json into the output folder.",
    )
    p.add_argument("--dataset", default="moons", help=f"one of {builtin} (default moons)")
    p.add_argument("--hidden", default="16,16",
                   help="hidden layer sizes, comma-separated (default 16,16)")
    p.add_argument("--activation", default="tanh",
                   help="the hidden layers' activation, a registered op (default tanh)")
    p.add_argument("--epochs", type=int, default=300, help="full-batch epochs (default 300)")
    p.add_argument("--lr", type=float, default=0.02, help="Adam's learning rate (default 0.02)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the data, the initial weights and the new test points")
    p.add_argument("--out", default="graphdiff-demo",
                   help="output folder, created if needed (default ./graphdiff-demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--color", choices=COLORS, default="delta",
                   help="colour network.png's neurons by mean |δ| (delta, the default), by "
                   "the RMS of δ on a log scale, or by the fraction of training points where "
                   "they are dead (g'(z) = 0) or saturated (|g'(z)| < 1e-3 of its maximum)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a saved model on a data set and save it",
        description="Load a model file, feed it a data set (CSV columns go to the inputs "
        "of the same names; the label column's values are mapped to the loss's targets and "
        "the mapping printed), train it and write the trained model to --out "
        "(atomically; --out may be FILE itself).",
    )
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.add_argument("--data", required=True,
                   help=f"a built-in data set ({builtin}) or a .csv/.npz file")
    p.add_argument("--out", required=True, help="where to write the trained model file")
    p.add_argument("--label", metavar="COLUMN",
                   help="the column of the targets (default: the loss's target input's "
                   "name, then t, y, label, target)")
    p.add_argument("--features", metavar="A,B,...",
                   help="the feature columns, in the order of the model's inputs (default: "
                   "the columns named like the inputs, or all but the label)")
    p.add_argument("--labels", metavar="NEG,POS",
                   help="the label values in target order: NEG,POS for a -1/+1 loss, "
                   "class 0,1,... for softmax cross-entropy (default: sorted)")
    p.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    p.add_argument("--optimizer", default=None, metavar="NAME",
                   help="sgd or adam (default adam; with --resume, the checkpoint's)")
    p.add_argument("--lr", type=float, default=None,
                   help="the learning rate (default 0.02; with --resume, the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="minibatch size (default: full batches)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds a built-in data set, the shuffling, and parameters the file lacks")
    p.add_argument("--loss", help="the loss node (default: the one saved in the file)")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="write a checkpoint to FILE every --every epochs and at the end")
    p.add_argument("--every", type=int, default=None, metavar="K",
                   help="epochs between checkpoints (default 1; needs --checkpoint)")
    p.add_argument("--resume", metavar="FILE",
                   help="continue from a checkpoint written by --checkpoint")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing but errors (no progress bar)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="train data-parallel on N single-threaded Dask worker processes "
                       "on this machine (needs Dask: pip install -e \".[dask]\")")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="train data-parallel on the Dask cluster at ADDRESS, "
                       "e.g. tcp://SCHEDULER-HOST:8786 (needs Dask: pip install -e \".[dask]\")")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "draw", help="draw a saved model as a PNG picture",
        description="Draw a saved model: neurons labelled with their activation, op nodes "
        "with their op, a dense layer's edges by |weight|. With --data, colour the nodes by "
        "training diagnostics on that data and optionally draw edges by |gradient|.",
    )
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.add_argument("-o", "--out", required=True, help="the PNG file to write")
    p.add_argument("--data", help="a built-in data set or a .csv/.npz file: colour the nodes "
                   "by their diagnostics on it (see --color)")
    p.add_argument("--color", choices=COLORS[1:], default="delta_rms",
                   help="with --data: RMS of δ (default), or the dead or saturated fraction")
    p.add_argument("--edges", choices=("weight", "gradient"), default="weight",
                   help="draw edges by |weight| (default) or, with --data, by |gradient|")
    p.add_argument("--loss", help="the loss node (default: the one saved in the file)")
    p.set_defaults(func=_cmd_draw)


# -- demo -------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    """Hidden layer sizes from ``"16,16"``; ``""`` is no hidden layer."""
    parts = [s.strip() for s in text.split(",")] if text.strip() else []
    if not all(p.isascii() and p.isdigit() and 1 <= int(p) <= MAX_HIDDEN for p in parts):
        raise CommandError(
            f"--hidden must be layer sizes from 1 to {MAX_HIDDEN} separated by commas, like "
            f"16,16; got {text!r}"
        )
    return [int(p) for p in parts]


def _percent(accuracy: float, n: int) -> str:
    return f"{accuracy:.1%} ({round(accuracy * n)}/{n})"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .build import mlp
    from .compile import compile as compile_graph
    from .data import BUILTIN_DATA, feed, load_data
    from .diagnostics import node_diagnostics
    from .io import save
    from .optim import Adam
    from .train import fit
    from .viz import draw_network, plot_decision_boundary, plot_history, predictor

    if args.dataset not in BUILTIN_DATA:
        close = difflib.get_close_matches(args.dataset, BUILTIN_DATA, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CommandError(
            f"--dataset {args.dataset!r} is not a built-in data set; {hint}"
            f"choose one of {', '.join(BUILTIN_DATA)} (graphdiff train takes your own files)"
        )
    if args.epochs < 1:
        raise CommandError(f"--epochs must be at least 1, got {args.epochs}")
    sizes = [2, *_sizes(args.hidden), 1]
    G = mlp(sizes, args.activation, loss="logistic")
    optimizer = Adam(lr=args.lr)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {args.out!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    net = compile_graph(G, loss="E")
    train = load_data(args.dataset, n=DEMO_POINTS, seed=args.seed)
    new = load_data(args.dataset, n=DEMO_POINTS, seed=args.seed + 1)
    shape = "-".join(map(str, sizes))
    # without a hidden layer the network is linear: --activation has nothing to act on
    kind = args.activation if len(sizes) > 2 else "no hidden layer (a linear model)"
    print(f"network: {shape} in neuron notation, {kind}, logistic loss, "
          f"{len(net.params)} parameters")
    print(f"data: {args.dataset}, {DEMO_POINTS} training points and {DEMO_POINTS} new points")
    print(f"training: {args.epochs} full-batch epochs with Adam(lr={args.lr:g})")
    started = time.perf_counter()
    result = fit(net, net.init_params(seed=args.seed), feed(net, train), optimizer=optimizer,
                 epochs=args.epochs, seed=args.seed, validation=feed(net, new),
                 progress=False if args.quiet else None)
    seconds = time.perf_counter() - started
    last = result.history[-1]
    print(f"final loss {last['loss']:.4g}, accuracy {_percent(last['accuracy'], DEMO_POINTS)} "
          f"on the training points, {_percent(last['val_accuracy'], DEMO_POINTS)} on the new "
          f"points ({seconds:.1f} s)")

    params = result.params
    title = f"{shape} {args.activation if len(sizes) > 2 else 'linear'} on {args.dataset}"
    plot_decision_boundary(predictor(net, params), train["x"], train["t"],
                           out / "decision_boundary.png",
                           title=f"{title}: training accuracy {last['accuracy']:.1%}")
    plot_history(result.history, out / "loss.png", title=title)
    if args.color == "delta":
        deltas = net.backward(params, feed(net, train), deltas=True).deltas
        # The loss's own δ is 1/N per point; left in, it would wash out the neurons' colours.
        neurons = {n: d for n, d in deltas.items() if G.nodes[n]["op"] == "neuron"}
        draw_network(G, out / "network.png", deltas=neurons, params=params,
                     title=f"{title}: mean |δ| = |∂E/∂a| per neuron, trained")
    else:
        stats = node_diagnostics(net, params, feed(net, train))
        draw_network(G, out / "network.png", diagnostics=stats, color=args.color,
                     params=params, title=f"{title}: {args.color.replace('_', ' ')}, trained")
    save(out / "model.json", G, params, loss="E")
    print("wrote decision_boundary.png, loss.png, network.png, model.json")
    print(f"output folder: {out.resolve()}")
    return 0


# -- train and draw -----------------------------------------------------------------------


def _summary(metrics: dict[str, float], n: int) -> str:
    text = f"loss {metrics['loss']:.4g}"
    if "accuracy" in metrics:
        text += f", accuracy {_percent(metrics['accuracy'], n)}"
    return text


def _split(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise CommandError(f"{option} takes names separated by commas, got {text!r}")
    return parts


def _check_train_options(args: argparse.Namespace) -> None:
    """What can be refused before anything is loaded."""
    if args.workers is not None or args.scheduler is not None:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            option = "--workers" if args.workers is not None else "--scheduler"
            raise CommandError(
                f"{option} trains on Dask, which is not installed; install it with "
                'pip install -e ".[dask]" (in the graphdiff checkout)'
            )
    if args.every is not None and args.checkpoint is None:
        raise CommandError("--every sets how often --checkpoint writes; give --checkpoint FILE")
    if args.lr is not None and not args.lr > 0:
        raise CommandError(f"--lr must be > 0, got {args.lr}")


def _optimizer(args: argparse.Namespace) -> Any:
    """The optimizer asked for; None with --resume and no --optimizer/--lr (the
    checkpoint's)."""
    from .optim import Optimizer, OptimizerError

    if args.resume is not None and args.optimizer is None and args.lr is None:
        return None
    name = (args.optimizer or "adam").lower()
    try:
        return Optimizer.from_config(name, {"lr": 0.02 if args.lr is None else args.lr})
    except OptimizerError as e:
        raise CommandError(f"--optimizer {args.optimizer!r}: {e}") from None


def _cmd_train(args: argparse.Namespace) -> int:
    from .compile import compile as compile_graph
    from .data import load_table
    from .distributed import connect
    from .io import load_model, loss_node, save
    from .jsonwrite import check_writable
    from .predict import evaluate
    from .registry import ENGINE_OPS, get_op
    from .tabular import prepare
    from .train import fit

    _check_train_options(args)
    check_writable(args.out)  # before training: a bad --out would lose the trained model
    say = (lambda *a: None) if args.quiet else print
    model = load_model(args.file)
    G, stored = model.graph, model.params
    loss = loss_node(model, args.loss, args.file)
    kind = G.nodes[loss].get("op")
    if not (isinstance(kind, str) and kind not in ENGINE_OPS and get_op(kind).loss):
        ops = {n: d.get("op") for n, d in G.nodes(data=True)}
        losses = [str(n) for n, k in ops.items()
                  if isinstance(k, str) and k not in ENGINE_OPS and get_op(k).loss]
        where = f"--loss {loss!r}" if args.loss is not None else f"the saved loss {loss!r}"
        raise CommandError(
            f"{where} is a node of op {kind!r}, not a loss (an op with loss=True, such as "
            f"logistic or squared_error); the loss nodes of {args.file}: {losses or 'none'}"
        )
    optimizer = _optimizer(args)
    net = compile_graph(G, loss=loss, dtype=model.dtype)  # as saved: float32 stays float32
    table = load_table(args.data, seed=args.seed, label=args.label)
    ready = prepare(net, table, label=args.label, features=_split(args.features, "--features"),
                    labels=_split(args.labels, "--labels"))
    data = ready.inputs
    n = len(next(iter(data.values())))
    from_file = [p for p in net.params if p in stored]
    params = {**net.init_params(seed=args.seed), **{p: stored[p] for p in from_file}}
    say(f"{args.file}: loss node {loss!r}, {len(net.params)} parameters "
        f"({len(from_file)} from the file, {len(net.params) - len(from_file)} drawn "
        f"with seed {args.seed})")
    say(f"data: {args.data}, {n} points")
    for note in ready.notes:
        say(note)
    say(f"before: {_summary(evaluate(net, params, data), n)}")
    with connect(args.workers, args.scheduler) as client:
        result = fit(net, params, data, optimizer=optimizer, epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed, client=client,
                     progress=False if args.quiet else None, checkpoint=args.checkpoint,
                     every=1 if args.every is None else args.every, resume=args.resume)
    after = evaluate(net, result.params, data)
    say(f"after {result.epochs} epochs: {_summary(after, n)}")
    # Parameters the loss does not use are kept as they were: nothing in the file is lost.
    save(args.out, G, {**stored, **result.params}, loss=loss, dtype=model.dtype)
    say(f"wrote {args.out}")
    return 0


def _cmd_draw(args: argparse.Namespace) -> int:
    from .compile import compile as compile_graph
    from .data import feed, load_data
    from .diagnostics import node_diagnostics
    from .io import load_model, loss_node
    from .viz import draw_network

    model = load_model(args.file)
    G, params = model.graph, model.params or {}
    title = Path(args.file).name
    if args.data is None:
        if args.edges == "gradient":
            raise CommandError("--edges gradient needs --data (gradients on which data?)")
        draw_network(G, args.out, params=params or None, title=title)
    else:
        net = compile_graph(G, loss=loss_node(model, args.loss, args.file), dtype=model.dtype)
        missing = [p for p in net.params if p not in params]
        if missing:
            raise CommandError(
                f"--data: the model file has no values for parameter(s) {missing!r}"
            )
        data = feed(net, load_data(args.data))
        stats = node_diagnostics(net, params, data)
        grads = dict(net.backward(params, data).grads) if args.edges == "gradient" else None
        draw_network(G, args.out, params=params, grads=grads, diagnostics=stats,
                     color=args.color, title=f"{title} on {args.data}: {args.color}")
    print(f"wrote {args.out}")
    return 0
