"""fit: the lecture's training loop, its bookkeeping, and its reliability guarantees.

Expected values come from the lecture's rules written out here (the perceptron,
θ ← θ − γ∇E, the hinge and logistic losses), from numpy's seeded generator as
documented, or from an uninterrupted run (resume), never from fit itself.
"""

from __future__ import annotations

import copy
import errno
import io
import os
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import SGD, Adam, TrainingDivergedError, fit
from graphdiff.errors import InputError
from graphdiff.train import CheckpointError, EpochRecord, FitError, evaluate


def mlp_graph(sizes: list[int], activation: str = "tanh", loss: str = "logistic") -> nx.DiGraph:
    """A dense network in neuron notation: inputs x1..xd, output neuron y, target t, loss E."""
    return graphdiff.mlp(sizes, activation, loss=loss)


def mlp(sizes: list[int], **kw: str) -> graphdiff.Network:
    return graphdiff.compile(mlp_graph(sizes, **kw), loss="E")


def neuron_graph(loss: str = "hinge", activation: str = "identity") -> nx.DiGraph:
    """One neuron z = w1 x1 + w2 x2 + b on 2-D points, the perceptron."""
    G = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_node("z", op="neuron", activation=activation, bias="b")
    G.add_edge("x1", "z", param="w1")
    G.add_edge("x2", "z", param="w2")
    G.add_node("E", op=loss)
    G.add_edge("z", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def sign_accuracy(net: graphdiff.Network, params: dict, data: dict) -> float:
    y = net.forward(params, data, outputs=["y"])["y"]
    return float(np.mean(y * data["t"] > 0))


# -- it learns ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "needed"), [(graphdiff.xor, 1.0), (graphdiff.moons, 0.97)], ids=["xor", "moons"]
)
@pytest.mark.parametrize("batch_size", [None, 32])
def test_two_hidden_layers_learn_xor_and_moons(make, needed: float, batch_size) -> None:
    net = mlp([2, 8, 8, 1])
    data = graphdiff.feed(net, make(200, seed=0))
    result = fit(net, net.init_params(seed=0), data, optimizer=Adam(lr=0.05),
                 epochs=300, batch_size=batch_size, seed=1, target_accuracy=1.0)
    assert sign_accuracy(net, result.params, data) >= needed
    assert result.history[-1]["accuracy"] == sign_accuracy(net, result.params, data)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def neuron_into_op_graph() -> nx.DiGraph:
    """Neurons feeding an op node: y = tanh(h) with h a neuron, then the logistic loss."""
    G = mlp_graph([2, 3, 1])
    G.remove_edge("y", "E")
    G.add_node("p", op="tanh")
    G.add_edge("y", "p")
    G.add_edge("p", "E", port=0)
    return G


@pytest.mark.parametrize("kind", ["neuron", "op", "neuron_into_op"])
def test_full_batch_sgd_is_the_lectures_gradient_step(kind: str) -> None:
    if kind == "op":
        net = softmax_net()
        data = graphdiff.spirals(30, seed=0, classes=3)
    else:
        G = mlp_graph([2, 3, 1]) if kind == "neuron" else neuron_into_op_graph()
        net = graphdiff.compile(G, loss="E")
        data = graphdiff.feed(net, graphdiff.moons(40, seed=2))
    p0 = net.init_params(seed=3)
    expected = dict(p0)
    for _ in range(3):  # θ ← θ − γ ∇E(θ), ∇E by the engine's checked interpreter
        g = net.backward(expected, data, check_finite=True).grads
        expected = {k: expected[k] - 0.5 * g[k] for k in expected}
    result = fit(net, p0, data, optimizer=SGD(lr=0.5), epochs=3)
    assert result.steps == 3 and result.epochs == 3 and result.stopped == "epochs"
    for k in expected:
        assert result.params[k] == pytest.approx(expected[k], rel=1e-12, abs=1e-15), k
        assert type(result.params[k]) is type(p0[k])
    if kind == "neuron":
        # the epoch's loss is measured at the end of the epoch on all the data
        z = net.forward(result.params, data, outputs=["y"])["y"]
        loss = np.mean(np.logaddexp(0, -data["t"] * z))
        assert result.history[-1]["loss"] == pytest.approx(loss, rel=1e-14)


def test_fit_never_mutates_its_inputs() -> None:
    G = mlp_graph([2, 3, 1])
    net = graphdiff.compile(G, loss="E")
    graph_before = copy.deepcopy(net.graph)
    data = graphdiff.feed(net, graphdiff.moons(30, seed=0))
    params = net.init_params(seed=0)
    params_before, data_before = copy.deepcopy(params), copy.deepcopy(data)
    opt = Adam(lr=0.1)
    opt_before = copy.deepcopy(opt.state_dict())
    result = fit(net, params, data, optimizer=opt, epochs=3, batch_size=7)
    for k in params:
        assert np.array_equal(params[k], params_before[k])
    for k in data:
        assert np.array_equal(data[k], data_before[k])
    assert nx.utils.graphs_equal(net.graph, graph_before)
    assert nx.utils.graphs_equal(G, graph_before)
    assert opt.state_dict() == opt_before and opt.steps == 0
    assert result.optimizer.steps == result.steps == 3 * 5


# -- batches ------------------------------------------------------------------------


def spy_batches(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Record the first input of every batch that fit computes a gradient for."""
    import graphdiff.runner as runner  # fit's in-process runner computes the batches

    seen: list[np.ndarray] = []
    real = runner.batch_gradient

    def spy(net, params, batch):
        seen.append(batch["x1"].copy())
        return real(net, params, batch)

    monkeypatch.setattr(runner, "batch_gradient", spy)
    return seen


def index_data(n: int) -> dict[str, np.ndarray]:
    """x1 holds each data point's index, so a batch shows which points it took."""
    rng = np.random.default_rng(0)
    return {"x1": np.arange(n, dtype=float), "x2": rng.standard_normal(n),
            "t": np.where(rng.standard_normal(n) > 0, 1.0, -1.0)}


def test_minibatches_are_shuffled_each_epoch_with_the_seeded_generator(monkeypatch) -> None:
    net = graphdiff.compile(neuron_graph(), loss="E")
    seen = spy_batches(monkeypatch)
    fit(net, net.init_params(0), index_data(10), epochs=3, batch_size=4, seed=7)
    rng = np.random.default_rng(7)  # documented: one permutation per epoch from default_rng(seed)
    expected = []
    for _ in range(3):
        order = rng.permutation(10)
        expected += [order[:4], order[4:8], order[8:]]
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        assert np.array_equal(got, want)
    # same seed, same batches; another seed, other batches
    seen.clear()
    fit(net, net.init_params(0), index_data(10), epochs=3, batch_size=4, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(seen, expected, strict=True))
    seen.clear()
    fit(net, net.init_params(0), index_data(10), epochs=3, batch_size=4, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(seen, expected, strict=True))


@pytest.mark.parametrize("targets", ["classes", "one-hot"])
@pytest.mark.parametrize("batch_size", [5, None])
def test_fit_takes_the_steps_of_backward_and_adam_on_its_batches(batch_size, targets) -> None:
    """Neuron notation's inputs (x1..x6, and t as class indices: one number per point
    each) reach the generated code as one gathered matrix in fit; the steps must be
    those of backward on the batches as dicts, then Adam.step, bit for bit, and each
    epoch's loss and accuracy what evaluate() says of the epoch's parameters."""
    net = graphdiff.compile(
        graphdiff.mlp([6, 5, 4], "relu", loss="softmax_cross_entropy"), loss="E"
    )
    rng = np.random.default_rng(4)
    data = {f"x{j}": rng.normal(size=23) for j in range(1, 7)}
    labels = rng.integers(0, 4, size=23)
    data["t"] = labels.astype(float) if targets == "classes" else np.eye(4)[labels]
    p0 = net.init_params(seed=1)
    res = fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=3, batch_size=batch_size, seed=3)
    opt, params, order = Adam(lr=0.05), p0, np.random.default_rng(3)
    for epoch in range(3):
        perm = order.permutation(23) if batch_size else None
        for i in range(0, 23, batch_size or 23):
            idx = None if perm is None else perm[i : i + batch_size]
            batch = data if idx is None else {k: v[idx] for k, v in data.items()}
            params = opt.step(params, net.backward(params, batch).grads)
        want = evaluate(net, params, data)
        assert res.history[epoch]["loss"] == want["loss"]
        assert res.history[epoch]["accuracy"] == want["accuracy"]
    assert np.array_equal(res.params.vector, params.vector)


def test_without_shuffle_batches_follow_the_sample_order(monkeypatch) -> None:
    net = graphdiff.compile(neuron_graph(), loss="E")
    seen = spy_batches(monkeypatch)
    fit(net, net.init_params(0), index_data(7), epochs=2, batch_size=3, shuffle=False)
    assert [b.tolist() for b in seen] == [[0, 1, 2], [3, 4, 5], [6]] * 2
    seen.clear()
    fit(net, net.init_params(0), index_data(7), epochs=2)  # full batch: all points, in order
    assert [b.tolist() for b in seen] == [list(range(7))] * 2


# -- the perceptron -----------------------------------------------------------------


def perceptron_epochs(x: np.ndarray, t: np.ndarray, w: np.ndarray, b: float, eta: float,
                      epochs: int) -> list[tuple[np.ndarray, float]]:
    """The lecture's Perceptron algorithm, iterating k = 1..N in order each epoch."""
    out = []
    for _ in range(epochs):
        for xk, tk in zip(x, t, strict=True):
            if np.sign(w @ xk + b) != tk:  # sign(0) = 0 is never equal to t: a mistake
                w = w + eta * xk * tk
                b = b + eta * tk
        out.append((w, b))
    return out


@pytest.mark.parametrize("start", ["zeros", "random"])
def test_batch_size_one_sgd_on_the_hinge_is_the_perceptron(start: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((25, 2))
    t = np.where(x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.standard_normal(25) > 0, 1.0, -1.0)
    w0 = np.zeros(2) if start == "zeros" else rng.standard_normal(2)
    b0 = 0.0 if start == "zeros" else 0.4
    eta = 0.7
    net = graphdiff.compile(neuron_graph(), loss="E")
    params = {"w1": w0[0], "w2": w0[1], "b": b0}
    seen: list[dict] = []
    fit(net, params, {"x1": x[:, 0], "x2": x[:, 1], "t": t}, optimizer=SGD(lr=eta),
        epochs=6, batch_size=1, shuffle=False, callbacks=[lambda r: seen.append(r.params)])
    expected = perceptron_epochs(x, t, w0, b0, eta, 6)
    assert len(seen) == 6
    for got, (w, b) in zip(seen, expected, strict=True):
        assert [got["w1"], got["w2"], got["b"]] == pytest.approx([*w, b], rel=1e-13, abs=1e-15)


def test_target_accuracy_one_stops_like_the_perceptron() -> None:
    data = graphdiff.blobs(40, seed=1)  # linearly separable
    net = graphdiff.compile(neuron_graph(), loss="E")
    d = graphdiff.feed(net, data)
    zero = {"w1": 0.0, "w2": 0.0, "b": 0.0}
    result = fit(net, zero, d, optimizer=SGD(lr=1.0), epochs=100, batch_size=1,
                 shuffle=False, target_accuracy=1.0)
    assert result.stopped == "target_accuracy" and result.epochs < 100
    assert result.history[-1]["accuracy"] == 1.0
    assert all(h["accuracy"] < 1.0 for h in result.history[:-1])
    z = result.params["w1"] * d["x1"] + result.params["w2"] * d["x2"] + result.params["b"]
    assert np.all(z * d["t"] > 0)
    # the perceptron stops after the same number of passes at the same place
    w, b = perceptron_epochs(data["x"], data["t"], np.zeros(2), 0.0, 1.0, result.epochs)[-1]
    assert [result.params["w1"], result.params["w2"], result.params["b"]] == pytest.approx(
        [*w, b], rel=1e-13, abs=1e-15)


def test_target_loss_stops() -> None:
    net = mlp([2, 4, 1])
    d = graphdiff.feed(net, graphdiff.blobs(60, seed=0))
    result = fit(net, net.init_params(0), d, optimizer=Adam(lr=0.05), epochs=500,
                 target_loss=0.1)
    losses = [h["loss"] for h in result.history]
    assert result.stopped == "target_loss"
    assert losses[-1] <= 0.1 and all(v > 0.1 for v in losses[:-1])


def test_callbacks_see_every_epoch_and_can_stop() -> None:
    net = mlp([2, 3, 1])
    d = graphdiff.feed(net, graphdiff.moons(30, seed=0))
    records: list[EpochRecord] = []
    quiet: list[int] = []

    def stop_at_three(r: EpochRecord) -> bool:
        records.append(r)
        return r.epoch == 3

    result = fit(net, net.init_params(0), d, epochs=10, batch_size=10,
                 callbacks=[stop_at_three, lambda r: quiet.append(r.epoch)])
    assert result.stopped == "callback" and result.epochs == 3 and len(result.history) == 3
    assert [r.epoch for r in records] == [1, 2, 3] and quiet == [1, 2, 3]
    assert [r.step for r in records] == [3, 6, 9]
    last = records[-1]
    assert all(np.array_equal(last.params[k], result.params[k]) for k in net.params)
    assert set(last.grads) == set(net.params)
    assert last.loss == result.history[-1]["loss"] and last.accuracy == result.history[-1][
        "accuracy"]
    assert last.history[-1]["epoch"] == 3


# -- history ------------------------------------------------------------------------


def test_history_keys_and_validation_metrics() -> None:
    net = mlp([2, 4, 1])
    train, val = graphdiff.moons(50, seed=0), graphdiff.moons(30, seed=1)
    result = fit(net, net.init_params(0), graphdiff.feed(net, train), epochs=4,
                 optimizer=Adam(lr=0.05), validation=graphdiff.feed(net, val))
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    for h in result.history:
        assert set(h) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"}
        assert h["time"] >= 0
    vd = graphdiff.feed(net, val)
    z = net.forward(result.params, vd, outputs=["y"])["y"]
    assert result.history[-1]["val_loss"] == pytest.approx(np.mean(np.logaddexp(0, -val["t"] * z)))
    assert result.history[-1]["val_accuracy"] == np.mean(z * val["t"] > 0)

    regression = mlp([2, 3, 1], loss="squared_error")
    r = fit(regression, regression.init_params(0), graphdiff.feed(regression, train), epochs=2,
            validation=graphdiff.feed(regression, val))
    assert [set(h) for h in r.history] == [{"epoch", "loss", "val_loss", "time"}] * 2


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_epoch_loss_steps_is_the_mean_of_the_batch_losses_before_each_update(
    reduction: str,
) -> None:
    net = graphdiff.compile(mlp_graph([2, 3, 1]), loss="E", reduction=reduction)
    data = graphdiff.feed(net, graphdiff.moons(10, seed=1))
    start = net.init_params(0)
    got = fit(net, start, data, optimizer=Adam(lr=0.1), epochs=2, batch_size=4,
              shuffle=False, epoch_loss="steps")
    # by hand: batches [0:4], [4:8], [8:10], each loss taken before its update
    opt, params, expected = Adam(lr=0.1), dict(start), []
    for _ in range(2):
        total = 0.0
        for lo, hi in [(0, 4), (4, 8), (8, 10)]:
            res = net.backward(params, {k: v[lo:hi] for k, v in data.items()})
            total += float(res.loss) * ((hi - lo) if reduction == "mean" else 1)
            params = opt.step(params, res.grads)
        expected.append(total / 10 if reduction == "mean" else total)
    assert [row["loss"] for row in got.history] == pytest.approx(expected, rel=1e-12)
    assert all("accuracy" not in row for row in got.history)
    assert {p: float(v) for p, v in got.params.items()} == pytest.approx(
        {p: float(v) for p, v in params.items()}, rel=1e-12
    )


def test_accuracy_counts_a_zero_prediction_as_wrong() -> None:
    net = graphdiff.compile(neuron_graph(), loss="E")
    d = graphdiff.feed(net, graphdiff.blobs(10, seed=0))
    assert evaluate(net, {"w1": 0.0, "w2": 0.0, "b": 0.0}, d) == {"loss": 0.0, "accuracy": 0.0}
    # half the points on the right side: z = x1, t = sign(x1) for the first five
    d["x1"] = np.array([1.0, -2, 3, -4, 5, 1, -2, 3, -4, 5])
    d["t"] = np.sign(d["x1"]) * np.array([1] * 5 + [-1] * 5)
    assert evaluate(net, {"w1": 1.0, "w2": 0.0, "b": 0.0}, d)["accuracy"] == 0.5


def softmax_net() -> graphdiff.Network:
    """Op notation: logits = x @ W + c, softmax cross-entropy against t."""
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("W", op="param", shape=(2, 3))
    G.add_node("c", op="param", shape=(3,))
    G.add_node("xW", op="matmul")
    G.add_edge("x", "xW", port=0)
    G.add_edge("W", "xW", port=1)
    G.add_node("logits", op="add")
    G.add_edges_from([("xW", "logits"), ("c", "logits")])
    G.add_node("E", op="softmax_cross_entropy")
    G.add_edge("logits", "E", port=0)
    G.add_edge("t", "E", port=1)
    return graphdiff.compile(G, loss="E")


def test_softmax_accuracy_with_class_indices_and_one_hot() -> None:
    net = softmax_net()
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 0.0]])
    params = {"W": np.array([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]]), "c": np.zeros(3)}
    labels = np.array([0.0, 1.0, 2.0, 1.0])  # argmax of the logits: 0, 1, 2, 0
    assert evaluate(net, params, {"x": x, "t": labels})["accuracy"] == 0.75
    assert evaluate(net, params, {"x": x, "t": np.eye(3)[[0, 1, 2, 1]]})["accuracy"] == 0.75
    data = graphdiff.spirals(90, seed=0, classes=3, noise=0.0)
    r = fit(net, net.init_params(0), data, optimizer=Adam(lr=0.05), epochs=3)
    assert set(r.history[0]) == {"epoch", "loss", "accuracy", "time"}


# -- divergence -----------------------------------------------------------------------


def poisoned_graph() -> nx.DiGraph:
    """x1 -> neuron h1 -> neuron h2 (activation: an identity whose derivative can be poisoned)."""
    G = nx.DiGraph()
    G.add_nodes_from(["x1", "t"], op="input")
    G.add_node("h1", op="neuron", activation="identity", bias="b")
    G.add_edge("x1", "h1", param="w", weight=0.5)
    G.add_node("h2", op="neuron", activation="poison")
    G.add_edge("h1", "h2", param="v", weight=1.5)
    G.add_node("E", op="squared_error")
    G.add_edge("h2", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def test_nan_at_a_known_node_and_step_stops_without_the_bad_update(fresh_registry) -> None:
    calls = [0]

    def vjp(g, out, x):
        calls[0] += 1  # the derivative runs in training steps, never in evaluation
        return (g * np.nan if calls[0] >= 5 else g,)

    graphdiff.register_op("poison", lambda x: x, vjp=vjp, elementwise=True)
    net = graphdiff.compile(poisoned_graph(), loss="E")
    data = {"x1": np.linspace(-1, 1, 9), "t": np.linspace(0, 2, 9)}
    p0 = {"b": np.float64(0.0), "v": np.float64(1.5), "w": np.float64(0.5)}
    # the parameters after 4 good steps, by the lecture's rule on the same batches
    expected = dict(p0)
    for k in range(4):
        batch = {n: a[3 * (k % 3): 3 * (k % 3) + 3] for n, a in data.items()}
        g = net.backward(expected, batch, check_finite=True).grads
        expected = {n: expected[n] - 0.1 * g[n] for n in expected}
    calls[0] = 0
    with pytest.raises(TrainingDivergedError) as e:
        fit(net, p0, data, optimizer=SGD(lr=0.1), epochs=10, batch_size=3, shuffle=False)
    err = e.value
    # h2's derivative sends a NaN delta to h1: h1 is the first node whose delta is not finite
    assert (err.epoch, err.step, err.node, err.phase) == (2, 5, "h1", "backward")
    assert "epoch 2" in str(err) and "step 5" in str(err) and "'h1'" in str(err)
    assert isinstance(err, FloatingPointError) and isinstance(err, graphdiff.GraphdiffError)
    # the steps before are the same computation as backward's: the same bits
    assert err.params.keys() == expected.keys()
    assert all(err.params[k] == expected[k] for k in expected)


def test_an_update_that_overflows_is_not_applied() -> None:
    net = graphdiff.compile(neuron_graph(), loss="E")
    d = graphdiff.feed(net, graphdiff.blobs(10, seed=0))
    d["x1"] = 100 * d["x1"]  # |dE/dw1| > 10, so 1e308 · dE/dw1 overflows
    p0 = {"w1": 0.0, "w2": 0.0, "b": 0.0}
    with pytest.raises(TrainingDivergedError) as e:
        fit(net, p0, d, optimizer=SGD(lr=1e308), epochs=3)
    assert (e.value.epoch, e.value.step, e.value.phase) == (1, 1, "update")
    assert e.value.node == "w1" and "'w1'" in str(e.value)
    assert e.value.params == p0


def test_a_loss_that_overflows_after_an_update_names_the_node() -> None:
    # a = exp(w x): one step from w = 0 with t = 1e5 lands at w = 2000, exp(2000) = inf
    net = graphdiff.compile(neuron_graph("squared_error", "exp"), loss="E")
    d = {"x1": np.ones(4), "x2": np.zeros(4), "t": np.full(4, 1e5 + 1)}
    p0 = {"w1": 0.0, "w2": 0.0, "b": 0.0}
    lr = 2000 / (2 * 1e5)  # dE/dw1 = 2 (a - t) a' x = -2e5 at w = 0
    with pytest.raises(TrainingDivergedError) as e:
        fit(net, p0, d, optimizer=SGD(lr=lr), epochs=3)
    assert (e.value.epoch, e.value.step, e.value.node, e.value.phase) == (1, 1, "z", "evaluation")
    assert e.value.params["w1"] == pytest.approx(2000.0)


# -- bad arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"epochs": -1}, FitError, "epochs"),
        ({"batch_size": 0}, FitError, "batch_size"),
        ({"optimizer": "adam"}, FitError, "optimizer"),
        ({"target_accuracy": 1.0, "net": "regression"}, FitError, "target_accuracy"),
        ({"data": {"x1": np.ones(3), "t": np.ones(3)}}, InputError, "x2"),
        ({"params": {"w1": 0.0, "w2": 0.0}}, InputError, "'b'"),
        ({"params": {"w1": 0.0, "w2": "zero", "b": 0.0}}, InputError, "'w2'"),
        ({"data": {"x1": np.ones(3), "x2": np.ones(2), "t": np.ones(3)}}, ValueError, "x2"),
        ({"epoch_loss": "mean"}, FitError, "epoch_loss"),
        ({"epoch_loss": "steps", "target_accuracy": 1.0}, FitError, "epoch_loss='end'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type, named: str) -> None:
    loss = "squared_error" if kwargs.pop("net", None) else "hinge"
    net = graphdiff.compile(neuron_graph(loss), loss="E")
    args = {"params": {"w1": 0.0, "w2": 0.0, "b": 0.0},
            "data": {"x1": np.ones(3), "x2": np.ones(3), "t": np.ones(3)}}
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    with pytest.raises(error, match=named):
        fit(net, args["params"], args["data"], **kwargs)


def test_training_does_not_depend_on_the_hash_seed() -> None:
    script = (
        "import graphdiff\n"
        "net = graphdiff.compile(graphdiff.mlp([2, 4, 3, 1]), loss='E')\n"
        "data = graphdiff.feed(net, graphdiff.moons(40, seed=0))\n"
        "r = graphdiff.fit(net, net.init_params(1), data, optimizer=graphdiff.Adam(lr=0.05),\n"
        "                  epochs=5, batch_size=8)\n"
        "print({k: float(v).hex() for k, v in sorted(r.params.items())})\n"
    )
    outputs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1] and outputs[0].startswith("{")


# -- progress -------------------------------------------------------------------------


def test_progress_bar_only_when_asked_or_on_a_terminal(monkeypatch) -> None:
    net = graphdiff.compile(neuron_graph(), loss="E")
    d = graphdiff.feed(net, graphdiff.blobs(10, seed=0))
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    fit(net, net.init_params(0), d, epochs=3)  # not a terminal: quiet
    fit(net, net.init_params(0), d, epochs=3, progress=False)
    assert err.getvalue() == ""
    fit(net, net.init_params(0), d, epochs=3, progress=True)
    out = err.getvalue()
    assert out.startswith("\r") and out.endswith("\n") and "epoch 3/3" in out
    assert "loss" in out and "acc" in out and "steps/s" in out

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    fit(net, net.init_params(0), d, epochs=2)
    assert "epoch 2/2" in tty.getvalue()


# -- checkpoints ----------------------------------------------------------------------


def resume_case() -> tuple[graphdiff.Network, dict, dict, dict]:
    """Minibatches, shuffling and Adam: resuming needs the RNG and the optimizer state."""
    net = mlp([2, 5, 1])
    data = graphdiff.feed(net, graphdiff.moons(60, seed=3))
    val = graphdiff.feed(net, graphdiff.moons(20, seed=4))
    return net, net.init_params(seed=2), data, {"batch_size": 8, "seed": 11, "validation": val}


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


def assert_same_run(a: graphdiff.FitResult, b: graphdiff.FitResult) -> None:
    assert sorted(a.params) == sorted(b.params)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert without_time(a.history) == without_time(b.history)
    assert (a.epochs, a.steps) == (b.epochs, b.steps)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["step"] == sb["step"]
    for p, slots in sa["state"].items():
        for slot, v in slots.items():
            assert np.array_equal(v, sb["state"][p][slot]), (p, slot)


@pytest.mark.parametrize("split", [1, 3, 7])
@pytest.mark.parametrize("how", ["epochs", "callback"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, split: int, how: str) -> None:
    net, p0, data, kw = resume_case()
    full = fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=10, **kw)
    path = tmp_path / "run.ckpt"
    if how == "epochs":
        first = fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=split, checkpoint=path, **kw)
    else:  # stopped by a callback between two scheduled checkpoints: the last one is written
        first = fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=10, checkpoint=path,
                    every=4, callbacks=[lambda r: r.epoch == split], **kw)
    assert first.epochs == split
    saved = graphdiff.load_checkpoint(path)
    assert (saved.epoch, saved.step) == (split, split * 8)  # 60 points in batches of 8
    rng = np.random.default_rng(11)
    for _ in range(split):
        rng.permutation(60)
    assert saved.rng_state == rng.bit_generator.state  # taken at the epoch boundary
    resumed = fit(net, None, data, optimizer=Adam(lr=0.05), epochs=10, resume=path, **kw)
    assert_same_run(resumed, full)
    # without an optimizer, the checkpoint's is rebuilt from its name and configuration
    again = fit(net, None, data, epochs=10, resume=path, **kw)
    assert_same_run(again, full)


def test_checkpoints_every_k_epochs_and_at_the_end(tmp_path, monkeypatch) -> None:
    import graphdiff.train as train

    written: list[int] = []
    real = train.save_checkpoint

    def spy(path, ckpt):
        written.append(ckpt.epoch)
        real(path, ckpt)

    monkeypatch.setattr(train, "save_checkpoint", spy)
    net, p0, data, kw = resume_case()
    fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=7, every=3,
        checkpoint=tmp_path / "c.ckpt", **kw)
    assert written == [3, 6, 7]
    saved = graphdiff.load_checkpoint(tmp_path / "c.ckpt")
    assert saved.config["batch_size"] == 8 and saved.config["seed"] == 11
    assert saved.optimizer is not None and saved.optimizer["name"] == "adam"
    assert saved.graph_fingerprint == graphdiff.io.graph_fingerprint(net.graph)
    assert [h["epoch"] for h in saved.history] == list(range(1, 8))
    assert os.listdir(tmp_path) == ["c.ckpt"]


def test_resume_refuses_another_graph_or_optimizer(tmp_path) -> None:
    net, p0, data, kw = resume_case()
    path = tmp_path / "run.ckpt"
    fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=2, checkpoint=path, **kw)
    other = mlp([2, 5, 1], activation="relu")  # same parameter names, another network
    with pytest.raises(FitError, match="another graph") as e:
        fit(other, None, data, optimizer=Adam(lr=0.05), epochs=4, resume=path, **kw)
    assert str(path) in str(e.value)
    with pytest.raises(FitError, match="'adam', not 'sgd'"):
        fit(net, None, data, optimizer=SGD(lr=0.05), epochs=4, resume=path, **kw)
    with pytest.raises(FitError, match=r"lr: saved 0\.05, here 0\.01"):
        fit(net, None, data, optimizer=Adam(lr=0.01), epochs=4, resume=path, **kw)
    with pytest.raises(CheckpointError, match=r"missing\.ckpt") as e:
        fit(net, None, data, epochs=4, resume=tmp_path / "missing.ckpt", **kw)
    assert isinstance(e.value, OSError)
    with pytest.raises(FitError, match="params"):
        fit(net, None, data, epochs=4)


@pytest.mark.parametrize("failure", ["partial_write", "replace"])
def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure) -> None:
    import graphdiff.train as train

    real_save, real_write = train.save_checkpoint, os.write

    def half_then_full_disk(fd: int, data) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def refuse(src, dst) -> None:
        raise OSError(errno.EIO, "I/O error")

    def flaky(path, ckpt) -> None:
        if ckpt.epoch < 3:
            return real_save(path, ckpt)
        with monkeypatch.context() as m:
            if failure == "partial_write":
                m.setattr(os, "write", half_then_full_disk)
            else:
                m.setattr(os, "replace", refuse)
            return real_save(path, ckpt)

    monkeypatch.setattr(train, "save_checkpoint", flaky)
    net, p0, data, kw = resume_case()
    path = tmp_path / "run.ckpt"
    with pytest.raises(CheckpointError, match="after epoch 3") as e:
        fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=5, checkpoint=path, **kw)
    assert str(path) in str(e.value) and isinstance(e.value, OSError)
    three = fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=3, **kw)
    assert all(np.array_equal(e.value.params[k], three.params[k]) for k in three.params)
    # the epoch-2 checkpoint is intact (its checksum verifies) and nothing else is left over
    assert graphdiff.load_checkpoint(path).epoch == 2
    assert os.listdir(tmp_path) == ["run.ckpt"]
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    resumed = fit(net, None, data, optimizer=Adam(lr=0.05), epochs=5, resume=path, **kw)
    assert_same_run(resumed, fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=5, **kw))


def test_divergence_leaves_the_last_checkpoint_alone(tmp_path, fresh_registry) -> None:
    calls = [0]

    def vjp(g, out, x):
        calls[0] += 1
        return (g * np.nan if calls[0] >= 5 else g,)

    graphdiff.register_op("poison", lambda x: x, vjp=vjp, elementwise=True)
    net = graphdiff.compile(poisoned_graph(), loss="E")
    data = {"x1": np.linspace(-1, 1, 9), "t": np.linspace(0, 2, 9)}
    path = tmp_path / "run.ckpt"
    with pytest.raises(TrainingDivergedError):
        fit(net, net.init_params(0), data, optimizer=SGD(lr=0.1), epochs=10, batch_size=3,
            shuffle=False, checkpoint=path)
    saved = graphdiff.load_checkpoint(path)
    assert (saved.epoch, saved.step) == (1, 3)
    calls[0] = -100  # no poison: the same first epoch
    one = fit(net, net.init_params(0), data, optimizer=SGD(lr=0.1), epochs=1, batch_size=3,
              shuffle=False)
    assert saved.params == one.params


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        (lambda d: d["history"][0].pop("epoch"), "history row 0 with epoch None"),
        (lambda d: d["history"][1].__setitem__("epoch", 2.5), "history row 1 with epoch 2.5"),
        (lambda d: d["history"][0].__setitem__("epoch", 99.0), "with epoch 99.0"),
        (lambda d: d.__setitem__(
            "rng_state", np.random.MT19937(1).state), "rng_state this generator (PCG64)"),
        (lambda d: d.__setitem__("rng_state", {"bit_generator": "PCG64", "state": 7}),
         "rng_state"),
        (lambda d: d.__setitem__("rng_state", {"garbage": [1, 2, 3]}), "rng_state"),
        (lambda d: d["config"].__setitem__("batch_size", 4), "batch_size: saved 4, here 8"),
        (lambda d: d["config"].__setitem__("seed", 5), "seed: saved 5, here 11"),
        (lambda d: d["config"].__setitem__("shuffle", False), "shuffle: saved False"),
    ],
)
def test_resume_refuses_a_checkpoint_fit_cannot_continue(tmp_path, change, culprit) -> None:
    """A checkpoint with a valid checksum whose history, random state or settings
    fit cannot continue from: a FitError naming it (issue 13: KeyError, ValueError,
    TypeError; other batch_size or seed accepted silently)."""
    net, p0, data, kw = resume_case()
    path = tmp_path / "run.ckpt"
    fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=2, checkpoint=path, **kw)
    ck = graphdiff.load_checkpoint(path)
    doc = {"history": ck.history, "rng_state": ck.rng_state, "config": ck.config}
    change(doc)
    ck.history, ck.rng_state, ck.config = doc["history"], doc["rng_state"], doc["config"]
    graphdiff.save_checkpoint(path, ck)  # a valid checksum over the changed content
    with pytest.raises(FitError, match="resume: the checkpoint") as e:
        fit(net, None, data, optimizer=Adam(lr=0.05), epochs=4, resume=path, **kw)
    assert culprit in str(e.value) and str(path) in str(e.value)


def test_resume_may_change_epochs_and_targets(tmp_path) -> None:
    net, p0, data, kw = resume_case()
    path = tmp_path / "run.ckpt"
    fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=2, checkpoint=path, every=1, **kw)
    more = fit(net, None, data, optimizer=Adam(lr=0.05), epochs=3, resume=path, every=2,
               target_loss=1e-9, **kw)
    assert more.epochs == 3
