"""The generated fast path against the interpreter and numerical differentiation.

The fast path (graphdiff.codegen) fuses neurons into matrix levels; these graphs
are built so that it does (wide layers, sparse DAGs, shared names inside a level,
parallel edges, partial biases), and every result is compared bit for bit with the
interpreter (``Network.interpret``, the same operations in the same order) and with
float64 central differences; its options (``deltas=True``, ``check_finite=True``) must
give exactly the default's bits.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff.fusion import MIN_LEVEL_NEURONS


def assert_same_bits(a, b):
    assert a.loss == b.loss
    assert list(a.grads) == list(b.grads)
    for k in a.grads:
        assert np.array_equal(a.grads[k], b.grads[k]), k


def compare_paths(net, params, inputs):
    """The generated code, with and without its options, against the interpreter:
    the same operations in the same order, so the same bits everywhere."""
    fast = net.backward(params, inputs)
    ref = net.interpret(params, inputs, deltas=True)
    both = {"deltas": True, "check_finite": True}
    for options in ({"deltas": True}, {"check_finite": True}, both):
        full = net.backward(params, inputs, **options)
        assert_same_bits(full, fast)
        if options.get("deltas"):  # every node's delta, as the interpreter has it
            assert full.deltas.keys() == ref.deltas.keys() and full.z.keys() == ref.z.keys()
            for part in ("values", "deltas", "z", "deltas_z"):
                for node, want in getattr(ref, part).items():
                    got = getattr(full, part)[node]
                    assert np.array_equal(got, want), f"{part} of {node!r}"
                    assert np.shape(got) == np.shape(want)
    assert_same_bits(fast, ref)
    for k in ref.grads:
        assert np.shape(fast.grads[k]) == np.shape(ref.grads[k])
    assert net.error(params, inputs) == ref.loss
    return fast


def layered(sizes, act="tanh", shared_every=0, bias=True, multi=False):
    G = nx.MultiDiGraph() if multi else nx.DiGraph()
    prev = [f"x{i}" for i in range(sizes[0])]
    G.add_nodes_from(prev, op="input")
    for layer, width in enumerate(sizes[1:], 1):
        cur = [f"h{layer}_{k}" for k in range(width)]
        for k, n in enumerate(cur):
            b = (0.1 * k if k % 2 else "bshared") if bias else None
            attrs = {"op": "neuron", "activation": act}
            if b is not None:
                attrs["bias"] = b
            G.add_node(n, **attrs)
            for j, u in enumerate(prev):
                kw = {}
                if shared_every and (j + k) % shared_every == 0:
                    kw["param"] = f"s{layer}"
                G.add_edge(u, n, **kw)
                if multi and j == 0:
                    G.add_edge(u, n, param=f"extra{layer}_{k}")
        prev = cur
    G.add_node("y", op="neuron", activation="identity")
    for u in prev:
        G.add_edge(u, "y")
    G.add_node("t", op="input")
    G.add_node("E", op="logistic")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def data(net, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return {k: (rng.choice([-1.0, 1.0], n) if k == "t" else rng.normal(size=n)) for k in net.inputs}


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"shared_every": 3},
        {"bias": False},
        {"multi": True},
        {"act": "sigmoid", "shared_every": 2, "multi": True},
    ],
)
def test_dense_levels_match_interpreter_and_numerics(kw):
    net = graphdiff.compile(layered([3, 6, 5], **kw), loss="E")
    assert any(lv.dense for lv in net._fusion.levels)  # really fused into matrix levels
    params = net.init_params(seed=1)
    inputs = data(net)
    compare_paths(net, params, inputs)
    assert graphdiff.gradcheck(net, params, inputs).ok


def sparse_dag(n_nodes, seed=0, fan=2):
    rng = np.random.default_rng(seed)
    G = nx.DiGraph()
    names = [f"x{i}" for i in range(4)]
    G.add_nodes_from(names, op="input")
    for i in range(n_nodes):
        n = f"n{i}"
        act = ["tanh", "sigmoid", "sin"][i % 3]
        G.add_node(n, op="neuron", activation=act, bias=float(rng.normal()) if i % 4 else "b")
        for j in rng.choice(len(names), size=min(fan, len(names)), replace=False):
            shared = rng.random() < 0.1
            G.add_edge(names[j], n, **({"param": "w_shared"} if shared else {}))
        names.append(n)
    G.add_node("y", op="neuron", activation="identity")
    for n in names[4:]:
        if G.out_degree(n) == 0:
            G.add_edge(n, "y")
    G.add_node("t", op="input")
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_levels_match_interpreter_and_numerics(seed):
    net = graphdiff.compile(sparse_dag(300, seed=seed), loss="E")
    assert any(not lv.dense for lv in net._fusion.levels)  # sparse levels were made
    params = net.init_params(seed=seed)
    inputs = data(net, n=5, seed=seed)
    compare_paths(net, params, inputs)
    report = graphdiff.gradcheck(net, params, inputs, directions=3)
    assert report.ok, report


def test_level_member_feeds_op_nodes_and_is_the_loss_operand():
    """Neurons of a level feed `stack`, an op reads one row, and a neuron is the loss."""
    G = layered([2, MIN_LEVEL_NEURONS + 1])
    G.remove_nodes_from(["y", "E", "t"])
    hidden = [n for n in G if str(n).startswith("h1_")]
    for k, n in enumerate(hidden):
        G.add_edge(n, "S", port=k)
    G.nodes["S"]["op"] = "stack"
    G.add_node("W", op="param", shape=(len(hidden),), init="normal")
    G.add_node("Z", op="matmul")
    G.add_edge("S", "Z", port=0)
    G.add_edge("W", "Z", port=1)
    G.add_node("sq", op="square")
    G.add_edge(hidden[0], "sq")
    G.add_node("out", op="neuron", activation="tanh")
    G.add_edge("Z", "out")
    G.add_edge("sq", "out")
    G.add_edge(hidden[1], "out")
    net = graphdiff.compile(G, loss="out")
    params = net.init_params(seed=3)
    inputs = data(net)
    compare_paths(net, params, inputs)
    assert graphdiff.gradcheck(net, params, inputs).ok


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_softmax_output_layer_stacks_level_rows(order):
    """Neuron notation's classifier: the output neurons (a level) stacked into logits for
    the softmax cross-entropy. The generated code gathers the level's rows and scatters
    the stack's delta back itself; both must be what the interpreter's stack does."""
    k = MIN_LEVEL_NEURONS + 2
    G = graphdiff.mlp([3, 5, k], "relu", notation="neuron", loss="softmax_cross_entropy")
    if order == "shuffled":  # the stack's ports in another order than the level's rows
        ports = {u: d["port"] for u, _, d in G.in_edges("y", data=True)}
        perm = np.random.default_rng(1).permutation(k)
        for (u, p), q in zip(sorted(ports.items(), key=lambda e: e[1]), perm, strict=True):
            G.edges[u, "y"]["port"] = int(q)
    net = graphdiff.compile(G, loss="E")
    assert "_SK" in net._program.source  # the gathering path, not the op's calls
    params = net.init_params(seed=2)
    rng = np.random.default_rng(0)
    inputs = {n: rng.normal(size=9) for n in net.inputs if n != "t"}
    inputs["t"] = rng.integers(0, k, size=9).astype(float)
    compare_paths(net, params, inputs)
    assert graphdiff.gradcheck(net, params, inputs).ok


def test_reduction_sum_and_one_data_point():
    net = graphdiff.compile(layered([2, 5, 4]), loss="E", reduction="sum")
    params = net.init_params(seed=0)
    compare_paths(net, params, data(net, n=1))
    mean_net = graphdiff.compile(layered([2, 5, 4]), loss="E")
    inputs = data(net, n=6)
    assert net.backward(params, inputs).loss == pytest.approx(
        6 * mean_net.backward(params, inputs).loss, rel=1e-13
    )


def test_generated_source_holds_no_names_from_the_graph():
    """Node and parameter names never become code: hostile names stay data."""
    G = nx.DiGraph()
    evil = "__import__('os').system('echo pwned')"
    G.add_node(evil, op="input")
    G.add_node("t", op="input")
    for k in range(MIN_LEVEL_NEURONS):
        G.add_node(f"n{k}); import os #", op="neuron", activation="tanh")
        G.add_edge(evil, f"n{k}); import os #", param=f"{evil}{k}")
        G.add_edge(f"n{k}); import os #", "y")
    G.nodes["y"].update(op="neuron")
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    src = net._program.source
    assert "import" not in src and "system" not in src and "echo" not in src
    params = net.init_params(seed=0)
    inputs = {evil: np.ones(3), "t": np.zeros(3)}
    compare_paths(net, params, inputs)


def test_values_no_vjp_reads_are_released_in_the_fast_path():
    """Op notation: the add (z) and matmul outputs are dropped after the forward pass."""
    G = graphdiff.mlp([2, 8, 1], "tanh", notation="op", loss="logistic")
    net = graphdiff.compile(G, loss="E")
    forward = net._program.source.split("E = _sum(L)")[0]
    assert len(forward) < len(net._program.source)  # the split found the loss line
    z1 = net.nodes.index("z1")
    assert f"del v{z1}" in forward  # tanh saves only its output, add saves nothing
    params = net.init_params(seed=0)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(5, 2)), "t": rng.choice([-1.0, 1.0], 5)}
    compare_paths(net, params, data)


def lecture_like():
    """x -> h (tanh) -> y (identity) -> E = (y - t)^2, with a second input feeding y."""
    G = nx.DiGraph()
    G.add_nodes_from(["x", "u", "t"], op="input")
    G.add_node("h", op="neuron", activation="tanh")
    G.add_node("y", op="neuron", activation="identity")
    G.add_edges_from([("x", "h"), ("h", "y"), ("u", "y")])
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def test_identity_neurons_are_not_called_and_their_delta_passes_through():
    net = graphdiff.compile(lecture_like(), loss="E")
    src = net._program.source
    y = net.nodes.index("y")
    assert f"v{y} = z{y}" in src and f"_G{y}" not in src and f"_H{y}" not in src
    params = net.init_params(seed=0)
    inputs = data(net, n=5)
    res = compare_paths(net, params, inputs)
    # dE/dw(h->y) = mean 2 (y - t) h, with y = w_hy h + w_uy u, h = tanh(w_xh x)
    x, u, t = inputs["x"], inputs["u"], inputs["t"]
    h = np.tanh(params["x->h"] * x)
    y_val = params["h->y"] * h + params["u->y"] * u
    assert res.grads["h->y"] == pytest.approx(np.mean(2 * (y_val - t) * h), rel=1e-12)


def test_a_delta_from_one_use_is_kept_unscaled_with_its_weight_apart():
    # x -> a -> b -> c -> y (chain, biases, mixed activations) and x -> y: the deltas
    # of a, b and c each come from one use, so no array is multiplied by a weight;
    # the weights multiply into numbers (c<slot>) and into each gradient instead
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    for n, act in [("a", "tanh"), ("b", "identity"), ("c", "sigmoid"), ("y", "identity")]:
        G.add_node(n, op="neuron", activation=act, bias=f"{n}.bias")
    G.add_edges_from([("x", "a"), ("a", "b"), ("b", "c"), ("c", "y"), ("x", "y")])
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    src = net._program.source
    a, b, c = (net.nodes.index(n) for n in "abc")
    for n in (a, b, c):
        assert f"d{n} = dz\n" in src, n  # an alias, not dz * S<p>
    assert f"c{b} = " in src and f"c{a} = " in src  # weights along the chain, multiplied
    params = {k: np.float64(v) for k, v in zip(sorted(net.params), np.linspace(-1.3, 1.1, 9))}
    inputs = data(net, n=7)
    compare_paths(net, params, inputs)
    assert graphdiff.gradcheck(net, params, inputs).ok
    # by hand: dE/dw(x->a) = mean 2 (y - t) w_cy s'(zc) w_bc w_ab tanh'(za) x
    x, t, p = inputs["x"], inputs["t"], params
    ha = np.tanh(p["x->a"] * x + p["a.bias"])
    zb = p["a->b"] * ha + p["b.bias"]
    hc = 1 / (1 + np.exp(-(p["b->c"] * zb + p["c.bias"])))
    y = p["c->y"] * hc + p["x->y"] * x + p["y.bias"]
    want = np.mean(2 * (y - t) * p["c->y"] * hc * (1 - hc) * p["b->c"] * p["a->b"]
                   * (1 - ha**2) * x)
    assert net.backward(params, inputs).grads["x->a"] == pytest.approx(want, rel=1e-13)


def test_an_op_named_identity_is_recognised_by_its_functions_not_its_name():
    from graphdiff import Op, register_op
    from graphdiff.registry import scoped_registry

    with scoped_registry():
        register_op(
            Op(name="identity", forward=lambda x: 2.0 * x, vjp=lambda g, out, x: (2.0 * g,),
               elementwise=True),
            replace=True,
        )
        net = graphdiff.compile(lecture_like(), loss="E")
        y = net.nodes.index("y")
        assert f"_G{y}(z{y})" in net._program.source  # called: it is not the identity
        params = net.init_params(seed=0)
        inputs = data(net, n=5)
        res = compare_paths(net, params, inputs)
        x, u, t = inputs["x"], inputs["u"], inputs["t"]
        h = np.tanh(params["x->h"] * x)
        y_val = 2.0 * (params["h->y"] * h + params["u->y"] * u)
        assert res.grads["h->y"] == pytest.approx(np.mean(2 * (y_val - t) * 2.0 * h), rel=1e-12)


def test_placeholders_for_unread_values_have_the_value_shape():
    # h reads only its output (tanh); where h is fed by inputs and neurons its shape is
    # certainly (N,) and one shared zeros array stands in for z; where an op feeds it,
    # the shape is taken from its delta
    G = lecture_like()
    net = graphdiff.compile(G, loss="E")
    assert "ZN = _ph((N,))" in net._program.source
    G.add_node("s", op="mul")
    G.remove_edge("x", "h")
    G.add_edges_from([("x", "s"), ("u", "s"), ("s", "h")])
    net = graphdiff.compile(G, loss="E")
    h = net.nodes.index("h")
    assert f"_ph(d{h}.shape)" in net._program.source and "ZN" not in net._program.source
    compare_paths(net, net.init_params(seed=1), data(net, n=4))


@pytest.mark.parametrize(
    ("kw", "block", "unique"),
    [
        ({}, True, True),  # a full block: one gather, one scatter
        ({"shared_every": 3}, True, False),  # shared names add up
        ({"multi": True}, False, True),  # parallel edges: not a plain block
    ],
)
def test_full_dense_blocks_gather_and_scatter_in_one_go(kw, block, unique):
    net = graphdiff.compile(layered([3, 6, 5], **kw), loss="E")
    first = net._fusion.levels[0]  # the first hidden layer: every input to every neuron
    assert first.dense and (first.block is not None) == block
    assert first.grads_unique == unique and first.pairs_unique == (not kw.get("multi"))
    params = net.init_params(seed=2)
    compare_paths(net, params, data(net, n=6, seed=2))


def test_plans_too_large_for_code_run_the_interpreter_with_the_same_bits(monkeypatch):
    """A plan with more steps outside levels than MAX_UNFUSED_STEPS gets no generated
    code: backward runs the interpreter, over the same fused plan, giving the same bits."""
    import graphdiff.program

    G = sparse_dag(60, seed=4)
    fast = graphdiff.compile(G, loss="E")
    assert fast._program is not None  # made on first use, so before the limit changes
    monkeypatch.setattr(graphdiff.program, "MAX_UNFUSED_STEPS", 0)
    slow = graphdiff.compile(G, loss="E")
    assert slow._program is None
    assert slow._fusion.levels  # the interpreter runs matrix levels too
    params = fast.init_params(seed=4)
    inputs = data(fast, n=5, seed=4)
    assert_same_bits(slow.backward(params, inputs), fast.backward(params, inputs))
    a = slow.backward(params, inputs, deltas=True, check_finite=True)
    b = fast.backward(params, inputs, deltas=True, check_finite=True)
    assert_same_bits(a, b)
    for part in ("values", "deltas", "z", "deltas_z"):
        for node, v in getattr(b, part).items():
            assert np.array_equal(getattr(a, part)[node], v), (part, node)
