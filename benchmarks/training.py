"""W7 and W7 fit: minibatch training, as people train, in both notations.

The network is the digits-sized classifier 64-32-10 with relu hidden units, linear
outputs and softmax cross-entropy (mean over the batch), trained with Adam at
batch 32. The data has the digits' training-split shape (1,347 points x 64
features, 10 classes), drawn at random with labels from a fixed random rule, so
no data set has to be installed.

- W7: one training step (gradient, then ``Adam.step``) on a fixed batch of 32:
  hand-written numpy on the four arrays ``W1, b1, W2, b2`` (the reference),
  graphdiff in op notation (tensor parameters), graphdiff in neuron notation
  (one node per neuron, one scalar weight per edge: 2,410 parameters), and
  PyTorch eager (float64) when installed. Each keeps its own state, so the
  compared step is the first one and every timed call is a further step.
- W7 fit: 5 epochs of ``graphdiff.fit`` with its defaults, batch 32, shuffled,
  neuron notation, against a hand-numpy loop that takes the same steps in the
  same order (the same permutations of ``np.random.default_rng(seed)``), and so
  ends at the same parameters.

>>> dims = [3, 2, 2]
>>> p = init(dims, seed=0)
>>> sorted(p), sorted(to_matrices(to_scalars(p, dims), dims)) == sorted(p)
(['W1', 'W2', 'b1', 'b2'], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

import graphdiff

from .core import Context, Impl, Results, Row, timed_rows

__all__ = ["init", "to_matrices", "to_scalars", "w7", "w7_fit"]

Array = np.ndarray
Params = dict[str, Any]
DIMS = [64, 32, 10]
N_TRAIN = 1347
BATCH = 32
LR = 1e-3
B1, B2, EPS = 0.9, 0.999, 1e-8


def init(dims: list[int], seed: int) -> Params:
    """He-uniform weights for relu and small random biases (so their gradients show)."""
    rng = np.random.default_rng(seed)
    d0, d1, d2 = dims
    return {
        "W1": rng.uniform(-1, 1, (d0, d1)) * np.sqrt(6.0 / d0),
        "b1": rng.uniform(-0.1, 0.1, d1),
        "W2": rng.uniform(-1, 1, (d1, d2)) * np.sqrt(6.0 / d1),
        "b2": rng.uniform(-0.1, 0.1, d2),
    }


def data(n: int, dims: list[int], seed: int) -> tuple[Array, Array]:
    """Standard normal inputs (n, d0) and class labels 0..d2-1 from a fixed random rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dims[0]))
    t = np.argmax(X @ rng.standard_normal((dims[0], dims[2])), axis=1)
    return X, t


# -- the names graphdiff.mlp gives in neuron notation ---------------------------------------


def _hidden(k: int) -> str:
    return f"h1_{k + 1}"


def _names(dims: list[int]) -> dict[str, list[tuple[tuple[int, ...], str]]]:
    d0, d1, d2 = dims
    return {
        "W1": [((j, k), f"x{j + 1}->{_hidden(k)}") for j in range(d0) for k in range(d1)],
        "b1": [((k,), f"{_hidden(k)}.bias") for k in range(d1)],
        "W2": [((j, k), f"{_hidden(j)}->y{k + 1}") for j in range(d1) for k in range(d2)],
        "b2": [((k,), f"y{k + 1}.bias") for k in range(d2)],
    }


def to_scalars(p: Params, dims: list[int]) -> Params:
    """The matrices' entries under neuron notation's parameter names."""
    return {name: p[m][ix] for m, entries in _names(dims).items() for ix, name in entries}


def to_matrices(s: Any, dims: list[int]) -> Params:
    """Scalar gradients or parameters by name, back into the four arrays."""
    out: Params = {}
    for m, entries in _names(dims).items():
        shape = tuple(max(ix[a] for ix, _ in entries) + 1 for a in range(len(entries[0][0])))
        arr = np.zeros(shape)
        for ix, name in entries:
            arr[ix] = s[name]
        out[m] = arr
    return out


def neuron_inputs(X: Array, t: Array) -> dict[str, Array]:
    cols: dict[str, Array] = {f"x{j + 1}": np.ascontiguousarray(X[:, j]) for j in range(X.shape[1])}
    cols["t"] = t
    return cols


# -- hand-written numpy: the gradient and Adam on four arrays -------------------------------


def hand_grad(p: Params, X: Array, t: Array) -> tuple[Any, Params]:
    """Softmax cross-entropy of the 64-32-10 relu MLP and its gradient (matrix formulation)."""
    n = X.shape[0]
    z1 = X @ p["W1"] + p["b1"]
    a1 = np.maximum(z1, 0.0)
    z2 = a1 @ p["W2"] + p["b2"]
    m = z2.max(axis=1, keepdims=True)
    e = np.exp(z2 - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    E = np.mean(np.log(s[:, 0]) + m[:, 0] - z2[rows, t])
    dz2 = e / s
    dz2[rows, t] -= 1.0
    dz2 /= n
    da1 = dz2 @ p["W2"].T
    dz1 = da1 * (z1 > 0)
    return E, {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": a1.T @ dz2, "b2": dz2.sum(axis=0)}


class HandAdam:
    """Adam on the four arrays, in place, the formula of graphdiff.Adam."""

    def __init__(self, p: Params) -> None:
        self.p, self.t = p, 0
        self.m = {k: np.zeros_like(v) for k, v in p.items()}
        self.v = {k: np.zeros_like(v) for k, v in p.items()}

    def step(self, g: Params) -> None:
        self.t += 1
        c1, c2 = 1 - B1**self.t, 1 - B2**self.t
        for k, w in self.p.items():
            m, v = self.m[k], self.v[k]
            m *= B1
            m += (1 - B1) * g[k]
            v *= B2
            v += (1 - B2) * g[k] * g[k]
            w -= LR * (m / c1) / (np.sqrt(v / c2) + EPS)


def _hand_step(adam: HandAdam, X: Array, t: Array) -> tuple[Any, Params, Params]:
    E, g = hand_grad(adam.p, X, t)
    adam.step(g)
    return E, g, adam.p


def _named(loss: Any, grads: Params, new: Params) -> Results:
    out: Results = {"loss": np.float64(loss)}
    out.update({f"grad/{k}": np.asarray(v) for k, v in grads.items()})
    out.update({f"new/{k}": np.asarray(v) for k, v in new.items()})
    return out


def _graphdiff_step(net: Any, p: Params, inputs: dict[str, Array]) -> Any:
    """A training step as a graphdiff user writes it: backward, then graphdiff.Adam, on
    the network's parameters (``net.as_params``, what ``init_params`` gives)."""
    state, opt = {"p": net.as_params(p)}, graphdiff.Adam(lr=LR)

    def run() -> tuple[Any, Any, Params]:
        res = net.backward(state["p"], inputs)
        state["p"] = opt.step(state["p"], res.grads)
        return res.loss, res.grads, state["p"]

    return run


def _torch_step(ctx: Context, p: Params, X: Array, t: Array) -> Impl:
    torch = ctx.torch
    q = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    opt = torch.optim.Adam(list(q.values()), lr=LR, betas=(B1, B2), eps=EPS)
    Xt, tt = torch.from_numpy(X), torch.from_numpy(t)

    def run() -> Any:
        opt.zero_grad()
        z = torch.relu(Xt @ q["W1"] + q["b1"]) @ q["W2"] + q["b2"]
        E = torch.nn.functional.cross_entropy(z, tt)
        E.backward()
        g = {k: v.grad.detach().numpy().copy() for k, v in q.items()}
        opt.step()
        return E.item(), g, {k: v.detach().numpy() for k, v in q.items()}

    return Impl("PyTorch eager", run, lambda r: _named(*r))


def w7(ctx: Context) -> list[Row]:
    """W7: one Adam training step at batch 32 on 64-32-10 relu + softmax cross-entropy."""
    dims = DIMS if not ctx.smoke else [5, 4, 3]
    X, t = data(BATCH, dims, seed=7)
    p = init(dims, seed=7)
    G_op = graphdiff.mlp(dims, "relu", notation="op", loss="softmax_cross_entropy")
    G_neuron = graphdiff.mlp(dims, "relu", notation="neuron", loss="softmax_cross_entropy")
    op_net = graphdiff.compile(G_op, loss="E")
    neuron_net = graphdiff.compile(G_neuron, loss="E")
    n_scalars = len(neuron_net.param_shapes)
    hand = HandAdam({k: v.copy() for k, v in p.items()})
    impls = [
        Impl("hand numpy", lambda: _hand_step(hand, X, t), lambda r: _named(*r)),
        Impl("graphdiff, op notation",
             _graphdiff_step(op_net, {k: v.copy() for k, v in p.items()}, {"x": X, "t": t}),
             lambda r: _named(r[0], dict(r[1]), r[2])),
        Impl("graphdiff, neuron notation",
             _graphdiff_step(neuron_net, to_scalars(p, dims), neuron_inputs(X, t)),
             lambda r: _named(r[0], to_matrices(r[1], dims), to_matrices(r[2], dims))),
    ]
    if ctx.torch is not None:
        impls.append(_torch_step(ctx, p, X, t))
    rows = timed_rows("W7", impls, ctx.budget(12.0), target=2.0,
                      target_impl="graphdiff, neuron notation",
                      notes={"hand numpy": "gradient + Adam on W1, b1, W2, b2",
                             "graphdiff, neuron notation": f"{n_scalars:,} scalar parameters"})
    for row in rows:  # the op-notation row has its own target
        if row.impl == "graphdiff, op notation":
            row.target = 1.5
    return rows


# -- W7 fit: five epochs ---------------------------------------------------------------------

EPOCHS = 5
SEED = 0


def _hand_fit(p0: Params, X: Array, t: Array, epochs: int) -> Params:
    """The steps fit takes: each epoch a permutation from one generator, batches of 32."""
    adam = HandAdam({k: v.copy() for k, v in p0.items()})
    rng = np.random.default_rng(SEED)
    n = X.shape[0]
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            _, g = hand_grad(adam.p, X[idx], t[idx])
            adam.step(g)
    return adam.p


def w7_fit(ctx: Context) -> list[Row]:
    """W7 fit: 5 epochs of fit (defaults), batch 32, shuffled, neuron notation, 1,347 x 64."""
    dims = DIMS if not ctx.smoke else [5, 4, 3]
    n, epochs = ctx.size(N_TRAIN, 70), ctx.size(EPOCHS, 1)
    X, t = data(n, dims, seed=8)
    p = init(dims, seed=8)
    net = graphdiff.compile(
        graphdiff.mlp(dims, "relu", notation="neuron", loss="softmax_cross_entropy"), loss="E"
    )
    inputs, ps = neuron_inputs(X, t), to_scalars(p, dims)

    def run_fit() -> Params:
        res = graphdiff.fit(net, ps, inputs, optimizer=graphdiff.Adam(lr=LR), epochs=epochs,
                            batch_size=BATCH, shuffle=True, seed=SEED, progress=False)
        return to_matrices(res.params, dims)

    impls = [
        Impl("hand numpy", lambda: _hand_fit(p, X, t, epochs),
             lambda r: {f"new/{k}": v for k, v in r.items()}),
        Impl("graphdiff", run_fit, lambda r: {f"new/{k}": v for k, v in r.items()}),
    ]
    notes = {"hand numpy": f"{epochs} epochs of the same Adam steps, no evaluation",
             "graphdiff": "graphdiff.fit with its defaults, neuron notation"}
    return timed_rows("W7 fit", impls, ctx.budget(20.0), target=2.5, notes=notes)
