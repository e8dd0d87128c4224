"""W5 (gradient cost against forward cost, and numerical differentiation) and Compile.

The lecture's claim: backpropagation computes every gradient for a small
constant times the cost of one forward pass ("linear in the size of the
network"), where numerical differentiation needs two forward passes per
parameter. W5 measures gradient time / forward time for layered neuron-notation
nets of about 10, 100, 1,000 and 10,000 parameters (hand matrix numpy alongside)
and for a 100,000-neuron sparse random DAG, and times central differences on a
subset of the parameters, extrapolated to all of them where that would take long.

>>> G = sparse_dag(20)
>>> sum(1 for _, d in G.nodes(data=True) if d["op"] == "neuron")
21
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np

import graphdiff

from .core import Context, Impl, Row, VerificationError, compare_all, measure
from .mlp import (
    data,
    hand_forward,
    hand_grad,
    init,
    n_params,
    neuron_graph,
    neuron_inputs,
    to_matrices,
    to_scalars,
)

__all__ = ["compile_rows", "sparse_dag", "w5"]

LAYERED = ([2, 2, 1], [2, 8, 8, 1], [2, 30, 30, 1], [2, 98, 98, 1])
LAYERED_SMOKE = ([2, 2, 1], [2, 3, 3, 1])
N_INPUTS, FAN_IN = 4, 3
EPS = 1e-6  # central differences: truncation ~EPS², round-off ~1e-16/EPS
NUM_ATOL = 1e-7


@functools.cache
def sparse_dag(n: int, seed: int = 0) -> nx.DiGraph[Any]:
    """``n`` tanh neurons, each fed by FAN_IN nodes drawn uniformly from those before it.

    Four inputs come first; coinciding draws merge, so a neuron has at most FAN_IN
    in-edges. Every neuron nobody reads feeds the identity neuron ``out``, so the
    whole graph leads to the loss E = (out - t)^2.
    """
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(N_INPUTS)] + [f"n{i}" for i in range(n)]
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from([*names[:N_INPUTS], "t"], op="input")
    G.add_nodes_from(names[N_INPUTS:], op="neuron", activation="tanh")
    before = N_INPUTS + np.arange(n)
    srcs = (rng.random((n, FAN_IN)) * before[:, None]).astype(np.int64)
    G.add_edges_from((names[u], names[N_INPUTS + i]) for i, row in enumerate(srcs) for u in row)
    sinks = [v for v in names[N_INPUTS:] if G.out_degree(v) == 0]
    G.add_node("out", op="neuron", activation="identity")
    G.add_edges_from((v, "out") for v in sinks)
    G.add_node("E", op="squared_error")
    G.add_edge("out", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


@functools.cache
def _compiled(n: int) -> tuple[Any, float]:
    """The DAG's compiled network and the seconds that compile took (W5 and Compile share it)."""
    G = sparse_dag(n)
    t0 = time.perf_counter()
    net = graphdiff.compile(G, loss="E")
    return net, time.perf_counter() - t0


def _numerical(
    error: Callable[[dict[str, Any]], Any], params: dict[str, Any], names: list[str]
) -> tuple[dict[str, float], float]:
    """Central differences for ``names``; also the seconds it took."""
    out = {}
    t0 = time.perf_counter()
    for name in names:
        v = params[name]
        params[name] = v + EPS
        up = error(params)
        params[name] = v - EPS
        down = error(params)
        params[name] = v
        out[name] = float(up - down) / (2 * EPS)
    return out, time.perf_counter() - t0


def _numerical_row(
    label: str,
    error: Callable[[dict[str, Any]], Any],
    params: dict[str, Any],
    grads: dict[str, Any],
    t_fwd: float,
    t_grad: float,
    ctx: Context,
) -> Row:
    """Time central differences on a subset of parameters, check them, extrapolate."""
    names = sorted(params)
    budget = 0.0 if ctx.smoke else 2.0
    k = max(3, min(len(names), int(budget / (2 * t_fwd))))
    subset = [names[i] for i in np.linspace(0, len(names) - 1, min(k, len(names))).astype(int)]
    num, took = _numerical(error, params, subset)
    scale = 1.0 + abs(float(error(params)))  # round-off in E, divided by EPS
    for name in subset:
        g = float(grads[name])
        if abs(num[name] - g) > NUM_ATOL * (scale + abs(g)):
            raise VerificationError(
                f"{label}: numerical gradient of {name!r} is {num[name]!r}, "
                f"backpropagation gives {g!r}"
            )
    total = took / len(subset) * len(names)
    if len(subset) == len(names):
        note = f"all {len(names):,} parameters, 2 forward passes each"
    else:
        note = f"extrapolated from {len(subset):,} of {len(names):,} parameters"
        if total > 60:
            note += f" (would take {total / 60:,.0f} min)"
    return Row(label, "numerical gradient", total, ratio=total / t_grad,
               of="graphdiff gradient", note=note)


def _ratio_rows(
    label: str, who: str, t_fwd: float, t_grad: float, target: float | None
) -> list[Row]:
    return [
        Row(label, f"{who} forward", t_fwd),
        Row(label, f"{who} gradient", t_grad, ratio=t_grad / t_fwd, of=f"{who} forward",
            target=target),
    ]


def _layered(ctx: Context, dims: list[int]) -> list[Row]:
    n = ctx.size(1024, 16)
    X, t = data(n, dims[0], seed=5)
    p = init(dims, seed=5)
    net = graphdiff.compile(neuron_graph(dims), loss="E")
    ps, xs = to_scalars(p, dims), neuron_inputs(X, t)

    def matrices(loss: Any, grads: dict[str, Any]) -> dict[str, Any]:
        return {"loss": np.float64(loss), **{f"grad/{k}": v for k, v in grads.items()}}

    def bp_result(r: Any) -> dict[str, Any]:
        return matrices(r.loss, to_matrices(r.grads, dims))

    label = f"W5 {'-'.join(map(str, dims))} ({n_params(dims):,} params)"
    compare_all(label, [
        Impl("hand numpy", lambda: hand_grad(p, X, t), lambda r: matrices(*r)),
        Impl("graphdiff", lambda: net.backward(ps, xs), bp_result),
    ])
    compare_all(label, [
        Impl("hand numpy forward", lambda: hand_forward(p, X, t), lambda r: {"loss": r}),
        Impl("graphdiff forward", lambda: net.error(ps, xs), lambda r: {"loss": r}),
    ])
    med = measure({
        "hand fwd": lambda: hand_forward(p, X, t),
        "hand grad": lambda: hand_grad(p, X, t),
        "fwd": lambda: net.error(ps, xs),
        "grad": lambda: net.backward(ps, xs),
    }, ctx.budget(4.0))
    rows = _ratio_rows(label, "graphdiff", med["fwd"], med["grad"], 3.5)
    rows += _ratio_rows(label, "hand numpy", med["hand fwd"], med["hand grad"], None)
    grads = net.backward(ps, xs).grads
    rows.append(_numerical_row(label, lambda q: net.error(q, xs), dict(ps), grads,
                               med["fwd"], med["grad"], ctx))
    return rows


def _sparse_setup(ctx: Context) -> tuple[nx.DiGraph[Any], Any, dict[str, Any], dict[str, Any]]:
    G = sparse_dag(ctx.size(100_000, 300))
    net, _ = _compiled(ctx.size(100_000, 300))
    rng = np.random.default_rng(6)
    params = {k: np.float64(v) for k, v in zip(
        net.param_shapes, rng.uniform(-1.0, 1.0, len(net.param_shapes)), strict=True)}
    n = ctx.size(32, 4)
    xs = {f"x{i}": rng.standard_normal(n) for i in range(N_INPUTS)}
    xs["t"] = rng.standard_normal(n)
    return G, net, params, xs


def w5(ctx: Context) -> list[Row]:
    """W5: grad/forward for layered nets and the sparse DAG; numerical differentiation."""
    rows: list[Row] = []
    for dims in LAYERED_SMOKE if ctx.smoke else LAYERED:
        rows += _layered(ctx, dims)
    G, net, params, xs = _sparse_setup(ctx)
    n_neurons = G.number_of_nodes() - N_INPUTS - 2
    label = f"W5 sparse DAG ({n_neurons:,} neurons, {len(params):,} params)"
    res = net.backward(params, xs)
    if not np.isclose(float(net.error(params, xs)), float(res.loss), rtol=1e-12, atol=0.0):
        raise VerificationError(f"{label}: error() and backward() disagree on the loss")
    med = measure({"fwd": lambda: net.error(params, xs), "grad": lambda: net.backward(params, xs)},
                  ctx.budget(12.0))
    rows += _ratio_rows(label, "graphdiff", med["fwd"], med["grad"], 3.5)
    rows.append(_numerical_row(label, lambda q: net.error(q, xs), dict(params), res.grads,
                               med["fwd"], med["grad"], ctx))
    return rows


def compile_rows(ctx: Context) -> list[Row]:
    """Compile: graphdiff.compile of the 100,000-neuron DAG against nx.topological_sort."""
    G = sparse_dag(ctx.size(100_000, 300))
    net, first = _compiled(ctx.size(100_000, 300))
    if len(net.nodes) != G.number_of_nodes():
        raise VerificationError(f"Compile: the plan has {len(net.nodes)} of "
                                f"{G.number_of_nodes()} nodes")
    label = f"Compile ({G.number_of_nodes():,} nodes, {G.number_of_edges():,} edges)"
    def sort_times(k: int) -> list[float]:
        out = []
        for _ in range(k):
            t0 = time.perf_counter()
            list(nx.topological_sort(G))
            out.append(time.perf_counter() - t0)
        return out

    # A compile takes seconds: time whole calls, the first one (made for W5) included,
    # as many as the budget allows, each between three timings of the sort, so that a
    # slow spell of the machine hits both sides of the ratio alike.
    topo_samples, samples, budget = sort_times(3), [first], ctx.budget(20.0)
    while sum(samples) < budget and len(samples) < 7:
        t0 = time.perf_counter()
        again = graphdiff.compile(G, loss="E")
        samples.append(time.perf_counter() - t0)
        del again  # freeing the result is not part of compiling (nor timed for the sort)
        topo_samples += sort_times(3)
    topo, t = statistics.median(topo_samples), statistics.median(samples)
    return [
        Row(label, "nx.topological_sort", topo, ratio=1.0, of="nx.topological_sort"),
        Row(label, "graphdiff.compile", t, ratio=t / topo, of="nx.topological_sort",
            target=10.0, note=f"median of {len(samples)} compile(s), "
            f"{len(topo_samples)} sorts around them"),
    ]
