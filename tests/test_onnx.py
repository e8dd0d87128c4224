"""ONNX export and import, checked against onnxruntime (an independent implementation)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff.registry import REGISTRY, get_op, scoped_registry

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
gonnx = pytest.importorskip("graphdiff.onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402



def run_ort(path: Path, inputs: dict[str, Any]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(sess.run(None, inputs))


def max_diff(a: Any, b: Any) -> float:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0


# float64 networks export float64 models, float32 networks float32 ones
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def tolerance(dtype: Any, scale: Any = 1.0) -> float:
    """How far onnxruntime may be from graphdiff: rounding of the float type, relative
    to the values' size (``scale``, at least 1)."""
    size = max(1.0, float(np.max(np.abs(scale), initial=0.0)))
    return (1e-9 if np.dtype(dtype) == np.float64 else 1e-5) * size


def assert_model_dtype(path: Path, dtype: Any) -> None:
    """Every float the model declares or holds is of ``dtype`` (with int64 for indices
    and shapes), and onnxruntime reads its inputs and outputs as that type."""
    model = onnx.load(str(path))
    elem = TensorProto.FLOAT if np.dtype(dtype) == np.float32 else TensorProto.DOUBLE
    for v in [*model.graph.input, *model.graph.output]:
        assert v.type.tensor_type.elem_type == elem, v.name
    tensors = [*model.graph.initializer,
               *(a.t for n in model.graph.node for a in n.attribute
                 if a.type == onnx.AttributeProto.TENSOR)]
    assert tensors and {t.data_type for t in tensors} <= {elem, TensorProto.INT64}
    assert any(t.data_type == elem for t in tensors)
    casts = {a.i for n in model.graph.node if n.op_type == "Cast" for a in n.attribute}
    assert casts <= {elem, TensorProto.INT64}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {v.type for v in [*sess.get_inputs(), *sess.get_outputs()]}
    assert declared == {"tensor(float)" if elem == TensorProto.FLOAT else "tensor(double)"}


def test_import_graphdiff_does_not_import_onnx() -> None:
    code = "import sys, graphdiff; graphdiff.mlp([2, 1]); print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _params(net: Any, seed: int) -> dict[str, Any]:
    # nonzero biases, so that a missing bias would show
    rng = np.random.default_rng(seed)
    return {k: v + rng.uniform(-0.5, 0.5, np.shape(v)) for k, v in net.init_params(seed).items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("notation", ["op", "neuron"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_export_mlp_matches_onnxruntime(
    tmp_path: Path, notation: str, activation: str, dtype: Any
) -> None:
    G = graphdiff.mlp([3, 6, 5, 2], activation, notation=notation)  # type: ignore[arg-type]
    net = graphdiff.compile(G, loss="E", dtype=dtype)
    params = _params(net, 1)
    path = tmp_path / "m.onnx"
    gonnx.export(net, params, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    names = [i.name for i in model.graph.input]
    # the loss's target t is not an input; the first output is the prediction y
    assert "t" not in names and [o.name for o in model.graph.output] == ["y"]
    for v in [*model.graph.input, *model.graph.output]:
        assert v.type.tensor_type.shape.dim[0].dim_param == "N"  # dynamic batch axis
    assert_model_dtype(path, dtype)
    x = np.random.default_rng(2).standard_normal((17, 3)).astype(dtype)
    inputs = {"x": x} if notation == "op" else {f"x{k + 1}": x[:, k] for k in range(3)}
    assert sorted(names) == sorted(inputs)
    (got,) = run_ort(path, inputs)
    want = net.forward(params, inputs, outputs=["y"])["y"]
    assert got.dtype == want.dtype == dtype
    diff = max_diff(got, want)
    print(f"export {notation} {activation} {np.dtype(dtype)}: "
          f"max |onnxruntime - graphdiff| = {diff:.2e}")
    assert diff <= tolerance(dtype, want)


def test_neuron_levels_export_as_matrix_products(tmp_path: Path) -> None:
    net = graphdiff.compile(graphdiff.mlp([4, 8, 8, 1], "tanh"), loss="E")
    gonnx.export(net, _params(net, 0), tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    ops = [n.op_type for n in model.graph.node]
    # one MatMul and one Tanh per layer, not one per neuron
    assert ops.count("MatMul") == 3 and ops.count("Tanh") == 2
    shapes = sorted(tuple(t.dims) for t in model.graph.initializer)
    assert shapes == [(1,), (4, 8), (8,), (8,), (8, 1), (8, 8)]


def _shared_op_net(dtype: Any = np.float64) -> Any:
    """x @ W, tanh, @ W again: one tensor parameter used twice."""
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("W", op="param", shape=(3, 3))
    G.add_node("b", op="param", shape=(3,))
    G.add_node("z1", op="matmul")
    G.add_node("s1", op="add")
    G.add_node("h", op="tanh")
    G.add_node("z2", op="matmul")
    G.add_node("y", op="add")
    G.add_edges_from([("x", "z1", {"port": 0}), ("W", "z1", {"port": 1}), ("z1", "s1"),
                      ("b", "s1"), ("s1", "h"), ("h", "z2", {"port": 0}),
                      ("W", "z2", {"port": 1}), ("z2", "y"), ("b", "y")])
    G.add_node("t", op="input")
    G.add_node("E", op="squared_error")
    G.add_edges_from([("y", "E", {"port": 0}), ("t", "E", {"port": 1})])
    return graphdiff.compile(G, loss="E", dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["lecture", "tensor"])
def test_shared_parameters_stay_one_initializer(tmp_path: Path, which: str, dtype: Any) -> None:
    rng = np.random.default_rng(5)
    if which == "lecture":
        net = graphdiff.compile(graphdiff.lecture_network(shared=True), loss="E", dtype=dtype)
        inputs = {"x1": rng.standard_normal(11).astype(dtype),
                  "x2": rng.standard_normal(11).astype(dtype)}
        out = "a7"
    else:
        net = _shared_op_net(dtype)
        inputs = {"x": rng.standard_normal((11, 3)).astype(dtype)}
        out = "y"
    params = _params(net, 4)
    gonnx.export(net, params, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    inits = [t.name for t in model.graph.initializer]
    assert sorted(inits) == sorted(params)  # u and v (or W and b), each once
    assert_model_dtype(tmp_path / "m.onnx", dtype)
    (got,) = run_ort(tmp_path / "m.onnx", inputs)
    want = net.forward(params, inputs, outputs=[out])[out]
    diff = max_diff(got, want)
    print(f"export shared ({which}) {np.dtype(dtype)}: "
          f"max |onnxruntime - graphdiff| = {diff:.2e}")
    assert diff <= tolerance(dtype, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_levels_sparse_edges_and_duplicate_edges(tmp_path: Path, dtype: Any) -> None:
    """Neurons reading some of an earlier level, inputs and a shared weight; a
    MultiDiGraph with two edges between one pair of neurons."""
    G = nx.MultiDiGraph()
    G.add_nodes_from(["x1", "x2", "x3"], op="input")
    hidden = [f"h{k}" for k in range(5)]
    G.add_nodes_from(hidden, op="neuron", activation="sigmoid", bias=0.1)
    for k, h in enumerate(hidden):
        G.add_edge("x1", h)
        G.add_edge(["x2", "x3"][k % 2], h, param="s" if k < 2 else f"w{k}")
    G.add_nodes_from(["o1", "o2"], op="neuron", activation="identity")
    G.add_edge("h0", "o1", param="s")
    G.add_edge("h0", "o1")  # a second edge between the same two nodes
    G.add_edge("h3", "o1")
    G.add_edge("h1", "o2")
    G.add_edge("x3", "o2")
    G.add_node("y", op="stack")
    G.add_edge("o1", "y", port=0)
    G.add_edge("o2", "y", port=1)
    net = graphdiff.compile(G, dtype=dtype)
    params = _params(net, 7)
    gonnx.export(net, params, tmp_path / "m.onnx", outputs=["y", "h2"])
    assert_model_dtype(tmp_path / "m.onnx", dtype)
    rng = np.random.default_rng(8)
    inputs = {n: rng.standard_normal(9).astype(dtype) for n in ("x1", "x2", "x3")}
    got = run_ort(tmp_path / "m.onnx", inputs)
    want = net.forward(params, inputs, outputs=["y", "h2"])
    diff = max(max_diff(got[0], want["y"]), max_diff(got[1], want["h2"]))
    print(f"export mixed levels {np.dtype(dtype)}: max |onnxruntime - graphdiff| = {diff:.2e}")
    assert diff <= tolerance(dtype, want["y"])
    assert "s" in [t.name for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer]


def _op_samples() -> list[Any]:
    cases = []
    for name in REGISTRY.names():
        op = get_op(name)
        if not op.builtin or op.samples is None:
            continue
        for k, (xs, attrs) in enumerate(op.samples(np.random.default_rng(0))):
            cases.append(pytest.param(name, xs, attrs, id=f"{name}-{k}"))
    return cases


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "xs", "attrs"), _op_samples())
def test_every_builtin_op_exports(
    tmp_path: Path, name: str, xs: Any, attrs: Any, dtype: Any
) -> None:
    """Each built-in op's lowering, on its own gradient-check samples, against its
    forward (a float32 network's: on the samples rounded to float32)."""
    op = get_op(name)
    assert op.onnx is not None, f"built-in op {name!r} has no ONNX lowering"
    G = nx.DiGraph()
    for i, x in enumerate(xs):
        G.add_node(f"c{i}", op="const", value=np.asarray(x, dtype=np.float64))
    G.add_node("y", op=name, **attrs)
    G.add_edges_from((f"c{i}", "y", {"port": i}) for i in range(len(xs)))
    net = graphdiff.compile(G, dtype=dtype)
    gonnx.export(net, {}, tmp_path / "m.onnx", outputs=["y"])
    assert_model_dtype(tmp_path / "m.onnx", dtype)
    (got,) = run_ort(tmp_path / "m.onnx", {})
    want = op(*(np.asarray(x, dtype=dtype) for x in xs), **attrs)
    assert got.dtype == dtype
    assert max_diff(got, want) <= tolerance(dtype, want)


def test_an_op_without_a_lowering_is_named(tmp_path: Path) -> None:
    with scoped_registry():
        graphdiff.register_op("cube_no_onnx", lambda x: x**3,
                              vjp=lambda g, out, x: (3 * g * x**2,), elementwise=True)
        G = graphdiff.mlp([2, 3, 1], "cube_no_onnx", notation="op")
        net = graphdiff.compile(G, loss="E")
        with pytest.raises(graphdiff.GraphdiffError, match=r"'cube_no_onnx'.*no ONNX lowering"):
            gonnx.export(net, net.init_params(0), tmp_path / "m.onnx")
        assert not (tmp_path / "m.onnx").exists()


def test_a_third_party_op_exports_with_its_lowering(tmp_path: Path) -> None:
    def lower(b: Any, x: str) -> str:
        name: str = b.node("Mul", [b.node("Mul", [x, x]), x])
        return name

    with scoped_registry():
        graphdiff.register_op("cube_onnx", lambda x: x**3, vjp=lambda g, out, x: (3 * g * x**2,),
                              elementwise=True, onnx=lower)
        net = graphdiff.compile(graphdiff.mlp([2, 4, 4, 1], "cube_onnx"), loss="E")
        params = _params(net, 3)
        gonnx.export(net, params, tmp_path / "m.onnx")
        rng = np.random.default_rng(1)
        inputs = {"x1": rng.standard_normal(5), "x2": rng.standard_normal(5)}
        (got,) = run_ort(tmp_path / "m.onnx", inputs)
        assert max_diff(got, net.forward(params, inputs, outputs=["y"])["y"]) <= 1e-9


def test_export_refuses_bad_arguments(tmp_path: Path) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 1], notation="op"), loss="E")
    params = net.init_params(0)
    with pytest.raises(graphdiff.GraphdiffError, match="opset"):
        gonnx.export(net, params, tmp_path / "m.onnx", opset=7)
    with pytest.raises(graphdiff.InputError, match="nope"):
        gonnx.export(net, params, tmp_path / "m.onnx", outputs=["nope"])
    with pytest.raises(graphdiff.InputError, match="missing parameter"):
        gonnx.export(net, {}, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# -- import ---------------------------------------------------------------------------


def _imported_mlp(path: Path, dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """A 3-5-4 MLP as PyTorch writes one: Gemm (transB=1), Tanh, MatMul, Add, Softmax."""
    rng = np.random.default_rng(0)
    weights = {"fc1.weight": rng.standard_normal((5, 3)), "fc1.bias": rng.standard_normal(5),
               "W2": rng.standard_normal((5, 4)), "b2": rng.standard_normal(4)}
    weights = {k: v.astype(dtype) for k, v in weights.items()}
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Tanh", ["h"], ["a"]),
        helper.make_node("MatMul", ["a", "W2"], ["z"]),
        helper.make_node("Add", ["z", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["p"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", elem, ["N", 3])],
        [helper.make_tensor_value_info("p", elem, ["N", 4])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return weights


def test_import_mlp_matches_onnxruntime(tmp_path: Path) -> None:
    weights = _imported_mlp(tmp_path / "mlp.onnx")
    G, params = gonnx.load(tmp_path / "mlp.onnx")
    assert {n: d["op"] for n, d in G.nodes(data=True)} == {
        "x": "input", "fc1.weight": "param", "fc1.bias": "param", "h:matmul": "matmul",
        "h": "add", "a": "tanh", "W2": "param", "z": "matmul", "b2": "param",
        "logits": "add", "p": "softmax"}
    assert G.graph["outputs"] == ["p"] and G.graph["dtype"] == "float64"
    np.testing.assert_array_equal(params["fc1.weight"], weights["fc1.weight"].T)
    net = graphdiff.compile(G)
    assert net.loss is None and len(net.nodes) == G.number_of_nodes()
    x = np.random.default_rng(3).standard_normal((20, 3))
    got = net.forward(params, {"x": x}, outputs=["p"])["p"]
    (want,) = run_ort(tmp_path / "mlp.onnx", {"x": x})
    diff = max_diff(got, want)
    print(f"import Gemm/Tanh/MatMul/Add/Softmax: max |graphdiff - onnxruntime| = {diff:.2e}")
    assert diff <= 1e-12


def test_imported_network_is_forward_only_until_a_loss_is_added(tmp_path: Path) -> None:
    _imported_mlp(tmp_path / "mlp.onnx")
    G, params = gonnx.load(tmp_path / "mlp.onnx")
    x = np.random.default_rng(3).standard_normal((8, 3))
    net = graphdiff.compile(G)
    for call in (lambda: net.backward(params, {"x": x}),
                 lambda: graphdiff.fit(net, params, {"x": x}, epochs=1)):
        with pytest.raises(graphdiff.GraphdiffError, match="needs a loss"):
            call()
    G.add_node("t", op="input")
    G.add_node("E", op="squared_error")
    G.add_edge("p", "E", port=0)
    G.add_edge("t", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    t = np.eye(4)[np.arange(8) % 4]
    report = graphdiff.gradcheck(net, params, {"x": x, "t": t})
    assert report.ok
    result = graphdiff.fit(net, params, {"x": x, "t": t}, epochs=30, optimizer=graphdiff.SGD(0.5))
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_import_keeps_float32(tmp_path: Path) -> None:
    _imported_mlp(tmp_path / "mlp.onnx", np.float32)
    G, params = gonnx.load(tmp_path / "mlp.onnx")
    assert G.graph["dtype"] == "float32"
    assert {v.dtype for v in params.values()} == {np.dtype(np.float32)}
    x = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    got = graphdiff.compile(G).forward(params, {"x": x}, outputs=["p"])["p"]
    (want,) = run_ort(tmp_path / "mlp.onnx", {"x": x})
    assert max_diff(got, want) <= 1e-5  # onnxruntime computes in float32
    # compiled with the model's dtype: a float32 network, computing as onnxruntime does
    net = graphdiff.compile(G, dtype=G.graph["dtype"])
    assert net.dtype == np.float32
    got32 = net.forward(params, {"x": x}, outputs=["p"])["p"]
    assert got32.dtype == np.float32
    diff = max_diff(got32, want)
    print(f"import float32 Gemm/Tanh/MatMul/Add/Softmax: max |graphdiff - onnxruntime| = "
          f"{diff:.2e}")
    assert diff <= 1e-6
    # and out again: a float32 model, the same numbers
    gonnx.export(net, params, tmp_path / "again.onnx")
    assert_model_dtype(tmp_path / "again.onnx", np.float32)
    (again,) = run_ort(tmp_path / "again.onnx", {"x": x})
    assert max_diff(again, want) <= 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["op", "neuron", "lecture"])
def test_round_trip_export_load(tmp_path: Path, kind: str, dtype: Any) -> None:
    if kind == "lecture":
        G0 = graphdiff.lecture_network(shared=True)
    else:
        G0 = graphdiff.mlp([3, 5, 2], "tanh", notation=kind)  # type: ignore[arg-type]
    net = graphdiff.compile(G0, loss="E", dtype=dtype)
    params = _params(net, 9)
    gonnx.export(net, params, tmp_path / "m.onnx")
    G, loaded = gonnx.load(tmp_path / "m.onnx")
    (out,) = G.graph["outputs"]
    assert G.graph["dtype"] == np.dtype(dtype).name
    assert {np.asarray(v).dtype for v in loaded.values()} == {np.dtype(dtype)}
    rng = np.random.default_rng(4)
    inputs = {n: rng.standard_normal((10, 3) if n == "x" else 10).astype(dtype)
              for n in net.inputs if n != "t"}
    again = graphdiff.compile(G, dtype=G.graph["dtype"])
    assert again.dtype == dtype
    got = again.forward(loaded, inputs, outputs=[out])[out]
    want = net.forward(params, inputs, outputs=[out])[out]
    assert got.dtype == want.dtype == dtype
    # float32: the same float32 parameters, summed in another order (a level's MatMul)
    assert max_diff(got, want) <= (1e-12 if dtype == np.float64 else 1e-6)


# -- bad input ------------------------------------------------------------------------


def _model(nodes: list[Any], inits: list[Any] = (), inputs: Any = None) -> Any:  # type: ignore[assignment]
    inputs = [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 3])] if inputs is None \
        else inputs
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
                              list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def _refused(path: Path, code: str, match: str, **kw: Any) -> graphdiff.GraphFormatError:
    with pytest.raises(graphdiff.GraphFormatError, match=match) as info:
        gonnx.load(path, **kw)
    assert info.value.code == code, info.value
    return info.value


def test_refuses_unknown_op_naming_node_and_type(tmp_path: Path) -> None:
    model = _model([helper.make_node("Tanh", ["x"], ["h"], name="first"),
                    helper.make_node("Conv", ["h", "h"], ["y"], name="conv1")])
    onnx.save(model, str(tmp_path / "m.onnx"))
    err = _refused(tmp_path / "m.onnx", "unknown_op", "'conv1' has op type 'Conv'")
    assert err.location == "graph.node[1]"
    model = _model([helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")])
    onnx.save(model, str(tmp_path / "m.onnx"))
    _refused(tmp_path / "m.onnx", "unknown_op", "com.microsoft::FusedMatMul")


def test_refuses_truncated_and_non_onnx_files(tmp_path: Path) -> None:
    _imported_mlp(tmp_path / "mlp.onnx")
    data = (tmp_path / "mlp.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "cut.onnx", "not_onnx", "not an ONNX model")
    (tmp_path / "empty.onnx").write_bytes(b"")
    _refused(tmp_path / "empty.onnx", "not_onnx", "not an ONNX model")
    G = graphdiff.mlp([2, 1])
    graphdiff.save(tmp_path / "model.json", G, loss="E")
    _refused(tmp_path / "model.json", "not_onnx", "not an ONNX model")
    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(tmp_path / "noise.onnx", "not_onnx", "not an ONNX model")


def test_refuses_huge_dims_before_decoding(tmp_path: Path) -> None:
    huge = TensorProto(name="W", data_type=TensorProto.DOUBLE, dims=[2**40, 2**20], raw_data=b"")
    model = _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [huge])
    onnx.save(model, str(tmp_path / "m.onnx"))
    err = _refused(tmp_path / "m.onnx", "too_large", "'W' has shape")
    assert err.location == "graph.initializer[0]"
    lying = TensorProto(name="W", data_type=TensorProto.DOUBLE, dims=[3, 4], raw_data=b"\0" * 8)
    onnx.save(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [lying]),
              str(tmp_path / "m.onnx"))
    _refused(tmp_path / "m.onnx", "payload_mismatch", "declares shape")
    small = helper.make_tensor("W", TensorProto.DOUBLE, [3, 4], vals=np.zeros(12))
    onnx.save(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [small]),
              str(tmp_path / "m.onnx"))
    _refused(tmp_path / "m.onnx", "too_large", "max_elements",
             limits=graphdiff.LoadLimits(max_elements=10))
    wide = [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 2**62])]
    onnx.save(_model([helper.make_node("Tanh", ["x"], ["y"])], inputs=wide),
              str(tmp_path / "m.onnx"))
    _refused(tmp_path / "m.onnx", "too_large", "input 'x'")


def test_refuses_external_data(tmp_path: Path) -> None:
    w = helper.make_tensor("W", TensorProto.DOUBLE, [3, 3], vals=np.zeros(9).tobytes(), raw=True)
    onnx.external_data_helper.set_external_data(w, location="/etc/passwd")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    model = _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [w])
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    err = _refused(tmp_path / "m.onnx", "external_data", "'W' refers to external data")
    assert err.location == "graph.initializer[0]"


def test_deep_graphs(tmp_path: Path) -> None:
    # subgraphs nested 300 deep, written byte by byte (protobuf's Python API refuses to
    # build them): refused by the parser's depth limit, as a file that is not ONNX
    def field(number: int, payload: bytes) -> bytes:
        def varint(n: int) -> bytes:
            out = b""
            while n >= 0x80:
                out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
            return out + bytes([n])

        return varint(number << 3 | 2) + varint(len(payload)) + payload

    node = field(4, b"If")  # NodeProto.op_type
    for _ in range(300):  # NodeProto.attribute -> AttributeProto.g -> GraphProto.node
        node = field(4, b"If") + field(5, field(1, b"then_branch") + field(6, field(1, node)))
    model = bytes([0x08, 0x08]) + field(7, field(1, node))  # ir_version 8, graph
    (tmp_path / "m.onnx").write_bytes(model)
    _refused(tmp_path / "m.onnx", "not_onnx", "not an ONNX model")
    # a long chain imports (nothing recursive) unless it passes LoadLimits.max_nodes
    chain = [helper.make_node("Tanh", [f"h{k}" if k else "x"], [f"h{k + 1}"]) for k in range(3000)]
    chain.append(helper.make_node("Identity", ["h3000"], ["y"]))
    onnx.save(_model(chain), str(tmp_path / "chain.onnx"))
    G, _ = gonnx.load(tmp_path / "chain.onnx")
    x = np.linspace(-1, 1, 4)[:, None] * np.ones(3)
    want = x
    for _ in range(3000):
        want = np.tanh(want)
    got = graphdiff.compile(G).forward({}, {"x": x}, outputs=["y"])["y"]
    assert max_diff(got, want) == 0.0
    _refused(tmp_path / "chain.onnx", "too_large", "max_nodes",
             limits=graphdiff.LoadLimits(max_nodes=100))


def test_refuses_unimported_attributes_and_forms(tmp_path: Path) -> None:
    cases = [
        (helper.make_node("Gemm", ["x", "x"], ["y"], transA=1), "transA"),
        (helper.make_node("Softmax", ["x"], ["y"], axis=1, foo=2), "'foo'"),
        (helper.make_node("Reshape", ["x", "x"], ["y"]), "int64 constant"),
        (helper.make_node("Tanh", ["nowhere"], ["y"]), "'nowhere'"),
    ]
    for node, match in cases:
        onnx.save(_model([node]), str(tmp_path / "m.onnx"))
        with pytest.raises(graphdiff.GraphFormatError, match=match):
            gonnx.load(tmp_path / "m.onnx")


def test_cli_info_reads_onnx_and_never_shows_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphdiff.cli import main

    _imported_mlp(tmp_path / "mlp.onnx")
    assert main(["info", str(tmp_path / "mlp.onnx")]) == 0
    out = capsys.readouterr().out
    assert "fc1.weight" in out and "softmax" in out
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1]), loss="E", dtype=np.float32)
    gonnx.export(net, net.init_params(0), tmp_path / "f32.onnx")
    assert main(["info", str(tmp_path / "f32.onnx")]) == 0
    assert "dtype float32" in capsys.readouterr().out
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    assert main(["info", str(tmp_path / "bad.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphdiff: error:") and "Traceback" not in err


def test_corrupted_files_give_only_graph_format_errors(tmp_path: Path) -> None:
    """Some hundred random byte changes to two valid models: each one loads (and
    compiles or is refused by compile) or is refused with a GraphFormatError."""
    _imported_mlp(tmp_path / "a.onnx")
    net = graphdiff.compile(graphdiff.lecture_network(shared=True), loss="E")
    gonnx.export(net, net.init_params(0), tmp_path / "b.onnx")
    rng = np.random.default_rng(0)
    codes: set[str] = set()
    for name in ("a.onnx", "b.onnx"):
        data = (tmp_path / name).read_bytes()
        for _ in range(120):
            bad = bytearray(data)
            for i in rng.integers(0, len(bad), rng.integers(1, 4)):
                bad[i] = int(rng.integers(256))
            (tmp_path / "bad.onnx").write_bytes(bytes(bad))
            try:
                G, _ = gonnx.load(tmp_path / "bad.onnx")
            except graphdiff.GraphFormatError as e:
                codes.add(e.code)
                continue
            with contextlib.suppress(graphdiff.GraphdiffError):
                graphdiff.compile(G)
    assert {"not_onnx", "unknown_op"} <= codes


def test_a_sparse_level_exports_neuron_by_neuron(tmp_path: Path, monkeypatch: Any) -> None:
    """A wide level where each neuron reads 2 of 40 inputs: no 40 x 40 matrix of zeros."""
    monkeypatch.setattr(gonnx, "SPARSE_CELLS", 100)
    G = nx.DiGraph()
    xs = [f"x{k}" for k in range(40)]
    G.add_nodes_from(xs, op="input")
    for k in range(40):
        G.add_node(f"h{k}", op="neuron", activation="tanh", bias=0.5)
        G.add_edge(xs[k], f"h{k}")
        G.add_edge(xs[(k + 1) % 40], f"h{k}", param="shared")
    G.add_node("y", op="neuron", activation="identity")
    G.add_edges_from((f"h{k}", "y") for k in range(40))
    net = graphdiff.compile(G)
    params = _params(net, 2)
    gonnx.export(net, params, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert max(np.prod(t.dims) for t in model.graph.initializer) <= 40
    rng = np.random.default_rng(3)
    inputs = {x: rng.standard_normal(6) for x in xs}
    (got,) = run_ort(tmp_path / "m.onnx", inputs)
    assert max_diff(got, net.forward(params, inputs, outputs=["y"])["y"]) <= 1e-9


def test_input_shapes_from_example_and_forward_only_export(tmp_path: Path) -> None:
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("s", op="sum", axis=1)
    G.add_node("y", op="tanh")
    G.add_edges_from([("x", "s"), ("s", "y")])
    net = graphdiff.compile(G)  # no loss: the outputs are the sinks
    with pytest.raises(graphdiff.InputError, match="input 'x'.*example="):
        gonnx.export(net, {}, tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    gonnx.export(net, {}, tmp_path / "m.onnx", example={"x": x[:1]})
    model = onnx.load(str(tmp_path / "m.onnx"))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 2] and [o.name for o in model.graph.output] == ["y"]
    (got,) = run_ort(tmp_path / "m.onnx", {"x": x})
    assert max_diff(got, np.tanh(x.sum(axis=1))) <= 1e-15
    # and back: load, compile without a loss, export again
    G2, p2 = gonnx.load(tmp_path / "m.onnx")
    gonnx.export(graphdiff.compile(G2), p2, tmp_path / "again.onnx", example={"x": x})
    (again,) = run_ort(tmp_path / "again.onnx", {"x": x})
    assert max_diff(again, got) == 0.0
