"""Bad input that used to pass silently or escape as a Python exception (issue 13).

Each case is refused with a :class:`~graphdiff.errors.GraphdiffError` that names
the culprit (node, edge, argument); before the fixes they returned a report that
checked nothing, NaN, or raised ``ZeroDivisionError``, ``OverflowError``,
numpy's ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

import difflib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff.cli import main
from graphdiff.errors import GraphdiffError, GraphError, InputError
from graphdiff.numgrad import GradcheckError


def small_graph() -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("y", op="neuron", activation="tanh", bias=0.1)
    G.add_edge("x", "y", weight=0.5)
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


@pytest.fixture
def net() -> graphdiff.Network:
    return graphdiff.compile(small_graph(), loss="E")


DATA = {"x": np.array([1.0, -2.0, 0.5]), "t": np.array([0.3, 0.1, -0.2])}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- gradcheck never reports ok having checked nothing ----------------------------------


@pytest.mark.parametrize("directions", [-1, 0, True, 2.5, "3"])
def test_gradcheck_refuses_directions_that_check_nothing(net, directions: Any) -> None:
    with pytest.raises(GradcheckError, match=r"directions must be a whole number >= 1"):
        graphdiff.gradcheck(net, net.init_params(seed=0), DATA, directions=directions)


def test_gradcheck_refuses_an_empty_selection_and_a_network_without_parameters(net) -> None:
    with pytest.raises(GradcheckError, match=r"names is empty"):
        graphdiff.gradcheck(net, net.init_params(seed=0), DATA, names=[])
    with pytest.raises(GradcheckError, match=r"'nope'\] are not parameters"):
        graphdiff.gradcheck(net, net.init_params(seed=0), DATA, names=["nope"])
    G = nx.DiGraph([("x", "E"), ("t", "E")])
    G.add_nodes_from(["x", "t"], op="input")
    G.nodes["E"]["op"] = "squared_error"
    G.edges["x", "E"]["port"], G.edges["t", "E"]["port"] = 0, 1
    bare = graphdiff.compile(G, loss="E")
    with pytest.raises(GradcheckError, match=r"no parameters: there is nothing to check"):
        graphdiff.gradcheck(bare, {}, DATA)


@pytest.mark.parametrize("bad", [{"eps": 0.0}, {"eps": -1e-6}, {"eps": float("nan")},
                                 {"atol": -1.0}, {"rtol": "x"}, {"mode": "backward"},
                                 {"mode": ["central"]}, {"seed": -1}])
def test_gradcheck_refuses_nonsense_settings(net, bad: dict[str, Any]) -> None:
    with pytest.raises(GradcheckError, match=next(iter(bad))):
        graphdiff.gradcheck(net, net.init_params(seed=0), DATA, **bad)


@pytest.mark.parametrize("directions", ["0", "-1"])
def test_cli_gradcheck_never_passes_zero_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, directions: str
) -> None:
    path = tmp_path / "m.json"
    graphdiff.save(path, graphdiff.mlp([2, 3, 1]), loss="E")
    code, out, err = run(capsys, "gradcheck", str(path), "--data", "moons", "--n", "10",
                         "--directions", directions)
    assert code == 1 and "0 of 0" not in out
    assert err.startswith("graphdiff: error: directions must be a whole number >= 1")


# -- zero data points ---------------------------------------------------------------------


def test_zero_data_points_are_refused_everywhere(net) -> None:
    empty = {"x": np.zeros(0), "t": np.zeros(0)}
    p = net.init_params(seed=0)
    calls = {
        "error": lambda: net.error(p, empty),
        "forward": lambda: net.forward(p, empty),
        "forward(outputs)": lambda: net.forward(p, {"x": np.zeros(0)}, outputs=["y"]),
        "backward": lambda: net.backward(p, empty),
        "backward(deltas)": lambda: net.backward(p, empty, deltas=True),
        "backward(check_finite)": lambda: net.backward(p, empty, check_finite=True),
        "fit": lambda: graphdiff.fit(net, p, empty, epochs=1),
    }
    for what, call in calls.items():
        with pytest.raises(InputError, match="no data points"):
            call()
        print(what, "refused")


# -- numbers too large for a float or an index --------------------------------------------


def test_huge_integer_weights_and_values_name_the_edge_or_node() -> None:
    G = small_graph()
    G.edges["x", "y"]["weight"] = 10**400
    with pytest.raises(GraphError, match=r"^edge 'x' -> 'y': initial value \(an int of 1329 "
                                         r"bits\) is too large for a float"):
        graphdiff.compile(G, loss="E")
    G = small_graph()
    G.nodes["y"]["bias"] = -(10**400)
    with pytest.raises(GraphError, match=r"^node 'y': initial value -\(an int"):
        graphdiff.compile(G, loss="E")
    for kind in ("param", "const"):
        G = nx.DiGraph([("x", "m"), ("W", "m")])
        G.nodes["x"]["op"] = "input"
        G.nodes["W"].update(op=kind, value=[1.0, 10**400])
        G.nodes["m"]["op"] = "mul"
        with pytest.raises(GraphError, match=r"^node 'W': 'value' has entries too large"):
            graphdiff.compile(G, loss="m")


def index_graph(i: int) -> nx.DiGraph:
    G = nx.DiGraph([("X", "c"), ("c", "y"), ("y", "E"), ("t", "E")])
    G.nodes["X"]["op"] = G.nodes["t"]["op"] = "input"
    G.nodes["c"].update(op="index", i=i)
    G.nodes["y"]["op"] = "neuron"
    G.nodes["E"]["op"] = "squared_error"
    G.edges["y", "E"]["port"], G.edges["t", "E"]["port"] = 0, 1
    return G


def test_index_beyond_int64_names_the_node() -> None:
    with pytest.raises(GraphError, match=r"^node 'c': attribute 'i' = .* does not fit in int64"):
        graphdiff.compile(index_graph(10**30), loss="E")
    net = graphdiff.compile(index_graph(2**63 - 1), loss="E")  # fits; out of range at run time
    with pytest.raises(GraphdiffError):
        net.backward(net.init_params(seed=0), {"X": np.ones((2, 3)), "t": np.ones(2)})


def test_huge_shape_is_refused_at_compile_naming_the_node() -> None:
    G = nx.DiGraph([("x", "m"), ("W", "m")])
    G.nodes["x"]["op"] = "input"
    G.nodes["W"].update(op="param", shape=(2**40, 2**40))
    G.nodes["m"]["op"] = "matmul"
    G.edges["x", "m"]["port"], G.edges["W", "m"]["port"] = 0, 1
    with pytest.raises(GraphError, match=r"^node 'W': 'shape' \(1099511627776, 1099511627776\) "
                                         r"has more entries than a float64 array can hold"):
        graphdiff.compile(G, loss="m")


def huge_int_file(tmp_path: Path, G: nx.DiGraph, key: str, digits: int) -> Path:
    """A model file of G in which the JSON number of ``key`` is 1 followed by ``digits`` 0s."""
    path = tmp_path / "huge.json"
    graphdiff.save(path, G, loss="E")
    text, n = re.subn(rf'("{key}":\s*)-?[0-9.]+', rf"\g<1>1{'0' * digits}", path.read_text())
    assert n == 1
    path.write_text(text)
    return path


@pytest.mark.parametrize(("key", "digits", "culprit"), [
    ("weight", 400, "edge 'x' -> 'y': initial value"),
    ("i", 30, "node 'c': attribute 'i'"),
])
def test_cli_on_huge_integers_in_a_file_prints_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, key: str, digits: int, culprit: str
) -> None:
    G = small_graph() if key == "weight" else index_graph(0)
    path = huge_int_file(tmp_path, G, key, digits)
    assert json.loads(path.read_text())  # valid JSON
    code, out, err = run(capsys, "info", str(path))
    assert code == 0 and err == "" and f"does not compile: {culprit}" in out
    code, out, err = run(capsys, "gradcheck", str(path), "--data", "moons", "--n", "5")
    assert code == 1 and out == "" and err.startswith(f"graphdiff: error: {culprit}")
    assert "Traceback" not in err


# -- arguments of the wrong kind ----------------------------------------------------------


def test_arguments_of_the_wrong_kind_are_named(net) -> None:
    p = net.init_params(seed=0)
    with pytest.raises(InputError, match=r"^inputs must be a mapping .* got NoneType"):
        net.backward(p, None)
    with pytest.raises(InputError, match=r"^params must be a mapping .* got list"):
        net.backward([1.0], DATA)
    with pytest.raises(InputError, match=r"^inputs must be a mapping .* got int"):
        net.error(p, 5)
    with pytest.raises(InputError, match=r"^inputs must be a mapping .* got str"):
        net.forward(p, "x")
    with pytest.raises(InputError, match=r"^outputs: unknown or pruned output node\(s\) \[\["):
        net.forward(p, DATA, outputs=[["z"]])
    with pytest.raises(InputError, match=r"^outputs must be a list of node names, got 5"):
        net.forward(p, DATA, outputs=5)
    with pytest.raises(GradcheckError, match=r"^params must be a mapping"):
        graphdiff.gradcheck(net, None, DATA)


# -- found by the API fuzz (tests/test_fuzz_api.py) ------------------------------------------


def test_outputs_that_are_arrays_or_unhashable_are_named(net) -> None:
    p = net.init_params(seed=0)
    with pytest.raises(InputError, match=r"^outputs must be a list of node names"):
        net.forward(p, DATA, outputs=np.array(None, dtype=object))  # 0-d: not iterable
    with pytest.raises(InputError, match=r"^outputs: unknown or pruned output node"):
        net.forward(p, DATA, outputs=[np.array([1.0])])  # unhashable


@pytest.mark.parametrize("seed", [-1, "", 0.0, object(), True])
def test_init_params_refuses_a_seed_that_is_not_a_whole_number(net, seed: Any) -> None:
    with pytest.raises(InputError, match=r"^seed must be None or a whole number >= 0"):
        net.init_params(seed)


def test_array_valued_op_and_init_are_named() -> None:
    G = small_graph()
    G.nodes["y"]["op"] = np.array([], dtype=np.float32)
    with pytest.raises(GraphError, match=r"^node 'y': op must be an op name \(str\)"):
        graphdiff.compile(G, loss="E")
    G = nx.DiGraph([("x", "m"), ("W", "m")])
    G.nodes["x"]["op"] = "input"
    G.nodes["W"].update(op="param", shape=(2,), init=np.zeros(2))
    G.nodes["m"]["op"] = "mul"
    with pytest.raises(GraphError, match=r"^node 'W': unknown init"):
        graphdiff.compile(G, loss="m")


# -- misspelled attributes (issue 13, item 5) ------------------------------------------------


def _sin_op_graph(**attrs: Any) -> nx.DiGraph:
    G = nx.DiGraph([("x", "s"), ("s", "y")])
    G.nodes["x"]["op"] = "input"
    G.nodes["s"].update(op="sin", **attrs)
    G.nodes["y"]["op"] = "neuron"
    return G


@pytest.mark.parametrize(("where", "typo", "meant", "reader"), [
    ("node", "activaton", "activation", "a neuron with activation 'tanh'"),
    ("node", "bais", "bias", "a neuron with activation 'tanh'"),
    ("edge", "wieght", "weight", "an edge into a neuron"),
    ("edge", "parm", "param", "an edge into a neuron"),
])
def test_misspelled_neuron_and_edge_attributes_warn(
    where: str, typo: str, meant: str, reader: str
) -> None:
    G = small_graph()
    (G.nodes["y"] if where == "node" else G.edges["x", "y"])[typo] = 1.0
    culprit = "node 'y'" if where == "node" else "edge 'x' -> 'y'"
    with pytest.warns(graphdiff.GraphWarning, match=re.escape(
        f"{culprit}: attribute {typo!r} is not read by {reader} and is ignored; "
        f"did you mean {meant!r}?"
    )):
        graphdiff.compile(G, loss="E")


def test_misspelled_activation_and_op_attributes_warn() -> None:
    G = small_graph()
    G.nodes["y"].update(activation="sin", scal=100.0)
    with pytest.warns(graphdiff.GraphWarning, match=r"node 'y': attribute 'scal' is not read "
                      r"by a neuron with activation 'sin' .* did you mean 'scale'\?"):
        graphdiff.compile(G, loss="E")
    with pytest.warns(graphdiff.GraphWarning, match=r"node 's': attribute 'scal' is not read "
                      r"by op 'sin' .* did you mean 'scale'\?"):
        graphdiff.compile(_sin_op_graph(scal=2.0), loss="y")
    G = nx.DiGraph([("x", "m"), ("W", "m")])
    G.nodes["x"]["op"] = "input"
    G.nodes["W"].update(op="param", shap=(2,), value=[1.0, 2.0])
    G.nodes["m"]["op"] = "mul"
    with pytest.warns(graphdiff.GraphWarning, match=r"node 'W': attribute 'shap' is not read "
                      r"by a param node .* did you mean 'shape'\?"):
        graphdiff.compile(G, loss="m")


def test_attributes_kept_for_users_and_far_names_stay_silent() -> None:
    G = small_graph()
    for n in G:
        G.nodes[n].update(pos=(0.0, 1.0), label="L", color="red", notes="mine", foo=1)
    for e in G.edges:
        G.edges[e].update(label="e", color="blue", style="dashed", xyz=2)
    G.nodes["y"]["scale"] = 3.0  # a real attribute of sin, not of tanh: far from tanh's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphdiff.compile(G, loss="E")
        graphdiff.compile(_sin_op_graph(scale=2.0, label="sine", pos=(1, 2)), loss="y")


# attribute names for the random graphs below: read ones, misspellings of them, names
# kept for users, private and far ones, and a non-string key
ATTR_POOL = ["activaton", "bais", "scal", "scale", "wieght", "parm", "prot", "shap", "valu",
             "label", "pos", "_mine", "foo", "opp", 7]
EDGE_POOL = ["wieght", "parm", "prot", "label", "foo", "_x", 7]


def _random_attributed_graph(seed: int, multi: bool) -> nx.DiGraph:
    """Inputs, neurons (tanh, sin), sin and mul ops, a param and a const: valid for
    compile, with random extra attributes on nodes and edges."""
    rng = np.random.default_rng(seed)
    G: nx.DiGraph = nx.MultiDiGraph() if multi else nx.DiGraph()
    G.add_nodes_from(["x0", "x1", "t"], op="input")
    G.add_node("W", op="param", shape=())
    G.add_node("c", op="const", value=2.0)
    made = ["x0", "x1"]
    for i in range(int(rng.integers(4, 25))):
        v = f"n{i}"
        if rng.random() < 0.25:  # an op node
            if rng.random() < 0.5:
                G.add_node(v, op="sin")
                G.add_edge(made[int(rng.integers(len(made)))], v, port=0)
            else:
                G.add_node(v, op="mul")
                G.add_edge(made[int(rng.integers(len(made)))], v, port=0)
                G.add_edge("W" if rng.random() < 0.5 else "c", v, port=1)
        else:
            G.add_node(v, op="neuron", activation=["tanh", "sin"][int(rng.integers(2))])
            for u in set(rng.choice(made, size=int(rng.integers(1, 4)))):
                G.add_edge(str(u), v)
                if multi and rng.random() < 0.3:
                    G.add_edge(str(u), v)  # a parallel edge: its own weight
        made.append(v)
    G.add_node("y", op="neuron", activation="identity")
    for u in made[2:]:
        G.add_edge(u, "y")
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    for n in G:
        for _ in range(int(rng.integers(0, 3)) if rng.random() < 0.4 else 0):
            G.nodes[n][ATTR_POOL[int(rng.integers(len(ATTR_POOL)))]] = 1.0
    for e in (G.edges(keys=True) if multi else G.edges):
        if rng.random() < 0.2:
            G.edges[e][EDGE_POOL[int(rng.integers(len(EDGE_POOL)))]] = 1.0
    return G


def _expected_warnings(G: nx.DiGraph, net: graphdiff.Network) -> list[str]:
    """The misspelling warnings compile should give, by hand: for each node of the plan
    in order, its attributes that its kind does not read and that difflib finds close
    to one it does, then those of the edges into it (neurons: param, weight; ops: port)."""
    from graphdiff.registry import get_op

    out = []

    def look(attrs: dict, reads: set[str], where: str, reader: str) -> None:
        for k in attrs:
            if not isinstance(k, str) or k in reads or k.startswith("_") or k in (
                "label", "pos"
            ):
                continue
            close = difflib.get_close_matches(k, sorted(reads), n=1, cutoff=0.75)
            if close:
                out.append(f"{where}: attribute {k!r} is not read by {reader} and is "
                           f"ignored; did you mean {close[0]!r}?")

    for n in net.nodes:
        data = G.nodes[n]
        if data["op"] == "neuron":
            act = data.get("activation", "identity")
            reads = {"op", "activation", "bias", *get_op(act).attrs.model_fields}
            look(data, reads, f"node {n!r}", f"a neuron with activation {act!r}")
            edge_reads, edge_reader = {"param", "weight"}, "an edge into a neuron"
        elif data["op"] in ("input", "param", "const"):
            reads = {"input": {"op"}, "param": {"op", "shape", "value", "init"},
                     "const": {"op", "value"}}[data["op"]]
            look(data, reads, f"node {n!r}", f"a {data['op']} node")
            continue
        else:
            reads = {"op", *get_op(data["op"]).attrs.model_fields}
            look(data, reads, f"node {n!r}", f"op {data['op']!r}")
            edge_reads, edge_reader = {"port"}, "an edge into an op"
        for u, _, d in G.in_edges(n, data=True):
            look(d, edge_reads, f"edge {u!r} -> {n!r}", edge_reader)
    return out


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("seed", range(15))
def test_misspelling_warnings_are_those_a_plain_check_gives(seed: int, multi: bool) -> None:
    """compile's fast misspelling check (it looks only at nodes that can warn) gives
    exactly the warnings, in order, of a node-by-node, edge-by-edge check."""
    G = _random_attributed_graph(seed, multi)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = graphdiff.compile(G, loss="E")
    got = [str(w.message) for w in caught if issubclass(w.category, graphdiff.GraphWarning)]
    assert got == _expected_warnings(G, net)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seed": None}, r"^seed must be an int >= 0, got None"),
    ({"seed": -1}, r"^seed must be an int >= 0, got -1"),
    ({"params": -6.7e16}, r"^params must map parameter names to values, got float"),
])
def test_fit_names_a_bad_seed_or_params(net, kwargs: dict[str, Any], match: str) -> None:
    from graphdiff.train import FitError

    call = {"params": net.init_params(seed=0), **kwargs}
    with pytest.raises(FitError, match=match):
        graphdiff.fit(net, call.pop("params"), DATA, epochs=1, **call)


def test_fit_names_a_parameter_of_the_wrong_shape(net) -> None:
    from graphdiff.errors import ShapeError

    G = graphdiff.mlp([2, 3, 1], notation="op", loss="squared_error")
    op_net = graphdiff.compile(G, loss="E")
    p = dict(op_net.init_params(seed=0))
    p["W2"] = np.ones(2)
    data = {"x": np.ones((3, 2)), "t": np.zeros(3)}
    with pytest.raises(ShapeError, match=r"parameter 'W2' must have shape \(3, 1\)"):
        graphdiff.fit(op_net, p, data, epochs=1)


@pytest.mark.parametrize("history", [{"": None}, 5, ["row"]])
def test_checkpoint_history_that_is_not_rows_is_a_format_error(
    tmp_path: Path, history: Any
) -> None:
    ckpt = graphdiff.Checkpoint(params={}, history=history)
    with pytest.raises(graphdiff.GraphFormatError, match=r"history"):
        graphdiff.save_checkpoint(tmp_path / "ck.json", ckpt)
    assert not (tmp_path / "ck.json").exists()


@pytest.mark.parametrize("kw", [{"target_loss": [0.1]}, {"target_accuracy": "0.9"}])
def test_fit_names_a_target_that_is_not_a_number(net, kw: dict[str, Any]) -> None:
    from graphdiff.train import FitError

    with pytest.raises(FitError, match=rf"^{next(iter(kw))} must be a number"):
        graphdiff.fit(net, net.init_params(seed=0), DATA, epochs=1, **kw)


@pytest.mark.parametrize("callbacks", [[[]], 5, "f"])
def test_fit_names_callbacks_that_are_not_functions(net, callbacks: Any) -> None:
    from graphdiff.train import FitError

    with pytest.raises(FitError, match=r"^callbacks must be a list of functions"):
        graphdiff.fit(net, net.init_params(seed=0), DATA, epochs=1, callbacks=callbacks)


def test_an_empty_glorot_parameter_initialises_without_dividing_by_zero() -> None:
    G = nx.DiGraph([("x", "m"), ("W", "m")])
    G.nodes["x"]["op"] = "input"
    G.nodes["W"].update(op="param", shape=(0, 0), init="glorot")
    G.nodes["m"]["op"] = "mul"
    p = graphdiff.compile(G, loss="m").init_params(seed=0)
    assert p["W"].shape == (0, 0)


@pytest.mark.parametrize("call", ["load", "load_checkpoint", "save_params"])
def test_a_path_with_a_nul_byte_is_a_file_error(tmp_path: Path, call: str) -> None:
    from graphdiff.errors import FileError

    args = ({},) if call == "save_params" else ()
    with pytest.raises(FileError, match=r"expected a file path"):
        getattr(graphdiff, call)(str(tmp_path / "a\x00b"), *args)
