"""One rule for what a plugin op hands back, on both backends (issue 13, item 3).

A forward or vjp may return float64 arrays, or other numbers (a list, a float,
float32): those are converted to float64 where they come out of the op, so the
loss and gradients never depend on which backend ran; anything that is not
numbers is refused with an OpContractError naming the op and its node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import Op, OpContractError, register_op
from graphdiff.registry import scoped_registry


def net_with(forward: Callable[..., Any], vjp: Callable[..., Any]) -> graphdiff.Network:
    """x -> h (tanh neuron) -> p = plug(h) -> E = squared_error(p, t)."""
    register_op(Op(name="plug", forward=forward, vjp=vjp, elementwise=True), replace=True)
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("h", op="neuron", activation="tanh")
    G.add_edge("x", "h", param="w", weight=0.7)
    G.add_node("p", op="plug")
    G.add_edge("h", "p")
    G.add_node("E", op="squared_error")
    G.add_edge("p", "E", port=0)
    G.add_edge("t", "E", port=1)
    return graphdiff.compile(G, loss="E")


DATA = {"x": np.array([0.3, -1.2, 2.0]), "t": np.array([0.1, 0.4, -0.5])}


def runs(net: graphdiff.Network) -> list[Any]:
    params = net.init_params()
    return [
        net.backward(params, DATA),
        net.backward(params, DATA, deltas=True),
        net.backward(params, DATA, check_finite=True),
        net.interpret(params, DATA, deltas=True),
    ]


def by_hand(f32: bool) -> tuple[float, float]:
    """E = mean (p - t)^2 with p = 3 h (rounded to float32 if the op does), h = tanh(0.7 x)."""
    x, t = DATA["x"], DATA["t"]
    h = np.tanh(0.7 * x)
    p = (3.0 * h).astype(np.float32).astype(np.float64) if f32 else 3.0 * h
    d = 2.0 * (p - t) / len(x)
    return float(np.mean((p - t) ** 2)), float(np.sum(d * 3.0 * (1.0 - h**2) * x))


@pytest.mark.parametrize(
    ("forward", "vjp", "f32"),
    [
        (lambda x: (3.0 * x).astype(np.float32), lambda g, out, x: (3.0 * g,), True),
        (lambda x: (3.0 * x).tolist(), lambda g, out, x: [(3.0 * g).tolist()], False),
        (lambda x: 3.0 * x, lambda g, out, x: ((3.0 * g).astype(np.float32),), False),
    ],
    ids=["float32 forward", "list forward and vjp", "float32 vjp"],
)
def test_other_numbers_are_float64_on_both_paths(forward, vjp, f32) -> None:
    with scoped_registry():
        results = runs(net_with(forward, vjp))
    loss, grad = by_hand(f32)
    for res in results:
        assert res.loss == results[0].loss  # the same bits whichever path ran
        assert res.loss == pytest.approx(loss, rel=1e-12)
        assert res.grads["w"] == pytest.approx(grad, rel=1e-6 if not f32 else 1e-12)
    assert all(res.grads["w"] == results[0].grads["w"] for res in results[1:3])


def test_a_float_as_a_gradient_broadcasts_on_both_paths() -> None:
    # d/dx of x + c is 1: a vjp may hand back the number g-times-1 for a (N,) operand
    with scoped_registry():
        net = net_with(lambda x: x + 1.0, lambda g, out, x: (float(g.sum()) * 0 + 1.0,))
        results = runs(net)
    assert len({float(r.grads["w"]) for r in results}) == 1


@pytest.mark.parametrize(
    ("forward", "vjp", "what"),
    [
        (lambda x: ["a"] * len(x), lambda g, out, x: (g,), "forward returned list of <U1"),
        (lambda x: x, lambda g, out, x: (np.array(["1.0"] * len(g)),), "vjp returned ndarray"),
        (lambda x: [[1.0], [2.0, 3.0]], lambda g, out, x: (g,), "forward returned"),
    ],
    ids=["text forward", "text vjp", "ragged forward"],
)
def test_what_is_not_numbers_is_refused_naming_the_op_and_node(forward, vjp, what) -> None:
    with scoped_registry():
        net = net_with(forward, vjp)
        params = net.init_params()
        for run in (
            lambda: net.backward(params, DATA),
            lambda: net.backward(params, DATA, deltas=True),
            lambda: net.interpret(params, DATA),
            *([lambda: net.error(params, DATA)] if what.startswith("forward") else []),
        ):
            with pytest.raises(OpContractError, match=rf"op 'plug' at node 'p': {what}"):
                run()
