"""mlp in both notations, and writing trained values back into the graph.

The neuron-notation and op-notation networks are the lecture's neuron-wise and
layer-wise (matrix) formulations of the same computation: given corresponding
parameters they must give the same loss, gradients and deltas. Values are also
checked against a plain numpy forward pass and float64 central differences.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import GraphError, InputError, ShapeError, UnknownOpError, mlp, write_params


def unit(layer: int, k: int, sizes: list[int]) -> str:
    """Neuron-notation name of unit k (1-based) of a layer."""
    if layer == 0:
        return f"x{k}"
    if layer < len(sizes) - 1:
        return f"h{layer}_{k}"
    return "y" if sizes[-1] == 1 else f"y{k}"


def neuron_params(op_params: dict, sizes: list[int], bias: bool) -> dict:
    """W{l}[j, k] is the weight of edge unit(l-1, j+1) -> unit(l, k+1); b{l}[k] its bias."""
    out = {}
    for layer in range(1, len(sizes)):
        W = op_params[f"W{layer}"]
        for j in range(sizes[layer - 1]):
            for k in range(sizes[layer]):
                src, dst = unit(layer - 1, j + 1, sizes), unit(layer, k + 1, sizes)
                out[f"{src}->{dst}"] = np.float64(W[j, k])
        if bias:
            for k in range(sizes[layer]):
                out[f"{unit(layer, k + 1, sizes)}.bias"] = np.float64(op_params[f"b{layer}"][k])
    return out


CASES = [
    ([2, 3, 2, 1], "tanh", "logistic", "identity", True),
    ([2, 4, 3], "sigmoid", "softmax_cross_entropy", "identity", True),
    ([3, 2, 2], "tanh", "squared_error", "tanh", False),
    ([2, 3, 1], "relu", "hinge", "identity", True),
]


def dataset(sizes: list[int], loss: str, n: int = 24) -> dict:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, sizes[0]))
    if loss == "softmax_cross_entropy":
        t = rng.integers(0, sizes[-1], n).astype(float)
    elif loss == "squared_error" and sizes[-1] > 1:
        t = rng.normal(size=(n, sizes[-1]))
    else:
        t = rng.choice([-1.0, 1.0], n)
    return {"x": x, "t": t}


@pytest.mark.parametrize(("sizes", "act", "loss", "out_act", "bias"), CASES)
def test_neuron_wise_equals_layer_wise(sizes, act, loss, out_act, bias) -> None:
    kw = {"loss": loss, "output_activation": out_act, "bias": bias}
    op_net = graphdiff.compile(mlp(sizes, act, notation="op", **kw), loss="E")
    nn_net = graphdiff.compile(mlp(sizes, act, notation="neuron", **kw), loss="E")
    rng = np.random.default_rng(0)
    op_params = {n: rng.normal(size=s) for n, s in op_net.param_shapes.items()}
    nn_params = neuron_params(op_params, sizes, bias)
    assert sorted(nn_params) == sorted(nn_net.params)
    data = dataset(sizes, loss)
    a = op_net.backward(op_params, graphdiff.feed(op_net, data), deltas=True)
    b = nn_net.backward(nn_params, graphdiff.feed(nn_net, data), deltas=True)
    assert b.loss == pytest.approx(a.loss, rel=1e-12)
    mapped = neuron_params(a.grads, sizes, bias)
    for name, g in b.grads.items():
        assert g == pytest.approx(mapped[name], rel=1e-10, abs=1e-14), name
    for layer in range(1, len(sizes) - 1):  # δ of each hidden neuron = a column of δ(a{l})
        for k in range(sizes[layer]):
            np.testing.assert_allclose(
                b.deltas[f"h{layer}_{k + 1}"], a.deltas[f"a{layer}"][:, k], rtol=1e-10, atol=1e-15
            )
    assert b.values["y"].shape == a.values["y"].shape
    np.testing.assert_allclose(b.values["y"], a.values["y"], rtol=1e-12)


def test_op_notation_against_plain_numpy_and_numerical_gradient() -> None:
    sizes = [2, 5, 3, 1]
    net = graphdiff.compile(mlp(sizes, "tanh", notation="op"), loss="E")
    params = net.init_params(seed=3)
    params = {k: v + 0.1 for k, v in params.items()}  # biases away from 0 too
    data = graphdiff.moons(30, seed=1)
    a = data["x"]
    for layer in (1, 2):
        a = np.tanh(a @ params[f"W{layer}"] + params[f"b{layer}"])
    y = (a @ params["W3"] + params["b3"])[:, 0]
    expected = np.mean(np.log1p(np.exp(-data["t"] * y)))
    inputs = graphdiff.feed(net, data)
    assert net.backward(params, inputs).loss == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(net.forward(params, inputs, outputs=["y"])["y"], y, rtol=1e-13)
    report = graphdiff.gradcheck(net, params, inputs)
    assert report.ok, report


def test_neuron_notation_names_positions_and_labels() -> None:
    G = mlp([2, 3, 2])
    assert isinstance(G, nx.DiGraph) and type(G) is nx.DiGraph
    ops = nx.get_node_attributes(G, "op")
    assert {n for n, o in ops.items() if o == "input"} == {"x1", "x2", "t"}
    assert {n for n, o in ops.items() if o == "neuron"} == {"h1_1", "h1_2", "h1_3", "y1", "y2"}
    assert ops["y"] == "stack" and ops["E"] == "logistic"
    assert [G.edges[f"y{k}", "y"]["port"] for k in (1, 2)] == [0, 1]
    assert G.edges["y", "E"]["port"] == 0 and G.edges["t", "E"]["port"] == 1
    assert all(G.nodes[n]["bias"] == 0.0 for n, o in ops.items() if o == "neuron")
    assert G.nodes["h1_1"]["activation"] == "tanh" and G.nodes["y1"]["activation"] == "identity"
    # every unit feeds every unit of the next layer
    assert set(G.predecessors("h1_2")) == {"x1", "x2"}
    assert set(G.predecessors("y1")) == {"h1_1", "h1_2", "h1_3"}
    pos = nx.get_node_attributes(G, "pos")
    labels = nx.get_node_attributes(G, "label")
    assert set(pos) == set(labels) == set(G)
    assert pos["x1"][0] == 0 and pos["h1_1"][0] == 1 and pos["y1"][0] == 2
    assert pos["h1_1"][1] > pos["h1_2"][1] > pos["h1_3"][1]  # first unit on top
    assert sum(pos[f"h1_{k}"][1] for k in (1, 2, 3)) == 0  # each layer centred
    assert all(p[0] < pos[v][0] for u, v in G.edges if u != "t" for p in [pos[u]])


def test_op_notation_names_and_shapes() -> None:
    G = mlp([3, 4, 1], "relu", notation="op", bias=False)
    params = {n: G.nodes[n]["shape"] for n in G if G.nodes[n]["op"] == "param"}
    assert params == {"W1": (3, 4), "W2": (4, 1)}
    assert G.nodes["z1"]["op"] == "matmul" and G.nodes["a1"]["op"] == "relu"
    assert G.nodes["y"]["op"] == "index" and G.nodes["y"]["i"] == 0
    assert list(G.predecessors("y")) == ["a2"]
    net = graphdiff.compile(G, loss="E")
    out = net.forward(net.init_params(seed=0), {"x": np.ones((5, 3))}, outputs=["y"])
    assert out["y"].shape == (5,)
    G = mlp([2, 3, 4], notation="op", loss="softmax_cross_entropy")
    assert G.nodes["y"]["op"] == "identity" and list(G.predecessors("y")) == ["z2"]
    assert [G.edges[u, "z2"]["port"] for u in ("matmul2", "b2")] == [0, 1]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (([2],), {}, GraphError, r"sizes must be \[d_in, h1, \.\.\., d_out\]"),
        (([2, 0, 1],), {}, GraphError, "sizes"),
        (([2, True],), {}, GraphError, "sizes"),
        (([2, 1], "tanhh"), {}, UnknownOpError, "activation: unknown op 'tanhh'.*'tanh'"),
        (([2, 1], "matmul"), {}, GraphError, "activation 'matmul' is not an elementwise op"),
        (([2, 1],), {"output_activation": "add"}, GraphError, "output_activation 'add'"),
        (([2, 1],), {"loss": "tanh"}, GraphError, "loss 'tanh' is not a loss op"),
        (([2, 1],), {"loss": "hingee"}, UnknownOpError, "loss: unknown op"),
        (([2, 1],), {"loss": "softmax_cross_entropy"}, GraphError, "needs d_out >= 2"),
        (([2, 1],), {"notation": "layer"}, GraphError, "notation must be"),
    ],
)
def test_bad_arguments_are_named(args, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        mlp(*args, **kwargs)


# --- write_params ------------------------------------------------------------------------


def lecture_shared() -> nx.DiGraph:
    """The lecture's 7-neuron network with shared parameters u and v, and biases."""
    G = graphdiff.lecture_network(shared=True)
    for n in ["a3", "a4", "a5", "a6"]:
        G.nodes[n]["bias"] = 0.0
    G.nodes["a7"]["bias"] = "c"  # a named bias
    del G.edges["a6", "a7"]["param"]  # one default name: "a6->a7"
    return G


def with_parallel_edges() -> nx.MultiDiGraph:
    G = nx.MultiDiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("h", op="neuron", activation="tanh", bias=0.0)
    G.add_edge("x", "h")
    G.add_edge("x", "h")  # the default names "x->h" and "x->h#1"
    G.add_edge("x", "h", param="s")
    G.add_node("M", op="param", shape=(1,))
    G.add_node("y", op="mul")
    G.add_edge("h", "y")
    G.add_edge("M", "y")
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


GRAPHS = {
    "mlp neuron": lambda: mlp([2, 3, 2], loss="softmax_cross_entropy"),
    "mlp op": lambda: mlp([2, 3, 1], notation="op"),
    "lecture shared": lecture_shared,
    "multigraph": with_parallel_edges,
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_write_params_round_trip(name: str) -> None:
    G = GRAPHS[name]()
    net = graphdiff.compile(G, loss="E")
    rng = np.random.default_rng(7)
    trained = {k: v + rng.normal(size=np.shape(v)) for k, v in net.init_params(seed=1).items()}
    write_params(G, trained)
    again = graphdiff.compile(G, loss="E").init_params(seed=12345)
    named_biases = {d["bias"] for _, d in G.nodes(data=True) if isinstance(d.get("bias"), str)}
    assert set(again) == set(trained)
    for k, v in trained.items():
        if k not in named_biases:  # a named bias has no attribute for its value
            assert np.array_equal(again[k], v), k
    assert all(isinstance(d["weight"], float) for *_, d in G.edges(data=True) if "weight" in d)
    for n, d in G.nodes(data=True):
        if d.get("op") == "param":
            assert d["value"] is not trained[n]  # a copy
            assert d["value"].dtype == np.float64


def test_write_params_shared_names_and_named_bias() -> None:
    G = lecture_shared()
    params = {"u": 0.25, "v": -1.5, "c": 3.0, "a6->a7": 2.0}
    params |= {f"a{i}.bias": float(i) for i in (3, 4, 5, 6)}
    write_params(G, params)
    shared_u = [(u, v) for u, v, p in G.edges(data="param") if p == "u"]
    assert len(shared_u) == 4 and all(G.edges[e]["weight"] == 0.25 for e in shared_u)
    assert G.edges["a6", "a7"]["weight"] == 2.0 and "param" not in G.edges["a6", "a7"]
    assert G.nodes["a7"]["bias"] == "c"  # the name stays: it says which parameter it is
    assert G.nodes["a4"]["bias"] == 4.0
    # networkx algorithms read the trained weights directly
    assert nx.path_weight(G, ["x1", "a3", "a5", "a7"], weight="weight") == 0.25 - 1.5 + 0.25


def test_write_params_multigraph_keys() -> None:
    G = with_parallel_edges()
    write_params(G, {"x->h": 1.0, "x->h#1": 2.0, "s": 3.0, "h.bias": 0.5, "M": [4.0]})
    assert [G.edges["x", "h", k]["weight"] for k in (0, 1, 2)] == [1.0, 2.0, 3.0]
    assert G.nodes["M"]["value"].tolist() == [4.0]


def test_write_params_with_network_writes_only_its_params() -> None:
    G = mlp([1, 2, 1])
    G.add_node("extra", op="neuron")
    G.add_edge("x1", "extra")
    net = graphdiff.compile(G, loss="E")  # "extra" does not lead to E: pruned
    params = {k: np.float64(0.5) for k in net.params}
    write_params(G, params, net)
    assert G.edges["x1", "h1_1"]["weight"] == 0.5
    assert "weight" not in G.edges["x1", "extra"]
    with pytest.raises(InputError, match="'x1->extra' is missing"):
        write_params(G, params)  # compiling all of G needs the pruned edge's weight too


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda p: p.pop("W2"), InputError, "parameter 'W2' is missing"),
        (lambda p: p.update(b1=np.zeros(4)), ShapeError, r"'b1' must have shape \(3,\)"),
        (lambda p: p.update(W1=np.full((2, 3), np.nan)), InputError, "'W1' is not finite"),
    ],
)
def test_write_params_checks_everything_before_writing(change, error, message) -> None:
    G = mlp([2, 3, 1], notation="op")
    net = graphdiff.compile(G, loss="E")
    params = dict(net.init_params(seed=0))  # a plain dict, to be made wrong
    change(params)
    before = {n: dict(d) for n, d in G.nodes(data=True)}
    with pytest.raises(error, match=message):
        write_params(G, params)
    assert {n: dict(d) for n, d in G.nodes(data=True)} == before  # nothing written


def test_write_params_rejects_a_foreign_network() -> None:
    net = graphdiff.compile(mlp([2, 2, 1]), loss="E")
    params = net.init_params(seed=0)
    with pytest.raises(GraphError, match=r"(node|edge) .* of parameter .* not in G"):
        write_params(mlp([2, 1]), params, net)
    with pytest.raises(GraphError, match="expects a networkx DiGraph"):
        write_params(nx.Graph(), params)
