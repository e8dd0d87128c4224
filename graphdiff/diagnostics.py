"""Training diagnostics: where the gradient vanishes, which units are dead or saturated.

For every neuron and every elementwise-activation op node (``tanh``,
``relu``, ...) the loss depends on, :func:`node_diagnostics` measures, over
the data points, from one ``backward(..., deltas=True)``:

``delta_rms``  the root mean square of the node's δ = ∂E/∂a (the lecture's δ_j;
               with the mean reduction each point's δ carries the factor 1/N)
``dead``       the fraction of its values where the activation's derivative
               g'(z) is exactly 0 (relu below its kink)
``saturated``  the fraction where |g'(z)| < 1e-3 of the largest |g'| the
               activation reaches (tanh or sigmoid in their tails); it counts
               the dead values too

For an op node, z is its operand and a value is one entry of its output (a
layer of 16 units gives 16 values per data point). ``fit(...,
diagnostics=True)`` adds them to every history row under ``"nodes"``;
:func:`layer_rms` groups them by layer and :func:`graphdiff.plot_diagnostics`
draws them over the epochs.

>>> import graphdiff
>>> net = graphdiff.compile(graphdiff.mlp([2, 2, 1], "relu"), loss="E")
>>> data = graphdiff.feed(net, graphdiff.xor(8))
>>> stats = node_diagnostics(net, net.init_params(seed=0), data)
>>> sorted(stats), sorted(stats["h1_1"])
(['h1_1', 'h1_2', 'y'], ['dead', 'delta_rms', 'saturated'])
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from .registry import Op, get_op

__all__ = ["SATURATION", "layer_rms", "layers", "node_diagnostics"]

Array = np.ndarray
SATURATION = 1e-3  # |g'(z)| below this fraction of its largest value: saturated
_GRID = np.linspace(-50.0, 50.0, 20001)  # where an activation's largest |g'| is looked for
_PEAKS: dict[tuple[str, str], float] = {}


def _attrs(op: Op, data: Mapping[str, Any]) -> dict[str, Any]:
    """The node attributes that configure ``op``, validated as the compiler does."""
    mine = {k: v for k, v in data.items() if k in op.attrs.model_fields}
    checked: dict[str, Any] = op.attrs(**mine).model_dump()
    return checked


def _slope(op: Op, z: Array, out: Array, attrs: Mapping[str, Any]) -> Array:
    """g'(z) elementwise: the op's ``derivative``, else its vjp of ones."""
    d: Any = (
        op.derivative(z, out, **attrs) if op.derivative is not None
        else op.vjp(np.ones_like(out), out, z, **attrs)[0]
    )
    return np.broadcast_to(np.abs(np.asarray(d, dtype=np.float64)), np.shape(z))


def _peak(op: Op, attrs: Mapping[str, Any]) -> float:
    """The largest finite |g'(z)| for z on a grid over [-50, 50] (cached per op and attrs)."""
    key = (op.name, repr(sorted(attrs.items())))
    if key not in _PEAKS:
        with np.errstate(all="ignore"):
            slope = _slope(op, _GRID, np.asarray(op.forward(_GRID, **attrs)), attrs)
        finite = slope[np.isfinite(slope)]
        _PEAKS[key] = float(finite.max()) if finite.size else 0.0
    return _PEAKS[key]


def _stats(
    op: Op, z: Array, out: Array, delta: Array, attrs: Mapping[str, Any]
) -> dict[str, float]:
    slope = _slope(op, z, out, attrs)
    peak = max(_peak(op, attrs), float(slope.max(initial=0.0)))
    return {
        "delta_rms": float(np.sqrt(np.mean(np.square(delta)))),
        "dead": float(np.mean(slope == 0)),
        "saturated": float(np.mean(slope < SATURATION * peak)) if peak > 0 else 1.0,
    }


def node_diagnostics(
    net: Any, params: Mapping[str, Any], data: Mapping[Hashable, Any]
) -> dict[Hashable, dict[str, float]]:
    """``delta_rms``, ``dead`` and ``saturated`` of each neuron and activation op node.

    One ``net.backward(params, data, deltas=True)``; the nodes come in the
    network's execution order (inputs to loss).
    """
    res = net.backward(params, data, deltas=True)
    G = net.graph
    out: dict[Hashable, dict[str, float]] = {}
    for node in net.nodes:
        info = G.nodes[node]
        kind = info.get("op")
        if kind == "neuron":
            op = get_op(info.get("activation", "identity"))
            z = res.z[node]
        elif kind in ("input", "param", "const") or G.in_degree(node) != 1:
            continue
        else:
            op = get_op(kind)
            if not op.elementwise or op.loss:
                continue
            z = res.values[next(iter(G.predecessors(node)))]
        out[node] = _stats(op, z, res.values[node], res.deltas[node], _attrs(op, info))
    return out


def layers(G: Any, nodes: Iterable[Hashable]) -> list[list[Hashable]]:
    """``nodes`` grouped by depth in ``G`` (the longest path from a source), first layer first.

    In a :func:`graphdiff.mlp` in neuron notation a layer's neurons share a
    depth; in op notation each layer's activation node has its own.
    """
    depth: dict[Hashable, int] = {}
    for n in nx.topological_sort(G):
        depth[n] = max((depth[u] + 1 for u in G.predecessors(n)), default=0)
    grouped: dict[int, list[Hashable]] = {}
    for n in nodes:
        grouped.setdefault(depth[n], []).append(n)
    return [grouped[d] for d in sorted(grouped)]


def layer_rms(stats: Mapping[Hashable, Mapping[str, float]], layer: Iterable[Hashable]) -> float:
    """The RMS of δ over a layer's nodes and the data points, from each node's ``delta_rms``.

    Exact when the nodes have as many values each (a layer of units).
    """
    values = [stats[n]["delta_rms"] for n in layer]
    return math.sqrt(sum(v * v for v in values) / len(values))
