"""Targets checked against the loss, predictions, probabilities, evaluate, softmax, hinge's
margin and tabular data (pandas).

Expected values come from numpy written out here (sigmoid, softmax, the hinge
formula, signs and argmaxes) or from scikit-learn's shipped data, never from the
code under test.
"""

from __future__ import annotations

import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import Adam, TargetError, fit
from graphdiff.errors import InputError
from graphdiff.registry import Op, get_op
from graphdiff.train import FitError


def linear(loss: str, d: int, k: int = 1, **loss_attrs: float) -> graphdiff.Network:
    """Op notation: z = x @ W + b (shape (N,) for k = 1), loss E(z, t)."""
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("W", op="param", shape=(d, k) if k > 1 else (d,), init="zeros")
    G.add_node("b", op="param", shape=(k,) if k > 1 else (), init="zeros")
    G.add_node("xw", op="matmul")
    G.add_edge("x", "xw", port=0)
    G.add_edge("W", "xw", port=1)
    G.add_node("z", op="add")
    G.add_edges_from([("xw", "z"), ("b", "z")])
    G.add_node("E", op=loss, **loss_attrs)
    G.add_edge("z", "E", port=0)
    G.add_edge("t", "E", port=1)
    return graphdiff.compile(G, loss="E")


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# -- target domains ---------------------------------------------------------------------


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, y.astype(float)


def test_breast_cancer_01_labels_refused_then_mapped_trains() -> None:
    X, y = breast_cancer()
    net = linear("logistic", X.shape[1])
    params = net.init_params(seed=0)
    refused = r"loss node 'E' \(logistic\).*found \{0, 1\}.*2 \* t - 1"
    with pytest.raises(TargetError, match=refused):
        fit(net, params, {"x": X, "t": y}, epochs=1)
    with pytest.raises(TargetError, match=r"found \{0, 1\}"):
        graphdiff.evaluate(net, params, {"x": X, "t": y})
    # backward stays the plain mathematics: no check
    assert np.isfinite(net.backward(params, {"x": X, "t": y}).loss)

    t = 2 * y - 1
    rng = np.random.default_rng(0)
    order = rng.permutation(len(t))
    train, test = order[:400], order[400:]
    result = fit(net, params, {"x": X[train], "t": t[train]}, optimizer=Adam(lr=0.05),
                 epochs=100)
    w, b = result.params["W"], result.params["b"]
    honest = float(np.mean(np.sign(X[test] @ w + b) == t[test]))  # numpy, held-out points
    assert honest >= 0.94
    assert graphdiff.evaluate(net, result.params, {"x": X[test], "t": t[test]})["accuracy"] == (
        pytest.approx(honest)
    )
    # predict gives the same labels as numpy's sign
    np.testing.assert_array_equal(net.predict(result.params, {"x": X[test]}),
                                  np.where(X[test] @ w + b > 0, 1.0, -1.0))


@pytest.mark.parametrize(
    ("t", "match"),
    [
        (np.array([1.0, 2.0, 1.0]), r"found \{1, 2\}.*np\.where\(t == 2, 1\.0, -1\.0\)"),
        (np.array([0.0, 1.0, 2.0]), r"found \{0, 1, 2\}.*softmax_cross_entropy"),
        (np.array([1.0, np.nan, -1.0]), r"1 non-finite value"),
    ],
)
def test_sign_targets_refused_with_the_fix(t: np.ndarray, match: str) -> None:
    net = linear("hinge", 2)
    with pytest.raises(TargetError, match=r"'E' \(hinge\) takes targets -1 or \+1.*" + match):
        fit(net, net.init_params(), {"x": np.ones((3, 2)), "t": t}, epochs=1)


def test_class_targets_checked_against_k() -> None:
    net = linear("softmax_cross_entropy", 2, k=3)
    x = np.ones((4, 2))
    params = net.init_params()
    with pytest.raises(TargetError, match=r"found \{1, 2, 3\}.*K = 3 columns.*np\.unique"):
        graphdiff.evaluate(net, params, {"x": x, "t": np.array([1.0, 2.0, 3.0, 1.0])})
    with pytest.raises(TargetError, match=r"found \{0, 0\.5, 1\.5\}"):
        fit(net, params, {"x": x, "t": np.array([0.0, 0.5, 1.5, 0.0])}, epochs=1)
    with pytest.raises(TargetError, match="probabilities"):
        fit(net, params, {"x": x, "t": np.full((4, 3), 0.5)}, epochs=1)
    ok = graphdiff.evaluate(net, params, {"x": x, "t": np.eye(3)[[0, 1, 2, 0]]})
    assert ok["loss"] == pytest.approx(np.log(3.0))  # zero weights: uniform softmax


def test_validation_targets_are_checked_too() -> None:
    net = linear("logistic", 2)
    good = {"x": np.ones((2, 2)), "t": np.array([1.0, -1.0])}
    with pytest.raises(TargetError, match="validation"):
        fit(net, net.init_params(), good, validation={**good, "t": np.array([1.0, 0.0])},
            epochs=1)


def test_squared_error_takes_any_real_target() -> None:
    net = linear("squared_error", 1)
    data = {"x": np.array([[1.0], [2.0]]), "t": np.array([0.3, 7.5])}
    res = fit(net, net.init_params(), data, epochs=1)
    assert "accuracy" not in res.history[-1]
    np.testing.assert_array_equal(net.predict(net.init_params(), data), np.zeros(2))
    with pytest.raises(InputError, match=r"loss node 'E' \(squared_error\) models no prob"):
        net.predict_proba(net.init_params(), data)


# -- predictions ------------------------------------------------------------------------


def test_predict_proba_logistic_and_softmax_against_numpy() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 3))
    net = linear("logistic", 3)
    p = {"W": rng.standard_normal(3), "b": np.float64(0.4)}
    z = x @ p["W"] + 0.4
    proba = net.predict_proba(p, {"x": x})
    assert proba.shape == (7,)
    np.testing.assert_allclose(proba, sigmoid(z), rtol=1e-14)

    net3 = linear("softmax_cross_entropy", 3, k=4)
    p3 = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    z3 = x @ p3["W"] + p3["b"]
    expected = np.exp(z3) / np.exp(z3).sum(axis=1, keepdims=True)
    proba3 = net3.predict_proba(p3, {"x": x})
    assert proba3.shape == (7, 4)
    np.testing.assert_allclose(proba3, expected, rtol=1e-13)
    np.testing.assert_array_equal(net3.predict(p3, {"x": x}), np.argmax(z3, axis=1))

    hinge = linear("hinge", 3)
    with pytest.raises(InputError, match=r"predict_proba: loss node 'E' \(hinge\)"):
        hinge.predict_proba(p, {"x": x})


def test_softmax_op_matches_numpy() -> None:
    op = get_op("softmax")
    z = np.array([[1000.0, 1001.0], [-3.0, 0.5]])
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(op(z), e / e.sum(axis=1, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(op(z.T, axis=0), (e / e.sum(axis=1, keepdims=True)).T,
                               rtol=1e-15)


@pytest.mark.parametrize("deltas", [False, True], ids=["generated", "interpreter"])
@pytest.mark.parametrize("margin", [0.0, 1.0])
def test_hinge_margin_on_both_backends(margin: float, deltas: bool) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 2))
    t = rng.choice([-1.0, 1.0], 50)
    net = linear("hinge", 2, margin=margin) if margin else linear("hinge", 2)
    w = np.array([0.7, -0.4])
    zt = (x @ w) * t
    res = net.backward({"W": w, "b": np.float64(0.0)}, {"x": x, "t": t}, deltas=deltas)
    assert res.loss == pytest.approx(np.maximum(0.0, margin - zt).mean(), rel=1e-14)
    active = zt <= margin
    expected = -(x * (t * active)[:, None]).mean(axis=0)
    np.testing.assert_allclose(res.grads["W"], expected, rtol=1e-13, atol=1e-15)


def test_margin_is_an_attribute_with_a_default() -> None:
    op = get_op("hinge")
    z, t = np.array([0.5, 2.0]), np.array([1.0, 1.0])
    np.testing.assert_array_equal(op(z, t), [0.0, 0.0])
    np.testing.assert_array_equal(op(z, t, margin=1.0), [0.5, 0.0])
    with pytest.raises(ValueError, match="margin"):
        op(z, t, margin=-1.0)


def test_a_registered_loss_gets_accuracy_and_predictions(fresh_registry: object) -> None:
    def fwd(z: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, 2.0 - z * t)

    def vjp(g: np.ndarray, out: np.ndarray, z: np.ndarray, t: np.ndarray) -> tuple:
        active = np.where(z * t <= 2.0, -g, 0.0)
        return active * t, active * z

    graphdiff.register_op(Op(name="wide_hinge", forward=fwd, vjp=vjp, arity=2, loss=True,
                             targets="signs", predicts="sign"))
    net = linear("wide_hinge", 2)
    data = graphdiff.blobs(60, seed=2)
    result = fit(net, net.init_params(), data, optimizer=graphdiff.SGD(lr=0.1), epochs=50,
                 target_accuracy=1.0)
    assert result.stopped == "target_accuracy"
    z = data["x"] @ result.params["W"] + result.params["b"]
    assert result.history[-1]["accuracy"] == np.mean(z * data["t"] > 0) == 1.0
    with pytest.raises(TargetError, match=r"'E' \(wide_hinge\)"):
        fit(net, net.init_params(), {**data, "t": (data["t"] + 1) / 2}, epochs=1)


def test_registry_refuses_bad_declarations(fresh_registry: object) -> None:
    def f(x: np.ndarray) -> np.ndarray:
        return x

    with pytest.raises(graphdiff.RegistryError, match="for losses"):
        graphdiff.register_op("bad1", f, vjp=lambda g, o, x: (g,), predicts="sign")
    with pytest.raises(graphdiff.RegistryError, match="targets must be"):
        graphdiff.register_op("bad2", lambda z, t: z, vjp=lambda g, o, z, t: (g, g),
                              arity=2, loss=True, targets="binary")


# -- tabular data -----------------------------------------------------------------------


def test_dataframes_go_everywhere() -> None:
    pd = pytest.importorskip("pandas")
    d = graphdiff.moons(40, seed=1)
    df = pd.DataFrame({"x2": d["x"][:, 1], "t": d["t"], "x1": d["x"][:, 0]})
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1]), loss="E")
    params = net.init_params(seed=0)
    as_dict = {"x1": d["x"][:, 0], "x2": d["x"][:, 1], "t": d["t"]}
    assert net.backward(params, df).loss == net.backward(params, as_dict).loss
    np.testing.assert_array_equal(net.forward(params, df)["y"], net.forward(params, as_dict)["y"])
    assert graphdiff.evaluate(net, params, df) == graphdiff.evaluate(net, params, as_dict)
    np.testing.assert_array_equal(net.predict(params, df), net.predict(params, as_dict))
    a = fit(net, params, df, epochs=3, batch_size=8)
    b = fit(net, params, as_dict, epochs=3, batch_size=8)
    times = [r["time"] for r in a.history]
    assert a.history == [{**row, "time": s} for row, s in zip(b.history, times, strict=True)]
    # op notation: feed builds x from the columns no other input takes, in order
    op = graphdiff.compile(graphdiff.mlp([2, 3, 1], notation="op"), loss="E")
    fed = graphdiff.feed(op, df[["x1", "x2", "t"]])
    np.testing.assert_array_equal(fed["x"], d["x"])
    res = fit(op, op.init_params(seed=0), df[["x1", "x2", "t"]], epochs=2)
    assert res.epochs == 2


def test_builtin_data_set_straight_into_fit() -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 4, 1]), loss="E")
    data = graphdiff.xor(40)
    direct = fit(net, net.init_params(seed=0), data, epochs=5)
    fed = fit(net, net.init_params(seed=0), graphdiff.feed(net, data), epochs=5)
    assert [r["loss"] for r in direct.history] == [r["loss"] for r in fed.history]
    G = graphdiff.mlp([2, 1])
    nx.relabel_nodes(G, {"x1": "a"}, copy=False)
    other = graphdiff.compile(G, loss="E")
    with pytest.raises(InputError, match=r"data: input 'a' matches nothing.*graphdiff\.feed"):
        fit(other, other.init_params(), data, epochs=1)
    with pytest.raises(FitError, match="dict or a pandas DataFrame"):
        fit(net, net.init_params(), [1, 2], epochs=1)


def test_pandas_is_not_imported_unless_given() -> None:
    code = (
        "import sys, numpy as np, graphdiff\n"
        "net = graphdiff.compile(graphdiff.mlp([2, 1]), loss='E')\n"
        "d = graphdiff.blobs(20)\n"
        "r = graphdiff.fit(net, net.init_params(), d, epochs=2)\n"
        "graphdiff.evaluate(net, r.params, d); net.predict(r.params, d)\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
