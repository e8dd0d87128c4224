"""W1 and W2: the lecture's 7-neuron tanh network with the hinge loss.

The network as the slides draw it: inputs x1, x2; tanh neurons 3..6; an
identity output neuron 7 (its value is z7); E = max(0, -z7 t). W1 computes
the loss and all 8 weight gradients for one data point, W2 for 100,000.

>>> import numpy as np
>>> x1, x2, t = np.array([0.5]), np.array([-1.3]), np.array([1.0])
>>> E, g = hand(WEIGHTS, x1, x2, t)
>>> sorted(g) == sorted(WEIGHTS)
True
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

import graphdiff

from .core import Context, Impl, Results, Row, timed_rows

__all__ = ["EDGES", "WEIGHTS", "hand", "lecture_graph", "w1", "w2"]

EDGES = (("x1", "a3", "w13"), ("x2", "a3", "w23"), ("x2", "a4", "w24"), ("a3", "a5", "w35"),
         ("a3", "a6", "w36"), ("a4", "a6", "w46"), ("a5", "a7", "w57"), ("a6", "a7", "w67"))
WEIGHTS = {"w13": 0.9, "w23": -0.4, "w24": 1.3, "w35": -0.7,
           "w36": 0.5, "w46": -1.1, "w57": 0.8, "w67": 1.2}
Array = np.ndarray


def lecture_graph() -> nx.DiGraph[Any]:
    """The slides' network in neuron notation, one weight parameter per edge."""
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_nodes_from(["a3", "a4", "a5", "a6"], op="neuron", activation="tanh")
    G.add_node("a7", op="neuron", activation="identity")
    for u, v, w in EDGES:
        G.add_edge(u, v, param=w)
    G.add_node("E", op="hinge")
    G.add_edge("a7", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def hand(w: dict[str, Any], x1: Array, x2: Array, t: Array) -> tuple[Any, dict[str, Any]]:
    """Mean hinge loss and its 8 weight gradients, by the slides' equations.

    δ7 = dE/dz7 = -t where -z7 t >= 0 (graphdiff's convention at the kink), each
    data point's δ carrying 1/N for the mean; g'(z) = 1 - tanh(z)^2 = 1 - a^2.
    """
    n = t.shape[0]
    a3 = np.tanh(x1 * w["w13"] + x2 * w["w23"])
    a4 = np.tanh(x2 * w["w24"])
    a5 = np.tanh(a3 * w["w35"])
    a6 = np.tanh(a3 * w["w36"] + a4 * w["w46"])
    z7 = a5 * w["w57"] + a6 * w["w67"]
    m = -z7 * t
    E = np.maximum(m, 0.0).mean()
    d7 = np.where(m >= 0, -t, 0.0) / n
    dz6 = d7 * w["w67"] * (1.0 - a6 * a6)  # δ6 g'(z6)
    dz5 = d7 * w["w57"] * (1.0 - a5 * a5)
    dz4 = dz6 * w["w46"] * (1.0 - a4 * a4)  # δ4 g'(z4)
    dz3 = (dz6 * w["w36"] + dz5 * w["w35"]) * (1.0 - a3 * a3)
    grads = {
        "w67": d7 @ a6, "w57": d7 @ a5, "w46": dz6 @ a4, "w36": dz6 @ a3,
        "w35": dz5 @ a3, "w24": dz4 @ x2, "w23": dz3 @ x2, "w13": dz3 @ x1,
    }
    return E, grads


def _loss(w: dict[str, Any], x1: Any, x2: Any, t: Any, tanh: Any, where: Any) -> Any:
    """The same forward pass for the autodiff frameworks, which derive the backward."""
    a3 = tanh(x1 * w["w13"] + x2 * w["w23"])
    a4 = tanh(x2 * w["w24"])
    a5 = tanh(a3 * w["w35"])
    a6 = tanh(a3 * w["w36"] + a4 * w["w46"])
    m = -(a5 * w["w57"] + a6 * w["w67"]) * t
    return where(m >= 0, m, 0.0).mean()  # m >= 0: the kink counts, as in graphdiff


def _named(loss: Any, grads: dict[str, Any]) -> Results:
    return {"loss": np.float64(loss), **{f"grad/{k}": np.float64(g) for k, g in grads.items()}}


def impls(ctx: Context, x1: Array, x2: Array, t: Array) -> list[Impl]:
    """Hand numpy (the reference), graphdiff, and PyTorch / JAX where installed."""
    w = {k: np.float64(v) for k, v in WEIGHTS.items()}
    net = graphdiff.compile(lecture_graph(), loss="E")
    inputs = {"x1": x1, "x2": x2, "t": t}
    out = [
        Impl("hand numpy", lambda: hand(w, x1, x2, t), lambda r: _named(*r)),
        Impl("graphdiff", lambda: net.backward(w, inputs), lambda r: _named(r.loss, r.grads)),
    ]
    names = sorted(w)
    if ctx.torch is not None:
        torch = ctx.torch
        tw = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w.items()}
        tx1, tx2, tt = (torch.from_numpy(a) for a in (x1, x2, t))

        def torch_run() -> tuple[Any, Any]:
            E = _loss(tw, tx1, tx2, tt, torch.tanh, torch.where)
            return E, torch.autograd.grad(E, [tw[k] for k in names])

        out.append(Impl("PyTorch eager", torch_run, lambda r: _named(
            r[0].item(), {k: g.item() for k, g in zip(names, r[1], strict=True)})))
    if ctx.jax is not None:
        jax, jnp = ctx.jax, ctx.jax.numpy
        jw = {k: jnp.float64(v) for k, v in w.items()}
        jx1, jx2, jt = (jnp.asarray(a) for a in (x1, x2, t))
        vg = jax.jit(jax.value_and_grad(lambda p, a, b, c: _loss(p, a, b, c, jnp.tanh, jnp.where)))

        def jax_run() -> Any:
            return jax.block_until_ready(vg(jw, jx1, jx2, jt))

        out.append(Impl("jax.jit", jax_run, lambda r: _named(r[0], r[1])))
    return out


def w1(ctx: Context) -> list[Row]:
    """W1: one data point (x1, x2) = (0.5, -1.3), its label chosen so the hinge is active."""
    x1, x2 = np.array([0.5]), np.array([-1.3])
    w = {k: np.float64(v) for k, v in WEIGHTS.items()}
    t = np.array([1.0])
    if hand(w, x1, x2, t)[0] == 0.0:  # a zero loss has all-zero gradients: pick the other label
        t = -t
    return timed_rows("W1", impls(ctx, x1, x2, t), ctx.budget(6.0), target=1.3)


def w2(ctx: Context) -> list[Row]:
    """W2: N = 100,000 data points, standard normal inputs, labels ±1 at random."""
    n = ctx.size(100_000, 64)
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    t = rng.choice([-1.0, 1.0], n)
    return timed_rows("W2", impls(ctx, x1, x2, t), ctx.budget(8.0), target=1.1)
