"""W3, W4 and the W3 memory row: tanh MLPs with biases and the logistic loss.

An MLP of layer sizes ``dims`` (the last is 1) has parameters ``W1, b1, ...``:
``Wl`` of shape (d_{l-1}, d_l) and ``bl`` of shape (d_l,), except the output
layer's ``WL`` of shape (d_{L-1},) and scalar ``bL``, so the output is one value
per data point. Hidden layers are tanh, the output is linear, and the loss is
the mean of log(1 + exp(-t z)).

The same network is written four ways: hand-written matrix numpy (the lecture's
"matrix formulation", the reference), graphdiff op notation (matmul, add, tanh
nodes with tensor parameters), graphdiff neuron notation (one node per neuron,
one scalar weight per edge) and the autodiff frameworks.

>>> dims = [2, 3, 1]
>>> p = init(dims, seed=0)
>>> sorted(p), n_params(dims)
(['W1', 'W2', 'b1', 'b2'], 13)
>>> sorted(to_matrices(to_scalars(p, dims), dims)) == sorted(p)
True
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx
import numpy as np

import graphdiff

from .core import TOLERANCE_FLOAT32, Context, Impl, Results, Row, timed_rows

__all__ = [
    "hand_forward",
    "hand_grad",
    "init",
    "n_params",
    "neuron_graph",
    "op_graph",
    "to_matrices",
    "to_scalars",
    "w3",
    "w3_memory",
    "w4",
    "w8",
    "w8_impls",
]

Array = np.ndarray
Params = dict[str, Any]
LR = 0.1


def n_params(dims: list[int]) -> int:
    """Weights plus biases of the MLP with layer sizes ``dims``."""
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def _shapes(dims: list[int]) -> dict[str, tuple[int, ...]]:
    L = len(dims) - 1
    shapes: dict[str, tuple[int, ...]] = {}
    for l in range(1, L + 1):  # noqa: E741 (the lecture's layer index)
        last = l == L
        shapes[f"W{l}"] = (dims[l - 1],) if last else (dims[l - 1], dims[l])
        shapes[f"b{l}"] = () if last else (dims[l],)
    return shapes


def init(dims: list[int], seed: int) -> Params:
    """Glorot-uniform weights and small random biases (so bias gradients are exercised)."""
    rng = np.random.default_rng(seed)
    p: Params = {}
    for name, shape in _shapes(dims).items():
        if name.startswith("W"):
            fan_in, fan_out = shape[0], shape[1] if len(shape) == 2 else 1
            a = np.sqrt(6.0 / (fan_in + fan_out))
            p[name] = rng.uniform(-a, a, shape)
        else:
            p[name] = rng.uniform(-0.1, 0.1, shape)
    return p


def data(n: int, d: int, seed: int) -> tuple[Array, Array]:
    """Standard normal inputs (N, d) and labels ±1 from a fixed random rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = np.where(np.sin(X @ rng.standard_normal(d)) > 0, 1.0, -1.0)
    return X, t


# -- hand-written numpy: the lecture's matrix formulation ----------------------------------


def _sigmoid(x: Array) -> Array:
    s: Array = np.exp(-np.logaddexp(0.0, -x))
    return s


def hand_forward(p: Params, X: Array, t: Array) -> Any:
    """The mean logistic loss."""
    L = len(p) // 2
    h = X
    for l in range(1, L):  # noqa: E741
        h = np.tanh(h @ p[f"W{l}"] + p[f"b{l}"])
    z = h @ p[f"W{L}"] + p[f"b{L}"]
    return np.logaddexp(0.0, -t * z).mean()


def hand_grad(p: Params, X: Array, t: Array) -> tuple[Any, Params]:
    """Mean logistic loss and gradients of every parameter.

    Output: dE/dz = -t sigmoid(-t z) / N. Layer by layer (slides, "matrix
    formulation"): δ^(l-1) = (g'(z^(l)) ⊙ δ^(l)) W^T and dE/dW = a^(l-1)T (g' ⊙ δ),
    with g'(z) = 1 - a^2 for tanh.
    """
    L = len(p) // 2
    hs = [X]
    for l in range(1, L):  # noqa: E741
        hs.append(np.tanh(hs[-1] @ p[f"W{l}"] + p[f"b{l}"]))
    z = hs[-1] @ p[f"W{L}"] + p[f"b{L}"]
    m = -t * z
    E = np.logaddexp(0.0, m).mean()
    dz = -t * _sigmoid(m) / t.shape[0]
    g: Params = {f"W{L}": hs[-1].T @ dz, f"b{L}": dz.sum()}
    dh = np.multiply.outer(dz, p[f"W{L}"])
    for l in range(L - 1, 0, -1):  # noqa: E741
        h = hs[l]
        dz = dh * (1.0 - h * h)
        g[f"W{l}"] = hs[l - 1].T @ dz
        g[f"b{l}"] = dz.sum(axis=0)
        if l > 1:
            dh = dz @ p[f"W{l}"].T
    return E, g


class PreallocatedStep:
    """One SGD step of the 2-hidden-layer MLP with every buffer allocated once (``out=``).

    The issue's best case for hand numpy: no large temporary is handed back to the
    OS and page-faulted in again on the next call.
    """

    def __init__(self, p: Params, X: Array, t: Array) -> None:
        assert len(p) == 6, "written out for two hidden layers"
        self.p, self.X, self.t = p, X, t
        n, (d1, d2) = X.shape[0], (p["b1"].shape[0], p["b2"].shape[0])
        self.h1, self.h2 = np.empty((n, d1)), np.empty((n, d2))
        self.d1, self.d2 = np.empty((n, d1)), np.empty((n, d2))
        self.tmp1, self.tmp2 = np.empty((n, d1)), np.empty((n, d2))
        self.z, self.m, self.dz = np.empty(n), np.empty(n), np.empty(n)
        self.g = {k: np.empty(v.shape) for k, v in p.items()}
        self.scaled = {k: np.empty(v.shape) for k, v in p.items()}

    def __call__(self) -> tuple[Any, Params, Params]:
        p, g, X, t = self.p, self.g, self.X, self.t
        h1, h2, d1, d2, z, m, dz = self.h1, self.h2, self.d1, self.d2, self.z, self.m, self.dz
        np.matmul(X, p["W1"], out=h1)
        np.add(h1, p["b1"], out=h1)
        np.tanh(h1, out=h1)
        np.matmul(h1, p["W2"], out=h2)
        np.add(h2, p["b2"], out=h2)
        np.tanh(h2, out=h2)
        np.matmul(h2, p["W3"], out=z)
        np.add(z, p["b3"], out=z)
        np.multiply(t, z, out=m)
        np.negative(m, out=m)
        np.logaddexp(0.0, m, out=dz)
        E = dz.mean()
        # dz = -t sigmoid(m) / N, sigmoid(m) = exp(-logaddexp(0, -m))
        np.negative(m, out=dz)
        np.logaddexp(0.0, dz, out=dz)
        np.negative(dz, out=dz)
        np.exp(dz, out=dz)
        np.multiply(dz, t, out=dz)
        np.multiply(dz, -1.0 / t.shape[0], out=dz)
        np.matmul(h2.T, dz, out=g["W3"])
        g["b3"][...] = dz.sum()
        np.multiply.outer(dz, p["W3"], out=d2)
        np.multiply(h2, h2, out=self.tmp2)
        np.subtract(1.0, self.tmp2, out=self.tmp2)
        np.multiply(d2, self.tmp2, out=d2)
        np.matmul(h1.T, d2, out=g["W2"])
        np.sum(d2, axis=0, out=g["b2"])
        np.matmul(d2, p["W2"].T, out=d1)
        np.multiply(h1, h1, out=self.tmp1)
        np.subtract(1.0, self.tmp1, out=self.tmp1)
        np.multiply(d1, self.tmp1, out=d1)
        np.matmul(X.T, d1, out=g["W1"])
        np.sum(d1, axis=0, out=g["b1"])
        for k, v in p.items():
            np.multiply(g[k], LR, out=self.scaled[k])
            np.subtract(v, self.scaled[k], out=v)
        return E, g, p


# -- graphdiff: op notation and neuron notation ------------------------------------------


def op_graph(dims: list[int]) -> nx.DiGraph[Any]:
    """The MLP in op notation: input X (N, d), tensor parameters, matmul/add/tanh nodes."""
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["X", "t"], op="input")
    L, prev = len(dims) - 1, "X"
    for name, shape in _shapes(dims).items():
        G.add_node(name, op="param", shape=shape)
    for l in range(1, L + 1):  # noqa: E741
        G.add_node(f"xW{l}", op="matmul")
        G.add_edge(prev, f"xW{l}", port=0)
        G.add_edge(f"W{l}", f"xW{l}", port=1)
        G.add_node(f"z{l}", op="add")
        G.add_edge(f"xW{l}", f"z{l}", port=0)
        G.add_edge(f"b{l}", f"z{l}", port=1)
        prev = f"z{l}"
        if l < L:
            G.add_node(f"h{l}", op="tanh")
            G.add_edge(prev, f"h{l}")
            prev = f"h{l}"
    G.add_node("E", op="logistic")
    G.add_edge(prev, "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def _neuron(l: int, j: int, L: int) -> str:  # noqa: E741
    return "out" if l == L else f"h{l}_{j}"


def _scalar_names(dims: list[int]) -> list[tuple[str, str, tuple[int, ...]]]:
    """(scalar parameter, matrix parameter, index) for every weight and bias."""
    L = len(dims) - 1
    out: list[tuple[str, str, tuple[int, ...]]] = []
    for l in range(1, L + 1):  # noqa: E741
        last = l == L
        for j in range(dims[l]):
            for i in range(dims[l - 1]):
                idx: tuple[int, ...] = (i,) if last else (i, j)
                out.append((f"W{l}[{','.join(map(str, idx))}]", f"W{l}", idx))
            out.append((f"b{l}" if last else f"b{l}[{j}]", f"b{l}", () if last else (j,)))
    return out


def neuron_graph(dims: list[int]) -> nx.DiGraph[Any]:
    """The MLP drawn neuron by neuron: inputs x0, x1, ...; one scalar weight per edge."""
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from([f"x{i}" for i in range(dims[0])] + ["t"], op="input")
    L = len(dims) - 1
    names = iter(_scalar_names(dims))
    for l in range(1, L + 1):  # noqa: E741
        for j in range(dims[l]):
            v = _neuron(l, j, L)
            for i in range(dims[l - 1]):
                u = f"x{i}" if l == 1 else _neuron(l - 1, i, L)
                G.add_edge(u, v, param=next(names)[0])
            act = "identity" if l == L else "tanh"
            G.add_node(v, op="neuron", activation=act, bias=next(names)[0])
    G.add_node("E", op="logistic")
    G.add_edge("out", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def to_scalars(p: Params, dims: list[int]) -> Params:
    """Matrix parameters to the neuron notation's one scalar per weight and bias."""
    return {s: np.float64(p[m][idx]) for s, m, idx in _scalar_names(dims)}


def to_matrices(g: Params, dims: list[int]) -> Params:
    """Scalar parameters (or gradients) of the neuron notation back to matrices."""
    out = {name: np.zeros(shape) for name, shape in _shapes(dims).items()}
    for s, m, idx in _scalar_names(dims):
        out[m][idx] = g[s]
    return out


def neuron_inputs(X: Array, t: Array) -> dict[str, Array]:
    return {**{f"x{i}": np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])}, "t": t}


# -- the autodiff frameworks ------------------------------------------------------------


def _fw_loss(p: dict[str, Any], X: Any, t: Any, tanh: Any, softplus: Any) -> Any:
    L = len(p) // 2
    h = X
    for l in range(1, L):  # noqa: E741
        h = tanh(h @ p[f"W{l}"] + p[f"b{l}"])
    z = h @ p[f"W{L}"] + p[f"b{L}"]
    return softplus(-t * z).mean()


def _grads_named(loss: Any, grads: Params, new: Params | None = None) -> Results:
    out: Results = {"loss": np.float64(loss)}
    out.update({f"grad/{k}": np.array(v, dtype=np.float64) for k, v in grads.items()})
    if new is not None:
        out.update({f"new/{k}": np.array(v, dtype=np.float64) for k, v in new.items()})
    return out


def torch_impl(
    ctx: Context, p: Params, X: Array, t: Array, step: bool, name: str = "PyTorch eager"
) -> Impl:
    """PyTorch eager, in X's float type (float64; float32 for W8): autograd.grad, then
    (for a step) an in-place SGD update."""
    torch = ctx.torch
    names = sorted(p)
    dtype = torch.float32 if X.dtype == np.float32 else torch.float64
    tp = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in p.items()}
    tX, tt = torch.from_numpy(X), torch.from_numpy(t)
    zero = torch.zeros((), dtype=dtype)

    def softplus(m: Any) -> Any:
        return torch.logaddexp(zero, m)

    def run() -> Any:
        E = _fw_loss(tp, tX, tt, torch.tanh, softplus)
        gs = dict(zip(names, torch.autograd.grad(E, [tp[k] for k in names]), strict=True))
        if step:
            with torch.no_grad():
                for k in names:
                    tp[k].sub_(gs[k], alpha=LR)
        return E, gs

    def result(r: Any) -> Results:
        new = {k: v.detach().numpy() for k, v in tp.items()} if step else None
        return _grads_named(r[0].item(), {k: g.numpy() for k, g in r[1].items()}, new)

    return Impl(name, run, result)


def jax_impl(ctx: Context, p: Params, X: Array, t: Array, step: bool) -> Impl:
    """jax.jit of value_and_grad (and, for a step, the functional SGD update)."""
    jax, jnp = ctx.jax, ctx.jax.numpy
    jX, jt = jnp.asarray(X), jnp.asarray(t)

    def loss(q: Any, a: Any, b: Any) -> Any:
        return _fw_loss(q, a, b, jnp.tanh, lambda m: jnp.logaddexp(0.0, m))

    vg = jax.value_and_grad(loss)

    def sgd(q: Any, a: Any, b: Any) -> Any:
        E, g = vg(q, a, b)
        return E, g, {k: q[k] - LR * g[k] for k in q}

    f = jax.jit(sgd if step else vg)
    state = {"p": {k: jnp.asarray(v) for k, v in p.items()}}

    def run() -> Any:
        r = jax.block_until_ready(f(state["p"], jX, jt))
        if step:
            state["p"] = r[2]
        return r

    return Impl("jax.jit", run, lambda r: _grads_named(*r))


def _frameworks(ctx: Context, p: Params, X: Array, t: Array, step: bool) -> list[Impl]:
    out = []
    if ctx.torch is not None:
        out.append(torch_impl(ctx, p, X, t, step))
    if ctx.jax is not None:
        out.append(jax_impl(ctx, p, X, t, step))
    return out


def _copy(p: Params) -> Params:
    return {k: np.array(v) for k, v in p.items()}


# -- W3: one training step in op notation -------------------------------------------------

W3_DIMS = [2, 256, 256, 1]


def _hand_step(p: Params, X: Array, t: Array) -> tuple[Any, Params, Params]:
    E, g = hand_grad(p, X, t)
    for k, v in p.items():
        v -= LR * g[k]
    return E, g, p


def _graphdiff_step(net: Any, p: Mapping[str, Any], inputs: dict[str, Array]) -> Callable[[], Any]:
    """A training step as a graphdiff user writes it: backward, then graphdiff.SGD."""
    state, opt = {"p": p}, graphdiff.SGD(lr=LR)

    def run() -> tuple[Any, Any, Mapping[str, Any]]:
        res = net.backward(state["p"], inputs)
        state["p"] = opt.step(state["p"], res.grads)
        return res.loss, res.grads, state["p"]

    return run


def _w3_setup(ctx: Context) -> tuple[Params, Array, Array]:
    n = ctx.size(4096, 32)
    dims = W3_DIMS if not ctx.smoke else [2, 8, 8, 1]
    X, t = data(n, 2, seed=3)
    return init(dims, seed=3), X, t


def w3_impls(ctx: Context) -> list[Impl]:
    """Hand numpy, hand numpy with preallocated buffers, graphdiff, frameworks: one SGD step."""
    p0, X, t = _w3_setup(ctx)
    dims = [X.shape[1], p0["b1"].shape[0], p0["b2"].shape[0], 1]
    net = graphdiff.compile(op_graph(dims), loss="E")
    hp, pp = _copy(p0), _copy(p0)
    pre = PreallocatedStep(pp, X, t)
    return [
        Impl("hand numpy", lambda: _hand_step(hp, X, t), lambda r: _grads_named(*r)),
        Impl("hand numpy, out= buffers", pre, lambda r: _grads_named(*r)),
        Impl("graphdiff", _graphdiff_step(net, _copy(p0), {"X": X, "t": t}),
             lambda r: _grads_named(*r)),
        *_frameworks(ctx, _copy(p0), X, t, step=True),
    ]


def w3(ctx: Context) -> list[Row]:
    """W3: 2-256-256-1 tanh MLP, logistic loss, N = 4,096: forward, backward, SGD update."""
    notes = {"hand numpy, out= buffers": "the issue's best case for hand numpy",
             "graphdiff": "backward, then graphdiff.SGD.step"}
    return timed_rows("W3", w3_impls(ctx), ctx.budget(15.0), target=1.05, notes=notes)


def _step_peak(make: Callable[[], Callable[[], Any]]) -> int:
    """Bytes above the data and parameters at the peak of a warm training step.

    Everything the implementation keeps between steps (plan, buffers) counts,
    since tracing starts before it is built; the second step is the one measured.
    """
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        step = make()
        step()
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def w3_memory(ctx: Context) -> list[Row]:
    """Peak memory of one W3 training step, graphdiff against hand numpy (tracemalloc)."""
    p0, X, t = _w3_setup(ctx)
    dims = [X.shape[1], p0["b1"].shape[0], p0["b2"].shape[0], 1]
    G = op_graph(dims)
    hp, pp, gp = _copy(p0), _copy(p0), _copy(p0)
    peaks = {
        "hand numpy": _step_peak(lambda: lambda: _hand_step(hp, X, t)),
        "hand numpy, out= buffers": _step_peak(lambda: PreallocatedStep(pp, X, t)),
        "graphdiff": _step_peak(
            lambda: _graphdiff_step(graphdiff.compile(G, loss="E"), gp, {"X": X, "t": t})
        ),
    }
    ref = peaks["hand numpy"]
    note = "tracemalloc peak above data and parameters"
    return [
        Row("W3 memory", k, v, "B", v / ref, "hand numpy", 1.3 if k == "graphdiff" else None,
            note if k == "hand numpy" else "")
        for k, v in peaks.items()
    ]


# -- W4: the same kind of MLP drawn neuron by neuron ----------------------------------------

W4_DIMS = [2, 32, 32, 1]


def w4(ctx: Context) -> list[Row]:
    """W4: 2-32-32-1 tanh MLP in neuron notation (1,185 parameters), N = 1,024: loss + gradient."""
    dims = W4_DIMS if not ctx.smoke else [2, 4, 3, 1]
    n = ctx.size(1024, 16)
    X, t = data(n, 2, seed=4)
    p = init(dims, seed=4)
    neuron_net = graphdiff.compile(neuron_graph(dims), loss="E")
    assert len(neuron_net.param_shapes) == n_params(dims)
    op_net = graphdiff.compile(op_graph(dims), loss="E")
    ps, ni, oi = to_scalars(p, dims), neuron_inputs(X, t), {"X": X, "t": t}
    impls = [
        Impl("hand numpy", lambda: hand_grad(p, X, t), lambda r: _grads_named(*r)),
        Impl("graphdiff", lambda: neuron_net.backward(ps, ni),
             lambda r: _grads_named(r.loss, to_matrices(r.grads, dims))),
        Impl("graphdiff, op notation", lambda: op_net.backward(p, oi),
             lambda r: _grads_named(r.loss, r.grads)),
        *_frameworks(ctx, p, X, t, step=False),
    ]
    notes = {"hand numpy": "matrix formulation",
             "graphdiff": f"neuron notation, {n_params(dims):,} scalar parameters"}
    return timed_rows("W4", impls, ctx.budget(10.0), target=1.5, notes=notes)



# -- W8: W3 in float32 -------------------------------------------------------------------


def w8_impls(ctx: Context) -> list[Impl]:
    """W3's step in float64 by hand (the reference), and in float32: by hand, graphdiff
    compiled with ``dtype=np.float32``, PyTorch."""
    p0, X, t = _w3_setup(ctx)
    dims = [X.shape[1], p0["b1"].shape[0], p0["b2"].shape[0], 1]
    net = graphdiff.compile(op_graph(dims), loss="E", dtype=np.float32)
    # the data and parameters a float32 user holds: converted once, outside the step
    X32, t32 = X.astype(np.float32), t.astype(np.float32)
    p32 = {k: np.array(v, dtype=np.float32) for k, v in p0.items()}
    hp, hp32 = _copy(p0), _copy(p32)
    impls = [
        Impl("hand numpy", lambda: _hand_step(hp, X, t), lambda r: _grads_named(*r)),
        Impl("hand numpy, float32", lambda: _hand_step(hp32, X32, t32),
             lambda r: _grads_named(*r)),
        Impl("graphdiff, float32",
             _graphdiff_step(net, net.as_params(p32), {"X": X32, "t": t32}),
             lambda r: _grads_named(*r)),
    ]
    if ctx.torch is not None:
        impls.append(torch_impl(ctx, _copy(p32), X32, t32, True, "PyTorch eager, float32"))
    return impls


def w8(ctx: Context) -> list[Row]:
    """W8: W3's step (2-256-256-1 tanh MLP, op notation, N = 4,096, SGD) with the
    network compiled as float32, against hand numpy in float64 (and float32)."""
    notes = {"hand numpy": "float64, as in W3",
             "graphdiff, float32": "compile(..., dtype=np.float32); backward, then SGD.step"}
    return timed_rows("W8", w8_impls(ctx), ctx.budget(15.0), target=0.65,
                      target_impl="graphdiff, float32", notes=notes,
                      tolerance=TOLERANCE_FLOAT32)
