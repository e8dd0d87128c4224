"""float32 end to end (issue 12, item 4): ``compile(G, loss=..., dtype=np.float32)``.

Every value, delta, gradient, parameter and optimizer state of a float32 network is
float32 as it is made, not cast at the end: the ops themselves return float32 for
float32 operands (checked op by op below, before any conversion could hide a
float64), and a network run keeps float32 through every node on both backends.
Expected gradients come from the same network compiled as float64 at the same
(float32-rounded) parameters, compared at float32 tolerance.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import GraphError, InputError, NonFiniteError, Op, ShapeError, register_op
from graphdiff.optim import SGD, Adam
from graphdiff.registry import get_op, list_ops
from graphdiff.train import FitError

F32 = np.dtype(np.float32)
N = 7


def data_for(net: graphdiff.Network, loss: str, d_in: int, k: int, seed: int = 0) -> dict:
    """Inputs of either notation (x: (N, d) in op notation, x1..xd neuron by neuron)
    and targets in the loss's domain, all float64: the float32 network converts them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, d_in))
    if loss in ("logistic", "hinge"):
        t = rng.choice([-1.0, 1.0], size=N)
    elif loss == "softmax_cross_entropy":
        t = rng.integers(0, k, size=N).astype(np.float64)
    else:
        t = rng.normal(size=N) if k == 1 else rng.normal(size=(N, k))
    data: dict[Any, Any] = {"t": t}
    if "x" in net.inputs:
        data["x"] = X
    else:
        data.update({f"x{i + 1}": X[:, i] for i in range(d_in)})
    return data


def twins(G: nx.DiGraph) -> tuple[graphdiff.Network, graphdiff.Network]:
    return graphdiff.compile(G, loss="E", dtype=np.float32), graphdiff.compile(G, loss="E")


def same_point(n32: graphdiff.Network, n64: graphdiff.Network, seed: int = 1) -> tuple[Any, Any]:
    """The float32 network's initial parameters, and exactly those numbers in float64."""
    p32 = n32.init_params(seed=seed)
    return p32, n64.params_from_vector(p32.vector.astype(np.float64))


def neuron_then_op(activation: str, weight: float, node: str, op: str) -> nx.DiGraph:
    """x -> h (one neuron, weight w) -> ``node`` (``op`` of h) -> E = squared_error(., t)."""
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("h", op="neuron", activation=activation)
    G.add_edge("x", "h", param="w", weight=weight)
    G.add_node(node, op=op)
    G.add_edge("h", node)
    G.add_node("E", op="squared_error")
    G.add_edge(node, "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def assert_f32_tree(result: graphdiff.BackwardResult) -> None:
    assert type(result.loss) is np.float32
    assert result.grads.vector.dtype == F32
    for name in ("values", "deltas", "z", "deltas_z"):
        for node, v in getattr(result, name).items():
            assert np.asarray(v).dtype == F32, (name, node, np.asarray(v).dtype)


def assert_close_f32(g32: np.ndarray, g64: np.ndarray) -> None:
    """float32 rounding of a few dozen operations: relative 1e-4 of the gradient's scale."""
    scale = max(float(np.max(np.abs(g64))), 1e-3)
    np.testing.assert_allclose(g32.astype(np.float64), g64, rtol=1e-3, atol=1e-4 * scale)


# -- compile's argument --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.dtype("float32")])
def test_dtype_spellings(dtype: Any) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E", dtype=dtype)
    assert net.dtype == F32 and net.init_params(seed=0).vector.dtype == F32
    assert "float32" in repr(net)


def test_default_is_float64() -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E")
    assert net.dtype == np.float64 and net.init_params(seed=0).vector.dtype == np.float64


@pytest.mark.parametrize("bad", [np.float16, "int32", np.int64, "fp32", None, 32, [np.float32]])
def test_other_dtypes_refused_naming_the_argument(bad: Any) -> None:
    with pytest.raises(GraphError, match="dtype"):
        graphdiff.compile(graphdiff.mlp([2, 1]), loss="E", dtype=bad)


# -- the ops themselves keep float32 -------------------------------------------------


def test_every_builtin_op_returns_float32_for_float32_operands() -> None:
    """No op promotes: forward, vjp, per-operand vjps and the activation derivative of
    every built-in op, on its own samples cast to float32 (a float64 constant inside
    an op would show here, before the engine's conversion could hide it)."""
    rng = np.random.default_rng(0)
    checked = 0
    for info in list_ops():
        op = get_op(info.name) if info.kind in ("op", "loss", "activation") else None
        if op is None or op.samples is None:
            continue
        for operands, raw in op.samples(rng):
            xs = [np.asarray(x, np.float32) for x in operands]
            attrs = op.attrs(**raw).model_dump()
            out = np.asarray(op.forward(*xs, **attrs))
            assert out.dtype == F32, (op.name, "forward")
            g = np.linspace(-1, 1, out.size, dtype=np.float32).reshape(out.shape)
            results = list(op.vjp(g, out, *xs, **attrs))
            results += [f(g, out, *xs, **attrs) for f in op.vjps or ()]
            if op.derivative is not None:
                results.append(op.derivative(xs[0], out, **attrs))
            for r in results:
                assert r is None or np.asarray(r).dtype == F32, (op.name, np.asarray(r).dtype)
            checked += 1
    assert checked > 40


# -- networks, both notations --------------------------------------------------------

CASES = [
    ("neuron", "tanh", "logistic", 1),
    ("neuron", "relu", "softmax_cross_entropy", 3),
    ("neuron", "sigmoid", "squared_error", 1),
    ("neuron", "softplus", "hinge", 1),
    ("op", "tanh", "softmax_cross_entropy", 3),
    ("op", "relu", "logistic", 1),
    ("op", "sigmoid", "squared_error", 2),
    ("op", "sin", "hinge", 1),
]


@pytest.mark.parametrize(("notation", "act", "loss", "k"), CASES)
def test_forward_backward_adam_float32_throughout(
    notation: str, act: str, loss: str, k: int
) -> None:
    n32, n64 = twins(graphdiff.mlp([3, 4, k], act, notation=notation, loss=loss))
    p32, p64 = same_point(n32, n64)
    data = data_for(n32, loss, 3, k)

    fast = n32.backward(p32, data)
    full = n32.backward(p32, data, deltas=True, check_finite=True)
    ref = n32.interpret(p32, data, deltas=True)
    for r in (fast, full, ref):
        assert_f32_tree(r)
    assert full.values and full.deltas  # the tree really was looked at
    assert np.array_equal(fast.grads.vector, full.grads.vector)  # one computation
    # the interpreter runs the same operations in the same order: the same bits
    assert ref.loss == fast.loss and np.array_equal(ref.grads.vector, fast.grads.vector)
    for part in ("values", "deltas", "z", "deltas_z"):
        for node, v in getattr(ref, part).items():
            assert np.array_equal(getattr(full, part)[node], v), (part, node)

    want = n64.backward(p64, data)
    assert_close_f32(fast.grads.vector, want.grads.vector)
    assert_close_f32(ref.grads.vector, want.grads.vector)
    assert abs(float(fast.loss) - float(want.loss)) <= 1e-5 * max(1.0, abs(float(want.loss)))

    assert type(n32.error(p32, data)) is np.float32
    for v in n32.forward(p32, data).values():
        assert v.dtype == F32
    assert n32.predict(p32, data).dtype == F32

    # three Adam steps: parameters and both moments stay float32, and follow float64's
    o32, o64 = Adam(lr=0.01), Adam(lr=0.01)
    q32, q64 = p32, p64
    for _ in range(3):
        q32 = o32.step(q32, n32.backward(q32, data).grads)
        q64 = o64.step(q64, n64.backward(q64, data).grads)
        assert q32.vector.dtype == F32
        assert {k: v.dtype for k, v in o32._vectors[1].items()} == {"m": F32, "v": F32}
    # Adam moves each parameter by about lr per step whatever the gradient's size
    np.testing.assert_allclose(q32.vector, q64.vector, atol=2e-3)


def test_sgd_momentum_and_clipping_keep_float32() -> None:
    n32, n64 = twins(graphdiff.mlp([2, 3, 1], "tanh"))
    p32, p64 = same_point(n32, n64)
    data = data_for(n32, "logistic", 2, 1)
    o32 = SGD(lr=0.1, momentum=0.9, nesterov=True, clip_norm=0.5, weight_decay=1e-3)
    o64 = SGD(lr=0.1, momentum=0.9, nesterov=True, clip_norm=0.5, weight_decay=1e-3)
    for _ in range(3):
        p32 = o32.step(p32, n32.backward(p32, data).grads)
        p64 = o64.step(p64, n64.backward(p64, data).grads)
    assert p32.vector.dtype == F32 and o32._vectors[1]["velocity"].dtype == F32
    assert_close_f32(p32.vector, p64.vector)
    assert o32.state_dict()["step"] == 3


def test_fit_float32() -> None:
    n32 = graphdiff.compile(
        graphdiff.mlp([2, 5, 3], "relu", notation="op", loss="softmax_cross_entropy"),
        loss="E", dtype="float32",
    )
    data = data_for(n32, "softmax_cross_entropy", 2, 3)
    res = graphdiff.fit(n32, n32.init_params(seed=0), data, optimizer=Adam(lr=0.05),
                        epochs=5, batch_size=3, seed=0)
    assert res.params.vector.dtype == F32
    assert res.history[-1]["loss"] < res.history[0]["loss"]


# -- inputs and parameters convert once ------------------------------------------------


def test_float64_and_int_inputs_convert_once_silently() -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1], "tanh", loss="squared_error"),
                            loss="E", dtype=np.float32)
    p = net.init_params(seed=0)
    ints = {"x1": np.array([1, -2, 3]), "x2": np.array([0, 1, 1]), "t": np.array([1, 0, 2])}
    as32 = {k: v.astype(np.float32) for k, v in ints.items()}
    as64 = {k: v.astype(np.float64) for k, v in ints.items()}
    want = net.backward(p, as32)
    for given in (ints, as64, {**as32, "t": as64["t"]}):
        got = net.backward(p, given)
        assert type(got.loss) is np.float32 and got.loss == want.loss
        assert np.array_equal(got.grads.vector, want.grads.vector)
        assert got.grads.vector.dtype == F32


def test_params_follow_the_networks_dtype() -> None:
    n32, n64 = twins(graphdiff.mlp([2, 3, 1], "tanh"))
    p64 = n64.init_params(seed=3)
    p32 = n32.init_params(seed=3)
    assert np.array_equal(p32.vector, p64.vector.astype(np.float32))  # the draws, rounded
    assert n32.layout.fingerprint != n64.layout.fingerprint  # never trusted across dtypes
    p32["x1->h1_1"] = 0.25  # written into the float32 vector
    assert p32.vector.dtype == F32 and type(p32["x1->h1_1"]) is np.float32
    # a mapping, a float64 network's Params: checked and converted
    for given in (dict(p64), p64):
        q = n32.as_params(given)
        assert q.vector.dtype == F32 and np.array_equal(q.vector, p64.vector.astype(np.float32))
    r = n32.backward(p64, data_for(n32, "logistic", 2, 1))  # converted on the way in
    assert r.grads.vector.dtype == F32
    # a vector: of the network's dtype, or lists and integers
    assert n32.params_from_vector(p32.vector).vector.dtype == F32
    assert n32.params_from_vector(list(range(n32.layout.size))).vector.dtype == F32
    with pytest.raises(InputError, match=r"parameter vector is float64.*float32"):
        n32.params_from_vector(p64.vector)
    with pytest.raises(InputError, match=r"parameter vector is float32.*float64"):
        n64.params_from_vector(p32.vector)
    with pytest.raises(ShapeError, match="parameter vector must have shape"):
        n32.params_from_vector(p32.vector[:-1])
    with pytest.raises(ShapeError, match="'x1->h1_1'"):
        n32.as_params({**dict(p32), "x1->h1_1": np.ones(2)})
    with pytest.raises(InputError, match="missing parameter"):
        n32.backward({}, data_for(n32, "logistic", 2, 1))


# -- what an op hands back: the one rule (plan.numeric) converts to the network's type ---


def test_plugin_returning_float64_is_converted_on_both_paths(fresh_registry: Any) -> None:
    """A plugin that computes in float64 whatever it is given: its output and gradient
    come back float32, rounded once where they leave the op, on both backends."""
    register_op(Op(
        name="plug64",
        forward=lambda x: np.asarray(x, np.float64) * 3.0,
        vjp=lambda g, out, x: (np.asarray(g, np.float64) * 3.0,),
        elementwise=True,
    ))
    G = neuron_then_op("tanh", 0.7, "p", "plug64")
    n32 = graphdiff.compile(G, loss="E", dtype=np.float32)
    n64 = graphdiff.compile(G, loss="E")
    data = {"x": np.array([0.3, -1.2, 2.0]), "t": np.array([0.1, 0.4, -0.5])}
    p32, p64 = same_point(n32, n64)
    runs = [n32.backward(p32, data, deltas=True), n32.interpret(p32, data, deltas=True)]
    for r in runs:
        assert_f32_tree(r)
        assert_close_f32(r.grads.vector, n64.backward(p64, data).grads.vector)
    assert np.array_equal(runs[0].grads.vector, n32.backward(p32, data).grads.vector)


# -- NaN checks -------------------------------------------------------------------------


def test_check_finite_names_the_node_in_float32() -> None:
    """exp(100) is finite in float64 and infinite in float32: the float32 network's
    check names the node, on both backends (the float64 twin passes)."""
    G = neuron_then_op("identity", 1.0, "big", "exp")
    n32, n64 = twins(G)
    data = {"x": np.array([1.0, 100.0]), "t": np.zeros(2)}
    assert np.isfinite(n64.backward(n64.init_params(), data, check_finite=True).loss)
    with np.errstate(all="ignore"):
        for run in (n32.backward, n32.interpret):
            with pytest.raises(NonFiniteError, match="'big'"):
                run(n32.init_params(), data, check_finite=True)
        with pytest.raises(NonFiniteError, match="input 'x'"):
            n32.backward(n32.init_params(), {"x": np.array([np.nan, 1.0]), "t": np.zeros(2)},
                         check_finite=True)


# -- gradcheck: numerical differences in float64, always ----------------------------------


@pytest.mark.parametrize("notation", ["neuron", "op"])
def test_gradcheck_of_a_float32_network_differentiates_in_float64(notation: str) -> None:
    net = graphdiff.compile(
        graphdiff.mlp([3, 4, 3], "tanh", notation=notation, loss="softmax_cross_entropy"),
        loss="E", dtype=np.float32,
    )
    data = data_for(net, "softmax_cross_entropy", 3, 3)
    report = graphdiff.gradcheck(net, net.init_params(seed=0), data)
    assert report.ok and (report.dtype, report.numeric_dtype) == ("float32", "float64")
    assert "differences in float64" in str(report) and "float32 backward" in str(report)
    # float32's own differences at eps = 1e-6 would be rounding noise: these are not
    assert report.max_abs_err < 1e-6


def test_gradcheck_finds_a_wrong_float32_gradient(fresh_registry: Any) -> None:
    register_op(Op(name="twice_wrong", forward=lambda x: 2 * x,
                   vjp=lambda g, out, x: (2.1 * g,), elementwise=True))
    G = graphdiff.mlp([2, 1], loss="squared_error")
    G.add_node("p", op="twice_wrong")
    G.add_edge("y", "p")
    G.remove_edge("y", "E")
    G.add_edge("p", "E", port=0)
    net = graphdiff.compile(G, loss="E", dtype=np.float32)
    report = graphdiff.gradcheck(net, net.init_params(seed=0), data_for(net, "squared_error", 2, 1))
    assert not report.ok


# -- files keep the dtype -----------------------------------------------------------------


def test_model_file_keeps_float32(tmp_path: Any) -> None:
    G = graphdiff.mlp([2, 3, 1], "tanh")
    net = graphdiff.compile(G, loss="E", dtype=np.float32)
    p = net.init_params(seed=0)
    path = tmp_path / "m.json"
    graphdiff.save(path, G, p, loss="E")  # the dtype of the network's Params
    assert '"dtype":"float32"' in path.read_text().split('"graph"')[0]
    model = graphdiff.load_model(path)
    G2, params, loss = model  # still three, as before
    assert model.dtype == "float32" and loss == "E"
    again = graphdiff.compile(G2, loss=loss, dtype=model.dtype)
    q = again.as_params(params)
    assert again.dtype == F32 and np.array_equal(q.vector, p.vector)
    data = data_for(net, "logistic", 2, 1)
    assert np.array_equal(again.backward(q, data).grads.vector, net.backward(p, data).grads.vector)
    # float64 (and every file written before dtypes): no field, loads as float64
    graphdiff.save(tmp_path / "d.json", G, dict(p), loss="E")
    assert '"dtype"' not in (tmp_path / "d.json").read_text().split('"graph"')[0]
    assert graphdiff.load_model(tmp_path / "d.json").dtype == "float64"
    graphdiff.save(tmp_path / "e.json", G, dict(p), loss="E", dtype="float32")
    assert graphdiff.load_model(tmp_path / "e.json").dtype == "float32"
    with pytest.raises(graphdiff.GraphFormatError, match="dtype"):
        graphdiff.save(tmp_path / "f.json", G, dict(p), loss="E", dtype="float16")
    assert not (tmp_path / "f.json").exists()
    assert net.spec().dtype == "float32"  # what the Dask workers compile


def test_cli_info_shows_the_dtype(tmp_path: Any, capsys: Any) -> None:
    from graphdiff.cli import main

    G = graphdiff.mlp([2, 1])
    for dtype in ("float32", "float64"):
        path = tmp_path / f"{dtype}.json"
        net = graphdiff.compile(G, loss="E", dtype=dtype)
        graphdiff.save(path, G, net.init_params(seed=0), loss="E")
        assert main(["info", str(path)]) == 0
        assert f"; dtype {dtype}" in capsys.readouterr().out
        assert main(["info", str(path), "--json"]) == 0
        assert f'"dtype": "{dtype}"' in capsys.readouterr().out


def test_float32_fit_resumes_from_its_checkpoint_bit_for_bit(tmp_path: Any) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 5, 1]), loss="E", dtype=np.float32)
    data = graphdiff.feed(net, graphdiff.moons(60, seed=3))
    p0 = net.init_params(seed=2)
    kw: dict[str, Any] = {"batch_size": 8, "seed": 11}
    full = graphdiff.fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=6, **kw)
    path = tmp_path / "run.ckpt"
    graphdiff.fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=2, checkpoint=path, **kw)
    saved = graphdiff.load_checkpoint(path)
    assert saved.params.vector.dtype == F32
    resumed = graphdiff.fit(net, None, data, optimizer=Adam(lr=0.05), epochs=6, resume=path, **kw)
    assert resumed.params.vector.dtype == F32
    assert np.array_equal(resumed.params.vector, full.params.vector)
    def untimed(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in h.items() if k != "time"} for h in history]

    assert untimed(resumed.history) == untimed(full.history)
    for k, v in resumed.optimizer._vectors[1].items():
        assert v.dtype == F32 and np.array_equal(v, full.optimizer._vectors[1][k])
    # a float64 network refuses the float32 checkpoint, naming the field
    n64 = graphdiff.compile(graphdiff.mlp([2, 5, 1]), loss="E")
    with pytest.raises(FitError, match="float32 parameter vector"):
        graphdiff.fit(n64, None, data, optimizer=Adam(lr=0.05), epochs=6, resume=path, **kw)


def test_cli_train_keeps_a_float32_model_float32(tmp_path: Any, capsys: Any) -> None:
    from test_train_cli import drawn_model, patients, write_csv

    from graphdiff.cli import main

    model, csv, out = tmp_path / "m.json", tmp_path / "p.csv", tmp_path / "trained.json"
    graphdiff.save(model, drawn_model(), loss="E", dtype="float32")
    cols = patients()
    write_csv(csv, cols, ["weight", "id", "sick", "dose", "age"])
    assert main(["train", str(model), "--data", str(csv), "--out", str(out), "--epochs", "20",
                 "--lr", "0.1", "--quiet"]) == 0
    trained = graphdiff.load_model(out)
    assert trained.dtype == "float32"
    assert {type(v) for v in trained.params.values()} == {np.float32}
    capsys.readouterr()


def test_optimizers_keep_float32_parameters_given_as_a_dict() -> None:
    """The per-name path (a plain dict) keeps float32 parameters and their state float32,
    and takes the same float32 steps as the vector path."""
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1], "tanh", notation="op"), loss="E",
                            dtype=np.float32)
    p = net.init_params(seed=0)
    g = net.backward(p, data_for(net, "logistic", 2, 1)).grads
    for make in (lambda: SGD(lr=0.1, momentum=0.9), lambda: Adam(lr=0.01)):
        by_name, by_vector = make(), make()
        a = by_name.step(dict(p), dict(g))
        b = by_vector.step(p, g)
        for k in p:
            assert np.asarray(a[k]).dtype == F32, k
            np.testing.assert_array_equal(a[k], b[k])
        assert all(v.dtype == F32 for slots in by_name.state.values() for v in slots.values())


@pytest.mark.parametrize(
    "act", ["abs", "exp", "identity", "neg", "pow", "relu", "sigmoid", "sign", "sin",
            "softplus", "square", "step", "tanh", "log", "sqrt"],
)
def test_every_activation_in_a_float32_neuron_network(act: str) -> None:
    """Each built-in activation in a hidden layer drawn neuron by neuron (log and sqrt
    on sigmoid outputs, so on their domain): float32 throughout, float64's gradients."""
    G = graphdiff.mlp([2, 3, 1], "sigmoid" if act in ("log", "sqrt") else act,
                      loss="squared_error")
    if act in ("log", "sqrt"):  # a second hidden layer of them over (0, 1) values
        G = graphdiff.mlp([2, 3, 3, 1], "sigmoid", loss="squared_error")
        for n in G:
            if str(n).startswith("h2_"):
                G.nodes[n]["activation"] = act
    if act == "pow":
        for n in G:
            if G.nodes[n].get("activation") == "pow":
                G.nodes[n]["exponent"] = 3.0
    assert sum(d.get("activation") == act for _, d in G.nodes(data=True)) >= 3
    n32, n64 = twins(G)
    p32, p64 = same_point(n32, n64)
    data = data_for(n32, "squared_error", 2, 1)
    for r in (n32.backward(p32, data, deltas=True), n32.interpret(p32, data, deltas=True)):
        assert_f32_tree(r)
        assert_close_f32(r.grads.vector, n64.backward(p64, data).grads.vector)
