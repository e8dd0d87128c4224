"""The perceptron and nearest-mean classifiers against the lecture's statements.

The perceptron is checked against gradient descent on the hinge loss computed
by graphdiff's engine (an independent implementation of the same updates),
the nearest-mean classifier against its formula and against direct distance
comparisons.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff.baselines import NearestMean, Perceptron
from graphdiff.data import DataError


def single_neuron() -> graphdiff.Network:
    """z = w1 x1 + w2 x2 + b, E = max(0, -z t): the perceptron as a graph."""
    G = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_node("z", op="neuron", activation="identity", bias="b")
    G.add_edge("x1", "z", param="w1")
    G.add_edge("x2", "z", param="w2")
    G.add_node("E", op="hinge")
    G.add_edge("z", "E", port=0)
    G.add_edge("t", "E", port=1)
    return graphdiff.compile(G, loss="E")


def sgd_on_hinge(x, t, lr, epochs, w0, b0):
    """Plain SGD, batch size 1, points in order; the state after each step that moved."""
    net = single_neuron()
    params = {"w1": np.float64(w0[0]), "w2": np.float64(w0[1]), "b": np.float64(b0)}
    moved = []
    for epoch in range(1, epochs + 1):
        for k in range(len(x)):
            point = {"x1": x[k : k + 1, 0], "x2": x[k : k + 1, 1], "t": t[k : k + 1]}
            grads = net.backward(params, point).grads
            if any(g != 0 for g in grads.values()):
                params = {n: params[n] - lr * grads[n] for n in params}
                moved.append((epoch, k + 1, [params["w1"], params["w2"]], params["b"]))
    return moved


@pytest.mark.parametrize(
    ("eta", "w0", "b0", "data"),
    [
        (1.0, None, 0.0, "blobs"),  # from zero weights: the hinge's kink still updates
        (0.5, [0.3, -2.0], 0.7, "blobs"),
        (0.25, None, 0.0, "xor"),  # never converges: many updates over several epochs
    ],
)
def test_perceptron_equals_gradient_descent_on_hinge(eta, w0, b0, data) -> None:
    if data == "blobs":  # moved off the origin, so the bias has to travel: many updates
        d = graphdiff.blobs(40, noise=1.0, seed=3)
        x, t = d["x"] + [3.0, 1.0], d["t"]
    else:
        d = graphdiff.xor(40, seed=3)
        x, t = d["x"], d["t"]
    p = Perceptron(eta=eta, max_epochs=10).fit(x, t, w0=w0, b0=b0)
    assert len(p.updates) >= 20 and p.converged == (data == "blobs")
    moved = sgd_on_hinge(x, t, eta, p.epochs, w0 or [0.0, 0.0], b0)
    assert len(moved) == len(p.updates)
    for (epoch, k, w, b), u in zip(moved, p.updates, strict=True):
        assert (epoch, k) == (u.epoch, u.k)
        assert w == u.w.tolist() and b == u.b  # exactly, update by update
    last = p.updates[-1]
    assert p.w.tolist() == last.w.tolist() and p.b == last.b


def test_first_update_from_zero_is_eta_x_t() -> None:
    x = np.array([[2.0, -1.0], [0.5, 3.0]])
    t = np.array([-1.0, 1.0])
    p = Perceptron(eta=0.1, max_epochs=1).fit(x, t)
    # at w = 0, b = 0: sign(0) = 0 != t, so point 1 is a mistake
    assert (p.updates[0].epoch, p.updates[0].k) == (1, 1)
    assert p.updates[0].w.tolist() == [0.1 * 2.0 * -1.0, 0.1 * -1.0 * -1.0]
    assert p.updates[0].b == -0.1


def test_perceptron_converges_on_separable_blobs_and_stops() -> None:
    d = graphdiff.blobs(200, noise=0.8, seed=1)
    p = Perceptron(max_epochs=100).fit(d["x"], d["t"])
    assert p.converged and p.epochs < 100
    z = d["x"] @ p.w + p.b
    assert np.all(np.sign(z) == d["t"])  # every point strictly on its side
    assert np.array_equal(p.predict(d["x"]), d["t"])
    assert all(u.epoch < p.epochs for u in p.updates)  # the last epoch made no update


def test_perceptron_does_not_converge_on_xor() -> None:
    d = graphdiff.xor(100, seed=0)
    p = Perceptron(max_epochs=20).fit(d["x"], d["t"])
    assert not p.converged and p.epochs == 20
    assert any(u.epoch == 20 for u in p.updates)
    assert np.mean(p.predict(d["x"]) == d["t"]) < 1


def test_nearest_mean_formula_and_distances() -> None:
    d = graphdiff.moons(60, seed=2)
    m = NearestMean().fit(d["x"], d["t"])
    mu1 = d["x"][d["t"] > 0].sum(axis=0) / np.count_nonzero(d["t"] > 0)
    mu2 = d["x"][d["t"] < 0].sum(axis=0) / np.count_nonzero(d["t"] < 0)
    np.testing.assert_allclose(m.mu1, mu1, rtol=1e-14)
    np.testing.assert_allclose(m.mu2, mu2, rtol=1e-14)
    np.testing.assert_allclose(m.w, 2 * (mu1 - mu2), rtol=1e-14)
    assert m.b == pytest.approx(np.sum(mu2**2) - np.sum(mu1**2), rel=1e-13)
    grid = np.random.default_rng(0).uniform(-2, 3, (500, 2))
    nearer_mu1 = np.linalg.norm(grid - mu1, axis=1) < np.linalg.norm(grid - mu2, axis=1)
    np.testing.assert_array_equal(m.predict(grid), np.where(nearer_mu1, 1.0, -1.0))


def test_where_they_disagree_nearest_mean_describes_perceptron_minimizes() -> None:
    """An outlier stretches class +1: its mean moves away, the boundary with it."""
    xs = np.linspace(-2, 2, 5)
    x = np.vstack(
        [np.column_stack([xs, np.ones(5)]), [[0.0, 30.0]], np.column_stack([xs, -np.ones(5)])]
    )
    t = np.array([1.0] * 6 + [-1.0] * 5)
    order = np.random.default_rng(0).permutation(len(x))
    x, t = x[order], t[order]
    p = Perceptron().fit(x, t)
    m = NearestMean().fit(x, t)
    assert p.converged and np.array_equal(p.predict(x), t)
    wrong = m.predict(x) != t
    # the +1 points at height 1 are nearer to mu2 = (0, -1) than to mu1 = (0, 35/6)
    assert wrong.sum() >= 3 and np.all(t[wrong] == 1)
    np.testing.assert_allclose(m.mu1, [0.0, 35 / 6], rtol=1e-14)


@pytest.mark.parametrize(
    ("x", "t", "message"),
    [
        (np.zeros(3), np.ones(3), r"x must have shape \(N, d\)"),
        (np.zeros((3, 2)), np.ones(2), r"t must have shape \(3,\)"),
        (np.zeros((2, 2)), np.array([1.0, 0.0]), "t must hold labels -1 and \\+1, found 0.0"),
        (np.array([[np.nan, 0.0]]), np.ones(1), "x has NaN"),
    ],
)
def test_bad_data_is_named(x, t, message) -> None:
    for model in (Perceptron(), NearestMean()):
        with pytest.raises(DataError, match=message):
            model.fit(x, t)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(DataError, match="eta"):
        Perceptron(eta=0)
    with pytest.raises(DataError, match="max_epochs"):
        Perceptron(max_epochs=0)
    with pytest.raises(DataError, match=r"w0 must have shape \(2,\)"):
        Perceptron().fit(np.zeros((2, 2)), np.ones(2), w0=[1.0])
    with pytest.raises(DataError, match="class -1"):
        NearestMean().fit(np.zeros((2, 2)), np.ones(2))
    p = Perceptron().fit(np.eye(2), np.array([1.0, -1.0]))
    with pytest.raises(DataError, match=r"x must have shape \(N, 2\)"):
        p.predict(np.zeros((4, 3)))
