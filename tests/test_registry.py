"""The op registry: registering ops, listing them, and lazy entry-point plugins.

Plugins are discovered without installing anything: a fake ``*.dist-info``
folder with an ``entry_points.txt`` is put on ``sys.path`` for the test.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import (
    GraphdiffError,
    Op,
    RegistryError,
    UnknownOpError,
    get_op,
    list_ops,
    register_op,
)
from graphdiff.cli import main
from graphdiff.registry import DISABLE_AUTOLOAD_ENV, ENGINE_OPS

STANDARD = {
    "add", "sub", "mul", "div", "neg", "pow", "square", "exp", "log", "sqrt", "abs", "sign",
    "sum", "mean", "matmul", "stack", "concat", "index", "reshape", "identity", "tanh",
    "sigmoid", "relu", "softplus", "sin", "step", "hinge", "logistic", "squared_error",
    "softmax_cross_entropy",
}  # fmt: skip


def triple(x: np.ndarray) -> np.ndarray:
    return 3.0 * x


def triple_vjp(g: np.ndarray, out: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    return (3.0 * g,)


# --- registering ---------------------------------------------------------------


def test_register_as_call_returns_the_op_and_makes_it_usable(fresh_registry):
    op = register_op("triple", triple, vjp=triple_vjp, elementwise=True)
    assert get_op("triple") is op
    np.testing.assert_array_equal(op(np.array([1.0, -2.0])), [3.0, -6.0])
    # usable as a neuron's activation and as an op node: a = 3·(w·x)
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("a", op="neuron", activation="triple")
    G.add_edge("x", "a", param="w", weight=0.5)
    G.add_node("E", op="triple")
    G.add_edge("a", "E")
    res = graphdiff.compile(G, loss="E").backward({"w": 0.5}, {"x": np.array([2.0, 4.0])})
    assert res.loss == pytest.approx(9 * 0.5 * 3.0)  # mean of 9·w·x over x = 2, 4
    assert res.grads["w"] == pytest.approx(9 * 3.0)


def test_register_as_decorator(fresh_registry):
    @register_op("triple_dec", vjp=triple_vjp, elementwise=True)
    def f(x: np.ndarray) -> np.ndarray:
        """Three times x."""
        return 3.0 * x

    assert isinstance(f, Op)
    assert get_op("triple_dec") is f
    assert f.name == "triple_dec" and f.elementwise and f.doc == "Three times x."
    assert f.vjp(np.ones(2), None, np.zeros(2))[0].tolist() == [3.0, 3.0]


def test_register_an_op_object(fresh_registry):
    op = Op(name="triple_obj", forward=triple, vjp=triple_vjp, source="me")
    assert register_op(op) is op
    assert get_op("triple_obj") is op
    row = next(r for r in list_ops() if r.name == "triple_obj")
    assert row.source == "me" and row.kind == "op"


def test_taken_name_is_refused_unless_replace(fresh_registry):
    register_op("dup", triple, vjp=triple_vjp)
    with pytest.raises(RegistryError, match=r"'dup' is already registered") as e:
        register_op("dup", lambda x: x, vjp=triple_vjp)
    assert isinstance(e.value, ValueError) and isinstance(e.value, GraphdiffError)
    assert get_op("dup").forward is triple  # nothing changed
    new = register_op("dup", lambda x: 2 * x, vjp=triple_vjp, replace=True)
    assert get_op("dup") is new


def test_builtin_name_is_refused_unless_replace(fresh_registry):
    old = get_op("tanh")
    with pytest.raises(RegistryError, match=r"'tanh' is already registered \(from graphdiff"):
        register_op("tanh", np.tanh, vjp=triple_vjp, elementwise=True)
    assert get_op("tanh") is old
    register_op("tanh", np.tanh, vjp=triple_vjp, elementwise=True, replace=True)
    assert get_op("tanh") is not old


def test_scoped_registry_undoes_registrations():
    from graphdiff.registry import scoped_registry

    old_tanh = get_op("tanh")
    with scoped_registry():
        register_op("scoped_only", triple, vjp=triple_vjp)
        register_op("tanh", np.tanh, vjp=triple_vjp, elementwise=True, replace=True)
        assert get_op("scoped_only").forward is triple
    with pytest.raises(UnknownOpError):
        get_op("scoped_only")
    assert get_op("tanh") is old_tanh


@pytest.mark.parametrize("name", sorted(ENGINE_OPS))
def test_engine_names_are_reserved(fresh_registry, name):
    with pytest.raises(RegistryError, match=rf"{name!r} is reserved"):
        register_op(name, triple, vjp=triple_vjp)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"elementwise": True, "arity": 2}, r"'bad': an elementwise op takes exactly one"),
        ({"loss": True, "arity": 1}, r"'bad': a loss takes \(prediction, target\)"),
        ({"vjps": (triple_vjp, triple_vjp)}, r"'bad': vjps must be a tuple of one callable"),
        ({"vjps": [triple_vjp]}, r"'bad': vjps must be a tuple of one callable"),
        ({"vjps": (1,)}, r"'bad': vjps must be a tuple of one callable"),
        ({"vjps": (triple_vjp,), "arity": None}, r"'bad': vjps must be a tuple"),
    ],
)
def test_inconsistent_definitions_are_refused(fresh_registry, kwargs, match):
    with pytest.raises(RegistryError, match=match):
        register_op("bad", triple, vjp=triple_vjp, **kwargs)
    with pytest.raises(UnknownOpError):
        get_op("bad")


def test_missing_vjp_is_refused(fresh_registry):
    with pytest.raises(RegistryError, match=r"'novjp': vjp="):
        register_op("novjp", triple)


def test_register_op_rejects_non_ops(fresh_registry):
    with pytest.raises(RegistryError, match="expects an Op, got int"):
        graphdiff.registry.REGISTRY.register(3)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="non-empty string"):
        register_op("", triple, vjp=triple_vjp)


# --- looking up and listing ----------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "meant"), [("tanhh", "tanh"), ("sigmod", "sigmoid"), ("matmull", "matmul")]
)
def test_unknown_op_suggests_close_names(typo, meant):
    with pytest.raises(UnknownOpError, match=rf"unknown op {typo!r}; did you mean .*{meant!r}"):
        get_op(typo)


def test_unknown_op_error_is_a_keyerror_and_valueerror():
    with pytest.raises(KeyError):
        get_op("no_such_op_at_all")
    with pytest.raises(ValueError, match=r"unknown op 'no_such_op_at_all'$"):
        get_op("no_such_op_at_all")


def test_list_ops_shows_every_op_with_its_source(fresh_registry):
    register_op("triple_listed", triple, vjp=triple_vjp, elementwise=True, source="my lab")
    rows = {r.name: r for r in list_ops()}
    assert [r.name for r in list_ops()] == sorted(rows)
    assert set(rows) >= STANDARD | set(ENGINE_OPS) | {"triple_listed"}
    for name in STANDARD:
        assert rows[name].source == "graphdiff (built-in)", name
    for name in ENGINE_OPS:
        assert (rows[name].source, rows[name].kind) == ("graphdiff (engine)", "engine")
    assert (rows["triple_listed"].source, rows["triple_listed"].kind) == ("my lab", "activation")
    assert rows["hinge"].kind == "loss" and rows["tanh"].kind == "activation"
    assert rows["matmul"].kind == "op"


def test_registered_op_source_defaults_to_its_module(fresh_registry):
    op = register_op("triple_mod", triple, vjp=triple_vjp)
    assert op.source == triple.__module__


def test_cli_ops_lists_every_op(capsys, fresh_registry):
    register_op("triple_cli", triple, vjp=triple_vjp, source="cli test")
    assert main(["ops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line for line in lines}
    assert set(table) == {r.name for r in list_ops()}
    assert table["tanh"].endswith("graphdiff (built-in)") and "activation" in table["tanh"]
    assert table["neuron"].endswith("graphdiff (engine)")
    assert table["triple_cli"].endswith("cli test")


# --- entry-point plugins -------------------------------------------------------

PLUGIN_MODULE = '''
import numpy as np
from graphdiff import Op

def _forward(x):
    return 5.0 * x

def _vjp(g, out, x):
    return (5.0 * g,)

OP = Op(name="myop", forward=_forward, vjp=_vjp, elementwise=True, source="set by graphdiff")

def make_other():
    return Op(name="myop_factory", forward=_forward, vjp=_vjp, elementwise=True)
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry) -> Path:
    """A distribution ``myplug 0.1`` with op entry points, found on sys.path."""
    dist = tmp_path / "myplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[graphdiff.ops]\n"
        "myop = myplug_ops:OP\n"
        "myop_factory = myplug_ops:make_other\n"
        "myop_broken = myplug_broken:OP\n"
        "myop_misnamed = myplug_ops:OP\n"
    )
    (tmp_path / "myplug_ops.py").write_text(PLUGIN_MODULE)
    (tmp_path / "myplug_broken.py").write_text("raise ImportError('the plugin is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    importlib.invalidate_caches()
    yield tmp_path
    for mod in ("myplug_ops", "myplug_broken"):
        sys.modules.pop(mod, None)
    importlib.invalidate_caches()


def test_plugin_is_listed_before_it_is_loaded(plugin_dir):
    rows = {r.name: r for r in list_ops()}
    assert rows["myop"].source == "plugin myplug 0.1"
    assert rows["myop"].kind == "plugin (not loaded)"
    assert "myplug_ops" not in sys.modules  # listing does not import it


def test_plugin_loads_lazily_on_first_lookup(plugin_dir):
    assert "myplug_ops" not in sys.modules
    op = get_op("myop")
    assert "myplug_ops" in sys.modules
    assert op.name == "myop"
    assert (op.distribution, op.version) == ("myplug", "0.1")
    assert op.source == "plugin myplug 0.1"
    assert get_op("myop") is op  # cached after the first lookup
    assert next(r for r in list_ops() if r.name == "myop").kind == "activation"
    # usable in a graph by name
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("E", op="myop")
    G.add_edge("x", "E")
    res = graphdiff.compile(G, loss="E").backward({}, {"x": np.array([1.0, 3.0])}, deltas=True)
    assert res.loss == pytest.approx(10.0)
    np.testing.assert_allclose(res.deltas["x"], [2.5, 2.5])  # 5 · 1/N


def test_plugin_entry_point_may_be_a_factory(plugin_dir):
    op = get_op("myop_factory")
    assert op.name == "myop_factory" and op.source == "plugin myplug 0.1"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("myop_broken", "ImportError: the plugin is broken"),
        ("myop_misnamed", "does not give an Op named 'myop_misnamed'"),
    ],
)
def test_broken_plugin_warns_and_is_unknown(plugin_dir, name, why):
    with (
        pytest.warns(RuntimeWarning, match=rf"plugin {name!r} from myplug"),
        pytest.raises(UnknownOpError, match=rf"unknown op {name!r} \(its plugin failed") as e,
    ):
        get_op(name)
    assert why in str(e.value)
    assert f"did you mean {name!r}" not in str(e.value)
    # a broken plugin does not break the rest of the registry
    assert get_op("myop").name == "myop"


def test_broken_plugin_in_a_graph_names_the_node(plugin_dir):
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("E", op="myop_broken")
    G.add_edge("x", "E")
    with (
        pytest.warns(RuntimeWarning, match="myop_broken"),
        pytest.raises(UnknownOpError, match=r"node 'E': unknown op 'myop_broken'"),
    ):
        graphdiff.compile(G, loss="E")


def test_disable_plugin_autoload(plugin_dir, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    with pytest.raises(UnknownOpError, match="unknown op 'myop'"):
        get_op("myop")
    assert "myplug_ops" not in sys.modules
    assert "myop" not in {r.name for r in list_ops()}
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV)
    assert get_op("myop").distribution == "myplug"


def test_a_registered_op_wins_over_a_plugin_of_the_same_name(plugin_dir):
    mine = register_op("myop", triple, vjp=triple_vjp, elementwise=True)
    assert get_op("myop") is mine
    assert "myplug_ops" not in sys.modules


def test_plugin_loads_are_logged(plugin_dir, caplog):
    with caplog.at_level(logging.INFO, logger="graphdiff"):
        get_op("myop")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("graphdiff.registry", "loaded op plugin 'myop' from myplug 0.1")
    ]


# --- the op contract: one derivative form, the builtin flag ---------------------------


def test_an_op_gives_its_derivative_once_and_the_vjp_is_made_from_it() -> None:
    from graphdiff.registry import scoped_registry
    from graphdiff.testing import check_op

    g, out, x, y = np.array([2.0, -1.0]), None, np.array([0.5, 3.0]), np.array([4.0, -2.0])
    # per operand only (as the losses declare theirs): the vjp is the parts in turn
    mul = Op(name="mul_parts", forward=lambda a, b: a * b, arity=2,
             vjps=(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a))
    ga, gb = mul.vjp(g, out, x, y)
    assert ga.tolist() == [8.0, 2.0] and gb.tolist() == [1.0, -3.0]  # g*y, g*x by hand
    # an elementwise op by its derivative only: vjp = g * derivative(x, out)
    cube = Op(name="cube_df", forward=lambda a: a**3, elementwise=True,
              derivative=lambda a, out: 3 * a**2)
    assert cube.vjp(g, out, x)[0].tolist() == [1.5, -27.0]
    with scoped_registry():
        register_op(Op(**{**mul.__dict__, "samples": lambda rng: [((x, y), {})]}))
        check_op("mul_parts")  # raises unless the made vjp matches central differences
    with pytest.raises(RegistryError, match="give its vjp"):
        Op(name="no_derivative", forward=lambda a: a)
    with pytest.raises(RegistryError, match="vjp= .* is required"):
        register_op("no_derivative", lambda a: a)
    # the built-in losses give theirs per operand, once
    for name in ("hinge", "logistic", "squared_error", "softmax_cross_entropy"):
        op = get_op(name)
        assert op.vjps is not None and op.vjp.__qualname__.startswith("_joined")


def test_built_in_is_a_flag_not_a_source_string() -> None:
    from graphdiff.registry import scoped_registry

    assert get_op("tanh").builtin and get_op("softmax_cross_entropy").builtin
    G = nx.DiGraph([("x", "y")])
    G.nodes["x"]["op"] = "input"
    with scoped_registry():
        # a plugin that calls itself built-in in its source text is still a plugin
        register_op("mimic", lambda a: a, vjp=lambda g, out, a: (g,),
                    elementwise=True, source="graphdiff (built-in)")
        assert not get_op("mimic").builtin
        G.nodes["y"]["op"] = "mimic"
        assert list(graphdiff.to_spec(G).ops) == ["mimic"]
        G.nodes["y"]["op"] = "tanh"
        assert not graphdiff.to_spec(G).ops
