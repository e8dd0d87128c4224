"""Predictions, probabilities and evaluation, as the network's loss op defines them.

A loss op declares its target domain (``Op.targets``), whether it is a
classifier and how its prediction z (the loss's port-0 operand) becomes a class
label (``Op.predicts``), and the probabilities it models (``Op.proba``). From
these, for built-in and registered losses alike:

- :func:`predict`: class labels (+1/-1, or the argmax's class index) for a
  classifier loss, the prediction z itself for a regression loss;
- :func:`predict_proba`: P(t = +1) = sigmoid(z) for logistic, softmax(z) for
  softmax cross-entropy;
- :func:`evaluate`: the loss and, for classifiers, the accuracy;
- :func:`check_targets`: refuses targets outside the loss's domain (0/1 labels
  for logistic, say) with a :class:`~graphdiff.errors.TargetError` that names
  the loss node, shows the values found and the fix. :func:`graphdiff.fit` and
  :func:`evaluate` call it once per call; ``backward`` and ``forward`` stay the
  plain mathematics and check nothing.

Data may be a dict of arrays or a pandas ``DataFrame`` (columns feed the
inputs of the same names; see :func:`graphdiff.feed`).

>>> import numpy as np, graphdiff
>>> net = graphdiff.compile(graphdiff.mlp([2, 1], loss="logistic"), loss="E")
>>> params = {"x1->y": 2.0, "x2->y": 0.0, "y.bias": 0.0}
>>> data = {"x": np.array([[1.0, 5.0], [-1.0, 5.0]]), "t": np.array([1.0, 1.0])}
>>> net.predict(params, data)
array([ 1., -1.])
>>> net.predict_proba(params, data).round(3)
array([0.881, 0.119])
>>> graphdiff.evaluate(net, params, data)["accuracy"]
0.5
>>> try:
...     graphdiff.evaluate(net, params, {**data, "t": np.array([1.0, 0.0])})
... except graphdiff.TargetError as e:
...     print(str(e).replace(". Fix", ".\\nFix"))
loss node 'E' (logistic) takes targets -1 or +1 (input 't'); found {0, 1}.
Fix: t = 2 * t - 1 maps 0/1 labels to -1/+1 (graphdiff train maps labels itself)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from .data import fed_inputs
from .errors import GraphdiffError, InputError, NonFiniteError, ShapeError, TargetError
from .plan import as_numbers
from .registry import Op, get_op

if TYPE_CHECKING:
    from .network import Network

__all__ = [
    "accuracy",
    "check_targets",
    "evaluate",
    "inputs_of",
    "is_classifier",
    "loss_op",
    "metrics",
    "operands",
    "predict",
    "predict_proba",
]

Array = NDArray[np.float64]

DOMAINS = {
    "signs": "-1 or +1",
    "classes": "class indices 0..K-1 (shape (N,)) or rows of K probabilities (N, K)",
    "real": "finite numbers",
}


def loss_op(net: Network) -> Op | None:
    """The registered op of the network's loss node (``None`` if it has none)."""
    name = net.graph.nodes[net.require_loss("predictions by the loss")].get("op")
    try:
        return get_op(name) if isinstance(name, str) else None
    except GraphdiffError:
        return None


def is_classifier(net: Network) -> bool:
    """Does the loss op declare how it predicts a class (``Op.predicts``)?"""
    op = loss_op(net)
    return op is not None and op.loss and op.predicts is not None


def operands(net: Network) -> tuple[Hashable, Hashable]:
    """The loss node's (prediction, target) operands: its ports 0 and 1."""
    by_port = {d.get("port"): u for u, _, d in net.graph.in_edges(net.loss, data=True)}
    if 0 not in by_port or 1 not in by_port:
        raise InputError(
            f"loss node {net.loss!r} needs its prediction on port 0 and its target on port 1"
        )
    return by_port[0], by_port[1]


def _name(net: Network) -> str:
    op = loss_op(net)
    return f"loss node {net.loss!r} ({op.name if op else 'no op'})"


# -- targets ------------------------------------------------------------------------


def _shown(values: Array) -> tuple[str, tuple[float, ...]]:
    """The distinct values, as ``{0, 1}`` (at most six shown), and the first of them."""
    u = np.unique(values)
    found = tuple(float(v) for v in u[:6])
    text = ", ".join(f"{v:g}" for v in found)
    if len(u) > 6:
        text += f", ... ({len(u)} distinct values from {u.min():g} to {u.max():g})"
    return "{" + text + "}", found


def check_targets(net: Network, t: Any, *, k: int | None = None, what: str = "data") -> None:
    """Refuse targets ``t`` outside the loss op's domain (``Op.targets``).

    ``k`` is the number of classes (the width of the prediction) for class-index
    targets, when known. Raises :class:`~graphdiff.errors.TargetError` naming the
    loss node, showing the values found and the fix. Loss ops without a declared
    domain accept anything.
    """
    op = loss_op(net)
    domain = op.targets if op is not None else None
    if domain is None:
        return
    target = operands(net)[1]
    t = as_numbers(t, f"{what}: input {target!r}")
    if t.size == 0:
        return
    where = "" if what == "data" else f" of the {what}"
    head = f"{_name(net)} takes targets {DOMAINS[domain]} (input {target!r}{where})"
    if not np.isfinite(t).all():
        bad = int((~np.isfinite(t)).sum())
        raise TargetError(
            f"{head}; found {bad} non-finite value(s) (NaN or infinite). "
            "Fix: drop or fill those rows first",
            node=net.loss,
        )
    fix = ""
    if domain == "signs":
        if np.all((t == 1.0) | (t == -1.0)):
            return
        shown, found = _shown(t)
        if set(found) <= {0.0, 1.0}:
            fix = ("t = 2 * t - 1 maps 0/1 labels to -1/+1 "
                   "(graphdiff train maps labels itself)")
        elif len(found) <= 2:
            pos = f"{found[-1]:g}"
            fix = f"map the two labels to -1/+1, e.g. t = np.where(t == {pos}, 1.0, -1.0)"
        else:
            fix = ("more than two classes need softmax_cross_entropy, with class indices "
                   "0..K-1 as targets")
    elif domain == "classes":
        if t.ndim == 1:
            whole = np.all(t == np.round(t))
            top = k if k is not None else math.inf
            if whole and t.min() >= 0 and t.max() < top:
                return
            shown, found = _shown(t)
            width = f" (the prediction has K = {k} columns)" if k is not None else ""
            fix = (f"encode the labels as class indices 0..K-1{width}, e.g. "
                   "classes, t = np.unique(labels, return_inverse=True)")
        else:
            rows = t.reshape(len(t), -1).sum(axis=1)
            if t.min() >= 0 and np.allclose(rows, 1.0, rtol=0.0, atol=1e-6):
                return
            shown, found = _shown(t)
            fix = ("each row must be probabilities (>= 0, summing to 1), e.g. one-hot rows; "
                   "class indices go in an array of shape (N,)")
    else:
        return  # "real": any finite number
    raise TargetError(f"{head}; found {shown}. Fix: {fix}", node=net.loss, found=found)


def _classes(net: Network, params: Mapping[str, Any], data: Mapping[Hashable, Any]) -> int | None:
    """K, the prediction's width, for class-index targets (from one data point)."""
    op = loss_op(net)
    target = operands(net)[1]
    if op is None or op.targets != "classes" or np.ndim(data[target]) != 1:
        return None
    if all(n in data for n in net.inputs):
        # one data point through the generated code, with class 0 as its target (valid
        # whatever K is): far less work than the interpreter's forward below
        first = {n: np.asarray(data[n][:1]) for n in net.inputs}
        first[target] = np.zeros(1)
        try:
            z = net.loss_terms(params, first)[2][0]
        except GraphdiffError:
            pass  # the forward below says what is wrong
        else:
            return int(z.shape[1]) if z.ndim == 2 else None
    pred = operands(net)[0]
    needed = inputs_of(net, pred)
    one = {n: np.asarray(data[n][:1]) for n in needed}
    z = net.forward(params, one, outputs=[pred])[pred]
    return int(z.shape[1]) if z.ndim == 2 else None


def check_data(
    net: Network, params: Mapping[str, Any], data: Mapping[Hashable, Any], what: str = "data"
) -> None:
    """:func:`check_targets` on the target input of ``data``, if the target is an input."""
    target = operands(net)[1] if loss_op(net) is not None else None
    if target is None or target not in net.inputs or target not in data:
        return
    t = data[target]
    if not isinstance(t, np.ndarray):  # a dask array: checked where it is, not here
        return
    check_targets(net, t, k=_classes(net, params, data), what=what)


# -- feeding ------------------------------------------------------------------------


def inputs_of(net: Network, node: Hashable) -> list[Hashable]:
    """The network's inputs that ``node`` depends on (in the network's input order)."""
    up = nx.ancestors(net.graph, node) | {node}
    return [n for n in net.inputs if n in up]


# -- predictions --------------------------------------------------------------------


def _prediction(net: Network, params: Mapping[str, Any], inputs: Any) -> Array:
    pred = operands(net)[0]
    data = fed_inputs(inputs, inputs_of(net, pred), "inputs")
    return net.forward(params, data, outputs=[pred])[pred]


def labels(op: Op, z: Array) -> Array:
    """Class labels from predictions z: +1/-1 by sign (0 gives -1), or argmax's index."""
    if op.predicts == "sign":  # labels of z's float type (float32 in a float32 network)
        out: Array = np.where(z > 0, 1.0, -1.0).astype(z.dtype, copy=False)
        return out
    index: Array = np.argmax(z, axis=1).astype(z.dtype)
    return index


def predict(net: Network, params: Mapping[str, Any], inputs: Any) -> Array:
    """What the network predicts for ``inputs`` (no target needed).

    For a classifier loss the class labels: +1/-1 (``predicts="sign"``: +1 where
    z > 0) or the class index of the largest z (``"argmax"``); for a regression
    loss the prediction z itself. ``inputs`` is a dict of arrays or a DataFrame.
    """
    z = _prediction(net, params, inputs)
    op = loss_op(net)
    return labels(op, z) if op is not None and op.predicts is not None else z


def predict_proba(net: Network, params: Mapping[str, Any], inputs: Any) -> Array:
    """The probabilities the loss models: for logistic P(t = +1) = sigmoid(z), shape
    (N,); for softmax cross-entropy softmax(z), shape (N, K).

    Raises :class:`~graphdiff.errors.InputError` naming the loss for losses that
    model no probabilities (hinge, squared error).
    """
    op = loss_op(net)
    if op is None or op.proba is None:
        raise InputError(
            f"predict_proba: {_name(net)} models no probabilities (losses that do: "
            "logistic, softmax_cross_entropy); predict gives its labels or values"
        )
    proba: Array = op.proba(_prediction(net, params, inputs))
    return proba


# -- evaluation ---------------------------------------------------------------------


def accuracy(op: Op, z: Array, t: Array) -> float:
    """The fraction classified correctly: ``z t > 0`` for ``predicts="sign"`` (0 is
    wrong), ``argmax(z) == t`` (or ``argmax(t)`` for probability rows) for
    ``"argmax"``."""
    if op.predicts == "argmax":
        truth = t if t.ndim == 1 else np.argmax(t, axis=1)
        return float(np.mean(np.argmax(z, axis=1) == truth))
    return float(np.mean(z * t > 0))


def metrics(
    net: Network, params: Mapping[str, Any], data: Mapping[Hashable, Any]
) -> dict[str, float]:
    """:func:`evaluate` on inputs already fed and checked (what :func:`fit` runs each epoch)."""
    op = loss_op(net)
    classify = op is not None and op.predicts is not None
    if not classify:
        loss = float(net.error(params, data))
    else:  # one forward pass, in the generated code, gives the loss and the prediction
        E, _, (z, t) = net.loss_terms(params, data)
        loss = float(E)
    if not math.isfinite(loss):
        every = net.forward(params, data, outputs=[net.loss])
        first = next((n for n, v in every.items() if not np.all(np.isfinite(v))), net.loss)
        raise NonFiniteError(
            f"the loss {net.loss!r} is not finite ({loss}); the first non-finite value is "
            f"node {first!r}",
            node=first,
            phase="forward",
        )
    out = {"loss": loss}
    if classify:
        assert op is not None
        out["accuracy"] = accuracy(op, z, t)
    return out


def evaluate(net: Network, params: Mapping[str, Any], data: Any) -> dict[str, float]:
    """The loss over ``data`` and, for classifier losses, the accuracy.

    The loss is reduced as the network's ``reduction`` says (mean by default).
    Accuracy is the fraction of data points classified correctly (see
    :func:`accuracy`); the prediction is the loss node's port-0 operand. The
    targets are checked against the loss's domain first (:func:`check_targets`).
    ``data`` is a dict of arrays or a DataFrame (see :func:`graphdiff.feed`). A
    non-finite loss raises :class:`~graphdiff.errors.NonFiniteError` naming the
    first node whose value went non-finite.
    """
    fed = fed_inputs(data, list(net.inputs), "data")
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in fed.values()}
    if len(sizes) > 1:
        raise ShapeError(f"data: inputs must share a first axis over data points, got {sizes!r}")
    check_data(net, params, fed)
    return metrics(net, params, fed)
