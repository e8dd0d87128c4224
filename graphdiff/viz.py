"""Pictures: decision boundaries, training curves and the network itself, as PNG files.

Every function draws on a fresh :class:`matplotlib.figure.Figure` (never
pyplot, so no window opens and no global state changes), writes it to
``path`` and returns ``path``. :func:`plot_decision_boundary` and
:func:`draw_network` can also draw into a given matplotlib ``ax`` for
composing several pictures; then ``path`` may be ``None``.

>>> import graphdiff, tempfile, pathlib
>>> from graphdiff.baselines import Perceptron
>>> d = graphdiff.blobs(40)
>>> p = Perceptron().fit(d["x"], d["t"])
>>> out = pathlib.Path(tempfile.mkdtemp()) / "boundary.png"
>>> plot_decision_boundary(out, p.predict, d["x"], d["t"]).read_bytes()[:4]
b'\\x89PNG'
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from .build import _edge_param
from .data import feed
from .errors import GraphdiffError, GraphError, InputError
from .graphs import node_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# matplotlib is imported inside the functions: `import graphdiff` stays fast.

__all__ = [
    "VizError",
    "draw_network",
    "plot_decision_boundary",
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
MAX_DEFAULT_LABELS = 16  # more default "u->v" edge labels than this would hide the picture
SHARED_COLORS = ["#e6550d", "#3182bd", "#31a354", "#756bb1", "#de2d26", "#636363", "#8c6d31"]


class VizError(GraphdiffError, ValueError):
    """Arguments a picture cannot be drawn from (shapes, an empty history, no target)."""


def _canvas(ax: Axes | None, path: PathLike | None, size: tuple[float, float]) -> Axes:
    from matplotlib.figure import Figure

    if ax is not None:
        return ax
    if path is None:
        raise VizError("give a path to write the PNG to, or an ax to draw into")
    return Figure(figsize=size, layout="constrained").add_subplot()


def _finish(ax: Axes, path: PathLike | None, title: str | None) -> Path | None:
    from matplotlib.figure import Figure

    if title:
        ax.set_title(title)
    if path is None:
        return None
    fig: Any = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: save the whole figure
        fig = fig.figure
    fig.savefig(path, dpi=100)
    return Path(path)


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
    path: PathLike | None,
    predict: Callable[[Array], Any],
    x: Any,
    t: Any,
    *,
    title: str | None = None,
    resolution: int = 200,
    ax: Axes | None = None,
) -> Path | None:
    """The classifier's regions, its decision boundary and the data points.

    Parameters
    ----------
    path : where to write the PNG (``None`` when drawing into ``ax`` only).
    predict : maps points (M, 2) to scores: one per point (its sign is the
        class, labels in {-1, +1}; the boundary is score = 0) or one per class
        (M, K), the largest wins (labels 0..K-1). :func:`predictor` makes one
        from a network.
    x, t : the data points (N, 2) and their labels (N,).
    resolution : grid points per axis.

    Misclassified points are crossed out; the legend counts them.
    """
    from matplotlib.colors import ListedColormap

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
    ax = _canvas(ax, path, (6.0, 5.0))
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
    return _finish(ax, path, title)


# --- training curves ----------------------------------------------------------------------


def _series(history: Sequence[Mapping[str, Any]], key: str) -> Array | None:
    values = [row.get(key) for row in history]
    if all(v is None for v in values):
        return None
    return np.array([np.nan if v is None else float(v) for v in values])


def plot_history(
    path: PathLike, history: Sequence[Mapping[str, Any]], *, title: str | None = None
) -> Path:
    """Loss per epoch, and accuracy beside it when the history has it.

    ``history`` is :func:`graphdiff.fit`'s: one dict per epoch with ``epoch``,
    ``loss`` and optionally ``accuracy``, ``val_loss``, ``val_accuracy``
    (missing or ``None`` values are left out of the curves).
    """
    from matplotlib.figure import Figure

    if not history:
        raise VizError("plot_history: the history is empty (no epoch to plot)")
    if _series(history, "loss") is None:
        raise VizError(f"plot_history: no 'loss' in the history; keys are {sorted(history[0])}")
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)], dtype=float)
    panels = [("loss", "loss")]
    if _series(history, "accuracy") is not None or _series(history, "val_accuracy") is not None:
        panels.append(("accuracy", "accuracy"))
    fig = Figure(figsize=(5.0 * len(panels), 3.8), layout="constrained")
    for i, (key, name) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = _series(history, prefix + key)
            if ys is not None:
                label = ("validation " if prefix else "training ") + name
                ax.plot(epochs, ys, style, marker="o" if len(epochs) < 30 else None, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        if key == "accuracy":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return Path(path)


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
            names.setdefault((u, v), []).append(_edge_param(u, v, key, d))
        elif G.nodes[u].get("op") == "param":
            names.setdefault((u, v), []).append(str(u))
    return names


def _fmt(value: Any) -> str:
    return f"{float(value):.3g}" if np.ndim(value) == 0 else f"{np.shape(value)}"


def draw_network(
    path: PathLike | None,
    G: Any,
    *,
    deltas: Mapping[Hashable, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Path | None:
    """Draw a graphdiff network from its networkx graph.

    Layers run left to right: the nodes' ``pos`` (as :func:`graphdiff.mlp`
    sets it) when every node has one, else networkx's topological
    generations. Nodes show their ``label`` (default: the name) and are
    coloured by kind (input, neuron, param, const, op). Edges into neurons are
    labelled with their parameter's name (``param``, or the default
    ``"u->v"``; the defaults only while there are at most 16 of them, so a big
    layer stays readable), with its value when ``params`` has it. A
    parameter used on several edges, or a param node feeding several ops, is
    shared: its edges get their own colour, and the legend names it.

    ``deltas`` (node -> δ array, such as ``backward(..., deltas=True).deltas``)
    colours each node by its mean |δ| over the data points, with a colour bar;
    nodes without a δ stay grey.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not isinstance(G, nx.DiGraph):
        raise GraphError(f"draw_network expects a networkx DiGraph, got {type(G).__name__}")
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
    width = min(max(1.7 * (max(xs) - min(xs) + 1) + 1.5, 5.0), 18.0)
    height = min(max(1.0 * (max(ys) - min(ys) + 1) + 1.0, 3.5), 12.0)
    ax = _canvas(ax, path, (width, height))
    D: nx.DiGraph[Any] = nx.DiGraph(G)  # parallel edges of a multigraph drawn as one, labels joined
    edges = list(D.edges)
    edge_colors, edge_widths = [], []
    for e in edges:
        mine = [n for n in names.get(e, []) if n in color_of]
        edge_colors.append(color_of[mine[0]] if mine else "#7f7f7f")
        edge_widths.append(2.5 if mine else 1.0)
    sizes = [_box_size(_node_text(G, n, params)) for n in D]
    nx.draw_networkx_edges(
        D,
        pos,
        ax=ax,
        edgelist=edges,
        nodelist=list(D),
        node_size=sizes,
        edge_color=edge_colors,
        width=edge_widths,
        arrows=True,
        arrowstyle="-|>",
        arrowsize=12,
    )
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
        nx.draw_networkx_edge_labels(
            D,
            pos,
            edge_labels=edge_text,
            ax=ax,
            font_size=7,
            label_pos=0.4,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    size = {n: float(np.mean(np.abs(d))) for n, d in (deltas or {}).items() if n in G}
    norm = Normalize(min(size.values()), max(size.values())) if size else None
    cmap = colormaps["viridis"]
    for node, (px, py) in pos.items():
        fill: Any = KIND_COLORS.get(G.nodes[node].get("op"), KIND_COLORS["op"])
        ink = "black"
        if norm is not None:
            fill = cmap(norm(size[node])) if node in size else "#d9d9d9"
            ink = "white" if node in size and norm(size[node]) < 0.5 else "black"
        ax.text(
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
    handles: list[Any] = []
    if norm is not None:
        bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.8)
        bar.set_label("mean |δ| over the data points")
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
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_axis_off()
    return _finish(ax, path, title)


def _node_text(G: Any, n: Hashable, params: Mapping[str, Any] | None) -> str:
    data = G.nodes[n]
    text = str(data.get("label", n))
    bias = data.get("bias")
    if data.get("op") == "neuron" and bias is not None and params is not None:
        name: str = bias if isinstance(bias, str) else f"{n}.bias"
        if name in params:
            text += f"\nb={_fmt(params[name])}"
    return text


def _box_size(text: str) -> float:
    """A node_size (points²) whose circle roughly covers the label's box, for arrow ends."""
    lines = text.split("\n")
    w = 0.62 * 8 * max(len(line) for line in lines) + 10
    h = 8 * 1.25 * len(lines) + 10
    return float(max(w, h) ** 2)
