"""Running a compiled network: forward, backward, deltas, init_params, errors.

Expected values are derived by hand below (chain rule written out in numpy)
or are exact identities (sum = N × mean, copies stay unchanged); none come
from graphdiff itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
import sys
import warnings

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import (
    GraphdiffError,
    InputError,
    NonFiniteError,
    OpContractError,
    ShapeError,
    register_op,
)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


W0 = np.array([[0.4, -0.7], [1.1, 0.3]])
U0, V0, B0 = 0.5, -1.5, 0.2


def mixed_graph() -> nx.DiGraph:
    """x (N,2) @ W -> tanh -> two columns -> a sigmoid neuron -> squared error with t."""
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("t", op="input")
    G.add_node("W", op="param", value=W0)
    G.add_node("m", op="matmul")
    G.add_edge("x", "m", port=0)
    G.add_edge("W", "m", port=1)
    G.add_node("h", op="tanh")
    G.add_edge("m", "h")
    G.add_node("c0", op="index", i=0)
    G.add_node("c1", op="index", i=1)
    G.add_edge("h", "c0")
    G.add_edge("h", "c1")
    G.add_node("n", op="neuron", activation="sigmoid", bias="b")
    G.add_edge("c0", "n", param="u", weight=U0)
    G.add_edge("c1", "n", param="v", weight=V0)
    G.add_node("E", op="squared_error")
    G.add_edge("n", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


X = np.array([[0.5, -1.0], [2.0, 0.3], [-0.4, 0.8]])
T = np.array([1.0, 0.0, 0.5])
PARAMS = {"W": W0, "u": U0, "v": V0, "b": B0}


def by_hand(p: dict, x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> dict:
    """Forward and backward of mixed_graph, written out."""
    N = len(x)
    m = x @ p["W"]
    h = np.tanh(m)
    c0, c1 = h[:, 0], h[:, 1]
    z = p["u"] * c0 + p["v"] * c1 + p["b"]
    a = sigmoid(z)
    E = (a - t) ** 2
    scale = 1.0 / N if reduction == "mean" else 1.0
    dE = np.full(N, scale)
    dn = dE * 2 * (a - t)
    dz = dn * a * (1 - a)
    dc0, dc1 = dz * p["u"], dz * p["v"]
    dh = np.stack([dc0, dc1], axis=1)
    dm = dh * (1 - h**2)
    return {
        "loss": E.sum() * scale,
        "values": {"x": x, "t": t, "W": p["W"], "m": m, "h": h, "c0": c0, "c1": c1,
                   "n": a, "E": E},
        "deltas": {"x": dm @ p["W"].T, "t": -dn, "W": x.T @ dm, "m": dm, "h": dh,
                   "c0": dc0, "c1": dc1, "n": dn, "E": dE},
        "z": {"n": z},
        "deltas_z": {"n": dz},
        "grads": {"W": x.T @ dm, "u": (dz * c0).sum(), "v": (dz * c1).sum(), "b": dz.sum()},
    }  # fmt: skip


@pytest.fixture(scope="module")
def net() -> graphdiff.Network:
    return graphdiff.compile(mixed_graph(), loss="E")


# --- backward: values, deltas, gradients ---------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_backward_matches_hand_derivation(reduction):
    net = graphdiff.compile(mixed_graph(), loss="E", reduction=reduction)
    res = net.backward(PARAMS, {"x": X, "t": T}, deltas=True)
    want = by_hand(PARAMS, X, T, reduction)
    assert isinstance(res.loss, np.float64)
    assert res.loss == pytest.approx(want["loss"], rel=1e-12)
    assert res.grads.keys() == want["grads"].keys()
    for k, g in want["grads"].items():
        np.testing.assert_allclose(res.grads[k], g, rtol=1e-12, atol=1e-15, err_msg=k)
    fast = net.backward(PARAMS, {"x": X, "t": T})  # without deltas: the fast path
    assert fast.loss == pytest.approx(want["loss"], rel=1e-12)
    assert fast.grads.keys() == want["grads"].keys()
    for k, g in want["grads"].items():
        np.testing.assert_allclose(fast.grads[k], g, rtol=1e-12, atol=1e-15, err_msg=k)
    assert net.error(PARAMS, {"x": X, "t": T}) == pytest.approx(want["loss"], rel=1e-12)
    for part in ("values", "deltas", "z", "deltas_z"):
        got = getattr(res, part)
        assert got.keys() == want[part].keys(), part
        for node, v in want[part].items():
            assert got[node].shape == np.shape(v), (part, node)
            np.testing.assert_allclose(got[node], v, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{part}[{node}]")


def test_grad_types_and_shapes(net):
    res = net.backward(PARAMS, {"x": X, "t": T})
    for name in ("u", "v", "b"):
        assert isinstance(res.grads[name], np.float64) and res.grads[name].shape == ()
    assert isinstance(res.grads["W"], np.ndarray) and res.grads["W"].shape == (2, 2)
    assert res.values == {} and res.deltas == {}  # only with deltas=True


@pytest.mark.parametrize("deltas", [False, True], ids=["fast path", "interpreter"])
def test_grads_is_a_read_only_mapping_sorted_by_name(net, deltas):
    import pickle

    g = net.backward(PARAMS, {"x": X, "t": T}, deltas=deltas).grads
    assert isinstance(g, graphdiff.Grads) and isinstance(g, Mapping)
    assert list(g) == sorted(net.params) and len(g) == len(net.params)
    assert "u" in g and "nope" not in g and g.get("nope") is None
    with pytest.raises(KeyError):
        g["nope"]
    with pytest.raises(TypeError):
        g["u"] = 1.0  # type: ignore[index]
    plain = dict(g)
    assert type(plain) is dict and list(plain) == list(g)
    back = pickle.loads(pickle.dumps(g))
    assert list(back) == list(g)
    for k in g:
        np.testing.assert_array_equal(back[k], g[k])
    assert repr(g).startswith("Grads({'W': array(")
    assert g.all_finite()


def test_grads_all_finite_sees_scalars_and_tensors(net):
    x = X.copy()
    x[0, 0] = np.inf
    with np.errstate(all="ignore"):
        g = net.backward(PARAMS, {"x": x, "t": T}).grads
    bad = [k for k, v in g.items() if not np.all(np.isfinite(v))]
    assert bad and not g.all_finite()


def test_every_node_has_a_value_and_delta_of_its_shape(net):
    res = net.backward(PARAMS, {"x": X, "t": T}, deltas=True)
    assert set(res.values) == set(res.deltas) == set(net.nodes)
    for n in net.nodes:
        assert res.deltas[n].shape == res.values[n].shape, n
    assert set(res.z) == set(res.deltas_z) == {"n"}


def test_reduction_sum_is_n_times_mean():
    data = {"x": X, "t": T}
    mean = graphdiff.compile(mixed_graph(), loss="E").backward(PARAMS, data, deltas=True)
    total = graphdiff.compile(mixed_graph(), loss="E", reduction="sum").backward(
        PARAMS, data, deltas=True
    )
    N = len(X)
    assert total.loss == pytest.approx(N * mean.loss, rel=1e-14)
    for k in mean.grads:
        np.testing.assert_allclose(total.grads[k], N * mean.grads[k], rtol=1e-13)
    for n in mean.deltas:
        np.testing.assert_allclose(total.deltas[n], N * mean.deltas[n], rtol=1e-13)
    np.testing.assert_array_equal(total.values["E"], mean.values["E"])


def test_shared_scalar_parameter_sums_over_its_edges():
    # a = tanh(u·x1 + u·x2 + u·b?) : u on two edges and as the bias
    G = nx.DiGraph()
    G.add_nodes_from(["x1", "x2"], op="input")
    G.add_node("a", op="neuron", activation="tanh", bias="u")
    G.add_edge("x1", "a", param="u")
    G.add_edge("x2", "a", param="u")
    net = graphdiff.compile(G, loss="a")
    assert list(net.params) == ["u"]
    x1, x2, u = np.array([0.3, -1.0]), np.array([0.7, 0.2]), 0.4
    res = net.backward({"u": u}, {"x1": x1, "x2": x2})
    z = u * (x1 + x2 + 1)
    assert res.grads["u"] == pytest.approx(np.mean((1 - np.tanh(z) ** 2) * (x1 + x2 + 1)))


def test_tensor_parameter_fan_out_sums_its_uses():
    # E = sum_j (x·p)_j + sum_j p_j  with p (2,) used twice
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("p", op="param", shape=(2,))
    G.add_node("m", op="mul")
    G.add_edges_from([("x", "m"), ("p", "m")])
    G.add_node("a", op="add")
    G.add_edges_from([("m", "a"), ("p", "a")])
    G.add_node("E", op="sum", axis=1)
    G.add_edge("a", "E")
    net = graphdiff.compile(G, loss="E")
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    res = net.backward({"p": np.array([0.5, 0.25])}, {"x": x})
    np.testing.assert_allclose(res.grads["p"], x.mean(axis=0) + 1.0)


def test_repeated_operand_in_a_multigraph():
    # E = x * x through two parallel edges on ports 0 and 1
    G = nx.MultiDiGraph()
    G.add_node("x", op="input")
    G.add_node("p", op="param", value=[1.5])
    G.add_node("px", op="mul")
    G.add_edges_from([("x", "px"), ("p", "px")])
    G.add_node("sq", op="mul")
    G.add_edge("px", "sq", port=0)
    G.add_edge("px", "sq", port=1)
    G.add_node("E", op="sum", axis=1)
    G.add_edge("sq", "E")
    net = graphdiff.compile(G, loss="E")
    x = np.array([[2.0], [-1.0]])
    res = net.backward({"p": np.array([1.5])}, {"x": x}, deltas=True)
    assert res.loss == pytest.approx(np.mean((1.5 * x) ** 2))
    np.testing.assert_allclose(res.grads["p"], [np.mean(2 * 1.5 * x**2)])
    np.testing.assert_allclose(res.deltas["px"], 2 * 1.5 * x / 2)


def test_param_reaching_the_loss_only_through_a_none_gradient_gets_zeros():
    # softmax_cross_entropy gives no gradient to class-index targets
    G = nx.DiGraph()
    G.add_node("z", op="input")
    G.add_node("cls", op="param", value=[0.0, 2.0, 1.0])
    G.add_node("E", op="softmax_cross_entropy")
    G.add_edge("z", "E", port=0)
    G.add_edge("cls", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    z = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0], [0.5, 0.5, 2.0]])
    for deltas in (False, True):
        res = net.backward({"cls": np.array([0.0, 2.0, 1.0])}, {"z": z}, deltas=deltas)
        np.testing.assert_array_equal(res.grads["cls"], np.zeros(3))
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        assert res.loss == pytest.approx(-np.mean(logp[[0, 1, 2], [0, 2, 1]]))


def test_scalar_param_behind_a_stop_gradient_op_gets_zero(fresh_registry):
    register_op("stop", lambda x: np.array(x), vjp=lambda g, out, x: (None,), elementwise=True)
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("h", op="neuron", activation="tanh")
    G.add_edge("x", "h", param="w")
    G.add_node("s", op="stop")
    G.add_edge("h", "s")
    G.add_node("k", op="neuron", activation="identity")
    G.add_edge("x", "k", param="c")
    G.add_node("E", op="add")
    G.add_edges_from([("s", "E"), ("k", "E")])
    res = graphdiff.compile(G, loss="E").backward({"w": 0.3, "c": 2.0}, {"x": [1.0, 3.0]})
    assert res.grads == {"c": 2.0, "w": 0.0}
    assert isinstance(res.grads["w"], np.float64)


# --- forward -------------------------------------------------------------------


def test_forward_outputs_needs_only_their_inputs(net):
    out = net.forward(PARAMS, {"x": X}, outputs=["n"])  # predicting: no target
    assert set(out) == {"x", "W", "m", "h", "c0", "c1", "n"}
    want = by_hand(PARAMS, X, T)["values"]
    np.testing.assert_allclose(out["n"], want["n"], rtol=1e-13)
    out = net.forward({"W": W0}, {"x": X}, outputs=["h"])  # needs only W
    np.testing.assert_allclose(out["h"], want["h"], rtol=1e-13)
    assert set(out) == {"x", "W", "m", "h"}


def test_forward_outputs_that_need_a_missing_input(net):
    with pytest.raises(InputError, match=r"missing input\(s\) \['t'\]"):
        net.forward(PARAMS, {"x": X}, outputs=["E"])
    with pytest.raises(InputError, match=r"missing parameter\(s\) \['b', 'u', 'v'\]"):
        net.forward({"W": W0}, {"x": X}, outputs=["n"])


def test_forward_default_returns_every_computable_node(net):
    want = by_hand(PARAMS, X, T)["values"]
    everything = net.forward(PARAMS, {"x": X, "t": T})
    assert set(everything) == set(net.nodes)
    for n, v in want.items():
        np.testing.assert_allclose(everything[n], v, rtol=1e-13, err_msg=n)
    no_target = net.forward(PARAMS, {"x": X})
    assert set(no_target) == set(net.nodes) - {"t", "E"}
    assert set(net.forward(PARAMS, {})) == {"W"}


def test_forward_agrees_with_backward_values(net):
    res = net.backward(PARAMS, {"x": X, "t": T}, deltas=True)
    out = net.forward(PARAMS, {"x": X, "t": T})
    for n in net.nodes:
        np.testing.assert_array_equal(out[n], res.values[n])


@pytest.mark.parametrize("bad", ["nope", "zz"])
def test_forward_unknown_output_is_named(net, bad):
    with pytest.raises(InputError, match=rf"output node\(s\) \[{bad!r}\]"):
        net.forward(PARAMS, {"x": X}, outputs=["n", bad])


def test_forward_pruned_output_is_named():
    G = mixed_graph()
    G.add_node("side", op="exp")
    G.add_edge("m", "side")
    net = graphdiff.compile(G, loss="E")
    assert net.pruned == ("side",)
    with pytest.raises(InputError, match=r"pruned output node\(s\) \['side'\]"):
        net.forward(PARAMS, {"x": X}, outputs=["side"])


# --- the caller's arrays -------------------------------------------------------


def test_extra_inputs_and_params_are_ignored(net):
    plain = net.backward(PARAMS, {"x": X, "t": T})
    extra = net.backward(
        {**PARAMS, "zzz": np.ones(7), "W2": "not even numeric"},
        {"x": X, "t": T, "other": np.ones(5), 17: "junk"},
    )
    assert plain.loss == extra.loss and extra.grads.keys() == plain.grads.keys()
    out = net.forward({**PARAMS, "zzz": 1}, {"x": X, "extra": [1, 2]}, outputs=["n"])
    assert "extra" not in out


def test_returned_arrays_belong_to_the_caller(net):
    inputs = {"x": X.copy(), "t": T.copy()}
    params = {k: np.array(v) for k, v in PARAMS.items()}
    first = net.backward(params, inputs, deltas=True)
    snapshot = copy.deepcopy(first)
    # a later call with other data does not overwrite the earlier result
    net.backward(params, {"x": -2 * X, "t": T + 1}, deltas=True)
    net.forward(params, {"x": -2 * X, "t": T + 1})
    for part in ("values", "deltas", "z", "deltas_z", "grads"):
        for k, v in getattr(snapshot, part).items():
            np.testing.assert_array_equal(getattr(first, part)[k], v, err_msg=f"{part}[{k}]")
    # mutating everything returned changes neither the caller's arrays nor later results
    for part in ("values", "deltas", "z", "deltas_z", "grads"):
        for v in getattr(first, part).values():
            if isinstance(v, np.ndarray):
                v[...] = 1e9
    for v in net.forward(params, inputs).values():
        v[...] = -1e9
    np.testing.assert_array_equal(inputs["x"], X)
    np.testing.assert_array_equal(inputs["t"], T)
    np.testing.assert_array_equal(params["W"], W0)
    again = net.backward(params, inputs, deltas=True)
    assert again.loss == snapshot.loss
    for part in ("values", "deltas", "z", "deltas_z", "grads"):
        for k, v in getattr(snapshot, part).items():
            np.testing.assert_array_equal(getattr(again, part)[k], v, err_msg=f"{part}[{k}]")


def test_deltas_of_operands_are_separate_arrays():
    # add's vjp hands one array to both operands; the result must not alias them
    G = nx.DiGraph()
    G.add_nodes_from(["a", "b"], op="input")
    G.add_node("s", op="add")
    G.add_edges_from([("a", "s"), ("b", "s")])
    res = graphdiff.compile(G, loss="s").backward({}, {"a": [1.0, 2.0], "b": [3.0, 4.0]},
                                                  deltas=True)
    res.deltas["a"][0] = 100.0
    np.testing.assert_array_equal(res.deltas["b"], [0.5, 0.5])
    np.testing.assert_array_equal(res.deltas["s"], [0.5, 0.5])


def test_tensor_grads_are_separate_ndarrays():
    # E = sum((q + r + p) * x): add hands one array to both operands; p has shape ()
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("p", op="param", shape=())
    G.add_nodes_from(["q", "r"], op="param", shape=(2,))
    G.add_nodes_from(["a1", "a2"], op="add")
    G.add_edges_from([("q", "a1"), ("r", "a1"), ("a1", "a2"), ("p", "a2")])
    G.add_node("m", op="mul")
    G.add_edges_from([("a2", "m"), ("x", "m")])
    G.add_node("E", op="sum", axis=1)
    G.add_edge("m", "E")
    net = graphdiff.compile(G, loss="E")
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    params = {"p": np.array(0.5), "q": np.ones(2), "r": np.zeros(2)}
    for deltas in (False, True):
        res = net.backward(params, {"x": x}, deltas=deltas)
        assert type(res.grads["p"]) is np.ndarray and res.grads["p"].shape == ()
        assert res.grads["p"] == pytest.approx(x.sum() / 2)
        np.testing.assert_allclose(res.grads["q"], x.mean(axis=0))
        res.grads["q"][:] = 0.0
        np.testing.assert_allclose(res.grads["r"], x.mean(axis=0))


def test_backward_reads_read_only_arrays_and_repeats_bit_for_bit(net):
    inputs = {"x": X.copy(), "t": T.copy()}
    params = {k: np.array(v) for k, v in PARAMS.items()}
    for a in (*inputs.values(), *params.values()):
        a.flags.writeable = False
    for deltas in (False, True):
        r1 = net.backward(params, inputs, deltas=deltas)
        r2 = net.backward(params, inputs, deltas=deltas)
        assert r1.loss == r2.loss
        for part in ("grads", "values", "deltas", "z", "deltas_z"):
            for k, v in getattr(r1, part).items():
                assert np.array_equal(v, getattr(r2, part)[k]), (part, k)
    np.testing.assert_array_equal(inputs["x"], X)


# --- errors at call time -------------------------------------------------------


def test_missing_input_is_named(net):
    with pytest.raises(InputError, match=r"missing input\(s\) \['t'\]") as e:
        net.backward(PARAMS, {"x": X})
    assert isinstance(e.value, KeyError) and isinstance(e.value, GraphdiffError)


def test_missing_params_are_named(net):
    with pytest.raises(InputError, match=r"missing parameter\(s\) \['W', 'v'\]") as e:
        net.backward({"u": 1.0, "b": 0.0}, {"x": X, "t": T})
    assert isinstance(e.value, KeyError)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("W", np.ones(2), r"parameter 'W' must have shape \(2, 2\), got \(2,\)"),
        ("W", np.ones((2, 2, 1)), r"parameter 'W' must have shape \(2, 2\), got \(2, 2, 1\)"),
        ("u", np.ones(2), r"parameter 'u' is a scalar weight; got shape \(2,\)"),
    ],
)
def test_wrong_param_shape_is_named(net, name, value, message):
    with pytest.raises(ShapeError, match=message) as e:
        net.backward({**PARAMS, name: value}, {"x": X, "t": T})
    assert isinstance(e.value, ValueError)


def test_non_numeric_input_and_param_are_named(net):
    with pytest.raises(InputError, match="input 't' is not a numeric array"):
        net.backward(PARAMS, {"x": X, "t": ["a", "b", "c"]})
    with pytest.raises(InputError, match="parameter 'u' is not a numeric array"):
        net.backward({**PARAMS, "u": "half"}, {"x": X, "t": T})


def test_disagreeing_batch_sizes_are_named(net):
    with pytest.raises(ShapeError, match=r"disagree on the number of data points") as e:
        net.backward(PARAMS, {"x": X, "t": np.ones(4)})
    assert "'x': 3" in str(e.value) and "'t': 4" in str(e.value)


def test_scalar_input_is_refused(net):
    with pytest.raises(ShapeError, match="input 't' must have a first axis over data points"):
        net.backward(PARAMS, {"x": X, "t": 1.0})


def test_neuron_operand_of_wrong_shape_is_named():
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("h", op="neuron")
    G.add_edge("x", "h")
    net = graphdiff.compile(G, loss="h")
    with pytest.raises(ShapeError, match=r"neuron 'h'.*shape \(N,\).*\(3, 1\)"):
        net.backward(net.init_params(0), {"x": np.ones((3, 1))})


def test_op_failing_on_its_operands_is_named():
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("W", op="param", shape=(2, 2))
    G.add_node("m", op="matmul")
    G.add_edge("x", "m", port=0)
    G.add_edge("W", "m", port=1)
    G.add_node("E", op="sum", axis=1)
    G.add_edge("m", "E")
    net = graphdiff.compile(G, loss="E")
    for run in (net.backward, net.error, net.forward):
        with pytest.raises(ShapeError, match=r"node 'm' \(op 'matmul'\).*\(4, 3\), \(2, 2\)"):
            run(net.init_params(0), {"x": np.ones((4, 3))})


def test_loss_must_give_one_value_per_data_point():
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("E", op="tanh")
    G.add_edge("x", "E")
    net = graphdiff.compile(G, loss="E")
    with pytest.raises(ShapeError, match=r"loss node 'E' must give one value per data point, "
                                         r"shape \(3,\); got shape \(3, 2\)"):
        net.backward({}, {"x": np.ones((3, 2))})


@pytest.mark.parametrize(
    ("vjp", "message"),
    [
        (lambda g, out, x: (g, g), r"vjp returned 2 gradients for 1 operands"),
        (lambda g, out, x: g, r"vjp returned ndarray gradients for 1 operands"),
        (lambda g, out, x: (np.ones(7),), r"gradient of shape \(7,\) for an operand of shape"),
    ],
)
def test_op_breaking_its_contract_is_named(fresh_registry, vjp, message):
    register_op("badop", lambda x: 2 * x, vjp=vjp)
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("p", op="param", value=[1.0, 2.0])
    G.add_node("m", op="mul")
    G.add_edges_from([("x", "m"), ("p", "m")])
    G.add_node("b", op="badop")
    G.add_edge("m", "b")
    G.add_node("E", op="sum", axis=1)
    G.add_edge("b", "E")
    net = graphdiff.compile(G, loss="E")
    with pytest.raises(OpContractError, match=rf"op 'badop' at node 'b': {message}") as e:
        net.backward(net.init_params(0), {"x": np.ones((3, 2))})
    assert isinstance(e.value, TypeError)


# --- finite checks -------------------------------------------------------------


def chain_through(op: str, source: dict) -> nx.DiGraph:
    """x · op(source) summed: E = sum_j x_j · op(s)_j."""
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("s", **source)
    G.add_node("f", op=op)
    G.add_edge("s", "f")
    G.add_node("m", op="mul")
    G.add_edges_from([("f", "m"), ("x", "m")])
    G.add_node("E", op="sum", axis=1)
    G.add_edge("m", "E")
    return G


@pytest.mark.parametrize(
    ("op", "source"),
    [
        ("log", {"op": "const", "value": [-1.0, 2.0]}),
        ("log", {"op": "param", "value": [1.0, -3.0]}),
        ("sqrt", {"op": "param", "value": [-4.0, 1.0]}),
    ],
)
def test_check_finite_names_the_node_in_forward(op, source):
    net = graphdiff.compile(chain_through(op, source), loss="E")
    params, data = net.init_params(), {"x": np.ones((2, 2))}
    with pytest.raises(NonFiniteError, match=rf"forward: node 'f' \(op {op!r}\)") as e:
        net.backward(params, data, check_finite=True)
    assert (e.value.node, e.value.phase) == ("f", "forward")
    assert isinstance(e.value, FloatingPointError) and isinstance(e.value, GraphdiffError)
    # the default path does not check: NaN comes back, silently and without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = net.backward(params, data)
    assert np.isnan(res.loss)


def test_check_finite_names_the_node_in_backward():
    # sqrt(0) = 0 is finite, its derivative is not: the param's delta is inf
    net = graphdiff.compile(chain_through("sqrt", {"op": "param", "value": [0.0, 4.0]}),
                            loss="E")
    params, data = net.init_params(), {"x": np.ones((2, 2))}
    with pytest.raises(NonFiniteError, match=r"backward: the delta of node 's' \(param\)") as e:
        net.backward(params, data, check_finite=True)
    assert (e.value.node, e.value.phase) == ("s", "backward")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = net.backward(params, data)
    assert res.loss == pytest.approx(2.0)
    assert np.isinf(res.grads["s"][0]) and res.grads["s"][1] == pytest.approx(0.25)


def test_check_finite_names_a_neuron_in_backward():
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("h", op="neuron", activation="identity")
    G.add_edge("x", "h", param="w", weight=0.0)
    G.add_node("E", op="sqrt")
    G.add_edge("h", "E")
    net = graphdiff.compile(G, loss="E")
    with pytest.raises(NonFiniteError, match=r"the delta of node 'h' \(neuron") as e:
        net.backward(net.init_params(), {"x": [1.0, 2.0]}, check_finite=True)
    assert (e.value.node, e.value.phase) == ("h", "backward")


def test_check_finite_names_non_finite_inputs_and_params(net):
    with pytest.raises(NonFiniteError, match="input 'x' is not finite") as e:
        net.backward(PARAMS, {"x": X * np.inf, "t": T}, check_finite=True)
    assert (e.value.node, e.value.phase) == ("x", "forward")
    with pytest.raises(NonFiniteError, match="parameter 'u' is not finite") as e:
        net.backward({**PARAMS, "u": np.nan}, {"x": X, "t": T}, check_finite=True)
    assert e.value.node == "u"
    # finite data passes the checks with the same result as the default path
    a = net.backward(PARAMS, {"x": X, "t": T}, check_finite=True)
    b = net.backward(PARAMS, {"x": X, "t": T})
    assert a.loss == b.loss


# --- init_params ---------------------------------------------------------------


def layered_graph(reverse: bool = False) -> nx.DiGraph:
    """3 inputs -> 4 tanh neurons -> 2 neurons -> a param-node layer -> loss."""
    nodes: list[tuple[str, dict]] = [(f"x{i}", {"op": "input"}) for i in range(3)]
    nodes += [(f"h{j}", {"op": "neuron", "activation": "tanh"}) for j in range(4)]
    nodes += [("o0", {"op": "neuron", "bias": 0.25}), ("o1", {"op": "neuron", "bias": "c"})]
    nodes += [("st", {"op": "stack"}), ("V", {"op": "param", "shape": (2, 3)}),
              ("Vb", {"op": "param", "shape": (3,)}), ("K", {"op": "param", "value": [[1.0, 2.0]]}),
              ("mm", {"op": "matmul"}), ("ad", {"op": "add"}), ("E", {"op": "sum", "axis": 1})]
    edges: list[tuple[str, str, dict]] = [
        (f"x{i}", f"h{j}", {}) for i in range(3) for j in range(4)
    ]
    edges += [(f"h{j}", f"o{k}", {}) for j in range(4) for k in range(2)]
    edges[0][2]["weight"] = 0.125  # x0 -> h0 given
    edges += [("o0", "st", {"port": 0}), ("o1", "st", {"port": 1}),
              ("st", "mm", {"port": 0}), ("V", "mm", {"port": 1}),
              ("mm", "ad", {}), ("Vb", "ad", {}), ("ad", "E", {}), ("K", "E2", {})]
    G = nx.DiGraph()
    G.add_nodes_from(nodes[::-1] if reverse else nodes)
    G.add_node("E2", op="sum", axis=1)
    G.add_edges_from(edges[::-1] if reverse else edges)
    G.add_node("L", op="add")
    G.add_edges_from([("E", "L"), ("E2", "L")])
    return G  # fmt: skip


@pytest.fixture(scope="module")
def layered() -> graphdiff.Network:
    return graphdiff.compile(layered_graph(), loss="L")


def test_init_params_is_deterministic_per_seed(layered):
    a, b, c = layered.init_params(seed=7), layered.init_params(seed=7), layered.init_params(8)
    assert a.keys() == b.keys() == c.keys() == layered.params.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    drawn = [k for k in a if k.startswith(("x", "h")) and k != "x0->h0"] + ["V"]
    assert all(not np.array_equal(a[k], c[k]) for k in drawn)


def test_init_params_keeps_values_given_in_the_graph(layered):
    p = layered.init_params(seed=3)
    assert p["x0->h0"] == 0.125
    assert p["o0.bias"] == 0.25
    np.testing.assert_array_equal(p["K"], [[1.0, 2.0]])


def test_init_params_types_and_documented_defaults(layered):
    p = layered.init_params(seed=3)
    for name, spec in layered.params.items():
        if spec.kind == "scalar":
            assert type(p[name]) is np.float64, name
        else:
            assert isinstance(p[name], np.ndarray) and p[name].shape == spec.shape, name
            assert p[name].dtype == np.float64
    assert p["c"] == 0.0  # biases start at 0
    np.testing.assert_array_equal(p["Vb"], np.zeros(3))  # 1-D params default to zeros


def test_init_params_respects_glorot_bounds(layered):
    p = layered.init_params(seed=11)
    first = np.sqrt(6 / (3 + 4))  # x_i -> h_j: 3 inputs into h_j, x_i feeds 4 neurons
    second = np.sqrt(6 / (4 + 2))  # h_j -> o_k
    w1 = np.array([p[f"x{i}->h{j}"] for i in range(3) for j in range(4)][1:])
    w2 = np.array([p[f"h{j}->o{k}"] for j in range(4) for k in range(2)])
    assert np.all(np.abs(w1) <= first) and np.all(np.abs(w2) <= second)
    assert np.all(np.abs(p["V"]) <= np.sqrt(6 / (2 + 3)))
    assert len(set(w1.tolist())) == w1.size  # drawn, not a constant


def test_glorot_scale_of_a_large_tensor():
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("W", op="param", shape=(60, 40))
    G.add_node("N", op="param", shape=(400, 30), init="normal")
    G.add_node("O", op="param", shape=(2, 3), init="ones")
    G.add_node("Z", op="param", shape=(2, 3), init="zeros")
    G.add_node("m", op="matmul")
    G.add_edge("x", "m", port=0)
    G.add_edge("W", "m", port=1)
    G.add_node("E", op="sum", axis=1)
    G.add_edge("m", "E")
    G.add_node("L", op="add")
    for n in ("N", "O", "Z"):
        G.add_node(f"s{n}", op="sum")
        G.add_edge(n, f"s{n}")
    G.add_node("tot", op="stack", axis=0)
    G.add_edges_from([("sN", "tot", {"port": 0}), ("sO", "tot", {"port": 1}),
                      ("sZ", "tot", {"port": 2})])
    G.add_node("k", op="sum")
    G.add_edge("tot", "k")
    G.add_edges_from([("E", "L"), ("k", "L")])
    p = graphdiff.compile(G, loss="L").init_params(seed=0)
    bound = np.sqrt(6 / (60 + 40))
    assert np.abs(p["W"]).max() <= bound
    assert np.abs(p["W"]).max() > 0.95 * bound
    assert p["W"].std() == pytest.approx(bound / np.sqrt(3), rel=0.1)  # U(-a, a)
    assert p["N"].std() == pytest.approx(1 / np.sqrt(400), rel=0.1)
    np.testing.assert_array_equal(p["O"], np.ones((2, 3)))
    np.testing.assert_array_equal(p["Z"], np.zeros((2, 3)))


def test_init_params_is_independent_of_insertion_order(layered):
    other = graphdiff.compile(layered_graph(reverse=True), loss="L")
    a, b = layered.init_params(seed=5), other.init_params(seed=5)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_adding_a_parameter_leaves_the_others_unchanged(layered):
    G = layered_graph()
    G.add_node("x9", op="input")
    G.add_edge("x9", "o1")
    bigger = graphdiff.compile(G, loss="L")
    a, b = layered.init_params(seed=2), bigger.init_params(seed=2)
    assert set(b) - set(a) == {"x9->o1"}
    # only weights whose fans changed (into o1 and out of nothing) may differ
    same = [k for k in a if not k.endswith("->o1")]
    assert all(np.array_equal(a[k], b[k]) for k in same)


def test_init_params_returns_fresh_arrays(layered):
    p = layered.init_params(seed=1)
    p["K"][0, 0] = 99.0
    assert layered.init_params(seed=1)["K"][0, 0] == 1.0


# --- size: long chains and wide fan-in -----------------------------------------


def neuron_chain(n: int) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("t", op="input")
    prev = "x"
    for i in range(n):
        G.add_node(i, op="neuron", activation="identity")
        G.add_edge(prev, i, param=f"w{i}")
        prev = i
    G.add_node("E", op="squared_error")
    G.add_edge(prev, "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def test_ten_thousand_neuron_chain():
    n = 10_000
    net = graphdiff.compile(neuron_chain(n), loss="E")
    rng = np.random.default_rng(0)
    w = np.exp(rng.normal(0.0, 0.01, n))  # product stays O(1)
    params = {f"w{i}": w[i] for i in range(n)}
    x, t = np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.2, 0.3])
    res = net.backward(params, {"x": x, "t": t})
    # y = x·prod(w); dE/dw_k = mean(2(y - t)·x)·prod_{i != k} w_i
    prefix = np.concatenate([[1.0], np.cumprod(w)[:-1]])
    suffix = np.concatenate([np.cumprod(w[::-1])[::-1][1:], [1.0]])
    y = x * np.prod(w)
    assert res.loss == pytest.approx(np.mean((y - t) ** 2), rel=1e-10)
    got = np.array([res.grads[f"w{i}"] for i in range(n)])
    np.testing.assert_allclose(got, np.mean(2 * (y - t) * x) * prefix * suffix, rtol=1e-9)


def test_thousand_way_fan_in():
    k = 1000
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("y", op="neuron", activation="identity", bias="c")
    for i in range(k):
        G.add_node(f"h{i}", op="neuron", activation="identity")
        G.add_edge("x", f"h{i}", param=f"a{i}")
        G.add_edge(f"h{i}", "y", param=f"b{i}")
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=k), rng.normal(size=k) / k
    params = {f"a{i}": a[i] for i in range(k)} | {f"b{i}": b[i] for i in range(k)}
    params["c"] = 0.3
    x, t = np.array([1.0, -0.5]), np.array([0.2, 0.4])
    res = net.backward(params, {"x": x, "t": t})
    # y = x·sum(a_i b_i) + c
    y = x * np.dot(a, b) + 0.3
    r = np.mean(2 * (y - t) * x)
    np.testing.assert_allclose([res.grads[f"a{i}"] for i in range(k)], r * b, rtol=1e-10)
    np.testing.assert_allclose([res.grads[f"b{i}"] for i in range(k)], r * a, rtol=1e-10)
    assert res.grads["c"] == pytest.approx(np.mean(2 * (y - t)), rel=1e-10)


def test_compile_and_backward_scale_linearly():
    """No quadratic blow-up, measured without a clock: Python and C calls counted.

    Counting profiler events is deterministic (a timed assertion would depend on
    the machine's load), and quadratic work in compile or backward shows up as
    a call count growing 100x for 10x the nodes.
    """

    def calls(n: int) -> int:
        G = neuron_chain(n)
        count = 0

        def profile(frame: object, event: str, arg: object) -> None:
            nonlocal count
            count += event in ("call", "c_call")

        sys.setprofile(profile)
        try:
            net = graphdiff.compile(G, loss="E")
            net.backward(net.init_params(seed=0), {"x": np.ones(2), "t": np.zeros(2)})
        finally:
            sys.setprofile(None)
        return count

    small, large = calls(2_000), calls(20_000)
    assert large < 13 * small, (small, large)  # linear is 10x, quadratic 100x

@pytest.mark.parametrize("bad", [None, "0.5", 1 + 2j, [None, 1.0, 2.0]])
@pytest.mark.parametrize("deltas", [False, True])
def test_values_that_are_not_numbers_are_refused_not_turned_into_nan(net, bad, deltas):
    # float64 conversion would make None NaN and "0.5" 0.5; both paths refuse them
    scalar = bad if not isinstance(bad, list) else None
    with pytest.raises(InputError, match="parameter 'u' is not a numeric array"):
        net.backward({**PARAMS, "u": scalar}, {"x": X, "t": T}, deltas=deltas)
    t = bad if isinstance(bad, list) else [bad] * len(T)
    with pytest.raises(InputError, match="input 't' is not a numeric array"):
        net.backward(PARAMS, {"x": X, "t": t}, deltas=deltas)
