"""Model files: save -> load gives the same graph, the same parameters to the bit,
the same network (identical losses and gradients) and byte-identical re-saves."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lecture import lecture_graph

import graphdiff
from graphdiff import GraphFormatError
from graphdiff.compile import node_key
from graphdiff.graphs import canonical_order

ROOT = Path(__file__).resolve().parent.parent

# Hand-picked floats that a decimal or lossy encoding would get wrong.
SPECIAL = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1e-300, 1e300, -1.7976931348623157e308,
           0.1, 1 / 3, math.pi, 2.0**-1074 * 3]


def norm(v: Any) -> Any:
    """An attribute value as a file keeps it: tuples as lists, arrays by dtype and bytes."""
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, float):
        return ("float", float(v).hex(), math.copysign(1.0, v))
    return (type(v).__name__, v)


def same_params(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for k in a:
        x, y = a[k], b[k]
        assert type(y) is (type(x) if isinstance(x, (np.ndarray, np.generic)) else np.float64), k
        assert np.asarray(y).dtype == np.asarray(x).dtype, k
        assert np.shape(y) == np.shape(x), k
        assert np.asarray(y).tobytes() == np.asarray(x).tobytes(), k


def same_graph(G: nx.DiGraph, H: nx.DiGraph) -> None:
    assert type(G) is type(H)
    assert norm(dict(G.graph)) == norm(dict(H.graph))
    assert {(type(n), n) for n in G} == {(type(n), n) for n in H}
    for n in G:
        assert norm(dict(G.nodes[n])) == norm(dict(H.nodes[n])), n
    if G.is_multigraph():
        ge = {(u, v, k): norm(d) for u, v, k, d in G.edges(keys=True, data=True)}
        he = {(u, v, k): norm(d) for u, v, k, d in H.edges(keys=True, data=True)}
    else:
        ge = {(u, v): norm(d) for u, v, d in G.edges(data=True)}
        he = {(u, v): norm(d) for u, v, d in H.edges(data=True)}
    assert ge == he


def compile_quietly(G: nx.DiGraph, loss: Any) -> graphdiff.Network:
    with warnings.catch_warnings():  # generated graphs may leave inputs unused
        warnings.simplefilter("ignore", graphdiff.GraphWarning)
        return graphdiff.compile(G, loss=loss)


def same_network(a: graphdiff.Network, H: nx.DiGraph, params: dict, inputs: dict) -> None:
    b = compile_quietly(H, a.loss)
    assert a.nodes == b.nodes and a.param_shapes == b.param_shapes
    assert {k: p.uses for k, p in a.params.items()} == {k: p.uses for k, p in b.params.items()}
    with np.errstate(all="ignore"):
        ra = a.backward(params, inputs)
        rb = b.backward(params, inputs)
    assert ra.loss.tobytes() == rb.loss.tobytes()
    assert list(ra.grads) == list(rb.grads)
    for k in ra.grads:
        assert np.asarray(ra.grads[k]).tobytes() == np.asarray(rb.grads[k]).tobytes(), k


# -- generated models ------------------------------------------------------------------

ACTS = ["tanh", "sigmoid", "identity", "sin", "softplus", "square"]
finite = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(SPECIAL)
names = st.one_of(
    st.integers(-3, 40),
    # no digits: the default weight name "u->v" of int node 1 and str node "1" would collide
    st.text(alphabet="abxyz_ \u00e9\u00e4\U0001f600", min_size=1, max_size=4),
)
user_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | finite | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def float_arrays(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    width = 64 if dtype is np.float64 else 32
    size = math.prod(shape)
    values = draw(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=width)
                           | st.sampled_from([0.0, -0.0]), min_size=size, max_size=size))
    return np.array(values, dtype=dtype).reshape(shape)


@st.composite
def models(draw: Any) -> tuple[nx.DiGraph, str | int, int, dict[str, Any]]:
    """A compilable network in neuron notation with an op-notation branch, user
    attributes of every kind, a seed, and parameters with exact special values."""
    multi = draw(st.booleans())
    G: nx.DiGraph = nx.MultiDiGraph() if multi else nx.DiGraph()
    n_in, n_hid = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    ids = draw(st.lists(names, min_size=n_in + n_hid + 5, max_size=n_in + n_hid + 5,
                        unique_by=lambda n: (type(n), n)))
    inputs, target, loss = ids[:n_in], ids[n_in], ids[n_in + 1]
    hidden = ids[n_in + 2:n_in + 2 + n_hid]
    pnode, mulnode, extra = ids[-3:]
    for n in [*inputs, target]:
        G.add_node(n, op="input")
    shared = ["s0", "s1"]
    for k, h in enumerate(hidden):
        act = draw(st.sampled_from(ACTS))
        G.add_node(h, op="neuron", activation=act)
        if act == "sin" and draw(st.booleans()):
            G.nodes[h]["scale"] = draw(st.sampled_from([0.5, 2.0]))
        bias = draw(st.sampled_from([None, "number", "shared"]))
        if bias == "number":
            G.nodes[h]["bias"] = draw(finite)
        elif bias == "shared":
            G.nodes[h]["bias"] = "b0"
        preds = draw(st.lists(st.sampled_from([*inputs, *hidden[:k]]), min_size=1, max_size=3,
                              unique_by=lambda n: (type(n), n)))
        for u in preds:
            for _ in range(draw(st.integers(1, 2)) if multi else 1):
                d: dict[str, Any] = {}
                if draw(st.booleans()):
                    d["param"] = draw(st.sampled_from(shared))
                elif draw(st.booleans()):
                    d["weight"] = draw(finite)
                G.add_edge(u, h, **d)
    out = hidden[-1]
    # op notation: out * W (a tensor parameter node of shape (1,)) feeds the loss
    G.add_node(pnode, op="param", shape=(1,), value=draw(float_arrays((1,))))
    G.add_node(mulnode, op="mul")
    G.add_edge(out, mulnode, port=0)
    G.add_edge(pnode, mulnode, port=1)
    G.add_node(loss, op=draw(st.sampled_from(["squared_error", "hinge"])))
    G.add_edge(mulnode, loss, port=0)
    G.add_edge(target, loss, port=1)
    # a node outside the network, with arrays and user attributes of every kind
    G.add_node(extra, op="const", value=draw(float_arrays((2, 2))))
    for n in [extra, *draw(st.lists(st.sampled_from(list(G)), max_size=3))]:
        G.nodes[n]["user"] = draw(user_values)
    G.nodes[inputs[0]]["pos"] = (draw(finite), draw(finite))
    extra_params = {
        "extra": np.array(SPECIAL),
        "extra32": draw(float_arrays((3,))),
        "scalar32": np.float32(draw(st.floats(width=32, allow_nan=False, allow_infinity=False))),
    }
    return G, loss, draw(st.integers(0, 2**32 - 1)), extra_params


def rebuilt_in_reverse(G: nx.DiGraph) -> nx.DiGraph:
    """The same graph with nodes and edges inserted in the opposite order."""
    H = type(G)()
    for n in reversed(list(G.nodes)):
        H.add_node(n, **dict(reversed(list(G.nodes[n].items()))))
    if G.is_multigraph():
        for u, v, k, d in reversed(list(G.edges(keys=True, data=True))):
            H.add_edge(u, v, key=k, **d)
    else:
        for u, v, d in reversed(list(G.edges(data=True))):
            H.add_edge(u, v, **d)
    return H


@settings(max_examples=200)
@given(models())
def test_generated_models_round_trip(tmp_path_factory: Any, model: Any) -> None:
    G, loss, seed, extra_params = model
    net = compile_quietly(G, loss)
    rng = np.random.default_rng(seed)
    params = dict(net.init_params(seed=seed))  # a plain dict: float32 values and extras
    for name, value in params.items():
        if np.all(np.abs(value) < 1e38) and rng.random() < 0.5:
            params[name] = np.float32(value) if np.ndim(value) == 0 else value.astype(np.float32)
    params.update(extra_params)
    data = {n: rng.normal(size=4) for n in net.inputs}
    folder = tmp_path_factory.mktemp("rt")
    path = folder / "m.json"
    # durability is tested in test_io_checkpoint; here fsync only costs time
    with mock.patch.object(os, "fsync"):
        graphdiff.save(path, G, params, loss=loss)
        text = path.read_bytes()
        H, back, loss2 = graphdiff.load_model(path)
        assert type(loss2) is type(loss) and loss2 == loss
        same_graph(G, H)
        same_params(params, back)
        same_network(net, H, params, data)
        # canonical: re-saving the loaded model, or the same model built in another
        # order, gives the same bytes
        graphdiff.save(folder / "again.json", H, back, loss=loss2)
        assert (folder / "again.json").read_bytes() == text
        graphdiff.save(folder / "reversed.json", rebuilt_in_reverse(G), params, loss=loss)
        assert (folder / "reversed.json").read_bytes() == text


def test_shared_parameters_stay_shared(tmp_path: Path) -> None:
    G = lecture_graph("tanh", shared=True)
    params = {"u": np.float64(0.8), "v": np.float64(-0.5)}
    graphdiff.save(tmp_path / "m.json", G, params, loss="E")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert sorted(doc["params"]) == ["u", "v"]  # stored once each
    H, back, loss = graphdiff.load_model(tmp_path / "m.json")
    net = graphdiff.compile(H, loss=loss)
    assert sorted(net.param_shapes) == ["u", "v"]
    assert sorted(net.params["u"].uses) == sorted(
        [("x1", "a3"), ("x2", "a4"), ("a3", "a6"), ("a5", "a7")])
    assert sorted(net.params["v"].uses) == sorted(
        [("x2", "a3"), ("a3", "a5"), ("a4", "a6"), ("a6", "a7")])
    rng = np.random.default_rng(0)
    x = {"x1": rng.normal(size=16), "x2": rng.normal(size=16), "t": rng.choice([-1.0, 1.0], 16)}
    same_params(params, back)
    same_network(graphdiff.compile(G, loss="E"), H, back, x)


def test_file_layout_is_canonical_and_readable(tmp_path: Path) -> None:
    G = lecture_graph("tanh")
    graphdiff.save(tmp_path / "m.json", G, loss="E")
    lines = (tmp_path / "m.json").read_text().splitlines()
    node_lines = [json.loads(line.rstrip(","))["id"] for line in lines if line.startswith('{"id"')]
    assert len(node_lines) == G.number_of_nodes()  # one node per line
    assert node_lines == list(nx.lexicographical_topological_sort(G, key=node_key))
    edge_lines = [json.loads(line.rstrip(",")) for line in lines if line.startswith('{"source"')]
    pos = {n: i for i, n in enumerate(node_lines)}
    keys = [(pos[e["source"]], pos[e["target"]]) for e in edge_lines]
    assert keys == sorted(keys) and len(keys) == G.number_of_edges()
    assert all(line.isascii() for line in lines)


def test_without_params_or_loss(tmp_path: Path) -> None:
    G = nx.MultiDiGraph()
    G.add_edge(1, "1", key="k", label="int to str")
    G.add_edge(1, "1", key=7)
    graphdiff.save(tmp_path / "m.json", G)
    H, params, loss = graphdiff.load_model(tmp_path / "m.json")
    assert params == {} and loss is None
    assert set(H.edges(keys=True)) == {(1, "1", 7), (1, "1", "k")}
    assert set(H.nodes) == {1, "1"}
    assert H.edges[1, "1", "k"] == {"label": "int to str"}


def test_arrays_and_scalars_keep_dtype_and_bits(tmp_path: Path) -> None:
    special = np.array(SPECIAL)
    params = {
        "a64": special.reshape(1, -1),
        "a32": np.array([0.0, -0.0, 1e-45, 3.4028235e38, -1.0e-38], dtype=np.float32),
        "s64": np.float64(-0.0),
        "s32": np.float32(1e-45),
        "zero_size": np.zeros((0, 3)),
        "big_endian": special.astype(">f8"),
        "python_float": 0.1,
        "python_int": 3,
        "noncontiguous": np.arange(12.0).reshape(3, 4)[:, ::2],
    }
    graphdiff.save_params(tmp_path / "p.json", params)
    back = graphdiff.load_params(tmp_path / "p.json")
    assert sorted(back) == sorted(params)
    for k in ["a64", "a32", "s64", "s32", "zero_size", "noncontiguous"]:
        same_params({k: params[k]}, {k: back[k]})
    assert back["big_endian"].dtype == np.float64 and back["big_endian"].tobytes() == \
        special.tobytes()
    assert type(back["python_float"]) is np.float64 and back["python_float"] == 0.1
    assert type(back["python_int"]) is np.float64 and back["python_int"] == 3.0
    assert np.signbit(back["s64"]) and np.signbit(back["a32"][1])
    back["a64"][0, 0] = 1.0  # loaded arrays are ordinary writable arrays


def test_array_attributes_round_trip(tmp_path: Path) -> None:
    G = nx.DiGraph()
    value = np.array([[1.5, -0.0], [5e-324, 1e300]])
    G.add_node("W", op="param", value=value, scalar=np.float32(0.25), zero_d=np.array(2.0))
    graphdiff.save(tmp_path / "m.json", G)
    H, _ = graphdiff.load(tmp_path / "m.json")
    d = H.nodes["W"]
    assert d["value"].dtype == np.float64 and d["value"].tobytes() == value.tobytes()
    assert type(d["scalar"]) is float and d["scalar"] == 0.25  # numpy scalars become floats
    assert isinstance(d["zero_d"], np.ndarray) and d["zero_d"].shape == ()


def test_to_spec_from_spec_in_memory() -> None:
    G = lecture_graph("sigmoid", shared=True)
    G.nodes["x1"]["pos"] = [0.0, 1.0]
    spec = graphdiff.to_spec(G, {"u": 0.5, "v": -0.5}, loss="E")
    assert spec.loss == "E" and sorted(spec.params or {}) == ["u", "v"]
    H, params = graphdiff.from_spec(spec)
    same_graph(G, H)
    assert params == {"u": 0.5, "v": -0.5}
    H.nodes["x1"]["pos"].append(2.0)  # the graph shares no containers with the spec
    assert graphdiff.from_spec(spec)[0].nodes["x1"]["pos"] == [0.0, 1.0]


def test_newer_minor_version_is_accepted(tmp_path: Path) -> None:
    graphdiff.save(tmp_path / "m.json", lecture_graph("tanh"), loss="E")
    text = (tmp_path / "m.json").read_text().replace('"format_version":"1.0"',
                                                      '"format_version":"1.7"')
    (tmp_path / "m.json").write_text(text)
    G, _ = graphdiff.load(tmp_path / "m.json")
    assert sorted(G.nodes) == sorted(lecture_graph("tanh").nodes)


def test_nesting_up_to_the_limit(tmp_path: Path) -> None:
    # a model file's structure is 5 levels deep at a node attribute: 27 more make 32
    G = nx.DiGraph()
    value: Any = 1
    for _ in range(27):
        value = [value]
    G.add_node("a", deep=value)
    graphdiff.save(tmp_path / "m.json", G)
    H, _ = graphdiff.load(tmp_path / "m.json")
    assert H.nodes["a"]["deep"] == value
    G.nodes["a"]["deep"] = [value]
    with pytest.raises(GraphFormatError, match="node 'a', attribute 'deep'") as e:
        graphdiff.save(tmp_path / "m.json", G)
    assert e.value.code == "too_deep"
    text = (tmp_path / "m.json").read_text()
    (tmp_path / "m.json").write_text(text.replace('"deep":', '"deep":[').replace("]}", "]]}"))
    with pytest.raises(GraphFormatError) as e:
        graphdiff.load(tmp_path / "m.json")
    assert e.value.code == "too_deep" and "line 9" in str(e.value)  # the node's line


def test_plugin_ops_are_recorded(tmp_path: Path, fresh_registry: Any) -> None:
    from dataclasses import replace

    op = graphdiff.elementwise_op("cube_rt", lambda x: x**3, lambda x, out: 3 * x**2)
    graphdiff.register_op(replace(op, source="plugin cube-pkg 2.1", distribution="cube-pkg",
                                  version="2.1"))
    graphdiff.register_op(graphdiff.elementwise_op("mine_rt", np.sin, lambda x, out: np.cos(x)))
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("y", op="neuron", activation="cube_rt")
    G.add_node("z", op="mine_rt")
    G.add_edge("x", "y")
    G.add_edge("y", "z")
    graphdiff.save(tmp_path / "m.json", G)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["ops"] == {"cube_rt": {"distribution": "cube-pkg", "version": "2.1"},
                          "mine_rt": {"distribution": None, "version": None}}
    graphdiff.load(tmp_path / "m.json")  # registered here: loads
    graphdiff.unregister_op("cube_rt")
    with pytest.raises(GraphFormatError) as e:
        graphdiff.load(tmp_path / "m.json")
    assert e.value.code == "missing_plugin"
    assert "'cube_rt'" in str(e.value) and "'cube-pkg' 2.1" in str(e.value)
    assert e.value.location == "/graph/nodes/1/attrs/activation"


@pytest.mark.parametrize(
    ("attr", "value", "code", "culprit"),
    [
        ("when", {1, 2}, "unsupported_value", "set"),
        ("port", np.int64(0), "unsupported_value", "int64"),
        ("flag", np.bool_(True), "unsupported_value", "bool"),
        ("weight", float("nan"), "non_finite", "nan"),
        ("meta", {1: "int key"}, "unsupported_value", "dict key 1"),
        ("value", np.array([1, 2]), "bad_dtype", "int64"),
        ("value", np.array(["a"]), "bad_dtype", "<U1"),
        ("fn", print, "unsupported_value", "builtin_function_or_method"),
    ],
)
def test_save_refuses_what_json_cannot_hold(
    tmp_path: Path, attr: str, value: Any, code: str, culprit: str
) -> None:
    G = lecture_graph("tanh")
    graphdiff.save(tmp_path / "m.json", G)
    before = (tmp_path / "m.json").read_bytes()
    G.nodes["a5"][attr] = value
    with pytest.raises(GraphFormatError) as e:
        graphdiff.save(tmp_path / "m.json", G)
    assert e.value.code == code
    assert "node 'a5'" in str(e.value) and repr(attr) in str(e.value) and culprit in str(e.value)
    assert (tmp_path / "m.json").read_bytes() == before  # nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_graph_attributes_round_trip(tmp_path: Path) -> None:
    """``G.graph`` is kept, under the rules of node attributes (issue 15)."""
    G = lecture_graph("tanh")
    G.graph.update(name="lecture", meta={"b": [1, (2.5, None)], "a": True},
                   layout=np.array([[0.0, 1.0], [2.0, -0.5]], dtype=np.float32),
                   seed=np.float64(0.5))
    graphdiff.save(tmp_path / "m.json", G, loss="E")
    H, _ = graphdiff.load(tmp_path / "m.json")
    assert H.graph["name"] == "lecture" and H.graph["meta"] == {"a": True, "b": [1, [2.5, None]]}
    assert H.graph["layout"].dtype == np.float32
    assert H.graph["layout"].tobytes() == G.graph["layout"].tobytes()
    assert type(H.graph["seed"]) is float and H.graph["seed"] == 0.5
    same_graph(H, graphdiff.load(tmp_path / "m.json")[0])
    G2, _ = graphdiff.from_spec(graphdiff.to_spec(G))  # in memory, too
    assert norm(dict(G2.graph)) == norm(dict(H.graph))
    # a graph without attributes writes no "attrs": files of earlier versions are unchanged
    graphdiff.save(tmp_path / "plain.json", lecture_graph("tanh"))
    assert '"attrs":{"' not in (tmp_path / "plain.json").read_text().split('"nodes"')[0]
    fingerprint = graphdiff.io.graph_fingerprint
    assert fingerprint(G) != fingerprint(lecture_graph("tanh"))


@pytest.mark.parametrize(
    ("key", "value", "code", "culprit"),
    [("when", {1, 2}, "unsupported_value", "set"),
     ("weight", float("nan"), "non_finite", "nan"),
     (7, "x", "unsupported_value", "attribute names must be non-empty strings"),
     ("value", np.array([1, 2]), "bad_dtype", "int64")],
)
def test_save_refuses_graph_attributes_json_cannot_hold(
    tmp_path: Path, key: Any, value: Any, code: str, culprit: str
) -> None:
    G = lecture_graph("tanh")
    G.graph[key] = value
    with pytest.raises(GraphFormatError) as e:
        graphdiff.save(tmp_path / "m.json", G)
    assert e.value.code == code
    assert "the graph (G.graph)" in str(e.value) and culprit in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_edge_attribute_naming_the_edge(tmp_path: Path) -> None:
    G = lecture_graph("tanh")
    G.edges["x1", "a3"]["weight"] = object()
    with pytest.raises(GraphFormatError, match=r"edge 'x1' -> 'a3', attribute 'weight'"):
        graphdiff.save(tmp_path / "m.json", G)


@pytest.mark.parametrize(
    ("build", "code", "culprit"),
    [
        (lambda G: G.add_edge("E", "x1"), "cycle", "'x1'"),
        (lambda G: G.add_node(("tuple", "id")), "bad_id", "('tuple', 'id')"),
        (lambda G: G.add_node(True), "bad_id", "True"),
        (lambda G: G.add_node(2**70), "bad_id", str(2**70)),
        (lambda G: G.nodes["E"].update(op="os.system"), "unknown_op", "os.system"),
        (lambda G: G.nodes["a3"].update(activation="nope_not_an_op"), "unknown_op",
         "nope_not_an_op"),
    ],
)
def test_save_refuses_graphs_load_would_refuse(
    tmp_path: Path, build: Any, code: str, culprit: str
) -> None:
    G = lecture_graph("tanh")
    build(G)
    with pytest.raises(GraphFormatError) as e:
        graphdiff.save(tmp_path / "m.json", G, loss="E")
    assert e.value.code == code and culprit in str(e.value)
    assert not list(tmp_path.iterdir())


def test_save_refuses_missing_loss_and_undirected_graphs(tmp_path: Path) -> None:
    with pytest.raises(GraphFormatError, match="loss 'nope' is not a node"):
        graphdiff.save(tmp_path / "m.json", lecture_graph("tanh"), loss="nope")
    with pytest.raises(GraphFormatError, match="got Graph"):
        graphdiff.save(tmp_path / "m.json", nx.Graph([(1, 2)]))
    with pytest.raises(GraphFormatError, match="parameter name 3"):
        graphdiff.save_params(tmp_path / "p.json", {3: np.zeros(2)})  # type: ignore[dict-item]


def test_nonfinite_parameters_load_only_when_allowed(tmp_path: Path) -> None:
    params = {"w": np.array([1.0, np.nan, -np.inf]), "s": np.float32(np.inf)}
    graphdiff.save(tmp_path / "m.json", nx.DiGraph([("a", "b")]), params)
    with pytest.raises(GraphFormatError) as e:
        graphdiff.load(tmp_path / "m.json")
    assert e.value.code == "non_finite" and e.value.location in ("/params/s", "/params/w")
    _, back = graphdiff.load(tmp_path / "m.json", allow_nonfinite=True)
    same_params(params, back)


def test_docs_example_is_a_saved_file(tmp_path: Path) -> None:
    docs = ROOT / "docs" / "format.md"
    blocks = re.findall(r"```json\n(.*?)```", docs.read_text(), re.S)
    assert blocks, f"{docs} has no ```json example"
    (tmp_path / "example.json").write_text(blocks[0])
    G, params, loss = graphdiff.load_model(tmp_path / "example.json")
    net = graphdiff.compile(G, loss=loss)
    assert sorted(net.params) == sorted(params) == ["h.bias", "u"]
    assert len(net.params["u"].uses) == 2  # the shared weight
    graphdiff.save(tmp_path / "again.json", G, params, loss=loss)
    assert (tmp_path / "again.json").read_text() == blocks[0], f"the example in {docs} is stale"


@pytest.mark.parametrize("data", ["AAAAAAAA8D8=", "", 'not "base64"\n\\', "é"])
def test_tensor_text_writes_what_json_writes(data):
    # parameter data is written as bytes, without JSON escaping, only where it needs none
    from graphdiff.jsonwrite import compact_json, _tensor_text

    doc = {"dtype": "float64", "shape": [1], "data": data}
    pieces = list(_tensor_text(doc))
    text = "".join(p.decode("ascii") if isinstance(p, bytes) else p for p in pieces)
    assert text == json.dumps(doc, ensure_ascii=True, separators=(",", ":")) == compact_json(doc)
    assert any(isinstance(p, bytes) for p in pieces) == (data in ("AAAAAAAA8D8=", ""))


@pytest.mark.parametrize("seed", range(12))
def test_nodes_are_saved_in_compiles_order_which_is_networkxs_lexicographic_one(
    tmp_path: Path, seed: int
) -> None:
    """One topological order (graphs.canonical_order) for compile and files; it is
    networkx's lexicographical sort by node_key (the independent reference), on random
    DAGs with int and str ids (some alike as text), multi-edges, built in any order."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40)) if seed < 10 else 3000
    ids: list[int | str] = [int(i) if rng.random() < 0.4 else f"n{i}" for i in
                            rng.permutation(n)]
    ids += [str(i) for i in ids if isinstance(i, int)][:3]  # 3 and "3": both nodes
    G: nx.MultiDiGraph = nx.MultiDiGraph()
    G.add_nodes_from(ids[k] for k in rng.permutation(len(ids)))
    for _ in range(int(rng.integers(0, 3 * len(ids)))):
        a, b = sorted(rng.choice(len(ids), 2, replace=False))
        G.add_edge(ids[a], ids[b])  # from earlier to later: acyclic, parallel edges too
    graph = G if seed % 2 else nx.DiGraph(G)
    graphdiff.save(tmp_path / "m.json", graph)
    doc = json.loads((tmp_path / "m.json").read_text())
    saved = [node["id"] for node in doc["graph"]["nodes"]]
    assert saved == list(nx.lexicographical_topological_sort(graph, key=node_key))
    assert saved == canonical_order(graph)
