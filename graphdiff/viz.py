"""Pictures: decision boundaries, training curves and the network itself.

Every function takes the thing it draws first and draws on a fresh
:class:`matplotlib.figure.Figure` (never pyplot, so no window opens and no
global state changes), or into a given matplotlib ``ax`` for composing
several pictures. With ``path`` it writes a PNG there and returns the path;
without, it returns the Figure (which a notebook displays).

>>> import graphdiff, tempfile, pathlib
>>> from graphdiff.baselines import Perceptron
>>> d = graphdiff.blobs(40)
>>> p = Perceptron().fit(d["x"], d["t"])
>>> type(plot_decision_boundary(p.predict, d["x"], d["t"])).__name__
'Figure'
>>> out = pathlib.Path(tempfile.mkdtemp()) / "boundary.png"
>>> plot_decision_boundary(p.predict, d["x"], d["t"], out).read_bytes()[:4]
b'\\x89PNG'

The path-first order of earlier versions (``plot_decision_boundary(path,
predict, x, t)``) still works, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from .data import feed
from .errors import GraphdiffError, GraphError, InputError
from .graphs import edge_param, node_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# matplotlib is imported inside the functions: `import graphdiff` stays fast.

__all__ = [
    "VizError",
    "draw_network",
    "network_png",
    "plot_decision_boundary",
    "plot_diagnostics",
    "plot_history",
    "predictor",
]

Array = np.ndarray
PathLike = str | Path

# Colour-blind-friendly pair for the classes t = -1 and t = +1; more classes cycle tab10.
CLASS_COLORS = {-1.0: "#1f77b4", 1.0: "#d62728"}
KIND_COLORS = {
    "input": "#c7e9c0",
    "neuron": "#c6dbef",
    "param": "#fdd0a2",
    "const": "#e0e0e0",
    "op": "#ffffff",
}
ENGINE_KINDS = ("input", "param", "const")
SIGN_COLORS = {False: "#2166ac", True: "#b2182b"}  # positive, negative weight
DENSE_EDGES = 32  # more edges than this: drawn by |weight| (or thin and translucent)
DIAGNOSTIC_KEYS = ("delta_rms", "dead", "saturated")
DIAGNOSTIC_LABELS = {
    "delta_rms": "RMS of δ over the data points (log scale)",
    "dead": "dead: fraction of data points with g'(z) = 0",
    "saturated": "saturated: fraction with |g'(z)| < 1e-3 of its maximum",
}
MAX_DEFAULT_LABELS = 16  # more default "u->v" edge labels than this would hide the picture
SHARED_COLORS = ["#e6550d", "#3182bd", "#31a354", "#756bb1", "#de2d26", "#636363", "#8c6d31"]


class VizError(GraphdiffError, ValueError):
    """Arguments a picture cannot be drawn from (shapes, an empty history, no target)."""


def _canvas(ax: Axes | None, size: tuple[float, float]) -> Axes:
    from matplotlib.figure import Figure

    if ax is not None:
        return ax
    return Figure(figsize=size, layout="constrained").add_subplot()


def _root(ax: Axes) -> Figure:
    from matplotlib.figure import Figure

    fig: Any = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: the whole figure
        fig = fig.figure
    return fig


def _finish(fig: Figure, path: PathLike | None) -> Path | Figure:
    """Write ``fig`` to ``path`` and return the path; without a path, return ``fig``."""
    if path is None:
        return fig
    fig.savefig(path, dpi=100)
    return Path(path)


def _is_path(value: object) -> bool:
    return value is None or isinstance(value, (str, os.PathLike))


def _deprecated_order(name: str, new: str) -> None:
    warnings.warn(
        f"{name}(path, ...) is deprecated: pass what is drawn first and the path after it, "
        f"{new}",
        DeprecationWarning,
        stacklevel=3,
    )


# --- decision boundary ------------------------------------------------------------------


def predictor(net: Any, params: Mapping[str, Any], output: Hashable = "y") -> Callable[..., Array]:
    """``predict(x)``: the network's ``output`` for points ``x`` (M, d), for plotting.

    The points are fed as :func:`graphdiff.data.feed` does (inputs ``x1``,
    ``x2``, ... or ``x``); only the inputs ``output`` depends on are needed,
    so no target is.

    >>> import graphdiff
    >>> net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E")
    >>> predict = predictor(net, {"x1->y": 1.0, "x2->y": -1.0, "y.bias": 0.5})
    >>> predict(np.array([[2.0, 1.0], [0.0, 3.0]]))
    array([ 1.5, -2.5])
    """
    if output not in net.nodes:
        raise InputError(f"predictor: {output!r} is not a node the loss depends on")
    needed = [n for n in net.inputs if nx.has_path(net.graph, n, output)]

    def predict(x: Array) -> Array:
        values = net.forward(params, feed(needed, {"x": np.asarray(x)}), outputs=[output])
        return np.asarray(values[output])

    return predict


def _classes(scores: Array) -> Array:
    """Class per point: sign for one score per point, argmax for several."""
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    classes: Array = np.sign(scores) if scores.ndim == 1 else np.argmax(scores, axis=1) * 1.0
    return classes


def _class_color(label: float, binary: bool) -> str:
    if binary:
        return CLASS_COLORS.get(label, "#7f7f7f")
    return f"C{int(label) % 10}"


def plot_decision_boundary(
    predict: Callable[[Array], Any],
    x: Any,
    t: Any,
    path: PathLike | None = None,
    *,
    title: str | None = None,
    resolution: int = 200,
    ax: Axes | None = None,
) -> Path | Figure:
    """The classifier's regions, its decision boundary and the data points.

    Parameters
    ----------
    predict : maps points (M, 2) to scores: one per point (its sign is the
        class, labels in {-1, +1}; the boundary is score = 0) or one per class
        (M, K), the largest wins (labels 0..K-1). :func:`predictor` makes one
        from a network.
    x, t : the data points (N, 2) and their labels (N,).
    path : where to write the PNG; without, the Figure is returned.
    resolution : grid points per axis.
    ax : draw into this matplotlib Axes instead of a new Figure.

    Misclassified points are crossed out; the legend counts them.
    """
    from matplotlib.colors import ListedColormap

    first: Any = predict
    if not callable(first) and _is_path(first) and callable(x):  # the old (path, predict, x, t)
        _deprecated_order("plot_decision_boundary", "plot_decision_boundary(predict, x, t, path)")
        predict, x, t, path = x, t, path, first

    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise VizError(f"x must have shape (N, 2), got shape {x.shape}")
    if t.shape != (len(x),):
        raise VizError(f"t must have shape ({len(x)},), got shape {t.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise VizError(f"resolution must be an int >= 2, got {resolution!r}")
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = np.where(hi > lo, 0.1 * (hi - lo), 0.5)
    g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    X0, X1 = np.meshgrid(g0, g1)
    scores = np.asarray(predict(np.column_stack([X0.ravel(), X1.ravel()])), dtype=np.float64)
    if scores.shape[:1] != (X0.size,) or scores.ndim > 2:
        raise VizError(
            f"predict must return (M,) or (M, K) scores for M points; got {scores.shape}"
        )
    binary = scores.ndim == 1 or scores.shape[1] == 1
    region = _classes(scores).reshape(X0.shape)
    labels = [-1.0, 1.0] if binary else [float(k) for k in range(scores.shape[1])]
    ax = _canvas(ax, (6.0, 5.0))
    cmap = ListedColormap([_class_color(c, binary) for c in labels])
    # A score of exactly 0 belongs to no class; it is shaded with the -1 side.
    index = (region > 0).astype(int) if binary else region.astype(int)
    ax.pcolormesh(X0, X1, index, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5, alpha=0.25)
    if binary:
        s = scores.reshape(X0.shape)
        if s.min() < 0 < s.max():
            ax.contour(X0, X1, s, levels=[0.0], colors="black", linewidths=1.5)
    for c in labels:
        mine = t == c
        if mine.any():
            name = f"t = {c:+.0f}" if binary else f"class {c:.0f}"
            ax.scatter(
                x[mine, 0],
                x[mine, 1],
                s=22,
                color=_class_color(c, binary),
                edgecolors="white",
                linewidths=0.5,
                label=name,
            )
    wrong = _classes(np.asarray(predict(x), dtype=np.float64)) != t
    if wrong.any():
        ax.scatter(
            x[wrong, 0],
            x[wrong, 1],
            s=60,
            marker="x",
            color="black",
            label=f"misclassified ({int(wrong.sum())})",
        )
    ax.set_xlim(g0[0], g0[-1])
    ax.set_ylim(g1[0], g1[-1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    if title:
        ax.set_title(title)
    return _finish(_root(ax), path)


# --- training curves ----------------------------------------------------------------------


def _series(history: Sequence[Mapping[str, Any]], key: str) -> Array | None:
    values = [row.get(key) for row in history]
    if all(v is None for v in values):
        return None
    return np.array([np.nan if v is None else float(v) for v in values])


def plot_history(
    history: Sequence[Mapping[str, Any]],
    path: PathLike | None = None,
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Path | Figure:
    """Loss per epoch, and accuracy beside it when the history has it.

    ``history`` is :func:`graphdiff.fit`'s: one dict per epoch with ``epoch``,
    ``loss`` and optionally ``accuracy``, ``val_loss``, ``val_accuracy``
    (missing or ``None`` values are left out of the curves). On its own
    Figure loss and accuracy get a panel each; drawn into ``ax``, the accuracy
    shares it on a second y axis (right). With ``path`` the PNG is written
    there and the path returned; without, the Figure is returned.
    """
    from matplotlib.figure import Figure

    if _is_path(history) and isinstance(path, Sequence) and not _is_path(path):
        _deprecated_order("plot_history", "plot_history(history, path)")
        history, path = path, history  # type: ignore[assignment]
    if not history:
        raise VizError("plot_history: the history is empty (no epoch to plot)")
    if _series(history, "loss") is None:
        raise VizError(f"plot_history: no 'loss' in the history; keys are {sorted(history[0])}")
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)], dtype=float)
    keys = ["loss"]
    if _series(history, "accuracy") is not None or _series(history, "val_accuracy") is not None:
        keys.append("accuracy")
    if ax is not None:
        axes = [ax, ax.twinx()] if len(keys) == 2 else [ax]
        fig = _root(ax)
    else:
        fig = Figure(figsize=(5.0 * len(keys), 3.8), layout="constrained")
        axes = [fig.add_subplot(1, len(keys), i + 1) for i in range(len(keys))]
    shared = len(axes) == 2 and ax is not None
    lines: list[Any] = []
    for i, (key, panel) in enumerate(zip(keys, axes, strict=True)):
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = _series(history, prefix + key)
            if ys is not None:
                label = ("validation " if prefix else "training ") + key
                lines += panel.plot(
                    epochs, ys, style, color=f"C{2 * i + bool(prefix)}" if shared else None,
                    marker="o" if len(epochs) < 30 else None, label=label,
                )
        panel.set_xlabel("epoch")
        panel.set_ylabel(key)
        if key == "accuracy":
            panel.set_ylim(-0.02, 1.02)
        if not shared:
            panel.grid(alpha=0.3)
            panel.legend(fontsize=8)
    if shared:
        axes[0].grid(alpha=0.3)
        axes[0].legend(handles=lines, fontsize=8)
    if title:
        (ax.set_title if ax is not None else fig.suptitle)(title)
    return _finish(fig, path)


# --- training diagnostics ------------------------------------------------------------------


def plot_diagnostics(
    history: Sequence[Mapping[str, Any]],
    path: PathLike | None = None,
    *,
    G: Any = None,
    by: str | None = None,
    title: str | None = None,
    axes: Sequence[Axes] | None = None,
) -> Path | Figure:
    """δ per layer (or node) over the epochs on a log scale, and the dead and saturated fractions.

    ``history`` is ``fit(..., diagnostics=True).history`` (every row has
    ``"nodes"``, see :mod:`graphdiff.diagnostics`). With the network's graph
    ``G`` the nodes are grouped into layers by depth (``by="layer"``, the
    default then): a layer's δ is the RMS over its nodes and the data points,
    its dead and saturated fractions the mean over its nodes. Without ``G``,
    or with ``by="node"``, every node gets its own line. Lines run from the
    first layer (dark) to the last (light). Left panel: RMS of δ, log scale;
    right panel: saturated (solid) and dead (dashed) fractions; ``axes``, two
    matplotlib Axes, to draw them into instead of a new Figure (``title``
    then goes on the left one).
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .diagnostics import layer_rms, layers

    if not history:
        raise VizError("plot_diagnostics: the history is empty (no epoch to plot)")
    if any(not isinstance(row.get("nodes"), Mapping) for row in history):
        raise VizError(
            "plot_diagnostics: the history has no 'nodes' in every row; "
            "train with fit(..., diagnostics=True)"
        )
    by = by or ("node" if G is None else "layer")
    if by not in ("layer", "node"):
        raise VizError(f"plot_diagnostics: by must be 'layer' or 'node', got {by!r}")
    if by == "layer" and G is None:
        raise VizError("plot_diagnostics: by='layer' needs the network's graph G")
    nodes = list(history[0]["nodes"])
    groups = layers(G, nodes) if by == "layer" else [[n] for n in nodes]
    names = [
        (f"layer {i + 1}: {_names(g)}" if by == "layer" else str(g[0]))
        for i, g in enumerate(groups)
    ]
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)], dtype=float)
    if axes is not None:
        if len(axes) != 2:
            raise VizError(f"plot_diagnostics: axes must be two Axes, got {len(axes)}")
        left, right = axes
        fig = _root(left)
    else:
        fig = Figure(figsize=(11.0, 4.2), layout="constrained")
        left, right = fig.subplots(1, 2)
    cmap = colormaps["viridis"]
    marker = "o" if len(epochs) < 30 else None
    for i, (group, name) in enumerate(zip(groups, names, strict=True)):
        ink = cmap(0.9 * i / max(len(groups) - 1, 1))
        stats = [row["nodes"] for row in history]
        rms = [layer_rms(s, group) for s in stats]
        left.plot(epochs, rms, color=ink, marker=marker, label=name)
        for key, style in (("saturated", "-"), ("dead", "--")):
            share = [float(np.mean([s[n][key] for n in group])) for s in stats]
            right.plot(epochs, share, style, color=ink, marker=marker)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("RMS of δ = ∂E/∂a over the data points")
    left.grid(alpha=0.3, which="both")
    right.set_xlabel("epoch")
    right.set_ylabel("fraction of values")
    right.set_ylim(-0.02, 1.02)
    right.grid(alpha=0.3)
    right.legend(
        handles=[
            Line2D([], [], color="#555555", ls="-", label="saturated: |g'(z)| < 1e-3·max"),
            Line2D([], [], color="#555555", ls="--", label="dead: g'(z) = 0"),
        ],
        fontsize=8,
    )
    if len(groups) <= 6:
        left.legend(fontsize=7, loc="best")
    else:  # a colour bar instead of a long legend over the lines
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import BoundaryNorm, ListedColormap

        shades = ListedColormap([cmap(0.9 * i / (len(groups) - 1)) for i in range(len(groups))])
        norm = BoundaryNorm(np.arange(len(groups) + 1) + 0.5, len(groups))
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=shades), ax=right, shrink=0.9)
        bar.set_label(f"{by} (1: next to the inputs)")
        bar.set_ticks(sorted({round(float(k)) for k in np.linspace(1, len(groups), 6)}))
    if title:
        (left.set_title if axes is not None else fig.suptitle)(title)
    return _finish(fig, path)


def _names(group: Sequence[Hashable]) -> str:
    if len(group) <= 2:
        return ", ".join(map(str, group))
    return f"{group[0]} … {group[-1]} ({len(group)})"


# --- the network ----------------------------------------------------------------------


def _layout(G: Any) -> dict[Hashable, tuple[float, float]]:
    """The nodes' ``pos`` if every node has one, else layers by depth, centred on 0.

    A node's layer is its longest path from a source; a source sits one layer
    before its first consumer, so a target input ``t`` is drawn next to the loss.
    """
    pos = nx.get_node_attributes(G, "pos")
    if len(pos) == len(G):
        return {n: (float(p[0]), float(p[1])) for n, p in pos.items()}
    if not nx.is_directed_acyclic_graph(G):
        raise GraphError("draw_network: the graph has a cycle, so it has no layers")
    depth: dict[Hashable, int] = {}
    for n in nx.topological_sort(G):
        depth[n] = max((depth[u] + 1 for u in G.predecessors(n)), default=0)
    for n in depth:
        if G.in_degree(n) == 0 and G.out_degree(n):
            depth[n] = min(depth[v] for v in G.successors(n)) - 1
    layers: dict[int, list[Hashable]] = {}
    for n in sorted(depth, key=node_key):
        layers.setdefault(depth[n], []).append(n)
    return {
        n: (float(col), (len(layer) - 1) / 2 - row)
        for col, layer in layers.items()
        for row, n in enumerate(layer)
    }


def _weights(G: Any) -> dict[tuple[Hashable, Hashable], list[str]]:
    """Parameter names on each (u, v), for edges into neurons and out of param nodes."""
    names: dict[tuple[Hashable, Hashable], list[str]] = {}
    edges = (
        G.edges(keys=True, data=True)
        if G.is_multigraph()
        else ((u, v, None, d) for u, v, d in G.edges(data=True))
    )
    for u, v, key, d in edges:
        if G.nodes[v].get("op") == "neuron":
            names.setdefault((u, v), []).append(edge_param(u, v, key, d))
        elif G.nodes[u].get("op") == "param":
            names.setdefault((u, v), []).append(str(u))
    return names


def _fmt(value: Any) -> str:
    return f"{float(value):.3g}" if np.ndim(value) == 0 else f"{np.shape(value)}"


def draw_network(
    G: Any,
    path: PathLike | None = None,
    *,
    deltas: Mapping[Hashable, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    grads: Mapping[str, Any] | None = None,
    diagnostics: Mapping[Hashable, Mapping[str, float]] | None = None,
    color: str = "delta_rms",
    title: str | None = None,
    ax: Axes | None = None,
) -> Path | Figure:
    """Draw a graphdiff network from its networkx graph.

    Layers run left to right: the nodes' ``pos`` (as :func:`graphdiff.mlp`
    sets it) when every node has one, else layers by depth. Nodes show their
    ``label`` (default: the name), neurons their activation and op nodes their
    op (unless the label names it already), and are coloured by kind (input,
    neuron, param, const, op). Arrows end at the node boxes. Edges into neurons
    are labelled with their parameter's name (``param``, or the default
    ``"u->v"``; the defaults only while there are at most 16 of them, so a big
    layer stays readable), with its value when ``params`` has it. A parameter
    used on several edges, or a param node feeding several ops, is shared: its
    edges get their own colour, and the legend names it.

    In a dense drawing (more than 32 edges) with ``params``, or with
    ``grads`` (parameter name -> gradient), edges with a scalar weight are
    drawn with width and opacity growing with |weight| (or |gradient|), blue
    for positive and red for negative (unless shared parameters have the
    colours), so a dense layer shows its strong connections instead of a grey
    wall.

    Node colours: ``deltas`` (node -> δ array, such as
    ``backward(..., deltas=True).deltas``) colours each node by its mean |δ|
    over the data points; ``diagnostics`` (node -> stats, a
    ``fit(..., diagnostics=True)`` history row's ``"nodes"``) by the stat
    ``color``: ``"delta_rms"`` (log scale), ``"dead"`` or ``"saturated"``
    (fractions, 0 to 1). A colour bar explains them; other nodes stay grey.
    With ``path`` the PNG is written there and the path returned; without,
    the Figure is returned.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Patch

    second: Any = path
    if _is_path(G) and isinstance(second, nx.Graph):  # the old draw_network(path, G)
        _deprecated_order("draw_network", "draw_network(G, path)")
        G, path = second, G
    if not isinstance(G, nx.DiGraph):
        raise GraphError(f"draw_network expects a networkx DiGraph, got {type(G).__name__}")
    if deltas is not None and diagnostics is not None:
        raise VizError("draw_network: colour by deltas or by diagnostics, not both")
    if color not in DIAGNOSTIC_KEYS:
        raise VizError(f"draw_network: color must be one of {DIAGNOSTIC_KEYS}, got {color!r}")
    pos = _layout(G)
    names = _weights(G)
    uses: dict[str, int] = {}
    for ns in names.values():
        for n in ns:
            uses[n] = uses.get(n, 0) + 1
    shared = sorted((n for n, k in uses.items() if k > 1), key=str)
    color_of = {n: SHARED_COLORS[i % len(SHARED_COLORS)] for i, n in enumerate(shared)}
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    rows = max(ys) - min(ys) + 1
    step = 1.7 + 0.06 * min(rows, 20)  # tall layers get wider gaps between them
    width = min(max(step * (max(xs) - min(xs) + 1) + 1.5, 5.0), 18.0)
    height = min(max(1.0 * rows + 1.0, 3.5), 12.0)
    ax = _canvas(ax, (width, height))

    # node colours
    value: dict[Hashable, float] = {}
    norm: Normalize | None = None
    cmap, dark_low = colormaps["viridis"], True  # viridis is dark at its low end
    bar_label = "mean |δ| over the data points"
    if deltas is not None:
        value = {n: float(np.mean(np.abs(d))) for n, d in deltas.items() if n in G}
        if value:
            norm = Normalize(min(value.values()), max(value.values()))
    elif diagnostics is not None:
        value = {n: float(s[color]) for n, s in diagnostics.items() if n in G}
        bar_label = DIAGNOSTIC_LABELS[color]
        if color == "delta_rms":
            positive = [v for v in value.values() if v > 0]
            if positive:
                norm = LogNorm(min(positive), max(max(positive), min(positive) * 1.0001))
                value = {n: max(v, min(positive)) for n, v in value.items()}
        else:
            norm, cmap, dark_low = Normalize(0.0, 1.0), colormaps["magma_r"], False
    boxes: dict[Hashable, Any] = {}
    for node, (px, py) in pos.items():
        fill: Any = KIND_COLORS.get(G.nodes[node].get("op"), KIND_COLORS["op"])
        ink = "black"
        if norm is not None:
            shade = float(norm(value[node])) if node in value else None
            fill = cmap(shade) if shade is not None else "#d9d9d9"
            dark = shade is not None and (shade < 0.5) == dark_low
            ink = "white" if dark else "black"
        boxes[node] = ax.text(
            px,
            py,
            _node_text(G, node, params),
            ha="center",
            va="center",
            fontsize=8,
            color=ink,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.35", "fc": fill, "ec": "#333333"},
        )

    # edge styles; the arrows are added last, once the layout (and so the boxes) is fixed
    D: nx.DiGraph[Any] = nx.DiGraph(G)  # parallel edges of a multigraph drawn as one, labels joined
    source = grads if grads is not None else params
    size: dict[tuple[Hashable, Hashable], float] = {}
    sign: dict[tuple[Hashable, Hashable], float] = {}
    if source is not None:
        for e, ns in names.items():
            scalars = [float(source[n]) for n in ns if n in source and np.ndim(source[n]) == 0]
            if scalars and G.nodes[e[1]].get("op") == "neuron":
                size[e] = sum(abs(v) for v in scalars)
                sign[e] = float(np.sign(sum(scalars)))
    biggest = max(size.values(), default=0.0)
    dense = D.number_of_edges() > DENSE_EDGES
    if not dense and grads is None:
        size = {}  # few edges: their labels show the weights
    styles: list[tuple[Hashable, Hashable, Any, float, float]] = []  # u, v, colour, width, alpha
    scaled = False  # some edge is drawn by its magnitude
    for u, v in D.edges:
        mine = [n for n in names.get((u, v), []) if n in color_of]
        if mine:
            styles.append((u, v, color_of[mine[0]], 2.5, 1.0))
        elif (u, v) in size and biggest > 0:
            share = size[(u, v)] / biggest
            ink = "#7f7f7f" if shared else SIGN_COLORS[sign[(u, v)] < 0]
            styles.append((u, v, ink, 0.25 + 2.75 * share, 0.08 + 0.92 * share))
            scaled = True
        elif dense:
            styles.append((u, v, "#7f7f7f", 0.5, 0.3))
        else:
            styles.append((u, v, "#7f7f7f", 1.0, 1.0))
    explicit = {e: ns for e, ns in names.items() if G.nodes[e[1]].get("op") == "neuron"}
    defaults = sum(1 for u, v, d in G.edges(data=True) if "param" not in d and (u, v) in explicit)
    edge_text = {}
    for (u, v), ns in explicit.items():
        shown = [n for n in ns if defaults <= MAX_DEFAULT_LABELS or n != f"{u}->{v}"]
        if params is not None:
            shown = [f"{n}={_fmt(params[n])}" if n in params else n for n in shown]
        if shown:
            edge_text[(u, v)] = ", ".join(shown)
    if edge_text:
        labels = nx.draw_networkx_edge_labels(
            D,
            pos,
            edge_labels=edge_text,
            ax=ax,
            font_size=7,
            label_pos=0.4,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
        for label in labels.values():
            label.set_zorder(5)  # above the arrows

    handles: list[Any] = []
    if norm is not None:
        bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.8)
        bar.set_label(bar_label)
    else:
        kinds = {G.nodes[n].get("op") for n in G}
        handles += [
            Patch(fc=c, ec="#333333", label=k if k != "op" else "op (other)")
            for k, c in KIND_COLORS.items()
            if k in kinds or (k == "op" and kinds - set(KIND_COLORS))
        ]
    handles += [
        Line2D([], [], color=color_of[n], lw=2.5, label=f"shared {n} ({uses[n]} uses)")
        for n in shared
    ]
    if scaled:
        what = "|gradient|" if grads is not None else "|weight|"
        if not shared:
            handles += [
                Line2D([], [], color=SIGN_COLORS[False], lw=2, label="positive"),
                Line2D([], [], color=SIGN_COLORS[True], lw=2, label="negative"),
            ]
        handles.append(Line2D([], [], color="#7f7f7f", lw=0, label=f"width ∝ {what}"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig = _root(ax)
    fig.draw_without_rendering()  # lays the figure out: the boxes get their final size
    to_data = ax.transData.inverted()
    half = {}
    for node, box in boxes.items():
        corners = to_data.transform(box.get_bbox_patch().get_window_extent().get_points())
        half[node] = np.abs(corners[1] - corners[0]) / 2
    for u, v, ink, lw, alpha in styles:
        start, end = _between_boxes(np.array(pos[u]), np.array(pos[v]), half[u], half[v])
        ax.add_patch(
            FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=10 if lw < 2 else 12,
                shrinkA=0, shrinkB=1, color=ink, lw=lw, alpha=alpha, zorder=2,
            )
        )
    return _finish(fig, path)


def _between_boxes(
    a: Array, b: Array, half_a: Array, half_b: Array
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where the arrow from the box centred at ``a`` to the one at ``b`` starts and ends.

    Between layers (``b`` to the right or left of ``a``) it leaves ``a``'s facing
    side and enters ``b``'s, so the arrowheads line up on the side of a box; in
    one column it runs between the centres, cut at the boxes.
    """
    d = b - a
    if abs(d[0]) > half_a[0] + half_b[0]:
        side = np.sign(d[0])
        slope = d[1] / abs(d[0])
        # where the centre line would cross the side, pulled in from the corners
        rise_a = np.clip(slope * half_a[0], -half_a[1], half_a[1]) * 0.6
        rise_b = np.clip(slope * half_b[0], -half_b[1], half_b[1]) * 0.6
        start = a + np.array([side * half_a[0], rise_a])
        end = b - np.array([side * half_b[0], rise_b])
    else:
        with np.errstate(divide="ignore"):
            leave = float(np.min(np.where(d != 0, half_a / np.abs(d), np.inf)))
            enter = float(np.min(np.where(d != 0, half_b / np.abs(d), np.inf)))
        if leave + enter >= 1:  # the boxes overlap: centre to centre
            leave = enter = 0.0
        start, end = a + leave * d, b - enter * d
    return (float(start[0]), float(start[1])), (float(end[0]), float(end[1]))


def _node_text(G: Any, n: Hashable, params: Mapping[str, Any] | None) -> str:
    """The label, then the neuron's activation or the node's op (unless the label names it)."""
    data = G.nodes[n]
    text = str(data.get("label", n))
    op = data.get("op")
    kind = data.get("activation", "identity") if op == "neuron" else op
    line = str(kind) if kind is not None and op not in ENGINE_KINDS else ""
    if line and line in text:
        line = ""
    bias = data.get("bias")
    if op == "neuron" and bias is not None and params is not None:
        name: str = bias if isinstance(bias, str) else f"{n}.bias"
        if name in params:
            line = f"{line}  b={_fmt(params[name])}" if line else f"b={_fmt(params[name])}"
    return f"{text}\n{line}" if line else text


def network_png(G: Any, *, max_nodes: int = 120, max_edges: int = 1200) -> bytes | None:
    """The drawing of ``G`` as PNG bytes, or ``None`` when it is too big to be worth it.

    What :class:`~graphdiff.network.Network` shows in a notebook; a graph with
    more than ``max_nodes`` nodes or ``max_edges`` edges (or that cannot be
    drawn) gives ``None``, and the notebook falls back to the text repr.
    """
    import io

    if G.number_of_nodes() > max_nodes or G.number_of_edges() > max_edges:
        return None
    try:
        fig = draw_network(G)
    except GraphdiffError:
        return None
    buffer = io.BytesIO()
    assert not isinstance(fig, Path)
    fig.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()
