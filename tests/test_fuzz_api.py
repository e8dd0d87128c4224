"""API fuzz: no internal exception escapes a public function on bad input (issue 13).

Hypothesis calls ``compile``, ``init_params``, ``forward``, ``backward``, ``error``,
``fit``, ``gradcheck``, ``save``, ``load``, ``load_checkpoint`` and every command
of the CLI with wrong types, wrong shapes, empty and huge values, mixed into
otherwise valid arguments so that the calls get past the first check. Each call
must return or raise a :class:`~graphdiff.errors.GraphdiffError`: any other
exception fails the test with its traceback, and so does a call that runs longer
than ``LIMIT_S`` (a SIGALRM timer). The CLI runs in process (``main(argv)``) and
must never print a traceback; argparse's own usage errors (exit 2) are allowed.

The seed varies per run (``conftest.RUN_SEED``, printed in pytest's header;
``GRAPHDIFF_TEST_SEED=N`` repeats a run). ``-s`` shows the number of calls made.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import signal
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from conftest import RUN_SEED
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphdiff
from graphdiff.cli import main
from graphdiff.errors import GraphdiffError

# no shrinking: a failure prints its draws and the seed that repeats it, in seconds
# rather than the minutes shrinking such wide strategies takes
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
LIMIT_S = 20.0  # per call; generous for a loaded 2-core CI machine
CALLS: Counter[str] = Counter()


class Hang(BaseException):
    """Raised by the timer: not an Exception, so no ``except Exception`` swallows it."""


@contextlib.contextmanager
def time_limit(what: str) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"{what} ran longer than {LIMIT_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def call(what: str, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)``, or the GraphdiffError it raised; anything else propagates."""
    CALLS[what] += 1
    with warnings.catch_warnings(), time_limit(what):
        warnings.simplefilter("ignore")  # warnings are allowed; exceptions are what counts
        try:
            return f(*args, **kwargs)
        except GraphdiffError as e:
            assert str(e), f"{what}: {type(e).__name__} without a message"
            return e


@pytest.fixture(scope="module", autouse=True)
def report_calls() -> Iterator[None]:
    yield
    total = sum(CALLS.values())
    print(f"\nAPI fuzz: {total} calls, seed {RUN_SEED}: {dict(sorted(CALLS.items()))}")


# -- values ---------------------------------------------------------------------------------

HUGE_INTS = [10**400, -(10**30), 2**63, 2**64, -(2**63) - 1, 2**40]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_FLOATS),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.builds(object),
    st.builds(np.float32, st.floats(width=32)),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
    st.complex_numbers(max_magnitude=10),
)

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
arrays = st.one_of(
    hnp.arrays(np.float64, small_shapes),  # NaN, infinity, huge values included
    hnp.arrays(st.sampled_from([np.float32, np.int64, np.bool_, np.complex128, np.uint8]),
               small_shapes),
    hnp.arrays(st.sampled_from(["<U3", "S2"]), small_shapes),
    st.builds(lambda s: np.empty(s, dtype=object), small_shapes),
)
junk = st.recursive(
    st.one_of(scalars, arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-2, 2)), inner, max_size=3),
        st.frozensets(st.integers(-2, 2), max_size=2),
    ),
    max_leaves=6,
)
json_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(HUGE_INTS),
              st.floats(allow_nan=False), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5,
)


# -- networks to call -----------------------------------------------------------------------


def _small() -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("y", op="neuron", activation="tanh", bias=0.1)
    G.add_edge("x", "y", weight=0.5)
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def _tensors() -> nx.MultiDiGraph:
    """Op notation with tensor parameters, index, stack and a shared operand."""
    G = nx.MultiDiGraph()
    G.add_nodes_from(["X", "t"], op="input")
    G.add_node("W", op="param", shape=(3, 2))
    G.add_node("m", op="matmul")
    G.add_edge("X", "m", port=0)
    G.add_edge("W", "m", port=1)
    G.add_node("c0", op="index", i=0)
    G.add_node("c1", op="index", i=-1)
    G.add_edge("m", "c0")
    G.add_edge("m", "c1")
    G.add_node("p", op="mul")
    G.add_edge("c0", "p")
    G.add_edge("c1", "p")
    G.add_node("E", op="logistic")
    G.add_edge("p", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


GRAPHS: dict[str, tuple[Callable[[], Any], dict[str, tuple[int, ...]]]] = {
    # name: (graph maker, input node -> shape per data point)
    "small": (_small, {"x": (), "t": ()}),
    "mlp-neuron": (lambda: graphdiff.mlp([2, 3, 1]), {"x1": (), "x2": (), "t": ()}),
    "mlp-op": (lambda: graphdiff.mlp([2, 3, 1], notation="op", loss="squared_error"),
               {"x": (2,), "t": ()}),
    "tensors": (_tensors, {"X": (3,), "t": ()}),
}
NETS = {
    (name, reduction): graphdiff.compile(make(), loss="E", reduction=reduction)
    for name, (make, _) in GRAPHS.items()
    for reduction in ("mean", "sum")
}


@st.composite
def networks(draw: Any) -> tuple[graphdiff.Network, dict[str, tuple[int, ...]]]:
    name = draw(st.sampled_from(sorted(GRAPHS)))
    net = NETS[name, draw(st.sampled_from(["mean", "sum"]))]
    return net, GRAPHS[name][1]


@st.composite
def mutated(draw: Any, valid: dict[Any, Any]) -> Any:
    """``valid``, or a copy with one entry replaced, removed or added, or junk instead."""
    how = draw(st.sampled_from(["keep", "replace", "remove", "add", "junk", "keep"]))
    out = dict(valid)
    keys = sorted(out, key=str)
    if how == "replace" and keys:
        out[draw(st.sampled_from(keys))] = draw(junk)
    elif how == "remove" and keys:
        del out[draw(st.sampled_from(keys))]
    elif how == "add":
        out[draw(st.one_of(st.text(max_size=3), st.integers(), st.none()))] = draw(junk)
    elif how == "junk":
        return draw(junk)
    return out


@st.composite
def inputs_for(draw: Any, shapes: dict[str, tuple[int, ...]]) -> Any:
    n = draw(st.sampled_from([3, 1, 0, 2]))
    fill = draw(st.sampled_from([0.5, -2.0, 1e300, math.nan, 0.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    valid = {}
    for x, shape in shapes.items():
        if draw(st.integers(0, 7)) == 0:  # now and then a wrong shape for one input
            shape = draw(small_shapes)
            valid[x] = np.full(shape, fill)
        else:
            valid[x] = rng.uniform(-2.0, 2.0, (n, *shape))
            if x == "t":
                valid[x] = np.sign(valid[x]) + (valid[x] == 0)
    return draw(mutated(valid))


# -- the network's methods and gradcheck ------------------------------------------------------

METHODS = ("forward", "forward_outputs", "backward", "backward_deltas", "backward_finite",
           "error", "init_params", "gradcheck")


@seed(RUN_SEED)
@settings(max_examples=300, phases=PHASES)
@given(networks(), st.data())
def test_network_methods_raise_only_graphdiff_errors(netshapes: Any, data: Any) -> None:
    net, shapes = netshapes
    method = data.draw(st.sampled_from(METHODS))
    if method == "init_params":
        seed_ = data.draw(st.one_of(st.none(), st.integers(-5, 2**64), junk))
        call(method, net.init_params, seed_)
        return
    params = data.draw(mutated(net.init_params(seed=0)))
    inputs = data.draw(inputs_for(shapes))
    if method == "forward":
        call(method, net.forward, params, inputs)
    elif method == "forward_outputs":
        outputs = data.draw(st.one_of(st.lists(st.sampled_from(net.nodes), max_size=3), junk))
        call(method, net.forward, params, inputs, outputs=outputs)
    elif method == "backward":
        call(method, net.backward, params, inputs)
    elif method == "backward_deltas":
        call(method, net.backward, params, inputs, deltas=True)
    elif method == "backward_finite":
        call(method, net.backward, params, inputs, check_finite=True)
    elif method == "error":
        call(method, net.error, params, inputs)
    else:
        options = {
            "mode": st.one_of(st.sampled_from(["central", "forward"]), junk),
            "eps": st.one_of(st.sampled_from([1e-6, 1e-3, 0.0, -1.0]), junk),
            "atol": st.one_of(st.just(1e-6), junk),
            "rtol": st.one_of(st.just(1e-5), junk),
            "directions": st.one_of(st.none(), st.integers(-2, 3), junk),
            "names": st.one_of(st.none(), st.lists(st.sampled_from(sorted(net.params)),
                                                    max_size=2), junk),
            "seed": st.one_of(st.integers(-1, 2**70), junk),
        }
        chosen = data.draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True))
        kwargs = {k: data.draw(options[k]) for k in chosen}
        call(method, graphdiff.gradcheck, net, params, inputs, **kwargs)


# -- compile, on graphs drawn from scratch ------------------------------------------------------

KINDS = ["input", "param", "const", "neuron", "add", "mul", "div", "matmul", "sum", "mean",
         "index", "stack", "concat", "reshape", "tanh", "relu", "log", "sqrt", "pow", "sin",
         "exp", "abs", "squared_error", "logistic", "hinge", "cross_entropy", "nope"]
NODE_ATTRS = {
    "activation": st.one_of(st.sampled_from(["tanh", "relu", "sin", "pow", "matmul", "x"]),
                            junk),
    "bias": st.one_of(st.sampled_from([0.0, "b", 10**400]), junk),
    "shape": st.one_of(st.lists(st.sampled_from([0, 1, 2, 3, -1, 2**40, 2**62, 10**30]),
                                max_size=3).map(tuple), junk),
    "value": st.one_of(st.lists(st.floats(-2, 2), max_size=3), junk),
    "init": st.one_of(st.sampled_from(["glorot", "zeros", "normal", "x"]), junk),
    "axis": st.one_of(st.integers(-3, 3), st.sampled_from(HUGE_INTS), junk),
    "i": st.one_of(st.integers(-3, 3), st.sampled_from(HUGE_INTS), junk),
    "keepdims": st.one_of(st.booleans(), junk),
    "exponent": st.one_of(st.sampled_from([2.0, 0.5, -1.0, 3]), junk),
    "scale": st.one_of(st.sampled_from([2.0, 1e308]), junk),
    "shift": junk,
    "pos": junk,
}
EDGE_ATTRS = {
    "port": st.one_of(st.integers(-1, 3), junk),
    "param": st.one_of(st.sampled_from(["u", "v", "W"]), junk),
    "weight": st.one_of(st.floats(-2, 2), st.sampled_from(HUGE_INTS), junk),
}


@st.composite
def mutated_graphs(draw: Any) -> tuple[Any, Any]:
    """A valid network with one or two attributes of a node or an edge changed."""
    G = GRAPHS[draw(st.sampled_from(sorted(GRAPHS)))][0]()
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):
            n = draw(st.sampled_from(sorted(G, key=str)))
            key = draw(st.sampled_from([*sorted(NODE_ATTRS), "op"]))
            value = draw(NODE_ATTRS[key] if key in NODE_ATTRS else
                         st.one_of(st.sampled_from(KINDS), junk))
            G.nodes[n][key] = value
        else:
            e = draw(st.sampled_from(sorted(G.edges, key=str)))
            key = draw(st.sampled_from(sorted(EDGE_ATTRS)))
            G.edges[e][key] = draw(EDGE_ATTRS[key])
    return G, "E"


@st.composite
def graphs(draw: Any) -> tuple[Any, Any]:
    if draw(st.booleans()):
        return draw(mutated_graphs())
    G = nx.MultiDiGraph() if draw(st.booleans()) else nx.DiGraph()
    n = draw(st.integers(1, 6))
    names: list[Any] = draw(st.lists(
        st.one_of(st.text(min_size=1, max_size=3), st.integers(-3, 9)),
        min_size=n, max_size=n, unique_by=lambda v: (type(v), v)))
    if draw(st.integers(0, 9)) == 0:  # a name that is neither str nor int
        names[0] = draw(st.one_of(st.tuples(st.integers(0, 3)), st.floats(-2, 2), st.just(True)))
    for name in names:
        attrs: dict[str, Any] = {"op": draw(st.one_of(st.sampled_from(KINDS), junk))
                                 if draw(st.integers(0, 9)) else draw(junk)}
        for key in draw(st.lists(st.sampled_from(sorted(NODE_ATTRS)), max_size=3, unique=True)):
            attrs[key] = draw(NODE_ATTRS[key])
        G.add_node(name, **attrs)
    for _ in range(draw(st.integers(0, 8))):
        u, v = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        attrs = {k: draw(EDGE_ATTRS[k])
                 for k in draw(st.lists(st.sampled_from(sorted(EDGE_ATTRS)), max_size=2,
                                        unique=True))}
        G.add_edge(u, v, **attrs)
    if draw(st.integers(0, 19)) == 0:
        G = draw(junk)  # not a graph at all
    loss = draw(st.sampled_from(names)) if draw(st.integers(0, 5)) else draw(junk)
    return G, loss


@seed(RUN_SEED)
@settings(max_examples=250, phases=PHASES)
@given(graphs(), st.data())
def test_compile_and_run_drawn_graphs_raise_only_graphdiff_errors(
    graph_loss: tuple[Any, Any], data: Any
) -> None:
    G, loss = graph_loss
    reduction = data.draw(st.one_of(st.sampled_from(["mean", "sum"]), junk))
    net = call("compile", graphdiff.compile, G, loss=loss, reduction=reduction)
    if not isinstance(net, graphdiff.Network):
        return
    params = call("init_params", net.init_params, 0)
    if isinstance(params, GraphdiffError):
        return
    n = data.draw(st.sampled_from([2, 1]))
    rng = np.random.default_rng(0)
    inputs = {}
    for x in net.inputs:  # the shape each input has in GRAPHS, else a drawn one
        known = [shapes[x] for _, shapes in GRAPHS.values() if x in shapes]
        shape = known[0] if known and data.draw(st.integers(0, 3)) else \
            data.draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
        inputs[x] = rng.uniform(0.1, 2.0, (n, *shape))
    call("backward", net.backward, params, inputs)
    call("backward_deltas", net.backward, params, inputs, deltas=True)
    call("error", net.error, params, inputs)
    call("forward", net.forward, params, inputs)


# -- fit ---------------------------------------------------------------------------------------


@seed(RUN_SEED)
@settings(max_examples=80, phases=PHASES)
@given(networks(), st.data())
def test_fit_raises_only_graphdiff_errors(netshapes: Any, data: Any) -> None:
    net, shapes = netshapes
    params = data.draw(st.one_of(st.none(), mutated(net.init_params(seed=0))))
    inputs = data.draw(inputs_for(shapes))
    options = {
        "optimizer": st.one_of(st.builds(graphdiff.SGD, lr=st.just(0.1)),
                               st.builds(graphdiff.Adam), junk),
        "epochs": st.one_of(st.integers(-1, 2), junk),
        "batch_size": st.one_of(st.none(), st.integers(-1, 4), st.sampled_from(HUGE_INTS), junk),
        "shuffle": st.one_of(st.booleans(), junk),
        "seed": st.one_of(st.integers(-1, 2**70), junk),
        "validation": st.one_of(st.none(), inputs_for(shapes), junk),
        "target_loss": st.one_of(st.none(), st.floats(), junk),
        "target_accuracy": st.one_of(st.none(), st.floats(), junk),
        "progress": st.one_of(st.just(False), junk),
        "every": st.one_of(st.integers(-1, 2), junk),
        "callbacks": st.one_of(st.just(()), junk),
    }
    chosen = data.draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True))
    kwargs = {"epochs": 2, "progress": False, **{k: data.draw(options[k]) for k in chosen}}
    if isinstance(kwargs["epochs"], int) and not isinstance(kwargs["epochs"], bool) and \
            kwargs["epochs"] > 3:
        kwargs["epochs"] = 3  # a huge epoch count is legal and would just train long
    call("fit", graphdiff.fit, net, params, inputs, **kwargs)


@pytest.fixture(autouse=True, scope="module")
def _in_a_scratch_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Junk drawn as a file path can be a relative name that a save accepts: it is
    written in a scratch folder, not in the directory pytest runs in (the checkout)."""
    with contextlib.chdir(tmp_path_factory.mktemp("cwd")):
        yield


# -- files -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    graphdiff.save(d / "model.json", _tensors(), NETS["tensors", "mean"].init_params(seed=0),
                   loss="E")
    graphdiff.save_checkpoint(d / "ckpt.json", graphdiff.Checkpoint(
        params={"W": np.ones((3, 2)), "b": np.float64(0.5)}, epoch=2, step=7,
        config={"lr": 0.1}, history=[{"loss": 1.0}]))
    # the vector format fit writes: layout, vector and the optimizer's slots as vectors
    p = NETS["tensors", "mean"].init_params(seed=0)
    opt = graphdiff.Adam()
    opt.step(p, p)  # any gradient of the layout: the slots hold numbers
    graphdiff.save_checkpoint(d / "ckpt_vector.json", graphdiff.Checkpoint(
        params=p, optimizer=opt.state_dict(p.layout), epoch=1, step=1))
    (d / "dir").mkdir()
    return d


def _replace_somewhere(doc: Any, path: list[int], value: Any) -> Any:
    """``doc`` with the value reached by following ``path`` (indices mod length) replaced."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    if isinstance(doc, dict):
        keys = sorted(doc)
        k = keys[path[0] % len(keys)]
        return {**doc, k: _replace_somewhere(doc[k], path[1:], value)}
    i = path[0] % len(doc)
    return [*doc[:i], _replace_somewhere(doc[i], path[1:], value), *doc[i + 1:]]


@st.composite
def file_texts(draw: Any, original: str) -> bytes:
    how = draw(st.sampled_from(["mutate", "mutate", "truncate", "bytes", "junk"]))
    if how == "mutate":
        path = draw(st.lists(st.integers(0, 50), min_size=1, max_size=6))
        doc = _replace_somewhere(json.loads(original), path, draw(json_junk))
        return json.dumps(doc).encode()
    if how == "truncate":
        return original.encode()[: draw(st.integers(0, len(original)))]
    if how == "bytes":
        return draw(st.binary(max_size=40))
    return json.dumps(draw(json_junk)).encode()


@seed(RUN_SEED)
@settings(max_examples=150, phases=PHASES)
@given(st.data())
def test_files_raise_only_graphdiff_errors(folder: Path, data: Any) -> None:
    which = data.draw(st.sampled_from(["load", "load_model", "load_checkpoint", "save",
                                       "save_checkpoint", "save_params"]))
    target = folder / "case.json"
    paths = st.one_of(st.just(target), st.just(folder / "dir"), st.just(folder / "no" / "x.json"),
                      st.just(str(target)), junk)
    if which.startswith("load"):
        original = folder / (
            data.draw(st.sampled_from(["ckpt.json", "ckpt_vector.json"]))
            if which == "load_checkpoint" else "model.json"
        )
        target.write_bytes(data.draw(file_texts(original.read_text())))
        path = data.draw(paths)
        kwargs = data.draw(st.fixed_dictionaries({}, optional={
            "allow_nonfinite": st.one_of(st.booleans(), junk),
            "limits": st.one_of(st.none(), st.builds(graphdiff.LoadLimits), junk)}))
        call(which, getattr(graphdiff, which), path, **kwargs)
    elif which == "save":
        G = data.draw(st.one_of(st.just(_tensors()), graphs().map(lambda gl: gl[0]), junk))
        params = data.draw(st.one_of(st.none(), mutated({"W": np.ones((3, 2))}), junk))
        loss = data.draw(st.one_of(st.none(), st.just("E"), junk))
        call(which, graphdiff.save, data.draw(paths), G, params, loss=loss)
    elif which == "save_params":
        params = data.draw(mutated({"W": np.ones((3, 2)), "b": np.float64(1.0)}))
        call(which, graphdiff.save_params, data.draw(paths), params)
    else:
        fields = {
            "params": st.one_of(mutated({"W": np.ones((3, 2))}), junk,
                                st.just(NETS["tensors", "mean"].init_params(seed=0))),
            "optimizer": st.one_of(st.none(), st.just(graphdiff.Adam().state_dict()), junk,
                                   st.fixed_dictionaries({"name": st.just("adam"),
                                                          "slots": st.one_of(json_junk, junk)})),
            "rng_state": st.one_of(
                st.none(), st.just(np.random.default_rng(0).bit_generator.state), junk),
            "epoch": st.one_of(st.integers(-1, 3), junk),
            "step": st.one_of(st.integers(-1, 3), junk),
            "config": st.one_of(st.dictionaries(st.text(max_size=3), json_junk), junk),
            "history": st.one_of(st.lists(st.dictionaries(st.text(max_size=3), json_junk),
                                          max_size=2), junk),
        }
        chosen = data.draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True))
        kwargs = {"params": {}, **{k: data.draw(fields[k]) for k in chosen}}
        ckpt = call("Checkpoint", graphdiff.Checkpoint, **kwargs)
        if isinstance(ckpt, graphdiff.Checkpoint):
            call(which, graphdiff.save_checkpoint, data.draw(paths), ckpt)


# -- the command line --------------------------------------------------------------------------

FAST_COMMANDS = ("gradcheck", "info", "schema", "ops")
TEXT = st.sampled_from(["", "-1", "0", "1", "2", "1e400", "nan", "x", "moons", "xor", "E",
                        "16,16", ",", "--", "-", "é", "10" * 30])


@st.composite
def argvs(draw: Any, folder: Path, commands: tuple[str, ...]) -> list[str]:
    command = draw(st.sampled_from(commands))
    files = [folder / "model.json", folder / "case.json", folder / "dir", folder / "missing",
             "/dev/null", folder / "ckpt.json"]
    file_arg = st.sampled_from([str(f) for f in files])
    options = {
        "gradcheck": ["--data", "--loss", "--n", "--seed", "--directions"],
        "train": ["--data", "--out", "--epochs", "--lr", "--batch-size", "--seed", "--loss"],
        "demo": ["--dataset", "--hidden", "--activation", "--epochs", "--lr", "--seed",
                 "--out"],
        "draw": ["-o"],
    }.get(command, [])
    argv = [command]
    if command in ("info", "gradcheck", "train", "draw"):
        argv.append(draw(file_arg))
    chosen = draw(st.lists(st.sampled_from(options), max_size=4, unique=True)) if options else []
    if command in ("gradcheck", "train") and "--data" not in chosen and draw(st.integers(0, 4)):
        chosen.append("--data")  # mostly given: without it argparse stops at once
    for opt in chosen:
        if opt in ("--out", "-o"):
            value = draw(st.sampled_from([str(folder / "out" / "m.json"), str(folder / "dir"),
                                          str(folder / "out.png"), "/dev/null/x"]))
        elif opt == "--data":
            value = draw(st.one_of(TEXT, file_arg))
        elif opt == "--epochs":  # a huge count is legal: it would just train for long
            value = draw(st.sampled_from(["", "-1", "0", "1", "2", "x", "1e400", "nan"]))
        else:
            value = draw(TEXT)
        argv += [opt, value]
    if command in ("train", "demo"):  # keep the runs short; a bad count is still drawn
        if "--epochs" not in argv:
            argv += ["--epochs", "1"]
        if command == "demo":
            argv += ["--quiet"] + ([] if "--out" in argv else ["--out", str(folder / "d")])
        if command == "train" and "--out" not in argv:
            argv += ["--out", str(folder / "trained.json")]
    if command == "draw" and "-o" not in argv:
        argv += ["-o", str(folder / "pic.png")]
    extra = draw(st.lists(TEXT, max_size=1))
    return argv + extra


def run_cli(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = call("cli " + argv[0], main, argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
            assert code == 2 and "usage:" in err.getvalue(), (argv, err.getvalue())
    text = out.getvalue() + err.getvalue()
    assert "Traceback" not in text, (argv, text)
    if isinstance(code, GraphdiffError):  # raised out of main: the CLI would show a traceback
        pytest.fail(f"graphdiff {' '.join(argv)} raised {type(code).__name__}: {code}")
    assert code in (0, 1, 2, 130), (argv, code)
    if code == 1:
        assert err.getvalue().startswith("graphdiff: error: ") or "mismatch" in text, \
            (argv, text)


@seed(RUN_SEED)
@settings(max_examples=120, phases=PHASES)
@given(st.data())
def test_cli_fast_commands_never_print_a_traceback(folder: Path, data: Any) -> None:
    target = folder / "case.json"
    target.write_bytes(data.draw(file_texts((folder / "model.json").read_text())))
    run_cli(data.draw(argvs(folder, FAST_COMMANDS)))


@seed(RUN_SEED)
@settings(max_examples=12, phases=PHASES)
@given(st.data())
def test_cli_training_and_drawing_commands_never_print_a_traceback(
    folder: Path, data: Any
) -> None:
    target = folder / "case.json"
    target.write_bytes(data.draw(file_texts((folder / "model.json").read_text())))
    run_cli(data.draw(argvs(folder, ("train", "demo", "draw"))))


def test_the_harness_catches_what_it_should() -> None:
    """A non-GraphdiffError escapes ``call``; a hang is cut by the timer."""
    with pytest.raises(ZeroDivisionError):
        call("divide", lambda: 1 / 0)
    global LIMIT_S
    saved, LIMIT_S = LIMIT_S, 0.05
    try:
        with pytest.raises(Hang):
            call("sleep", lambda: [math.factorial(3000) for _ in range(10**7)])
    finally:
        LIMIT_S = saved
    assert isinstance(call("refused", graphdiff.compile, 1, loss="E"), GraphdiffError)
