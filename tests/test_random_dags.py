"""Property tests on random networks: backprop agrees with float64 central differences.

Hypothesis draws small DAGs (a MultiDiGraph, so an operand can be used twice)
that mix the lecture's neurons (smooth activations, shared scalar weights,
biases by name and by number) with op nodes (arithmetic broadcasting against
parameter nodes of shapes (), (1,), (d,), (1, d); div with denominators kept
away from 0; exp of bounded values; matmul with parameter nodes; sum/mean over
an axis; stack, concat, reshape and index between neurons and tensors; relu and
abs of values kept away from their kink, log, sqrt and pow of values kept
positive). Every value the loss depends on ends in one identity neuron (two,
stacked into logits, for the softmax cross-entropy), and a loss drawn from
squared_error, hinge (margin 0 or 1), logistic and softmax_cross_entropy against
an input target of its kind, reduced by the mean or the sum. The numerical
gradient is an independent loop over every parameter entry, evaluating E
through ``net.forward``.

The draws vary from run to run: ``conftest.RUN_SEED``, printed in pytest's
header (``GRAPHDIFF_TEST_SEED=N`` repeats a run).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from conftest import RUN_SEED
from hypothesis import given, seed, settings
from hypothesis import strategies as st

import graphdiff

ACTIVATIONS = ("tanh", "sigmoid", "identity", "softplus", "sin")
SHARED = {"u": 0.7, "v": -0.4, "w": 1.1}  # initial values an edge may give as `weight`
EPS = 1e-6
ATOL, RTOL = 1e-6, 1e-5
BIG = 4.0  # operands whose values may exceed this are squashed by a tanh node first
# the loss ops drawn: (op, its attributes, the kind of target it fits)
LOSSES = [
    ("squared_error", {}, "real"),
    ("hinge", {}, "signs"),
    ("hinge", {"margin": 1.0}, "signs"),
    ("logistic", {}, "signs"),
    ("softmax_cross_entropy", {}, "classes"),
    ("softmax_cross_entropy", {}, "probabilities"),
]


@dataclass
class Dag:
    """A drawn network as plain data, so it can be built in any insertion order."""

    nodes: dict[Hashable, dict[str, Any]]
    edges: list[tuple[Hashable, Hashable, int, dict[str, Any]]]
    inputs: dict[str, int]  # input node -> width (0: shape (N,))
    positive: set[str]  # param nodes that are denominators: keep their given values
    n: int
    seed: int
    target: str = "real"  # the kind of target of the loss (see LOSSES)
    reduction: str = "mean"

    def reduce(self, values: np.ndarray) -> float:
        return float(values.mean() if self.reduction == "mean" else values.sum())

    def graph(self, shuffle: random.Random | None = None) -> nx.MultiDiGraph:
        nodes = [(k, dict(v)) for k, v in self.nodes.items()]
        edges = list(self.edges)
        if shuffle is not None:
            shuffle.shuffle(nodes)
            shuffle.shuffle(edges)
        G = nx.MultiDiGraph()
        G.add_nodes_from(nodes)
        for u, v, k, d in edges:
            G.add_edge(u, v, key=k, **d)
        return G

    def data(self, net: graphdiff.Network) -> tuple[dict[str, Any], dict[Hashable, Any]]:
        """Random parameters and inputs, as read-only arrays."""
        rng = np.random.default_rng(self.seed)
        params = net.init_params(seed=self.seed)
        for name, value in params.items():
            if name not in self.positive:
                value = rng.uniform(-1.0, 1.0, np.shape(value))
            params[name] = np.float64(value) if np.ndim(value) == 0 else _frozen(value)
        inputs = {
            x: _frozen(rng.uniform(-1.0, 1.0, (self.n, w) if w else (self.n,)))
            for x, w in self.inputs.items()
        }
        if self.target == "signs":
            inputs["t"] = _frozen(rng.choice([-1.0, 1.0], self.n))
        elif self.target == "classes":
            inputs["t"] = _frozen(rng.integers(0, 2, self.n).astype(float))
        elif self.target == "probabilities":
            p = rng.uniform(0.0, 1.0, self.n)
            inputs["t"] = _frozen(np.stack([p, 1.0 - p], axis=1))
        return params, inputs


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


@dataclass
class _Maker:
    """Grows a Dag one node at a time from hypothesis draws."""

    draw: Any
    nodes: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[Hashable, Hashable, int, dict[str, Any]]] = field(default_factory=list)
    keys: Counter[tuple[Hashable, Hashable]] = field(default_factory=Counter)
    width: dict[Hashable, int] = field(default_factory=dict)  # per data point; 0 means (N,)
    bound: dict[Hashable, float] = field(default_factory=dict)  # |value| <= bound
    params: dict[tuple[int, ...], list[str]] = field(default_factory=dict)
    positive: set[str] = field(default_factory=set)
    count: int = 0

    # -- bookkeeping --------------------------------------------------------------

    def new(self, name: Hashable | None, width: int | None, bound: float, **attrs: Any) -> Any:
        if name is None:
            name = self.count  # op nodes get int names, neurons and params str names
        self.count += 1
        self.nodes[name] = attrs
        if width is not None:
            self.width[name] = width
            self.bound[name] = bound
        return name

    def edge(self, u: Hashable, v: Hashable, **attrs: Any) -> None:
        k = self.keys[(u, v)]
        self.keys[(u, v)] += 1
        self.edges.append((u, v, k, attrs))

    def has(self, width: int | None) -> bool:
        return any(self._candidates(width))

    def _candidates(self, width: int | None) -> list[Hashable]:
        if width is None:
            return [n for n, w in self.width.items() if w > 0]  # any tensor (N, w)
        return [n for n, w in self.width.items() if w == width]

    def pick(self, width: int | None = -1) -> Hashable:
        """A value node of the given width (-1: any, None: any tensor), squashed if large."""
        pool = list(self.width) if width == -1 else self._candidates(width)
        node = self.pick_from(pool)
        if self.bound[node] > BIG:
            node = self.op("tanh", [node], self.width[node], 1.0)
        return node

    def pick_from(self, nodes: list[Hashable]) -> Hashable:
        return self.draw(st.sampled_from(sorted(nodes, key=str)))

    def op(self, op: str, args: list[Hashable], width: int, bound: float, **attrs: Any) -> Any:
        """An op node; ports are given unless the op is unordered and the draw says not to."""
        name = self.new(None, width, bound, op=op, **attrs)
        ports = len(args) > 1 and (op not in ("add", "mul") or self.draw(st.booleans()))
        for i, a in enumerate(args):
            if ports:
                self.edge(a, name, port=i)
            else:
                self.edge(a, name)
        return name

    def param(self, shape: tuple[int, ...], positive: bool = False) -> str:
        """A parameter node of this shape, new or shared (fan-out) with an earlier one."""
        same = [p for p in self.params.get(shape, []) if (p in self.positive) == positive]
        if same and self.draw(st.booleans()):
            return self.draw(st.sampled_from(same))
        name = f"p{self.count}"
        if positive:
            value = self.draw(st.sampled_from([0.8, 1.0, 1.3, 1.6]))
            self.new(name, None, 0.0, op="param", value=np.full(shape, value))
            self.positive.add(name)
        elif self.draw(st.booleans()):
            self.new(name, None, 0.0, op="param", shape=shape)
        else:  # `value` only, the shape read from it
            self.new(name, None, 0.0, op="param", value=np.zeros(shape))
        self.params.setdefault(shape, []).append(name)
        return name

    def rotated(self, options: Any) -> Any:
        # hypothesis favours the first option; rotating by the node count spreads draws
        # over all of them while keeping each draw shrinkable
        return options[(self.draw(st.integers(0, len(options) - 1)) + self.count) % len(options)]

    def broadcast_shape(self, width: int) -> tuple[int, ...]:
        shapes: list[tuple[int, ...]] = [(), (1,)]
        if width:
            shapes += [(width,), (1, width)]
        return self.draw(st.sampled_from(shapes))

    # -- the node kinds -----------------------------------------------------------

    def neuron(self, name: str | None = None, operands: list[Hashable] | None = None,
               activation: str | None = None) -> str:
        if operands is None:
            k = self.draw(st.integers(1, 3))
            operands = [self.pick(0) for _ in range(k)]  # repeats: parallel edges
        act = activation or self.rotated(ACTIVATIONS)
        attrs: dict[str, Any] = {"op": "neuron", "activation": act}
        if act == "sin" and self.draw(st.booleans()):
            attrs["scale"] = 2.0
        bias = self.draw(st.sampled_from(["none", "name", "shared", "number"]))
        if bias == "name":
            attrs["bias"] = "b"
        elif bias == "shared":
            attrs["bias"] = "u"  # also an edge weight elsewhere: one parameter
        elif bias == "number":
            attrs["bias"] = self.draw(st.sampled_from([-0.5, 0.0, 0.3]))
        linear = sum(1.2 * self.bound[a] for a in operands) + 1.0
        bound = {"tanh": 1.0, "sigmoid": 1.0, "sin": 1.0, "identity": linear}.get(act, linear + 1)
        name = self.new(name or f"n{self.count}", 0, bound, **attrs)
        for a in operands:
            e: dict[str, Any] = {}
            shared = self.draw(st.sampled_from([None, "u", "v", "w"]))
            if shared:
                e["param"] = shared
            if self.draw(st.booleans()):
                e["weight"] = SHARED[shared] if shared else self.draw(st.sampled_from([-1.2, 0.9]))
            self.edge(a, name, **e)
        return name

    def binary(self, op: str) -> Hashable:
        a = self.pick()
        w = self.width[a]
        how = self.draw(st.sampled_from(["pool", "param", "same"]))
        if how == "same":  # a repeated operand: two parallel edges
            b: Hashable = a
            bound_b = self.bound[a]
        elif how == "pool":
            b = self.pick(w)
            bound_b = self.bound[b]
        else:
            b = self.param(self.broadcast_shape(w))
            bound_b = 1.0
        args = [a, b] if self.draw(st.booleans()) else [b, a]
        ba = self.bound[a]
        bound = ba * bound_b if op == "mul" else ba + bound_b
        return self.op(op, args, w, bound)

    def div(self) -> Hashable:
        a = self.pick()
        w = self.width[a]
        if self.draw(st.booleans()):
            den = self.param(self.broadcast_shape(w), positive=True)
            bound = self.bound[a] / 0.8
        else:  # exp(tanh(.)) lies in [1/e, e]
            t = self.op("tanh", [self.pick(w)], w, 1.0)
            den = self.op("exp", [t], w, np.e)
            bound = self.bound[a] * np.e
        return self.op("div", [a, den], w, bound)

    def exp(self) -> Hashable:
        a = self.pick()
        if self.bound[a] > 1.5:
            a = self.op("tanh", [a], self.width[a], 1.0)
        return self.op("exp", [a], self.width[a], float(np.exp(self.bound[a])))

    def tanh(self) -> Hashable:
        a = self.pick()
        return self.op("tanh", [a], self.width[a], 1.0)

    def matmul(self) -> Hashable:
        a = self.pick(None)
        w = self.width[a]
        out = self.draw(st.integers(0, 3))
        W = self.param((w, out) if out else (w,))
        return self.op("matmul", [a, W], out, self.bound[a] * w)

    def reduce(self) -> Hashable:
        a = self.pick(None)
        w = self.width[a]
        op = self.draw(st.sampled_from(["sum", "mean"]))
        keep = self.draw(st.booleans())
        bound = self.bound[a] * (w if op == "sum" else 1)
        return self.op(op, [a], 1 if keep else 0, bound, axis=self.draw(st.sampled_from([1, -1])),
                       keepdims=keep)

    def away_from_zero(self) -> Hashable:
        """A value in ±[1/e, e], of either sign: sign * exp(tanh(.)), far from any kink at 0."""
        a = self.pick()
        w = self.width[a]
        t = self.op("tanh", [a], w, 1.0)
        e = self.op("exp", [t], w, np.e)
        sign = self.new(f"c{self.count}", None, 0.0, op="const",
                        value=self.draw(st.sampled_from([1.0, -1.0])))
        return self.op("mul", [sign, e], w, np.e)

    def positive_value(self) -> Hashable:
        """A value in [1/e, e]: exp(tanh(.))."""
        a = self.pick()
        w = self.width[a]
        return self.op("exp", [self.op("tanh", [a], w, 1.0)], w, np.e)

    def kink(self) -> Hashable:  # relu or abs, of a value away from the kink
        op = self.draw(st.sampled_from(["relu", "abs"]))
        a = self.away_from_zero()
        return self.op(op, [a], self.width[a], np.e)

    def log(self) -> Hashable:
        a = self.positive_value()
        return self.op("log", [a], self.width[a], 1.0)

    def sqrt(self) -> Hashable:
        a = self.positive_value()
        return self.op("sqrt", [a], self.width[a], 2.0)

    def pow(self) -> Hashable:
        exponent = self.draw(st.sampled_from([2.0, 3.0, 0.5, -1.0, 1.5]))
        if exponent in (2.0, 3.0):  # any operand
            a = self.pick()
            if self.bound[a] > 1.5:
                a = self.op("tanh", [a], self.width[a], 1.0)
            bound = self.bound[a] ** exponent
        else:
            a = self.positive_value()
            bound = float(np.e ** abs(exponent))
        return self.op("pow", [a], self.width[a], bound, exponent=exponent)

    def concat(self) -> Hashable:
        k = self.draw(st.integers(1, 3))
        args = [self.pick(None) for _ in range(k)]
        return self.op("concat", args, sum(self.width[a] for a in args),
                       max(self.bound[a] for a in args))

    def reshape(self) -> Hashable:
        a = self.pick()
        w = self.width[a]
        if w == 0:  # (N,) -> (N, 1)
            return self.op("reshape", [a], 1, self.bound[a], shape=(1,))
        # (N, w) -> (N, w, 1) -> (N, w)
        r = self.op("reshape", [a], w, self.bound[a], shape=(w, 1))
        del self.width[r]  # 3-D: not an operand for anything but the reshape back
        return self.op("reshape", [r], w, self.bound[a], shape=(-1,))

    def stack(self) -> Hashable:
        k = self.draw(st.integers(1, 3))
        args = [self.pick(0) for _ in range(k)]
        return self.op("stack", args, k, max(self.bound[a] for a in args))

    def index(self) -> Hashable:
        a = self.pick(None)
        w = self.width[a]
        return self.op("index", [a], 0, self.bound[a], i=self.draw(st.integers(-w, w - 1)))


@st.composite
def dags(draw: Any) -> Dag:
    m = _Maker(draw)
    inputs = {"x0": 0}
    if draw(st.booleans()):
        inputs["x1"] = 0
    if draw(st.booleans()):
        inputs["X"] = draw(st.integers(1, 5))
    for x, w in inputs.items():
        m.new(x, w, 1.0, op="input")
    kinds = ["neuron", "add", "sub", "mul", "div", "exp", "tanh", "stack", "kink", "log",
             "sqrt", "pow", "reshape"]
    for _ in range(draw(st.integers(1, 6))):
        tensors = ["matmul", "reduce", "index", "concat"] if m.has(None) else []
        kind = m.rotated(kinds + tensors)
        if kind == "neuron":
            m.neuron()
        elif kind in ("add", "sub", "mul"):
            m.binary(kind)
        else:
            getattr(m, kind)()
    # every value that feeds nothing yet goes into the output neuron y (tensors summed)
    used = {u for u, _, _, _ in m.edges}
    sinks = []
    for node in [n for n in m.width if n not in used]:
        if m.width[node]:
            node = m.op("sum", [node], 0, m.bound[node] * m.width[node], axis=1)
        sinks.append(node)
    loss, attrs, target = LOSSES[m.rotated(range(len(LOSSES)))]
    y = m.neuron("y", sinks, "identity")
    if target in ("classes", "probabilities"):  # two logits per data point
        y = m.op("stack", [y, m.neuron("y2", sinks, "identity")], 2, 1.0)
    m.new("t", None, 0.0, op="input")
    m.new("E", None, 0.0, op=loss, **attrs)
    m.edge(y, "E", port=0)
    m.edge("t", "E", port=1)
    inputs["t"] = 0
    n = draw(st.sampled_from([3, 1, 5, 2, 4, 8, 7]))
    seed = draw(st.integers(0, 2**32 - 1))
    reduction = draw(st.sampled_from(["mean", "sum"]))
    return Dag(m.nodes, m.edges, inputs, m.positive, n, seed, target, reduction)


def numeric_grads(
    net: graphdiff.Network, params: dict[str, Any], inputs: dict[Hashable, Any]
) -> dict[str, np.ndarray]:
    """Central differences of E, entry by entry, in float64."""

    def E(p: dict[str, Any]) -> float:
        values = net.forward(p, inputs, outputs=[net.loss])[net.loss]
        return float(values.mean() if net.reduction == "mean" else values.sum())

    out = {}
    for name, value in params.items():
        value = np.asarray(value, dtype=np.float64)
        g = np.zeros(value.shape)
        for idx in np.ndindex(*value.shape):
            plus, minus = value.copy(), value.copy()
            plus[idx] += EPS
            minus[idx] -= EPS
            g[idx] = (E({**params, name: plus}) - E({**params, name: minus})) / (2 * EPS)
        out[name] = g
    return out


def assert_close(grads: dict[str, Any], numeric: dict[str, np.ndarray], what: str) -> None:
    assert grads.keys() == numeric.keys(), what
    for name, g in numeric.items():
        err = np.abs(np.asarray(grads[name]) - g)
        ok = err <= ATOL + RTOL * np.abs(g)
        assert np.all(ok), f"{what}: parameter {name!r}: analytic {grads[name]}, numeric {g}"


def assert_same_bits(a: Any, b: Any, what: str) -> None:
    """The generated code's options change nothing on the way to E and the gradients."""
    assert a.loss == b.loss, what
    assert list(a.grads) == list(b.grads), what
    for k in a.grads:
        assert np.array_equal(a.grads[k], b.grads[k]), (what, k)


def assert_same_backends(net: graphdiff.Network, params: Any, inputs: Any, full: Any) -> None:
    """The interpreter (the reference) and the generated code run the same fused plan
    with the same operations in the same order: the same bits for the loss, every
    gradient, and every node's value, delta, z and dE/dz."""
    ref = net.interpret(params, inputs, deltas=True)
    assert_same_bits(ref, full, "interpreter")
    for part in ("values", "deltas", "z", "deltas_z"):
        got, want = getattr(full, part), getattr(ref, part)
        assert got.keys() == want.keys(), part
        for node, v in want.items():
            assert np.shape(got[node]) == np.shape(v), (part, node)
            assert np.array_equal(got[node], v), (part, node)


@seed(RUN_SEED)
@settings(max_examples=220)
@given(dags())
def test_gradients_match_central_differences(dag):
    net = graphdiff.compile(dag.graph(), loss="E", reduction=dag.reduction)
    params, inputs = dag.data(net)
    numeric = numeric_grads(net, params, inputs)
    fast = net.backward(params, inputs)
    assert_close(fast.grads, numeric, "backward")
    full = net.backward(params, inputs, deltas=True)
    assert_close(full.grads, numeric, "backward(deltas=True)")
    assert_same_bits(full, fast, "backward(deltas=True)")
    assert_same_bits(net.backward(params, inputs, check_finite=True), fast, "check_finite")
    assert_same_backends(net, params, inputs, full)
    for name, spec in net.params.items():
        assert np.shape(fast.grads[name]) == spec.shape
        assert isinstance(fast.grads[name], np.float64 if spec.kind == "scalar" else np.ndarray)
    # losses agree with a forward pass; E is the loss node reduced (mean or sum)
    loss = dag.reduce(net.forward(params, inputs, outputs=["E"])["E"])
    assert abs(fast.loss - loss) <= 1e-12 * max(1.0, abs(loss))
    # deltas=True runs the generated code too (full.loss is fast.loss, bit for bit, above);
    # a fused loss such as the softmax cross-entropy rounds apart from a forward pass
    assert abs(full.loss - loss) <= 1e-12 * max(1.0, abs(loss))
    # the loss node's delta is 1/N per data point (1 with the sum); dE/dz = delta g'(z)
    seed_delta = 1.0 / dag.n if dag.reduction == "mean" else 1.0
    np.testing.assert_array_equal(full.deltas["E"], np.full(dag.n, seed_delta))
    np.testing.assert_allclose(full.deltas_z["y"], full.deltas["y"], rtol=1e-15)
    # a second call gives bit-identical results (read-only inputs were never written)
    again = net.backward(params, inputs)
    assert again.loss == fast.loss
    assert all(np.array_equal(again.grads[k], fast.grads[k]) for k in fast.grads)
    again_full = net.backward(params, inputs, deltas=True)
    for part in ("values", "deltas", "z", "deltas_z"):
        for node, v in getattr(full, part).items():
            assert np.array_equal(getattr(again_full, part)[node], v), (part, node)


@seed(RUN_SEED)
@settings(max_examples=100)
@given(dags(), st.randoms(use_true_random=False))
def test_insertion_order_gives_bit_identical_results(dag, rnd):
    a = graphdiff.compile(dag.graph(), loss="E", reduction=dag.reduction)
    b = graphdiff.compile(dag.graph(shuffle=rnd), loss="E", reduction=dag.reduction)
    pa, pb = a.init_params(seed=dag.seed), b.init_params(seed=dag.seed)
    assert pa.keys() == pb.keys()
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    params, inputs = dag.data(a)
    for deltas in (False, True):
        ra = a.backward(params, inputs, deltas=deltas)
        rb = b.backward(params, inputs, deltas=deltas)
        assert ra.loss == rb.loss
        assert ra.grads.keys() == rb.grads.keys()
        assert all(np.array_equal(ra.grads[k], rb.grads[k]) for k in ra.grads)
        for part in ("values", "deltas", "z", "deltas_z"):
            got = getattr(rb, part)
            for node, v in getattr(ra, part).items():
                assert np.array_equal(got[node], v), (part, node)


@st.composite
def layered(draw: Any) -> Dag:
    """Layers of neurons wide enough that the fast path runs them as matrix levels."""
    m = _Maker(draw)
    inputs = {f"x{i}": 0 for i in range(draw(st.integers(1, 6)))}
    for x in inputs:
        m.new(x, 0, 1.0, op="input")
    below: list[Hashable] = list(inputs)
    earlier: list[Hashable] = []
    for depth in range(draw(st.integers(1, 3))):
        act = m.rotated(ACTIVATIONS)
        sparse = draw(st.booleans())  # one or two operands per neuron: a sparse level
        layer = []
        for j in range(draw(st.integers(1, 6))):
            if sparse:
                operands = [m.pick_from(below) for _ in range(draw(st.integers(1, 2)))]
            else:
                mask = draw(st.lists(st.booleans(), min_size=len(below), max_size=len(below)))
                operands = [a for a, keep in zip(below, mask, strict=True) if keep] or below[:1]
            # now and then a skip connection
            if earlier and draw(st.booleans()):
                operands.append(m.pick_from(earlier))
            mixed = draw(st.integers(0, 5)) == 0  # mostly one activation per layer
            layer.append(m.neuron(f"L{depth}n{j}", operands, m.rotated(ACTIVATIONS) if mixed
                                  else act))
        earlier += below
        below = layer
    if draw(st.booleans()):  # a tensor branch: stack the last layer, times a param
        st_node = m.op("stack", below, len(below), 1.0)
        m.op("matmul", [st_node, m.param((len(below),))], 0, len(below))
    used = {u for u, _, _, _ in m.edges}
    m.neuron("y", [n for n in m.width if n not in used], "identity")
    m.new("t", None, 0.0, op="input")
    m.new("E", None, 0.0, op="squared_error")
    m.edge("y", "E", port=0)
    m.edge("t", "E", port=1)
    inputs["t"] = 0
    n = draw(st.sampled_from([3, 1, 5, 2, 4]))
    return Dag(m.nodes, m.edges, inputs, m.positive, n, draw(st.integers(0, 2**32 - 1)))


@seed(RUN_SEED)
@settings(max_examples=100)
@given(layered(), st.randoms(use_true_random=False))
def test_layered_neurons_match_central_differences(dag, rnd):
    net = graphdiff.compile(dag.graph(), loss="E")
    params, inputs = dag.data(net)
    numeric = numeric_grads(net, params, inputs)
    fast = net.backward(params, inputs)
    assert_close(fast.grads, numeric, "backward")
    full = net.backward(params, inputs, deltas=True)
    assert_close(full.grads, numeric, "backward(deltas=True)")
    assert_same_bits(full, fast, "backward(deltas=True)")
    assert_same_bits(net.backward(params, inputs, check_finite=True), fast, "check_finite")
    assert_same_backends(net, params, inputs, full)
    loss = net.forward(params, inputs, outputs=["E"])["E"].mean()
    assert abs(fast.loss - loss) <= 1e-12 * max(1.0, abs(loss))
    assert abs(net.error(params, inputs) - loss) <= 1e-12 * max(1.0, abs(loss))
    shuffled = graphdiff.compile(dag.graph(shuffle=rnd), loss="E").backward(params, inputs)
    assert shuffled.loss == fast.loss
    assert all(np.array_equal(shuffled.grads[k], fast.grads[k]) for k in fast.grads)
