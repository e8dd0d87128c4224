"""Optimizers against their textbook formulas, written out per element with Python floats."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from graphdiff.errors import GraphdiffError, InputError, ShapeError
from graphdiff.optim import SGD, Adam, Optimizer, OptimizerError, Schedule

W0 = [1.0, -2.0, 0.25]
B0 = 0.5


def start() -> dict:
    return {"w": np.array(W0), "b": np.float64(B0)}


def grad(params: dict) -> dict:
    """Gradient of E = Σ w² + (b − 1)²."""
    return {"w": 2 * params["w"], "b": 2 * (params["b"] - 1.0)}


def grad_py(x: float, name: str) -> float:
    return 2 * x if name == "w" else 2 * (x - 1.0)


def run(opt: Optimizer, steps: int = 3) -> list[dict]:
    p, out = start(), []
    for _ in range(steps):
        p = opt.step(p, grad(p))
        out.append(p)
    return out


def each_value(p: dict) -> list[tuple[str, float]]:
    return [("w", x) for x in p["w"]] + [("b", float(p["b"]))]


def check(got: list[dict], expected: list[list[float]]) -> None:
    for p, exp in zip(got, expected, strict=True):
        assert [v for _, v in each_value(p)] == pytest.approx(exp, rel=1e-13, abs=1e-15)


def starts() -> list[tuple[str, float]]:
    return each_value(start())


def test_sgd_is_gradient_descent() -> None:
    lr = 0.1
    expected = []
    for k in range(1, 4):  # w_k = w_0 (1 - 2 lr)^k, b_k - 1 = (b_0 - 1)(1 - 2 lr)^k
        expected.append([w * (1 - 2 * lr) ** k for w in W0] + [1 + (B0 - 1) * (1 - 2 * lr) ** k])
    got = run(SGD(lr=lr))
    check(got, expected)
    assert type(got[-1]["b"]) is np.float64
    assert got[-1]["w"].dtype == np.float64


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov: bool) -> None:
    lr, mu = 0.05, 0.9
    expected: list[list[float]] = [[] for _ in range(3)]
    for name, x in starts():
        v = 0.0
        for k in range(3):
            g = grad_py(x, name)
            v = mu * v + g
            x = x - lr * (g + mu * v if nesterov else v)
            expected[k].append(x)
    check(run(SGD(lr=lr, momentum=mu, nesterov=nesterov)), expected)


def test_adam() -> None:
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6
    expected: list[list[float]] = [[] for _ in range(3)]
    for name, x in starts():
        m = v = 0.0
        for t in range(1, 4):
            g = grad_py(x, name)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            x = x - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
            expected[t - 1].append(x)
    check(run(Adam(lr=lr, beta1=b1, beta2=b2, eps=eps)), expected)


def test_weight_decay_is_l2_added_to_the_gradient() -> None:
    lr, lam = 0.1, 0.5
    opt = SGD(lr=lr, weight_decay=lam)
    p = start()
    for _ in range(3):
        p = opt.step(p, {"w": np.zeros(3), "b": np.float64(0.0)})
    assert list(p["w"]) == pytest.approx([w * (1 - lr * lam) ** 3 for w in W0], rel=1e-14)
    assert p["b"] == pytest.approx(B0 * (1 - lr * lam) ** 3, rel=1e-14)


def test_clipping_scales_the_global_norm_to_the_cap() -> None:
    opt = SGD(lr=1.0, clip_norm=1.0)
    zero = {"w": np.zeros(2), "b": np.float64(0.0)}
    new = opt.step(zero, {"w": np.array([3.0, 0.0]), "b": np.float64(4.0)})  # norm 5
    step = np.array([*new["w"], new["b"]])
    assert np.sqrt(np.sum(step**2)) == pytest.approx(1.0, rel=1e-15)
    assert step == pytest.approx([-0.6, 0.0, -0.8], rel=1e-15)
    # below the cap the gradient is left alone
    new = opt.step(zero, {"w": np.array([0.3, 0.0]), "b": np.float64(0.4)})
    assert [*new["w"], new["b"]] == [-0.3, 0.0, -0.4]


@pytest.mark.parametrize(
    ("schedule", "factor"),
    [
        (None, lambda t: 1.0),
        (Schedule(kind="step", gamma=0.5, every=2), lambda t: 0.5 ** (t // 2)),
        (Schedule(kind="exponential", gamma=0.9), lambda t: 0.9**t),
        (Schedule(kind="cosine", total=4), lambda t: (1 + math.cos(math.pi * min(t, 4) / 4)) / 2),
        (
            Schedule(kind="cosine", total=4, floor=0.1),
            lambda t: 0.1 + 0.9 * (1 + math.cos(math.pi * min(t, 4) / 4)) / 2,
        ),
    ],
)
def test_schedules_set_each_steps_learning_rate(schedule: Schedule | None, factor) -> None:
    lr = 0.3
    opt = SGD(lr=lr, schedule=schedule)
    p = {"w": np.float64(0.0)}
    for t in range(7):
        before = p["w"]
        p = opt.step(p, {"w": np.float64(-1.0)})  # each step moves w by exactly its rate
        assert p["w"] - before == pytest.approx(lr * factor(t), rel=1e-13, abs=1e-15), t


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"kind": "step", "gamma": 0.5}, "every"),
        ({"kind": "exponential"}, "gamma"),
        ({"kind": "cosine"}, "total"),
        ({"kind": "constant", "gamma": 0.5}, "gamma"),
        ({"kind": "linear"}, "kind"),
    ],
)
def test_schedule_errors_name_the_field(kwargs: dict, named: str) -> None:
    with pytest.raises(OptimizerError, match=named):
        SGD(lr=0.1, schedule=kwargs)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: SGD(lr=-1.0), "lr"),
        (lambda: SGD(lr=0.1, momentum=1.0), "momentum"),
        (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
        (lambda: SGD(lr=0.1, clip_norm=0.0), "clip_norm"),
        (lambda: Adam(beta2=1.5), "beta2"),
        (lambda: Adam(lr=float("nan")), "lr"),
        (lambda: Adam(betas=0.9), "betas"),
        (lambda: SGD(), "lr"),
    ],
)
def test_bad_hyperparameters_are_refused_by_name(make, named: str) -> None:
    with pytest.raises(OptimizerError, match=named) as e:
        make()
    assert isinstance(e.value, GraphdiffError) and isinstance(e.value, ValueError)


def test_step_errors_name_the_parameter() -> None:
    with pytest.raises(InputError, match="'b'"):
        SGD(lr=0.1).step(start(), {"w": np.zeros(3)})
    with pytest.raises(ShapeError, match="'w'"):
        SGD(lr=0.1).step(start(), {"w": np.zeros(2), "b": 0.0})


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, clip_norm=1.0),
        lambda: Adam(lr=0.05, schedule=Schedule(kind="exponential", gamma=0.9)),
    ],
)
def test_state_dict_round_trip_continues_identically(make) -> None:
    a = make()
    p = start()
    for _ in range(3):
        p = a.step(p, grad(p))
    saved = a.state_dict()
    frozen = copy.deepcopy(saved)
    # what a checkpoint does: name + JSON config rebuild the optimizer, then load state
    b = Optimizer.from_config(saved["name"], json.loads(json.dumps(saved["config"])))
    b.load_state_dict(saved)
    pa = pb = p
    for _ in range(3):
        pa = a.step(pa, grad(pa))
        pb = b.step(pb, grad(pb))
        assert np.array_equal(pa["w"], pb["w"]) and pa["b"] == pb["b"]
    # the state dict handed out was a copy: stepping never wrote into it
    for n, slots in saved["state"].items():
        for s, v in slots.items():
            assert np.array_equal(v, frozen["state"][n][s])
    assert b.state_dict()["step"] == 6


def test_load_state_dict_refuses_another_optimizer() -> None:
    saved = SGD(lr=0.1).state_dict()
    with pytest.raises(OptimizerError, match=r"'sgd'.*'adam'"):
        Adam().load_state_dict(saved)
    with pytest.raises(OptimizerError, match=r"lr: saved 0\.1, here 0\.2"):
        SGD(lr=0.2).load_state_dict(saved)
    bad = Adam().state_dict() | {"state": {"w": {"m": np.zeros(3)}}}
    with pytest.raises(OptimizerError, match="'w'"):
        Adam().load_state_dict(bad)


def test_from_config_unknown_name() -> None:
    with pytest.raises(OptimizerError, match="'rmsprop'"):
        Optimizer.from_config("rmsprop", {})


@pytest.mark.parametrize(
    "make", [lambda: SGD(lr=0.1, momentum=0.5, weight_decay=0.1, clip_norm=0.5), lambda: Adam()]
)
def test_step_never_mutates_its_arguments(make) -> None:
    opt = make()
    p = start()
    g = {"w": np.array([5.0, -1.0, 2.0]), "b": np.float64(3.0)}
    p_copy, g_copy = copy.deepcopy(p), copy.deepcopy(g)
    for _ in range(3):
        new = opt.step(p, g)
        assert new["w"] is not p["w"]
        for d, c in [(p, p_copy), (g, g_copy)]:
            assert np.array_equal(d["w"], c["w"]) and d["b"] == c["b"]


def test_step_refuses_values_that_are_not_numbers():
    # a float64 conversion would turn None into NaN: the step names the parameter
    opt = SGD(lr=0.1)
    with pytest.raises(InputError, match="parameter 'w' is not a numeric array"):
        opt.step({"w": None}, {"w": 1.0})
    with pytest.raises(InputError, match="gradient of parameter 'w' is not a numeric"):
        opt.step({"w": 1.0}, {"w": "0.5"})


@pytest.mark.parametrize(
    ("base", "hyper"),
    [
        (SGD, {"lr": 0.1}),
        (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "clip_norm": 0.5,
               "weight_decay": 0.01, "schedule": Schedule(kind="step", gamma=0.5, every=2)}),
        (SGD, {"lr": 0.05, "clip_norm": 100.0}),  # the clip is never reached
        (Adam, {"lr": 0.1}),
        (Adam, {"lr": 0.1, "clip_norm": 0.5, "weight_decay": 0.01,
                "schedule": Schedule(kind="exponential", gamma=0.9)}),
    ],
    ids=["sgd", "sgd momentum+clip+decay+schedule", "sgd clip not reached", "adam",
         "adam clip+decay+schedule"],
)
def test_scalars_in_one_vector_give_the_same_bits_as_one_by_one(base, hyper) -> None:
    # elementwise optimizers update a neuron graph's scalar weights as one vector;
    # a subclass that says it is not elementwise takes them one by one
    one_by_one = type("OneByOne", (base,), {"elementwise": False})
    fast, slow = base(**hyper), one_by_one(**hyper)
    rng = np.random.default_rng(9)
    params = {f"w{i}": np.float64(v) for i, v in enumerate(rng.standard_normal(40))}
    params["T"] = rng.standard_normal((3, 2))  # a tensor among them
    params["w_py"] = 0.25  # and a Python float
    pf, pslow = dict(params), dict(params)
    for _ in range(5):
        grads = {k: (rng.standard_normal(np.shape(v)) if np.ndim(v) else
                     np.float64(rng.standard_normal())) for k, v in params.items()}
        pf, pslow = fast.step(pf, grads), slow.step(pslow, grads)
        assert list(pf) == list(params) == list(pslow)
        for k in params:
            assert type(pf[k]) is type(pslow[k]), k
            np.testing.assert_array_equal(pf[k], pslow[k], err_msg=k)
    a, b = fast.state_dict()["state"], slow.state_dict()["state"]
    assert a.keys() == b.keys()
    for k in a:
        for s in a[k]:
            np.testing.assert_array_equal(a[k][s], b[k][s], err_msg=f"{k}/{s}")


def test_unusual_scalars_take_the_checked_path_and_name_the_culprit() -> None:
    opt = SGD(lr=0.1)
    params = {"a": np.float64(1.0), "b": np.float64(2.0), "c": np.float64(3.0)}
    with pytest.raises(InputError, match="'b'"):
        opt.step(params, {"a": np.float64(1.0), "b": None, "c": np.float64(1.0)})
    with pytest.raises(ShapeError, match="'c'"):
        opt.step(params, {"a": np.float64(1.0), "b": np.float64(1.0), "c": np.ones(2)})
    opt.state["a"] = {"velocity": np.ones(3)}  # a saved state of the wrong shape
    with pytest.raises(ShapeError, match="'a'"):
        opt.step(params, {k: np.float64(1.0) for k in params})
