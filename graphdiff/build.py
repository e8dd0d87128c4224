"""Build layered networks as plain networkx graphs, and write trained values back.

:func:`mlp` saves writing loops of ``add_edge`` for the common case: a dense
network ``sizes = [d_in, h1, ..., d_out]`` with a loss node, in either
notation. Its names are a convention the trainer, the pictures and the demo
rely on:

==================  ===========================================  ==========================
                    neuron notation                              op notation
==================  ===========================================  ==========================
inputs              ``x1`` .. ``xd`` (one value per data point)  ``x``, shape (N, d_in)
layer l (1-based)   neurons ``h{l}_{k}``, k = 1..h_l, each with  ``W{l}`` (h_{l-1}, h_l),
                    bias ``h{l}_{k}.bias``; weight of edge       ``b{l}`` (h_l,);
                    ``u -> v`` is the parameter ``"u->v"``       ``matmul{l}``, ``z{l}``
                                                                 (= add), ``a{l}``
output              neuron ``y`` (d_out = 1) or neurons ``y1`` ..  ``y``: (N,) when d_out = 1
                    ``yK`` stacked into ``y`` (N, K)              (``index`` of ``a{L}``),
                                                                 else (N, K)
target, loss        input ``t``; node ``E`` of op ``loss(y, t)``  the same
==================  ===========================================  ==========================

In op notation, layer l computes ``z{l} = a{l-1} @ W{l} + b{l}`` (``a0`` is
``x``; without bias the ``matmul{l}`` node is itself ``z{l}``) and
``a{l} = g(z{l})``; the last layer's activation node is ``a{L}`` followed by
``y = index(a{L}, 0)`` when d_out = 1, and is named ``y`` itself otherwise.
Entry ``W{l}[j, k]`` is the weight from unit j+1 of layer l-1 to unit k+1 of
layer l, the lecture's matrix formulation of the neuron-wise edges.

Every node also gets a ``label`` and a ``pos``, (x, y) coordinates with the
layers left to right (ready for ``nx.draw(G, nx.get_node_attributes(G, "pos"))``);
compile ignores both.

>>> import graphdiff
>>> G = graphdiff.mlp([2, 3, 1])
>>> sorted(n for n in G if G.nodes[n]["op"] == "neuron")
['h1_1', 'h1_2', 'h1_3', 'y']
>>> net = graphdiff.compile(G, loss="E")
>>> len(net.params)   # 2·3 + 3·1 weights, 3 + 1 biases
13
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np

from .compile import compile
from .errors import GraphError, InputError, ShapeError
from .graphs import edge_param
from .registry import op_named

__all__ = ["LECTURE_EDGES", "LECTURE_SHARED", "lecture_network", "mlp", "write_params"]


# The slides' worked example: (source, target, weight name), and the shared-parameter
# variant's names (w13 = w24 = w36 = w57 = u, w23 = w35 = w46 = w67 = v).
LECTURE_EDGES = (
    ("x1", "a3", "w13"), ("x2", "a3", "w23"), ("x2", "a4", "w24"), ("a3", "a5", "w35"),
    ("a3", "a6", "w36"), ("a4", "a6", "w46"), ("a5", "a7", "w57"), ("a6", "a7", "w67"),
)
LECTURE_SHARED = {"w13": "u", "w24": "u", "w36": "u", "w57": "u",
                  "w23": "v", "w35": "v", "w46": "v", "w67": "v"}


def lecture_network(
    activation: str = "tanh",
    *,
    shared: bool = False,
    weights: Mapping[str, float] | None = None,
    loss: bool = True,
) -> nx.DiGraph[Any]:
    """The lecture's worked 7-neuron network, drawn as the slides draw it.

    Inputs ``x1``, ``x2``; neurons ``a3`` .. ``a6`` with activation g; the output
    neuron ``a7`` with the identity, so its value is z7; with ``loss``, the hinge
    ``E = max(0, -z7·t)`` against the input ``t``. Edge ``u -> v`` carries the
    parameter ``w{u}{v}`` (``w13``, ...), or with ``shared=True`` the slides' ``u``
    and ``v``; ``weights`` (by parameter name) become the edges' initial values.

    >>> import graphdiff
    >>> net = graphdiff.compile(lecture_network(shared=True), loss="E")
    >>> sorted(net.params), [len(net.params[p].uses) for p in ("u", "v")]
    (['u', 'v'], [4, 4])
    """
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["x1", "x2"], op="input")
    G.add_nodes_from(["a3", "a4", "a5", "a6"], op="neuron", activation=activation)
    G.add_node("a7", op="neuron", activation="identity")
    for u, v, w in LECTURE_EDGES:
        name = LECTURE_SHARED[w] if shared else w
        attrs: dict[str, Any] = {"param": name}
        if weights is not None and name in weights:
            attrs["weight"] = float(weights[name])
        G.add_edge(u, v, **attrs)
    if loss:
        G.add_node("t", op="input")
        G.add_node("E", op="hinge")
        G.add_edge("a7", "E", port=0)
        G.add_edge("t", "E", port=1)
    return G


def _check(
    sizes: Sequence[int], activation: str, output_activation: str, loss: str, notation: str
) -> list[int]:
    sizes = list(sizes)
    if len(sizes) < 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise GraphError(f"sizes must be [d_in, h1, ..., d_out], ints >= 1; got {sizes!r}")
    for what, name in (("activation", activation), ("output_activation", output_activation)):
        if not op_named(name, what).elementwise:
            raise GraphError(f"{what} {name!r} is not an elementwise op")
    if not op_named(loss, "loss").loss:
        raise GraphError(f"loss {loss!r} is not a loss op (hinge, logistic, squared_error, ...)")
    if loss == "softmax_cross_entropy" and sizes[-1] < 2:
        raise GraphError(f"loss 'softmax_cross_entropy' needs d_out >= 2 classes, got {sizes!r}")
    if notation not in ("neuron", "op"):
        raise GraphError(f"notation must be 'neuron' or 'op', got {notation!r}")
    return [int(s) for s in sizes]


def mlp(
    sizes: Sequence[int],
    activation: str = "tanh",
    *,
    notation: Literal["neuron", "op"] = "neuron",
    loss: str = "logistic",
    output_activation: str = "identity",
    bias: bool = True,
) -> nx.DiGraph[Any]:
    """A dense layered network with a loss node, as a plain networkx graph.

    Parameters
    ----------
    sizes : ``[d_in, h1, ..., d_out]``, the number of units per layer.
    activation : the hidden layers' activation (a registered elementwise op).
    notation : ``"neuron"``, one node per neuron and one weight per edge (the
        lecture's drawings), or ``"op"``, one matrix product per layer.
    loss : a registered loss op: ``"logistic"`` or ``"hinge"`` for labels in
        {-1, +1}, ``"squared_error"``, or ``"softmax_cross_entropy"`` for
        d_out >= 2 classes with integer labels 0..d_out-1.
    output_activation : the output layer's activation.
    bias : give every neuron (layer) a bias.

    Nothing is compiled; see the module docstring for the node names. Weights
    start as compile's defaults draw them (Glorot), biases at 0.

    >>> G = mlp([2, 4, 3], "relu", notation="op", loss="softmax_cross_entropy")
    >>> [n for n in nx.topological_sort(G) if G.nodes[n]["op"] == "param"]
    ['W1', 'b1', 'W2', 'b2']
    >>> G.nodes["W1"]["shape"], G.nodes["y"]["op"]
    ((2, 4), 'identity')
    """
    sizes = _check(sizes, activation, output_activation, loss, notation)
    G: nx.DiGraph[Any] = nx.DiGraph()
    (_neurons if notation == "neuron" else _ops)(G, sizes, activation, output_activation, bias)
    x, y = G.nodes["y"]["pos"]
    G.add_node("t", op="input", label="t", pos=(x, y - 1.0))
    G.add_node("E", op=loss, label=f"E = {loss}", pos=(x + 1.0, y - 0.5))
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def _neurons(G: Any, sizes: list[int], act: str, out_act: str, bias: bool) -> None:
    """Neuron notation: layer l in column l, each layer centred on height 0."""
    last = len(sizes) - 1

    def name(layer: int, k: int) -> str:
        if layer == 0:
            return f"x{k}"
        if layer < last:
            return f"h{layer}_{k}"
        return "y" if sizes[-1] == 1 else f"y{k}"

    for layer, width in enumerate(sizes):
        for k in range(1, width + 1):
            v = name(layer, k)
            pos = (float(layer), (width - 1) / 2 - (k - 1))
            if layer == 0:
                G.add_node(v, op="input", label=v, pos=pos)
                continue
            G.add_node(
                v, op="neuron", activation=act if layer < last else out_act, label=v, pos=pos
            )
            if bias:
                G.nodes[v]["bias"] = 0.0
            for j in range(1, sizes[layer - 1] + 1):
                G.add_edge(name(layer - 1, j), v)
    if sizes[-1] > 1:
        G.add_node("y", op="stack", label="y = stack", pos=(last + 1.0, 0.0))
        for k in range(1, sizes[-1] + 1):
            G.add_edge(f"y{k}", "y", port=k - 1)


def _ops(G: Any, sizes: list[int], act: str, out_act: str, bias: bool) -> None:
    """Op notation: the chain of ops at height 0, each parameter below its consumer."""
    G.add_node("x", op="input", label="x", pos=(0.0, 0.0))
    prev, col = "x", 0.0
    last = len(sizes) - 1

    def add(v: str, op: str, operands: list[str], c: float, **attrs: Any) -> None:
        label = v if v.startswith(op) else f"{v} = {op}"
        G.add_node(v, op=op, label=label, pos=(c, 0.0), **attrs)
        for port, u in enumerate(operands):
            G.add_edge(u, v, port=port)

    for layer in range(1, last + 1):
        W, b = f"W{layer}", f"b{layer}"
        shape = (sizes[layer - 1], sizes[layer])
        col += 1
        G.add_node(W, op="param", shape=shape, label=f"{W} {shape[0]}×{shape[1]}", pos=(col, -1.0))
        if bias:
            add(f"matmul{layer}", "matmul", [prev, W], col)
            col += 1
            G.add_node(b, op="param", shape=(sizes[layer],), label=b, pos=(col, -1.0))
            add(f"z{layer}", "add", [f"matmul{layer}", b], col)
        else:
            add(f"z{layer}", "matmul", [prev, W], col)
        col += 1
        prev = "y" if layer == last and sizes[-1] > 1 else f"a{layer}"
        add(prev, act if layer < last else out_act, [f"z{layer}"], col)
    if sizes[-1] == 1:
        add("y", "index", [prev], col + 1, i=0)


# --- writing trained values back ------------------------------------------------------


def write_params(G: Any, params: Mapping[str, Any], net: Any = None) -> None:
    """Write trained parameter values into the graph, in place.

    - every edge into a neuron gets ``weight`` = its parameter's value (a
      shared parameter's value goes on all its edges);
    - a neuron whose ``bias`` is a number gets the trained bias there; a
      named bias (``bias="b"``) keeps its name, since it may be shared and the
      name is how the graph says so; its value stays in ``params`` only;
    - a parameter node gets ``value``, a float64 copy.

    The graph is compiled to find where each parameter is used, unless
    ``net``, a :class:`~graphdiff.network.Network` compiled from ``G``, is
    given; then only its parameters are written. Compiling the written graph
    again, ``init_params`` gives the written values (named biases aside).
    Everything is checked before anything is written.

    Raises
    ------
    InputError
        a parameter of the graph missing from ``params``, or a non-finite value.
    ShapeError
        a value whose shape is not the parameter's.

    >>> import graphdiff
    >>> G = graphdiff.mlp([1, 1])
    >>> write_params(G, {"x1->y": 0.5, "y.bias": -2.0})
    >>> G.edges["x1", "y"]["weight"], G.nodes["y"]["bias"]
    (0.5, -2.0)
    """
    specs = (net if net is not None else _compile_all(G)).params
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in params:
            raise InputError(f"write_params: parameter {name!r} is missing from params")
        arr = np.array(params[name], dtype=np.float64)
        if arr.shape != spec.shape:
            raise ShapeError(
                f"write_params: parameter {name!r} must have shape {spec.shape}, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise InputError(f"write_params: parameter {name!r} is not finite")
        values[name] = arr
    for name, spec in specs.items():
        for use in spec.uses:
            if len(use) == 1 and use[0] not in G:
                raise GraphError(f"write_params: node {use[0]!r} of parameter {name!r} not in G")
            if len(use) == 2 and not G.has_edge(*use):
                raise GraphError(f"write_params: edge {use!r} of parameter {name!r} not in G")
    for name, spec in specs.items():
        for use in spec.uses:
            if len(use) == 2:
                u, v = use
                edges = G[u][v].items() if G.is_multigraph() else [(None, G[u][v])]
                for key, data in edges:
                    if edge_param(u, v, key, data) == name:
                        data["weight"] = float(values[name])
            elif spec.kind == "tensor":
                G.nodes[use[0]]["value"] = values[name].copy()
            elif not isinstance(G.nodes[use[0]].get("bias"), str):
                G.nodes[use[0]]["bias"] = float(values[name])


def _compile_all(G: Any) -> Any:
    """Compile G with a throwaway loss that depends on every sink, so no parameter is pruned."""
    if not isinstance(G, nx.DiGraph):
        raise GraphError(f"write_params expects a networkx DiGraph, got {type(G).__name__}")
    H = G.copy()
    sink = "__write_params__"
    while sink in H:
        sink += "_"
    sinks = [n for n in G if G.out_degree(n) == 0]
    H.add_node(sink, op="stack")
    for port, n in enumerate(sinks):
        H.add_edge(n, sink, port=port)
    return compile(H, loss=sink)
