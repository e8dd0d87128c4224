"""Validation in graphdiff.compile: every error names its culprit.

Each case builds a small graph with exactly one thing wrong, and checks the
error's class (a GraphdiffError that is also the builtin a user would catch)
and that the message names the node, edge or attribute at fault.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import (
    CycleError,
    GraphdiffError,
    GraphError,
    GraphWarning,
    ShapeError,
    UnknownOpError,
)
from graphdiff.compile import default_param_name


def base(multi: bool = False) -> nx.DiGraph:
    """Inputs x and t, nothing else."""
    G = nx.MultiDiGraph() if multi else nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("t", op="input")
    return G


def with_loss(G: nx.DiGraph, pred: object) -> nx.DiGraph:
    G.add_node("E", op="squared_error")
    G.add_edge(pred, "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def neuron_graph(**edge: object) -> nx.DiGraph:
    G = base()
    G.add_node("h", op="neuron", activation="tanh")
    G.add_edge("x", "h", **edge)
    return with_loss(G, "h")


def compile_error(G: nx.DiGraph, loss: object = "E") -> GraphdiffError:
    with pytest.raises(GraphdiffError) as e:
        graphdiff.compile(G, loss=loss)
    return e.value


# --- the graph as a whole ------------------------------------------------------


def test_cycle_prints_its_path():
    G = base()
    for n in ("a", "b", "c"):
        G.add_node(n, op="tanh")
    G.add_edges_from([("x", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    with_loss(G, "c")
    err = compile_error(G)
    assert isinstance(err, CycleError) and isinstance(err, ValueError)
    path = re.search(r"cycle: (.*)$", str(err)).group(1).split(" -> ")
    assert path[0] == path[-1]
    assert sorted(path[:-1]) == ["'a'", "'b'", "'c'"]
    # consecutive entries are edges of the graph
    names = [p.strip("'") for p in path]
    assert all(G.has_edge(u, v) for u, v in itertools.pairwise(names))


def test_self_loop_is_a_cycle():
    G = base()
    G.add_node("a", op="add")
    G.add_edge("x", "a")
    G.add_edge("a", "a")
    with_loss(G, "a")
    with pytest.raises(CycleError, match=r"cycle: 'a' -> 'a'"):
        graphdiff.compile(G, loss="E")


def test_undirected_graph_is_refused():
    G = nx.Graph()
    G.add_node("E", op="tanh")
    with pytest.raises(GraphError, match="DiGraph or MultiDiGraph, got Graph"):
        graphdiff.compile(G, loss="E")


def test_not_a_graph_is_refused():
    with pytest.raises(GraphError, match="got dict"):
        graphdiff.compile({"E": {}}, loss="E")


@pytest.mark.parametrize("bad", [1.5, ("a", 1), True, frozenset({"a"})], ids=repr)
def test_node_names_must_be_str_or_int(bad):
    G = base()
    G.add_node(bad, op="tanh")
    G.add_edge("x", bad)
    with_loss(G, bad)
    err = compile_error(G)
    assert isinstance(err, ValueError)
    assert f"node names must be strings or ints, got {bad!r}" in str(err)


def test_loss_not_in_graph():
    G = with_loss(base(), "x")
    err = compile_error(G, loss="Loss")
    assert isinstance(err, GraphError) and isinstance(err, ValueError)
    assert "loss node 'Loss' is not in the graph" in str(err)


@pytest.mark.parametrize("kind", ["input", "param", "const"])
def test_loss_must_compute_something(kind):
    G = with_loss(base(), "x")
    G.add_node("L", op=kind, shape=(1,), value=[1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no spurious unused-input warning first
        err = compile_error(G, loss="L")
    assert f"loss node 'L' is op={kind!r}" in str(err)


def test_reduction_must_be_mean_or_sum():
    with pytest.raises(GraphError, match="reduction must be 'mean' or 'sum', got 'max'"):
        graphdiff.compile(with_loss(base(), "x"), loss="E", reduction="max")


# --- nodes ---------------------------------------------------------------------


def test_node_without_op():
    G = base()
    G.add_node("h")
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, ValueError)
    assert "node 'h' has no 'op' attribute" in str(err)


def test_source_without_op_hints_at_input():
    G = base()
    G.add_node("z")  # meant as an input
    G.add_node("h", op="add")
    G.add_edges_from([("x", "h"), ("z", "h")])
    err = compile_error(with_loss(G, "h"))
    assert "node 'z' has no 'op' attribute (inputs are declared with op='input')" in str(err)


def test_unknown_op_suggests_close_names():
    G = base()
    G.add_node("h", op="tanhh")
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, UnknownOpError) and isinstance(err, KeyError)
    assert isinstance(err, ValueError)
    assert "node 'h': unknown op 'tanhh'; did you mean 'tanh'" in str(err)


def test_op_must_be_a_string():
    G = base()
    G.add_node("h", op=np.tanh)
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': op must be an op name (str)" in str(err)


def test_unknown_activation_suggests_close_names():
    G = base()
    G.add_node("h", op="neuron", activation="sigmod")
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, UnknownOpError)
    assert "node 'h': unknown op 'sigmod'; did you mean 'sigmoid'" in str(err)


@pytest.mark.parametrize("act", ["sum", "matmul", "hinge"])
def test_activation_must_be_elementwise(act):
    G = base()
    G.add_node("h", op="neuron", activation=act)
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, GraphError)
    assert f"node 'h': activation {act!r} is not an elementwise op" in str(err)


@pytest.mark.parametrize(("op", "n"), [("tanh", 2), ("sub", 1), ("sub", 3), ("matmul", 1)])
def test_wrong_arity(op, n):
    G = base()
    G.add_node("h", op=op)
    for i in range(n):
        G.add_node(f"x{i}", op="input")
        G.add_edge(f"x{i}", "h", port=i)
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, ValueError)
    assert re.search(rf"node 'h': op {op!r} takes \d operand\(s\), the node has {n}", str(err))


def test_op_without_operands():
    G = base()
    G.add_node("h", op="stack")
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': op 'stack' needs at least one operand, the node has none" in str(err)


def test_missing_port_names_the_edge():
    G = base()
    G.add_node("h", op="sub")
    G.add_edge("x", "h", port=0)
    G.add_edge("t", "h")
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': in-edge(s) from ['t'] have no 'port'" in str(err)


def test_ordered_op_needs_ports():
    G = base()
    G.add_node("h", op="div")
    G.add_edges_from([("x", "h"), ("t", "h")])
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': op 'div' has 2 operands and they are ordered" in str(err)


def test_duplicate_port():
    G = base()
    G.add_node("h", op="sub")
    G.add_edge("x", "h", port=0)
    G.add_edge("t", "h", port=0)
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': duplicate port 0 (from " in str(err)
    assert "'x'" in str(err) and "'t'" in str(err)


def test_port_gap():
    G = base()
    G.add_node("h", op="sub")
    G.add_edge("x", "h", port=0)
    G.add_edge("t", "h", port=2)
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': ports must be 0..1, got [0, 2]" in str(err)


@pytest.mark.parametrize("port", ["1", 1.0, True], ids=repr)
def test_port_must_be_an_int(port):
    G = base()
    G.add_node("h", op="sub")
    G.add_edge("x", "h", port=0)
    G.add_edge("t", "h", port=port)
    err = compile_error(with_loss(G, "h"))
    assert f"node 'h': ports must be ints, got [{port!r}]" in str(err)


def test_duplicate_port_in_a_multigraph():
    G = base(multi=True)
    G.add_node("h", op="mul")
    G.add_edge("x", "h", port=1)
    G.add_edge("x", "h", port=1)
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': duplicate port 1 (from 'x' and 'x')" in str(err)


def test_input_with_in_edges():
    G = base()
    G.add_node("z", op="input")
    G.add_edge("x", "z")
    err = compile_error(with_loss(G, "z"))
    assert "node 'z' is op='input' and cannot have incoming edges" in str(err)


def test_param_without_shape_or_value():
    G = base()
    G.add_node("p", op="param")
    G.add_node("h", op="add")
    G.add_edges_from([("x", "h"), ("p", "h")])
    err = compile_error(with_loss(G, "h"))
    assert "node 'p': a param node needs 'shape' or 'value'" in str(err)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"shape": "3"}, "node 'p': 'shape' must be a tuple of non-negative ints, got '3'"),
        ({"shape": (2, -1)}, "node 'p': 'shape' must be a tuple of non-negative ints"),
        ({"shape": (2,), "value": [1.0, 2.0, 3.0]}, "node 'p': 'value' has shape (3,), 'shape'"),
        ({"value": "abc"}, "node 'p': 'value' is not a numeric array"),
        ({"value": [1.0, np.nan]}, "node 'p': 'value' has NaN or infinite entries"),
        ({"shape": (2,), "init": "xavier"}, "node 'p': unknown init 'xavier'"),
    ],
)
def test_bad_param_node(attrs, message):
    G = base()
    G.add_node("p", op="param", **attrs)
    G.add_node("h", op="add")
    G.add_edges_from([("x", "h"), ("p", "h")])
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, ValueError)
    assert message in str(err)


def test_const_without_value():
    G = base()
    G.add_node("c", op="const")
    G.add_node("h", op="add")
    G.add_edges_from([("x", "h"), ("c", "h")])
    err = compile_error(with_loss(G, "h"))
    assert "node 'c': a const node needs 'value'" in str(err)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"op": "sum", "axis": "one"}, "node 'h': bad attributes for op 'sum': axis"),
        ({"op": "sum", "keepdims": "maybe"}, "node 'h': bad attributes for op 'sum': keepdims"),
        ({"op": "index"}, "node 'h': bad attributes for op 'index': i: Field required"),
        (
            {"op": "neuron", "activation": "sin", "scale": "big"},
            "node 'h': bad attributes for activation 'sin': scale",
        ),
    ],
)
def test_bad_op_attributes(node, message):
    G = base()
    G.add_node("h", **node)
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, GraphError) and isinstance(err, ValueError)
    assert message in str(err)


# --- neurons and their parameters ----------------------------------------------


def test_neuron_without_in_edges():
    G = base()
    G.add_node("h", op="neuron")
    err = compile_error(with_loss(G, "h"))
    assert "neuron 'h' has no incoming edges" in str(err)


@pytest.mark.parametrize("kind", ["param", "const"])
def test_neuron_operand_must_be_per_data_point(kind):
    G = base()
    G.add_node("p", op=kind, value=[1.0])
    G.add_node("h", op="neuron")
    G.add_edges_from([("x", "h"), ("p", "h")])
    err = compile_error(with_loss(G, "h"))
    assert f"edge 'p' -> 'h': a neuron's operands must have one value per data point; " \
        f"'p' is a {kind} node" in str(err)


@pytest.mark.parametrize("weight", ["u", "0.5", [0.5], True, None], ids=repr)
def test_weight_must_be_a_number(weight):
    if weight is None:  # networkx style "no weight": fine, drawn at init
        net = graphdiff.compile(neuron_graph(weight=None), loss="E")
        assert net.params["x->h"].value is None
        return
    err = compile_error(neuron_graph(weight=weight))
    assert isinstance(err, ValueError)
    assert f"edge 'x' -> 'h': 'weight' must be a number (the initial value), got {weight!r}" \
        in str(err)


def test_weight_must_be_finite():
    err = compile_error(neuron_graph(weight=float("inf")))
    assert "edge 'x' -> 'h': initial value inf is not finite" in str(err)


@pytest.mark.parametrize("param", [3, ("u",), "", None], ids=repr)
def test_param_must_be_a_string(param):
    err = compile_error(neuron_graph(param=param))
    assert f"edge 'x' -> 'h': a parameter name must be a non-empty string, got {param!r}" \
        in str(err)


@pytest.mark.parametrize("bias", [[0.1], True, {"b": 1}, b"b"], ids=repr)
def test_bias_must_be_a_name_or_a_number(bias):
    G = base()
    G.add_node("h", op="neuron", bias=bias)
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert isinstance(err, ValueError)
    assert f"node 'h': 'bias' must be a parameter name (str) or a number, got {bias!r}" \
        in str(err)


def test_numeric_bias_must_be_finite():
    G = base()
    G.add_node("h", op="neuron", bias=float("nan"))
    G.add_edge("x", "h")
    err = compile_error(with_loss(G, "h"))
    assert "node 'h': initial value nan is not finite" in str(err)


def test_param_on_an_edge_into_an_op_node():
    G = base()
    G.add_node("h", op="tanh")
    G.add_edge("x", "h", param="w")
    err = compile_error(with_loss(G, "h"))
    assert "edge 'x' -> 'h': the edge attribute 'param' only applies to edges into neurons" \
        in str(err)


@pytest.mark.parametrize("tensor_first", [True, False])
def test_name_used_as_scalar_weight_and_tensor_param(tensor_first):
    # node names decide the topological order, and so which use is seen first
    p = "a_u" if tensor_first else "z_u"
    G = base()
    G.add_node(p, op="param", shape=(1,))
    G.add_node("h", op="neuron")
    G.add_edge("x", "h", param=p)
    G.add_node("s", op="add")
    G.add_edges_from([("h", "s"), (p, "s")])
    err = compile_error(with_loss(G, "s"))
    assert isinstance(err, GraphError)
    if tensor_first:
        assert f"edge 'x' -> 'h': parameter {p!r} is used as a scalar weight here and is " \
            f"the tensor parameter node {p!r}" in str(err)
    else:
        assert f"node {p!r}: parameter node name {p!r} is already a scalar parameter used " \
            "at [('x', 'h')]" in str(err)


def test_bias_name_used_as_tensor_param():
    G = base()
    G.add_node("b", op="param", shape=())
    G.add_node("h", op="neuron", bias="b")
    G.add_edge("x", "h")
    G.add_node("s", op="add")
    G.add_edges_from([("h", "s"), ("b", "s")])
    err = compile_error(with_loss(G, "s"))
    assert "'b'" in str(err) and "'h'" in str(err)


def test_default_weight_name_collides_with_explicit_param():
    G = base()
    G.add_node("h", op="neuron")
    G.add_edge("x", "h")  # default name "x->h"
    G.add_node("g", op="neuron")
    G.add_edge("t", "g", param="x->h")
    G.add_node("s", op="add")
    G.add_edges_from([("h", "s"), ("g", "s")])
    err = compile_error(with_loss(G, "s"))
    msg = str(err)
    assert "default parameter name 'x->h' of ('x', 'h') collides" in msg
    assert "('t', 'g')" in msg and "give one of them a 'param'" in msg


def test_default_bias_name_collides_with_explicit_param():
    G = base()
    G.add_node("h", op="neuron", bias=0.5)  # default name "h.bias"
    G.add_edge("x", "h", param="h.bias")
    err = compile_error(with_loss(G, "h"))
    assert "default parameter name 'h.bias'" in str(err)


def test_default_names_of_int_and_str_nodes_collide():
    G = nx.DiGraph()
    G.add_node(1, op="input")
    G.add_node("1", op="input")
    G.add_node("h", op="neuron")
    G.add_edges_from([(1, "h"), ("1", "h")])  # both default to "1->h"
    err = compile_error(G, loss="h")
    assert "default parameter name '1->h'" in str(err)


def test_param_nodes_named_1_and_str_1_collide():
    G = base()
    G.add_node(1, op="param", shape=(1,))
    G.add_node("1", op="param", shape=(1,))
    G.add_node("s", op="add")
    G.add_edges_from([(1, "s"), ("1", "s")])
    err = compile_error(G, loss="s")
    assert "parameter nodes 1 and '1' are both named '1'" in str(err)


def test_shared_param_with_conflicting_initial_weights():
    G = base()
    G.add_node("h", op="neuron")
    G.add_edge("x", "h", param="u", weight=1.0)
    G.add_node("g", op="neuron")
    G.add_edge("t", "g", param="u", weight=2.0)
    G.add_node("s", op="add")
    G.add_edges_from([("h", "s"), ("g", "s")])
    err = compile_error(with_loss(G, "s"))
    msg = str(err)
    assert "shared parameter 'u' gets initial value" in msg
    assert "1.0" in msg and "2.0" in msg and "'g'" in msg and "'h'" in msg


def test_shared_param_with_agreeing_initial_weights():
    G = base()
    G.add_node("h", op="neuron")
    G.add_edge("x", "h", param="u", weight=1.5)
    G.add_node("g", op="neuron")
    G.add_edge("t", "g", param="u", weight=1.5)
    G.add_node("s", op="add")
    G.add_edges_from([("h", "s"), ("g", "s")])
    net = graphdiff.compile(G, loss="s")
    assert list(net.params) == ["u"] and net.init_params(seed=3) == {"u": 1.5}


# --- the loss ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "target"), [((4, 2), (4,)), ((4,), (4, 1)), ((4, 1), (4,)), ((4, 2), (4, 3))]
)
def test_loss_operand_shapes_must_agree(pred, target):
    G = base()
    G.add_node("E", op="squared_error")
    G.add_edge("x", "E", port=0)
    G.add_edge("t", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    with pytest.raises(ShapeError) as e:
        net.backward({}, {"x": np.ones(pred), "t": np.ones(target)})
    assert isinstance(e.value, ValueError) and isinstance(e.value, GraphdiffError)
    msg = str(e.value)
    assert "loss node 'E' (squared_error)" in msg
    assert str(pred) in msg and str(target) in msg
    with pytest.raises(ShapeError, match="loss node 'E'"):
        net.forward({}, {"x": np.ones(pred), "t": np.ones(target)})


def test_loss_mismatch_inside_the_graph_names_that_loss():
    G = base()
    G.add_node("inner", op="logistic")
    G.add_edge("x", "inner", port=0)
    G.add_edge("t", "inner", port=1)
    G.add_node("E", op="sum", axis=None, keepdims=False)
    G.add_edge("inner", "E")
    net = graphdiff.compile(G, loss="E")
    with pytest.raises(ShapeError, match=r"loss node 'inner' \(logistic\).*\(3, 1\).*\(3,\)"):
        net.backward({}, {"x": np.ones((3, 1)), "t": np.ones(3)})


# --- what compile leaves alone, prunes and warns about --------------------------


def test_unused_inputs_warn_and_unreachable_nodes_are_pruned():
    G = base()
    G.add_node("y", op="input")
    G.add_node("h", op="tanh")
    G.add_edge("x", "h")
    G.add_node("side", op="sigmoid")  # reads x but does not lead to the loss
    G.add_edge("x", "side")
    G.add_node("dead", op="exp")
    G.add_edge("y", "dead")
    with_loss(G, "h")
    G.remove_node("t")
    G.add_node("t", op="input")
    G.add_node("E2", op="tanh")
    G.add_edge("h", "E2")
    with pytest.warns(GraphWarning, match=r"does not depend on input\(s\) \['t', 'y'\]"):
        net = graphdiff.compile(G, loss="E2")
    assert set(net.pruned) == {"y", "side", "dead", "E", "t"}
    assert set(net.nodes) == {"x", "h", "E2"}
    assert net.inputs == ("x",)
    # pruned nodes are not needed, not even as inputs
    out = net.forward({}, {"x": np.array([0.5])})
    assert set(out) == {"x", "h", "E2"}


def test_no_warning_when_every_input_is_used():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = graphdiff.compile(with_loss(base(), "x"), loss="E")
    assert net.pruned == ()


def test_pruned_nodes_are_not_validated():
    G = with_loss(base(), "x")
    G.add_node("junk", op="tanhh")  # unknown op, but nothing leads from it to the loss
    G.add_edge("x", "junk")
    net = graphdiff.compile(G, loss="E")
    assert net.pruned == ("junk",)


def test_user_attributes_are_ignored():
    def build(decorate: bool) -> graphdiff.Network:
        G = base()
        extra: Callable[[str], dict[str, object]] = (
            (lambda n: {"pos": (1, 2), "label": f"${n}$", "color": "red", "note": object()})
            if decorate
            else (lambda n: {})
        )
        G.nodes["x"].update(extra("x"))
        G.add_node("h", op="neuron", activation="tanh", bias=0.1, **extra("h"))
        G.add_edge("x", "h", param="w", weight=0.7, label="w", color="blue", width=3)
        G.add_node("r", op="reshape", shape=(1,), **extra("r"))
        G.add_edge("h", "r", label="a")
        G.add_node("p", op="param", value=[[1.0, -2.0]], **extra("p"))
        G.add_node("m", op="mul", **extra("m"))
        G.add_edges_from([("r", "m"), ("p", "m")], color="green")
        G.add_node("s", op="sum", axis=1, **extra("s"))
        G.add_edge("m", "s")
        return graphdiff.compile(with_loss(G, "s"), loss="E")

    data = {"x": np.array([0.3, -1.0]), "t": np.array([1.0, 0.0])}
    plain, fancy = build(False), build(True)
    a = plain.backward(plain.init_params(seed=1), data)
    b = fancy.backward(fancy.init_params(seed=1), data)
    h = np.tanh(0.7 * data["x"] + 0.1)
    assert a.loss == pytest.approx(np.mean((h * (1.0 - 2.0) - data["t"]) ** 2))
    assert a.loss == b.loss and a.grads.keys() == b.grads.keys() == {"w", "h.bias", "p"}
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_int_and_str_node_names_coexist():
    G = nx.DiGraph()
    G.add_node(1, op="input")
    G.add_node("1", op="input")
    G.add_node(2, op="sub")
    G.add_edge(1, 2, port=0)
    G.add_edge("1", 2, port=1)
    G.add_node("2", op="neuron", activation="identity")
    G.add_edge(2, "2", param="w", weight=3.0)
    G.add_node(0, op="input")
    G.add_node("E", op="squared_error")
    G.add_edge("2", "E", port=0)
    G.add_edge(0, "E", port=1)
    net = graphdiff.compile(G, loss="E")
    assert set(net.inputs) == {0, 1, "1"}
    # (3·(x1 - x"1") - t)^2 with x1 = 2, x"1" = 0.5, t = 1 -> (4.5 - 1)^2; dE/dw = 2·3.5·1.5
    res = net.backward({"w": 3.0}, {1: [2.0], "1": [0.5], 0: [1.0]}, deltas=True)
    assert res.loss == pytest.approx(3.5**2)
    assert res.grads["w"] == pytest.approx(2 * 3.5 * 1.5)
    assert res.values[2].tolist() == [1.5] and res.values["2"].tolist() == [4.5]
    with pytest.raises(graphdiff.InputError, match=r"missing input\(s\) \['1'\]"):
        net.backward({"w": 3.0}, {1: [2.0], 0: [1.0]})


def test_multigraph_parallel_neuron_edges_are_two_weights():
    G = base(multi=True)
    G.add_node("h", op="neuron", activation="identity")
    G.add_edge("x", "h", weight=2.0)
    G.add_edge("x", "h", weight=3.0)
    net = graphdiff.compile(with_loss(G, "h"), loss="E")
    assert net.param_shapes == {"x->h": (), "x->h#1": ()}
    p = net.init_params()
    assert (p["x->h"], p["x->h#1"]) == (2.0, 3.0)
    # z = (w0 + w1)·x; E = (z - t)^2; dE/dw_i = 2(z - t)·x for both
    res = net.backward(p, {"x": [1.0], "t": [0.0]})
    assert res.grads == {"x->h": pytest.approx(10.0), "x->h#1": pytest.approx(10.0)}


def test_insertion_order_does_not_change_the_plan():
    def build(reverse: bool) -> graphdiff.Network:
        nodes = [("x", {"op": "input"}), ("t", {"op": "input"}),
                 ("a", {"op": "neuron", "activation": "tanh"}),
                 ("b", {"op": "neuron", "activation": "sigmoid", "bias": "c"}),
                 ("s", {"op": "add"}), ("E", {"op": "squared_error"})]
        edges = [("x", "a", {"param": "u"}), ("x", "b", {"param": "u"}), ("a", "b", {}),
                 ("a", "s", {}), ("b", "s", {}), ("s", "E", {"port": 0}),
                 ("t", "E", {"port": 1})]
        G = nx.DiGraph()
        G.add_nodes_from(nodes[::-1] if reverse else nodes)
        G.add_edges_from(edges[::-1] if reverse else edges)
        return graphdiff.compile(G, loss="E")

    a, b = build(False), build(True)
    assert a.nodes == b.nodes
    assert a.param_shapes == b.param_shapes
    assert {k: (v.fan_in, v.fan_out) for k, v in a.params.items()} == {
        k: (v.fan_in, v.fan_out) for k, v in b.params.items()
    }


def test_compile_does_not_modify_the_graph():
    G = neuron_graph(param="w", weight=0.5)
    before = (list(G.nodes(data=True)), list(G.edges(data=True)))
    before_repr = repr(before)
    net = graphdiff.compile(G, loss="E")
    assert repr((list(G.nodes(data=True)), list(G.edges(data=True)))) == before_repr
    G.nodes["h"]["activation"] = "sigmoid"  # later edits do not reach the compiled net
    res = net.backward({"w": 0.5}, {"x": [1.0], "t": [0.0]})
    assert res.loss == pytest.approx(np.tanh(0.5) ** 2)


@pytest.mark.parametrize(
    "err_type",
    [graphdiff.GraphError, graphdiff.CycleError, graphdiff.UnknownOpError,
     graphdiff.ShapeError, graphdiff.InputError, graphdiff.NonFiniteError,
     graphdiff.OpContractError, graphdiff.RegistryError],
)
def test_every_error_is_a_graphdiff_error_and_a_builtin(err_type):
    assert issubclass(err_type, GraphdiffError)
    assert issubclass(err_type, (ValueError, KeyError, TypeError, FloatingPointError))


def test_param_table_specs_of_default_weights_follow_the_graph():
    # Default-named weights get their spec on first lookup: fan-in is the target's
    # in-degree, fan-out the source's out-degree (parallel edges counted), as Glorot's
    # rule for a dense layer reads them; later edits of G change nothing.
    G = nx.MultiDiGraph()
    G.add_nodes_from(["x1", "x2"], op="input")
    G.add_nodes_from(["h1", "h2"], op="neuron", activation="tanh")
    G.add_edges_from([("x1", "h1"), ("x1", "h1"), ("x2", "h1"), ("x1", "h2"), ("h1", "h2")])
    G.add_edge("x2", "h2", param="shared")
    G.add_edge("h1", "h2", param="shared")
    net = graphdiff.compile(G, loss="h2")
    G.add_edge("x1", "h2")  # after compiling: the network keeps its own copy
    names = list(net.params)
    assert names == sorted(names) and len(net.params) == len(names) == 6
    assert "x1->h1#1" in net.params and "nope" not in net.params
    for u, v, k in [("x1", "h1", 0), ("x1", "h1", 1), ("x2", "h1", 0), ("x1", "h2", 0)]:
        spec = net.params[default_param_name(u, v, k)]
        assert spec.kind == "scalar" and spec.shape == () and spec.uses == [(u, v)]
        assert (spec.fan_in, spec.fan_out) == ({"h1": 3, "h2": 4}[v], {"x1": 3, "x2": 2}[u])
    assert net.params["shared"].uses == [("h1", "h2"), ("x2", "h2")]
    assert dict(net.params.items()).keys() == set(names)
    with pytest.raises(TypeError):
        net.params["x1->h1"] = net.params["shared"]  # type: ignore[index]
