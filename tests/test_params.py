"""Parameters as one vector with names: Params, Grads, vector optimizers, fit's evaluation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import graphdiff
from graphdiff import InputError, Params, ShapeError
from graphdiff.optim import Optimizer, OptimizerConfig
from graphdiff.train import FitError


def _nets() -> list[graphdiff.Network]:
    return [
        graphdiff.compile(graphdiff.mlp([3, 4, 2], "tanh", notation=n,
                                        loss="softmax_cross_entropy"), loss="E")
        for n in ("neuron", "op")
    ]


def _data(n: int = 7, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    X, t = rng.normal(size=(n, 3)), rng.integers(0, 2, n)
    return {"x": X, "t": t}, {"x1": X[:, 0].copy(), "x2": X[:, 1].copy(),
                               "x3": X[:, 2].copy(), "t": t}


@pytest.mark.parametrize("net", _nets(), ids=["neuron", "op"])
def test_params_are_one_vector_with_names(net: graphdiff.Network) -> None:
    p = net.init_params(seed=1)
    assert isinstance(p, Params) and list(p) == list(net.params)
    v = p.vector
    assert v.dtype == np.float64 and v.ndim == 1 and v.flags.c_contiguous
    assert v.size == sum(int(np.prod(s)) for s in net.param_shapes.values())
    # every value is in the vector: the vector is exactly the values, each once
    flat = np.concatenate([np.ravel(p[n]) for n in p])
    assert sorted(flat.tolist()) == sorted(v.tolist())
    for name in p:
        value = p[name]
        if np.ndim(value):
            assert value.base is v  # a view
            value[...] = 7.0
            assert np.all(p[name] == 7.0)
        else:
            assert type(value) is np.float64
    # the same numbers as a dict of the same values built independently
    plain = {n: np.array(p[n]) for n in p}
    assert all(np.array_equal(dict(p)[n], plain[n]) for n in p)


def test_setting_a_parameter_is_checked_and_writes_into_the_vector() -> None:
    net = _nets()[1]
    p = net.init_params(seed=0)
    p["W1"] = np.ones((3, 4))
    assert np.sum(p.vector == 1.0) >= 12 and np.shares_memory(p["W1"], p.vector)
    assert np.array_equal(p["W1"], np.ones((3, 4)))
    p.update(b1=[1.0, 2.0, 3.0, 4.0])
    assert p["b1"].tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ShapeError, match=r"'b1' must have shape \(4,\)"):
        p["b1"] = np.zeros(3)
    with pytest.raises(InputError, match="'nope'"):
        p["nope"] = 1.0
    with pytest.raises(InputError, match="'W2'"):
        p["W2"] = "0.5"
    with pytest.raises(InputError, match="cannot be deleted"):
        del p["W2"]


def test_copy_and_pickle_keep_layout_and_values() -> None:
    net = _nets()[0]
    p = net.init_params(seed=3)
    q = p.copy()
    q["h1_1.bias"] = 5.0
    assert p["h1_1.bias"] == 0.0 and q["h1_1.bias"] == 5.0
    r = pickle.loads(pickle.dumps(q))  # noqa: S301 (our own bytes)
    assert isinstance(r, Params) and r.layout.fingerprint == net.layout.fingerprint
    assert np.array_equal(r.vector, q.vector)
    g = net.backward(p, _data()[1]).grads
    h = pickle.loads(pickle.dumps(g))  # noqa: S301 (our own bytes)
    assert np.array_equal(h.vector, g.vector) and list(h) == list(g)


def test_params_from_a_vector_and_bad_vectors() -> None:
    net = _nets()[1]
    p = net.init_params(seed=0)
    q = net.params_from_vector(p.vector * 2)
    assert all(np.array_equal(q[n], 2 * np.asarray(p[n])) for n in p)
    with pytest.raises(ShapeError, match=rf"shape \({net.layout.size},\)"):
        net.params_from_vector(np.zeros(net.layout.size + 1))
    with pytest.raises(InputError, match="not a numeric array"):
        net.params_from_vector(["a"] * net.layout.size)


@pytest.mark.parametrize("i", [0, 1], ids=["neuron", "op"])
def test_backward_on_params_equals_backward_on_a_dict_bit_for_bit(i: int) -> None:
    net = _nets()[i]
    inputs = _data()[i ^ 1]
    p = net.init_params(seed=2)
    plain = {n: np.array(p[n]) if np.ndim(p[n]) else float(p[n]) for n in p}
    a, b = net.backward(p, inputs), net.backward(plain, inputs)
    assert a.loss == b.loss and np.array_equal(a.grads.vector, b.grads.vector)
    assert a.grads.layout is p.layout
    for name in p:  # the gradients sit where their parameters sit
        assert np.array_equal(np.ravel(a.grads[name]), np.ravel(b.grads[name]))
    before = p.vector.copy()
    net.backward(p, inputs)
    net.error(p, inputs)
    assert np.array_equal(p.vector, before)  # never written to
    assert net.error(p, inputs) == net.error(plain, inputs)


def test_params_of_another_network_are_named() -> None:
    net = _nets()[1]
    other = graphdiff.compile(graphdiff.mlp([3, 5, 2], notation="op",
                                            loss="softmax_cross_entropy"), loss="E")
    foreign = other.init_params(seed=0)
    with pytest.raises(ShapeError, match="'W1' must have shape"):
        net.as_params(foreign)
    smaller = graphdiff.compile(graphdiff.mlp([3, 2], notation="op",
                                              loss="softmax_cross_entropy"), loss="E")
    with pytest.raises(InputError, match=f"missing parameter.*{smaller.layout.fingerprint}"):
        net.as_params(smaller.init_params(seed=0))
    # a Params of the same graph compiled again is trusted as it is
    again = graphdiff.compile(graphdiff.mlp([3, 4, 2], "tanh", notation="op",
                                            loss="softmax_cross_entropy"), loss="E")
    mine = again.init_params(seed=0)
    assert net.backward(mine, _data()[0]).loss == again.backward(mine, _data()[0]).loss


def _dicts(p: Params) -> dict[str, object]:
    return {n: np.array(p[n]) if np.ndim(p[n]) else p[n] for n in p}


@pytest.mark.parametrize(
    "make",
    [lambda: graphdiff.SGD(lr=0.1, momentum=0.9, nesterov=True),
     lambda: graphdiff.Adam(lr=0.01, weight_decay=0.1),
     lambda: graphdiff.SGD(lr=0.1, schedule=graphdiff.Schedule(kind="exponential", gamma=0.9))],
    ids=["sgd-nesterov", "adam-decay", "sgd-schedule"],
)
def test_a_vector_step_equals_the_parameter_by_parameter_step_bit_for_bit(make) -> None:
    net = _nets()[0]
    inputs = _data()[1]
    p, q = net.init_params(seed=4), None
    q = _dicts(p)
    ov, od = make(), make()
    for _ in range(4):
        p = ov.step(p, net.backward(p, inputs).grads)
        q = od.step(q, dict(net.backward(q, inputs).grads))
        assert isinstance(p, Params) and isinstance(q, dict)
        assert all(np.array_equal(p[n], q[n]) for n in p)
    # state round trip: the vector state continues on dicts as the dict state does
    sd, sd2 = ov.state_dict(), od.state_dict()
    assert sd["step"] == sd2["step"] == 4
    assert all(np.array_equal(sd["state"][n][k], sd2["state"][n][k])
               for n in sd2["state"] for k in sd2["state"][n])
    resumed = make()
    resumed.load_state_dict(sd)
    r = resumed.step(p, net.backward(p, inputs).grads)
    s = od.step(q, dict(net.backward(q, inputs).grads))
    assert all(np.array_equal(r[n], s[n]) for n in r)


def test_clipping_on_the_vector_is_the_global_norm() -> None:
    net = _nets()[1]
    inputs = _data()[0]
    p = net.init_params(seed=0)
    g = net.backward(p, inputs).grads
    norm = np.sqrt(sum(float(np.sum(np.square(g[n]))) for n in g))
    new = graphdiff.SGD(lr=1.0, clip_norm=norm / 2).step(p, g)
    for n in p:  # θ - γ·g·(c / ‖g‖): half of each gradient
        np.testing.assert_allclose(new[n], np.asarray(p[n]) - np.asarray(g[n]) / 2,
                                   rtol=1e-14, atol=1e-16)


class _NormSGD(Optimizer):
    """Not elementwise: each parameter's step has length lr (a norm per parameter)."""

    name = "norm_sgd_test"
    Config = OptimizerConfig

    def update(self, p, g, state, lr, t):
        n = np.sqrt(np.sum(g * g))
        return p - lr * g / (n if n else 1.0), state


def test_a_non_elementwise_optimizer_steps_parameter_by_parameter() -> None:
    net = _nets()[1]
    inputs = _data()[0]
    p = net.init_params(seed=0)
    g = net.backward(p, inputs).grads
    new = _NormSGD(lr=0.5).step(p, g)
    for n in p:
        gn = np.asarray(g[n])
        want = np.asarray(p[n]) - 0.5 * gn / np.sqrt(np.sum(gn * gn))
        np.testing.assert_array_equal(new[n], want)


def test_fit_takes_and_returns_params_and_leaves_the_callers_alone() -> None:
    net = _nets()[0]
    data = _data(20)[1]
    p = net.init_params(seed=0)
    before = p.vector.copy()
    res = graphdiff.fit(net, p, data, optimizer=graphdiff.Adam(lr=0.01), epochs=3,
                        batch_size=5)
    assert isinstance(res.params, Params) and np.array_equal(p.vector, before)
    plain = graphdiff.fit(net, _dicts(p), data, optimizer=graphdiff.Adam(lr=0.01), epochs=3,
                          batch_size=5)
    assert np.array_equal(plain.params.vector, res.params.vector)


def test_fit_evaluates_every_k_epochs_or_never() -> None:
    net = _nets()[1]
    data = _data(12)[0]
    p = net.init_params(seed=0)
    every = graphdiff.fit(net, p, data, epochs=5, evaluate_every=2)
    assert ["loss" in r for r in every.history] == [False, True, False, True, True]
    full = graphdiff.fit(net, p, data, epochs=5)
    for a, b in zip(every.history, full.history, strict=True):
        if "loss" in a:  # the same parameters, so the same numbers
            assert (a["loss"], a["accuracy"]) == (b["loss"], b["accuracy"])
    never = graphdiff.fit(net, p, data, epochs=3, evaluate_every=0)
    assert [sorted(r) for r in never.history] == [["epoch", "time"]] * 3
    # evaluation changes nothing in training
    assert np.array_equal(never.params.vector, graphdiff.fit(net, p, data, epochs=3).params.vector)
    with pytest.raises(FitError, match="evaluate_every"):
        graphdiff.fit(net, p, data, epochs=3, evaluate_every=0, target_loss=0.1)
    with pytest.raises(FitError, match="evaluate_every"):
        graphdiff.fit(net, p, data, epochs=3, evaluate_every=-1)
