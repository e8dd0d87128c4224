"""The lecture's worked 7-neuron example and its shared-parameter variant.

Expected values come from the slides' equations (typos corrected as in the
issue), written out by hand below, never from graphdiff itself.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import gradcheck

EDGES = [("x1", "a3", "w13"), ("x2", "a3", "w23"), ("x2", "a4", "w24"), ("a3", "a5", "w35"),
         ("a3", "a6", "w36"), ("a4", "a6", "w46"), ("a5", "a7", "w57"), ("a6", "a7", "w67")]
SHARED = {"w13": "u", "w24": "u", "w36": "u", "w57": "u",
          "w23": "v", "w35": "v", "w46": "v", "w67": "v"}
G_FUNCS = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)),
                lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
}


def lecture_graph(activation: str, shared: bool = False) -> nx.DiGraph:
    """The slides' network as the slides draw it."""
    G = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    for n in ["a3", "a4", "a5", "a6"]:
        G.add_node(n, op="neuron", activation=activation)
    G.add_node("a7", op="neuron", activation="identity")
    for u, v, w in EDGES:
        G.add_edge(u, v, param=SHARED[w] if shared else w)
    G.add_node("E", op="hinge")
    G.add_edge("a7", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def by_hand(w: dict[str, float], x1, x2, t, g, dg):
    """Forward and backward exactly as the slides write them (per data point)."""
    a1, a2 = x1, x2
    z3 = a1 * w["w13"] + a2 * w["w23"]; a3 = g(z3)
    z4 = a2 * w["w24"]; a4 = g(z4)
    z5 = a3 * w["w35"]; a5 = g(z5)
    z6 = a3 * w["w36"] + a4 * w["w46"]; a6 = g(z6)
    z7 = a5 * w["w57"] + a6 * w["w67"]
    E = np.maximum(0, -z7 * t)
    d7 = np.where(-z7 * t >= 0, -t, 0.0)  # the documented convention at the kink
    d6 = d7 * w["w67"]; d5 = d7 * w["w57"]
    d4 = d6 * dg(z6) * w["w46"]
    d3 = d6 * dg(z6) * w["w36"] + d5 * dg(z5) * w["w35"]
    grads = {
        "w67": d7 * a6, "w57": d7 * a5, "w46": d6 * dg(z6) * a4, "w36": d6 * dg(z6) * a3,
        "w35": d5 * dg(z5) * a3, "w24": d4 * dg(z4) * a2, "w23": d3 * dg(z3) * a2,
        "w13": d3 * dg(z3) * a1,
    }
    deltas = {"a7": d7, "a6": d6, "a5": d5, "a4": d4, "a3": d3}
    return E, deltas, grads


WEIGHTS = {"w13": 0.7, "w23": -1.2, "w24": 0.4, "w35": 1.5,
           "w36": -0.8, "w46": 0.9, "w57": 1.1, "w67": -0.6}


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
@pytest.mark.parametrize("t", [1.0, -1.0])
def test_worked_example_one_point(act: str, t: float) -> None:
    g, dg = G_FUNCS[act]
    net = graphdiff.compile(lecture_graph(act), loss="E")
    x = {"x1": np.array([0.5]), "x2": np.array([-1.3]), "t": np.array([t])}
    res = net.backward(WEIGHTS, x, deltas=True)
    E, deltas, grads = by_hand(WEIGHTS, 0.5, -1.3, t, g, dg)
    assert res.loss == pytest.approx(E, rel=1e-14, abs=1e-15)
    for n, d in deltas.items():
        assert res.deltas[n][0] == pytest.approx(d, rel=1e-12, abs=1e-15), n
    # a7 is an identity neuron: its value is z7 and its delta is the slides' δ7 = dE/dz7
    assert res.deltas_z["a7"][0] == pytest.approx(deltas["a7"], abs=1e-15)
    assert set(res.grads) == set(WEIGHTS)
    for k, gk in grads.items():
        assert res.grads[k] == pytest.approx(gk, rel=1e-12, abs=1e-15), k


def test_both_hinge_branches_are_exercised() -> None:
    """The parameters above make the hinge active for one label and inactive for the other."""
    g, dg = G_FUNCS["tanh"]
    active = [by_hand(WEIGHTS, 0.5, -1.3, t, g, dg)[0] > 0 for t in (1.0, -1.0)]
    assert sorted(active) == [False, True]
    # inactive: every gradient is exactly zero
    net = graphdiff.compile(lecture_graph("tanh"), loss="E")
    t_inactive = 1.0 if not active[0] else -1.0
    x = {"x1": np.array([0.5]), "x2": np.array([-1.3]), "t": np.array([t_inactive])}
    res = net.backward(WEIGHTS, x)
    assert res.loss == 0.0 and all(v == 0.0 for v in res.grads.values())


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_worked_example_batch(act: str) -> None:
    g, dg = G_FUNCS[act]
    rng = np.random.default_rng(1)
    n = 64
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    t = rng.choice([-1.0, 1.0], size=n)
    net = graphdiff.compile(lecture_graph(act), loss="E")
    res = net.backward(WEIGHTS, {"x1": x1, "x2": x2, "t": t}, deltas=True)
    E, deltas, grads = by_hand(WEIGHTS, x1, x2, t, g, dg)
    assert 0 < (E > 0).sum() < n  # both branches present in the batch
    assert res.loss == pytest.approx(E.mean(), rel=1e-13)
    for k, gk in grads.items():  # mean over data points of the per-point gradients
        assert res.grads[k] == pytest.approx(gk.mean(), rel=1e-11, abs=1e-15), k
    for nd, d in deltas.items():  # each point's δ divided by N
        np.testing.assert_allclose(res.deltas[nd], d / n, rtol=1e-11, atol=1e-16)


def test_shared_parameters_u_v() -> None:
    net = graphdiff.compile(lecture_graph("tanh", shared=True), loss="E")
    assert sorted(net.param_shapes) == ["u", "v"]
    rng = np.random.default_rng(2)
    x = {"x1": rng.normal(size=32), "x2": rng.normal(size=32), "t": rng.choice([-1.0, 1.0], 32)}
    params = {"u": np.float64(0.8), "v": np.float64(-0.5)}
    res = net.backward(params, x)
    assert sorted(res.grads) == ["u", "v"]
    # the sum over each parameter's edges, from the untied network's gradients
    untied = graphdiff.compile(lecture_graph("tanh"), loss="E")
    w = {k: params[SHARED[k]] for k in WEIGHTS}
    gu = untied.backward(w, x).grads
    for p in ("u", "v"):
        expected = sum(gu[k] for k in WEIGHTS if SHARED[k] == p)
        assert res.grads[p] == pytest.approx(expected, rel=1e-13)
    report = gradcheck(net, params, x)
    assert report.ok, report
